"""Who is not a reader: crawlers, empty agents, headless browsers, and link-preview
fetchers (counted apart, per channel: the first sign that a share is spreading)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from crawlerdetect import CrawlerDetect

from .errors import Ignored

# Checked before the crawler list (which also knows them): these fetch a page to draw
# its preview in a chat or a feed, right after someone shared the link there.
PREVIEW_AGENTS: Final = (
    (re.compile(r"TelegramBot", re.I), "telegram"),
    (
        re.compile(r"facebookexternalhit|Facebot|meta-externalagent|facebookcatalog", re.I),
        "facebook",
    ),
    (re.compile(r"Twitterbot", re.I), "twitter"),
    (re.compile(r"^WhatsApp/", re.I), "whatsapp"),
    (re.compile(r"vkShare", re.I), "vk"),
    (re.compile(r"LinkedInBot", re.I), "linkedin"),
    (re.compile(r"redditbot", re.I), "reddit"),
    (
        re.compile(
            r"Slackbot|Slack-ImgProxy|Discordbot|SkypeUriPreview|Viber|Iframely|Embedly|"
            r"Pinterestbot|Mastodon/|Bluesky|Applebot-Extended|Google-PageRenderer|"
            # Snap's fetcher, not the in-app browser (`Snapchat/12.62.0.36`): a reader.
            r"Snap URL Preview|Snapchat(?!/)",
            re.I,
        ),
        "other",
    ),
)
HEADLESS: Final = re.compile(
    r"HeadlessChrome|PhantomJS|Puppeteer|Playwright|SlimerJS|Nightmare|Selenium|"
    r"Electron/|\bHeadless\b|Lighthouse|Chrome-Lighthouse",
    re.I,
)

HUMAN: Final = "human"
BOT: Final = "bot"
PREVIEW: Final = "preview"


@dataclass(frozen=True, slots=True)
class Agent:
    kind: str  # HUMAN, BOT or PREVIEW
    reason: Ignored | None = None  # for BOT: crawler, empty or headless
    channel: str | None = None  # for PREVIEW: the share channel


READER: Final = Agent(HUMAN)


class BotClassifier:
    """Classifies User-Agent strings; each distinct one is classified once (bounded LRU),
    because the crawler list costs tens of microseconds a call."""

    def __init__(self, cache_size: int = 20_000) -> None:
        self._detector = CrawlerDetect()
        self.classify = lru_cache(maxsize=cache_size)(self._classify)

    def _classify(self, user_agent: str) -> Agent:
        agent = user_agent.strip()
        if not agent:
            return Agent(BOT, reason=Ignored.EMPTY)
        for pattern, channel in PREVIEW_AGENTS:
            if pattern.search(agent):
                return Agent(PREVIEW, channel=channel)
        if HEADLESS.search(agent):
            return Agent(BOT, reason=Ignored.HEADLESS)
        if self._detector.isCrawler(agent):
            return Agent(BOT, reason=Ignored.CRAWLER)
        return READER
