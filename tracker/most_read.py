"""The site's public "most read" box (`GET /api/v1/popular`): views only, the same answer
for everyone, so each process keeps it for FRESH_S. When it goes stale, one request asks
PostgreSQL again while the others keep getting the stale list (up to STALE_S): a
sidebar on every page never lines up thousands of requests behind one report."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import msgspec
from aiohttp import web

from .errors import Overloaded
from .periods import period_of
from .report_data import PopularQuery
from .report_metrics import metric_of
from .report_views import choice_param, int_param, label_param
from .resources import CLOCK, REPORTS

FRESH_S: Final = 30.0
# How long a list may be served past FRESH_S while one request refreshes it (longer when
# PostgreSQL cannot answer: an old list beats an error in a sidebar).
STALE_S: Final = 300.0
MAX_LIMIT: Final = 20
PERIODS: Final = ("24h", "7d")
MAX_ENTRIES: Final = 1_000

Key = tuple[str, int, str, str]


@dataclass(frozen=True, slots=True)
class Entry:
    fresh_until: float
    body: bytes
    etag: str
    headers: dict[str, str]

    @classmethod
    def of(cls, body: bytes, fresh_until: float) -> Entry:
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        headers = {
            "Content-Type": "application/json",
            "Cache-Control": f"public, max-age={int(FRESH_S)}",
            "ETag": etag,
        }
        return cls(fresh_until, body, etag, headers)


def encode(period: str, rows: list[tuple[str, str | None, str | None, int]]) -> bytes:
    articles = [
        {"article_id": article_id, "title": title, "url": url, "views": views}
        for article_id, title, url, views in rows
    ]
    return msgspec.json.encode({"period": period, "articles": articles})


class MostRead:
    def __init__(
        self, max_entries: int = MAX_ENTRIES, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entries = max_entries
        self.monotonic = monotonic
        self._entries: dict[Key, Entry] = {}
        # The key of each query string asked for (a sidebar asks with one or two).
        self._keys: dict[str, Key] = {}
        # The refresh under way per key: the one request asking, the others may wait on it.
        self._refreshing: dict[Key, asyncio.Future[Entry]] = {}

    async def answer(self, request: web.Request) -> web.Response:
        key = self._keys.get(request.query_string)
        if key is None:
            key = self._key_of(request)
        entry = await self._entry(request, key)
        asked = request.headers.get("If-None-Match")
        if asked is not None and entry.etag in {t.strip() for t in asked.split(",")}:
            return web.Response(status=304, headers=entry.headers)
        return web.Response(body=entry.body, headers=entry.headers)

    def _key_of(self, request: web.Request) -> Key:
        query = request.query
        key: Key = (
            choice_param(query, "period", PERIODS),
            int_param(query, "limit", 10, 1, MAX_LIMIT),
            label_param(query, "category") or "",
            label_param(query, "lang") or "",
        )
        if len(self._keys) >= self.max_entries:
            self._keys.pop(next(iter(self._keys)))
        self._keys[request.query_string] = key
        return key

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
        report = await request.app[REPORTS].popular(
            PopularQuery(
                period=period_of(period, None, None, request.app[CLOCK]()),
                metric=metric_of("views"),
                category=category or None,
                lang=lang or None,
                limit=limit,
            )
        )
        body = encode(period, [(r.article_id, r.title, r.url, r.views) for r in report.rows])
        entry = Entry.of(body, fresh_until=self.monotonic() + FRESH_S)
        if key not in self._entries and len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = entry
        return entry
