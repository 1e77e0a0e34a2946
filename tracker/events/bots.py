"""Who is not a reader: crawlers, empty or overlong agents, headless browsers, and
link-preview fetchers (counted apart, per channel: the first sign that a share is
spreading).

crawlerdetect's lists are the source of truth for crawlers; they are matched with RE2,
whose time is linear in the agent's length (Python's `re` backtracks on them: seconds for
an 8 KB agent), and an agent longer than MAX_AGENT_CHARS is a bot without any matching.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from crawlerdetect.providers.crawlers import data as CRAWLERS
from crawlerdetect.providers.exclusions import data as EXCLUSIONS
from re2 import _re2

from tracker.core.errors import Ignored

# No browser sends more (today's longest are about 300); the reader hash and the cache
# key never see more than this.
MAX_AGENT_CHARS: Final = 512

# Checked before the crawler list (which also knows them): these fetch a page to draw
# its preview in a chat or a feed, right after someone shared the link there.
PREVIEW_AGENTS: Final = (
    (r"TelegramBot", "telegram"),
    (r"facebookexternalhit|Facebot|meta-externalagent|facebookcatalog", "facebook"),
    (r"Twitterbot", "twitter"),
    (r"^WhatsApp/", "whatsapp"),
    (r"vkShare", "vk"),
    (r"LinkedInBot", "linkedin"),
    (r"redditbot", "reddit"),
    (
        r"Slackbot|Slack-ImgProxy|Discordbot|SkypeUriPreview|Viber|Iframely|Embedly|"
        r"Pinterestbot|Mastodon/|Bluesky|Applebot-Extended|Google-PageRenderer|"
        # Snap's fetcher, not the in-app browser (`Snapchat/12.62.0.36`): a reader.
        r"Snap URL Preview|Snapchat(?:$|[^/])",
        "other",
    ),
)
HEADLESS: Final = (
    r"HeadlessChrome|PhantomJS|Puppeteer|Playwright|SlimerJS|Nightmare|Selenium|"
    r"Electron/|\bHeadless\b|Lighthouse|Chrome-Lighthouse"
)

HUMAN: Final = "human"
BOT: Final = "bot"
PREVIEWER: Final = "preview"


@dataclass(frozen=True, slots=True)
class Agent:
    kind: str  # HUMAN, BOT or PREVIEWER
    reason: Ignored | None = None  # for BOT: crawler, empty, headless or ua_too_long
    channel: str | None = None  # for PREVIEWER: the share channel


READER: Final = Agent(HUMAN)
TOO_LONG: Final = Agent(BOT, reason=Ignored.UA_TOO_LONG)

_NEGATIVE_LOOKAHEAD: Final = re.compile(r"^(?P<word>[A-Za-z]+)\(\?!(?P<not>[A-Za-z]+)\)$")


def _without_lookahead(pattern: str) -> str:
    """RE2 has no lookahead; crawlerdetect uses it as `Word(?!Other)`, which is the same as
    Word followed by the end, or by anything that does not continue to spell Other."""
    match = _NEGATIVE_LOOKAHEAD.match(pattern)
    if match is None:
        return pattern
    rest = ""
    for char in reversed(match.group("not")):
        rest = f"$|[^{char}]" + (f"|{char}(?:{rest})" if rest else "")
    return f"{match.group('word')}(?:{rest})"


def _compile(patterns: Sequence[str], *, groups: bool = False) -> _re2.RE2:
    """One case-insensitive RE2 alternation; with `groups`, each pattern its own group."""
    options = _re2.RE2.Options()
    options.case_sensitive = False
    options.encoding = _re2.RE2.Options.Encoding.LATIN1  # any byte is a character
    options.never_capture = not groups
    options.log_errors = False
    options.max_mem = 64 << 20  # room for the lazily built DFA of ~1,500 alternatives
    group = "({})" if groups else "(?:{})"
    regexp = _re2.RE2(
        "|".join(group.format(_without_lookahead(p)) for p in patterns).encode(), options
    )
    if not regexp.ok():
        raise ValueError(f"agent patterns do not compile for RE2: {regexp.error()}")
    return regexp


_UNANCHORED: Final = _re2.RE2.Anchor.UNANCHORED


def _search(regexp: _re2.RE2, text: bytes) -> list[tuple[int, int]]:
    """The spans of the first match (whole, then each group); (-1, -1) for none."""
    spans: list[tuple[int, int]] = regexp.Match(_UNANCHORED, text, 0, len(text))
    return spans


class CrawlerPatterns:
    """crawlerdetect's test, in RE2: strip the exclusions (browser tokens such as
    `Safari/537.36`), then search the rest for a crawler pattern."""

    def __init__(self) -> None:
        self._crawlers = _compile(CRAWLERS)
        self._exclusions = _compile(EXCLUSIONS)

    def _stripped(self, agent: bytes) -> bytes:
        kept = []
        position, end = 0, len(agent)
        while position <= end:
            start, stop = self._exclusions.Match(_UNANCHORED, agent, position, end)[0]
            if start < 0:
                break
            kept.append(agent[position:start])
            if stop == start:  # an empty match: keep the character, move past it
                kept.append(agent[start : start + 1])
                stop += 1
            position = stop
        kept.append(agent[position:])
        return b"".join(kept)

    def is_crawler(self, user_agent: str | bytes) -> bool:
        agent = user_agent if isinstance(user_agent, bytes) else _encoded(user_agent)
        rest = self._stripped(agent)
        return bool(rest) and _search(self._crawlers, rest)[0][0] >= 0


def _encoded(user_agent: str) -> bytes:
    return user_agent.encode("utf-8", "surrogateescape")


# What a cached agent costs besides its characters: the dict entry and the str object.
_ENTRY_OVERHEAD_BYTES: Final = 200


class BotClassifier:
    """Classifies User-Agent strings; each distinct one is classified once, in an LRU
    bounded in bytes (agents are at most MAX_AGENT_CHARS long)."""

    def __init__(self, cache_bytes: int = 4 << 20) -> None:
        self._crawlers = CrawlerPatterns()
        self._previews = _compile([pattern for pattern, _ in PREVIEW_AGENTS], groups=True)
        self._preview_channels = [channel for _, channel in PREVIEW_AGENTS]
        self._headless = _compile([HEADLESS])
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[str, Agent] = OrderedDict()
        self._cached_bytes = 0
        self.hits = self.misses = 0

    def classify(self, user_agent: str) -> Agent:
        if len(user_agent) > MAX_AGENT_CHARS:
            return TOO_LONG
        agent = self._cache.get(user_agent)
        if agent is not None:
            self.hits += 1
            self._cache.move_to_end(user_agent)
            return agent
        self.misses += 1
        agent = self._classify(user_agent)
        self._cache[user_agent] = agent
        self._cached_bytes += len(user_agent) + _ENTRY_OVERHEAD_BYTES
        while self._cached_bytes > self.cache_bytes and self._cache:
            evicted, _ = self._cache.popitem(last=False)
            self._cached_bytes -= len(evicted) + _ENTRY_OVERHEAD_BYTES
        return agent

    @property
    def cached_bytes(self) -> int:
        return self._cached_bytes

    def __len__(self) -> int:
        return len(self._cache)

    def _classify(self, user_agent: str) -> Agent:
        agent = _encoded(user_agent.strip())
        if not agent:
            return Agent(BOT, reason=Ignored.EMPTY)
        preview = _search(self._previews, agent)
        if preview[0][0] >= 0:
            group = next(n for n, span in enumerate(preview[1:]) if span[0] >= 0)
            return Agent(PREVIEWER, channel=self._preview_channels[group])
        if _search(self._headless, agent)[0][0] >= 0:
            return Agent(BOT, reason=Ignored.HEADLESS)
        if self._crawlers.is_crawler(agent):
            return Agent(BOT, reason=Ignored.CRAWLER)
        return READER
