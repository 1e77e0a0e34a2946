"""The site's public "most read" box (`GET /api/v1/popular`): views of articles whose
metadata is verified (their titles and links are the newsroom's), the same answer for
everyone, so each process keeps it for FRESH_S. When it goes stale, one request asks
PostgreSQL again while the others keep getting the stale list (up to STALE_S): a
sidebar on every page never lines up thousands of requests behind one report.

Whatever a request asks costs no more than it cost to send: a category or language no
article has is answered empty from memory, lists are cached by their normalised
parameters within a bound in bytes, and each address may ask PUBLIC_RATE_PER_MIN times
a minute."""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import msgspec
from aiohttp import web

from tracker.core.errors import Overloaded, RateLimited
from tracker.core.periods import period_of
from tracker.core.settings import Settings
from tracker.ops.metrics import Metrics
from tracker.redis_side.readers import client_address
from tracker.reports.metric import metric_of
from tracker.reports.rows import PopularQuery
from tracker.web.app_keys import CLOCK, PROXIES, SERVICES
from tracker.web.own_answers import ReadRoute
from tracker.web.protocol import answers_itself
from tracker.web.report_views import choice_param, int_param, label_param

ROUTE: Final = "/api/v1/popular"
FRESH_S: Final = 30.0
# How long a list may be served past FRESH_S while one request refreshes it (longer when
# PostgreSQL cannot answer: an old list beats an error in a sidebar).
STALE_S: Final = 300.0
MAX_LIMIT: Final = 20
PERIODS: Final = ("24h", "7d")
MAX_BYTES: Final = 4 << 20
# The filters' values articles have are read again at most this often.
LABELS_FRESH_S: Final = 30.0
# Requests an address may make a minute (a minute's worth at once): a page asks once.
PUBLIC_RATE_PER_MIN: Final = 300
MAX_ADDRESSES: Final = 100_000

Key = tuple[str, int, str, str]


@dataclass(frozen=True, slots=True)
class Entry:
    fresh_until: float
    body: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes, fresh_until: float) -> Entry:
        return cls(fresh_until, body, '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"')

    @property
    def size(self) -> int:
        return len(self.body) + 300


@dataclass(frozen=True, slots=True)
class Labels:
    """The categories and languages articles have, and when that was read."""

    categories: frozenset[str]
    langs: frozenset[str]
    read_at: float


def encode(period: str, rows: list[tuple[str, str | None, str | None, int]]) -> bytes:
    articles = [
        {"article_id": article_id, "title": title, "url": url, "views": views}
        for article_id, title, url, views in rows
    ]
    return msgspec.json.encode({"period": period, "articles": articles})


class AddressRate:
    """A generic cell rate per address, in this process, for at most MAX_ADDRESSES
    addresses (the least recently seen go first)."""

    def __init__(self, per_min: int, monotonic: Callable[[], float]) -> None:
        self.interval_s = 60.0 / per_min
        self.monotonic = monotonic
        self._due: OrderedDict[str, float] = OrderedDict()

    def check(self, address: str) -> None:
        now = self.monotonic()
        due = max(self._due.pop(address, now), now) + self.interval_s
        if due - now > 60.0:
            self._due[address] = due - self.interval_s
            raise RateLimited(max(1, math.ceil(due - now - 60.0)))
        self._due[address] = due
        if len(self._due) > MAX_ADDRESSES:
            self._due.popitem(last=False)


class MostRead:
    def __init__(
        self, max_bytes: int = MAX_BYTES, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_bytes = max_bytes
        self.monotonic = monotonic
        self.bytes = 0
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        # The refresh under way per key: the one request asking, the others may wait on it.
        self._refreshing: dict[Key, asyncio.Future[Entry]] = {}
        self._labels: Labels | None = None
        self._reading_labels: asyncio.Future[Labels] | None = None
        self._rate = AddressRate(PUBLIC_RATE_PER_MIN, monotonic)

    def admitted(self, request: web.Request) -> Key:
        """The list the request asks for, if its address is within its rate (else
        RateLimited)."""
        forwarded_for = ", ".join(request.headers.getall("X-Forwarded-For", ())) or None
        self._rate.check(client_address(request.remote, forwarded_for, request.app[PROXIES]))
        return _key_of(request)

    def fresh(self, key: Key) -> Entry | None:
        """The list if it is kept and fresh, and filters by nothing: answered at once."""
        entry = self._entries.get(key)
        if entry is None or key[2] or key[3] or self.monotonic() >= entry.fresh_until:
            return None
        return entry

    async def entry(self, request: web.Request, key: Key) -> Entry:
        """The list, read again if it is stale (or answered stale while another request
        reads it), or empty from memory when a filter asks for what no article has."""
        if await self._nothing_has(request, key):
            return Entry.of(encode(key[0], []), self.monotonic() + FRESH_S)
        return await self._entry(request, key)

    async def _nothing_has(self, request: web.Request, key: Key) -> bool:
        """Whether a filter asks for a value no article has: answered from memory."""
        _, _, category, lang = key
        if not category and not lang:
            return False
        labels = self._labels
        if labels is None or self.monotonic() - labels.read_at > LABELS_FRESH_S:
            labels = await self._read_labels(request)
        return bool(
            (category and category not in labels.categories) or (lang and lang not in labels.langs)
        )

    async def _read_labels(self, request: web.Request) -> Labels:
        """One read at a time; the others wait for it."""
        if self._reading_labels is not None:
            return await asyncio.shield(self._reading_labels)
        reading = self._reading_labels = asyncio.get_running_loop().create_future()
        try:
            categories, langs = await request.app[SERVICES].reports.labels()
            labels = Labels(frozenset(categories), frozenset(langs), self.monotonic())
        except BaseException as exc:
            reading.set_exception(exc if isinstance(exc, Exception) else Overloaded("gave up"))
            reading.exception()
            raise
        finally:
            self._reading_labels = None
        reading.set_result(labels)
        self._labels = labels
        return labels

    async def _entry(self, request: web.Request, key: Key) -> Entry:
        now = self.monotonic()
        entry = self._entries.get(key)
        if entry is not None and now < entry.fresh_until:
            return entry
        usable = entry is not None and now < entry.fresh_until + STALE_S
        pending = self._refreshing.get(key)
        if pending is not None:
            if usable:
                assert entry is not None
                return entry
            return await asyncio.shield(pending)
        pending = self._refreshing[key] = asyncio.get_running_loop().create_future()
        try:
            fresh = await self._ask(request, key)
        except BaseException as exc:
            # Waiters get the same error; when the asker was cancelled (its deadline), a 503.
            failure = exc if isinstance(exc, Exception) else Overloaded("the asker gave up")
            pending.set_exception(failure)
            pending.exception()  # retrieved: no "never retrieved" warning without waiters
            if usable and isinstance(exc, Exception):
                assert entry is not None
                return entry
            raise
        else:
            pending.set_result(fresh)
            return fresh
        finally:
            del self._refreshing[key]

    async def _ask(self, request: web.Request, key: Key) -> Entry:
        period, limit, category, lang = key
        report = await request.app[SERVICES].reports.popular(
            PopularQuery(
                period=period_of(period, None, None, request.app[CLOCK]()),
                metric=metric_of("views"),
                category=category or None,
                lang=lang or None,
                limit=limit,
                verified_only=True,
            )
        )
        body = encode(period, [(r.article_id, r.title, r.url, r.views) for r in report.rows])
        entry = Entry.of(body, fresh_until=self.monotonic() + FRESH_S)
        self._keep(key, entry)
        return entry

    def _keep(self, key: Key, entry: Entry) -> None:
        """Kept within max_bytes, the least recently refreshed dropped first."""
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old.size
        self._entries[key] = entry
        self.bytes += entry.size
        while self.bytes > self.max_bytes and len(self._entries) > 1:
            _, dropped = self._entries.popitem(last=False)
            self.bytes -= dropped.size


class PopularRoute(ReadRoute):
    """`GET /api/v1/popular`, answering by itself: a fresh list waits on nothing, takes
    no deadline and is not shed; a refresh waits under the deadline (guarded)."""

    def __init__(self, settings: Settings, metrics: Metrics, most_read: MostRead) -> None:
        super().__init__(settings, metrics, cache_control=f"public, max-age={int(FRESH_S)}")
        self.most_read = most_read

    @answers_itself
    async def answer(self, request: web.Request) -> web.Response:
        most_read = self.most_read
        key: Key | None = None

        def held() -> Entry | None:
            nonlocal key
            key = most_read.admitted(request)
            return most_read.fresh(key)

        async def made(request: web.Request) -> Entry:
            assert key is not None  # admitted by held()
            return await most_read.entry(request, key)

        return await self.served(ROUTE, request, held, made)


def _key_of(request: web.Request) -> Key:
    """The list asked for, normalised: spellings of one list share its entry."""
    query = request.query
    return (
        choice_param(query, "period", PERIODS),
        int_param(query, "limit", 10, 1, MAX_LIMIT),
        (label_param(query, "category") or "").strip(),
        (label_param(query, "lang") or "").strip(),
    )
