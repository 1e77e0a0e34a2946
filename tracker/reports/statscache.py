"""A per-process cache of per-article stats, each kept for a moment as encoded JSON."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import msgspec

from tracker.events.models import CHANNELS, QUARTERS
from tracker.reports.stats import ArticleStats

Fetch = Callable[[list[str]], Awaitable[list[ArticleStats]]]
_encoder: Final = msgspec.json.Encoder()
# Stats of up to this many articles are read from Redis and PostgreSQL together.
FETCH_CHUNK: Final = 100


# What a cached entry costs besides its body and id: the dict slot, the struct, the str.
_ENTRY_OVERHEAD_BYTES: Final = 250


class Cached(msgspec.Struct, frozen=True):
    body: bytes  # the article's JSON, encoded once (empty for the shared zero answer)
    digest: bytes  # of body, for ETags
    expires: float


def cached(stats: ArticleStats, expires: float) -> Cached:
    body = _encoder.encode(stats)
    return Cached(body, hashlib.blake2b(body, digest_size=8).digest(), expires)


def _is_zero(stats: ArticleStats) -> bool:
    return not (
        stats.views
        or stats.uniques
        or stats.shares_total
        or any(stats.referrals.values())
        or any(stats.previews.values())
        or stats.engaged_readers
        or any(stats.read_depth.values())
        or any(stats.imported.values())
    )


def _zero(article_id: str, expires: float) -> Cached:
    return cached(
        ArticleStats(
            article_id=article_id,
            views=0,
            uniques=0,
            shares=dict.fromkeys(CHANNELS, 0),
            shares_total=0,
            referrals=dict.fromkeys(CHANNELS, 0),
            previews=dict.fromkeys(CHANNELS, 0),
            engaged_readers=0,
            engaged_avg_s=0.0,
            read_through=0.0,
            read_depth={str(q): 0 for q in QUARTERS},
            imported={"views": 0, "shares_total": 0},
        ),
        expires,
    )


class StatsCache:
    """Per-article stats kept for a moment (TRACKER_STATS_CACHE, within the max-age the
    responses already allow), so that a popular page read thousands of times a second
    costs one Redis and one PostgreSQL query per article per moment.

    The articles missed in one event-loop tick are fetched together (up to 100 ids per
    Redis round trip and PostgreSQL statement); concurrent misses of an article share one
    fetch, so within a process an article's counts never go back.

    Anyone can ask for any id: the cache is bounded in bytes, entries go as they expire,
    and ids with nothing counted share one empty entry (their answer is made on a hit).
    """

    def __init__(self, fetch: Fetch, *, ttl_s: float, max_bytes: int = 32 << 20) -> None:
        self.fetch = fetch
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self.bytes = 0
        # In the order they were stored, so the oldest (first to expire) come first.
        self._entries: dict[str, Cached] = {}
        self._loading: dict[str, asyncio.Future[dict[str, Cached]]] = {}
        self._tick: asyncio.Future[dict[str, Cached]] | None = None
        self._tick_ids: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, article_ids: Sequence[str]) -> list[Cached]:
        if self.ttl_s <= 0:
            fetched = await self.fetch(list(dict.fromkeys(article_ids)))
            by_id = {r.article_id: cached(r, 0.0) for r in fetched}
            return [by_id[article_id] for article_id in article_ids]
        now = time.monotonic()
        found: dict[str, Cached] = {}
        waiting: dict[str, asyncio.Future[dict[str, Cached]]] = {}
        self._evict(now)
        for article_id in article_ids:
            entry = self._entries.get(article_id)
            if entry is not None and entry.expires > now:
                found[article_id] = entry if entry.body else _zero(article_id, entry.expires)
            elif article_id not in waiting:
                waiting[article_id] = self._loading.get(article_id) or self._queue(article_id)
        for article_id, loading in waiting.items():
            found[article_id] = (await asyncio.shield(loading))[article_id]
        return [found[article_id] for article_id in article_ids]

    def _store(self, article_id: str, stats: ArticleStats, expires: float) -> Cached:
        entry = cached(stats, expires)
        kept = Cached(b"", b"", expires) if _is_zero(stats) else entry
        old = self._entries.pop(article_id, None)  # re-inserted: the dict stays in age order
        if old is not None:
            self.bytes -= _cost(article_id, old)
        self._entries[article_id] = kept
        self.bytes += _cost(article_id, kept)
        return entry

    def _evict(self, now: float) -> None:
        """The oldest entries while over the bound, and those expired (oldest first)."""
        entries = self._entries
        while entries:
            article_id = next(iter(entries))
            entry = entries[article_id]
            if self.bytes <= self.max_bytes and entry.expires > now:
                return
            del entries[article_id]
            self.bytes -= _cost(article_id, entry)

    def _queue(self, article_id: str) -> asyncio.Future[dict[str, Cached]]:
        if self._tick is None:
            loop = asyncio.get_running_loop()
            self._tick = loop.create_future()
            # Retrieved here so that a failure nobody else waited for is not reported twice.
            self._tick.add_done_callback(lambda f: f.cancelled() or f.exception())
            loop.call_soon(self._fire)
        self._tick_ids.append(article_id)
        self._loading[article_id] = self._tick
        return self._tick

    def _fire(self) -> None:
        loading, article_ids = self._tick, self._tick_ids
        self._tick, self._tick_ids = None, []
        if loading is None:
            return
        task = asyncio.create_task(self._load(article_ids, loading))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _load(
        self, article_ids: list[str], loading: asyncio.Future[dict[str, Cached]]
    ) -> None:
        try:
            chunks = [
                article_ids[start : start + FETCH_CHUNK]
                for start in range(0, len(article_ids), FETCH_CHUNK)
            ]
            fetched = await asyncio.gather(*(self.fetch(chunk) for chunk in chunks))
        except BaseException as exc:
            loading.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            for article_id in article_ids:
                self._loading.pop(article_id, None)
        now = time.monotonic()
        expires = now + self.ttl_s
        results = {
            r.article_id: self._store(r.article_id, r, expires) for chunk in fetched for r in chunk
        }
        self._evict(now)
        loading.set_result(results)


def _cost(article_id: str, entry: Cached) -> int:
    return len(article_id) + len(entry.body) + _ENTRY_OVERHEAD_BYTES
