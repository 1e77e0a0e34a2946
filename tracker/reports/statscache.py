"""A per-process cache of per-article stats, each kept as its encoded JSON and ETag,
refreshed in the background while it is read."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, NamedTuple

import msgspec

from tracker.events.models import CHANNELS, QUARTERS
from tracker.reports.stats import ArticleStats

Fetch = Callable[[list[str]], Awaitable[list[ArticleStats]]]
_encoder: Final = msgspec.json.Encoder()
# Stats of up to this many articles are read from Redis and PostgreSQL together.
FETCH_CHUNK: Final = 100
# Background refreshes that come due within this long are read together: a page read
# thousands of times a second costs a share of one read, not one read each.
REFRESH_GATHER_S: Final = 0.05
# What a cached entry costs besides its body and id: the dict slot, the struct, the strs.
_ENTRY_OVERHEAD_BYTES: Final = 300


class Cached(msgspec.Struct, frozen=True, gc=False):
    body: bytes  # the article's JSON, encoded once (empty for the shared zero answer)
    digest: bytes  # of body
    etag: str  # the answer's ETag for this article alone, quoted
    refresh_at: float  # past this (monotonic), a read starts a refresh in the background
    expires: float  # past this, it is not served: a read waits for a new one


def _tagged(body: bytes, refresh_at: float, expires: float) -> Cached:
    digest = hashlib.blake2b(body, digest_size=8).digest()
    return Cached(body, digest, f'"{digest.hex()}"', refresh_at, expires)


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


def _zero_stats(article_id: str) -> ArticleStats:
    return ArticleStats(
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
    )


# An article with nothing counted answers this with its id spliced in (the id is the
# Struct's first field): one encoding at import, not one per read.
_ZERO_HEAD: Final = b'{"article_id":'
_ZERO_TAIL: Final = _encoder.encode(_zero_stats(""))[len(_ZERO_HEAD) + 2 :]


# Every answer with nothing counted has this digest and ETag: its body is set by the id
# in its URL alone, so the tag still names one body per URL, and no read hashes it.
_ZERO_DIGEST: Final = bytes(8)
ZERO_ETAG: Final = '"0"'


def _zero(article_id: str, shared: Cached) -> Cached:
    body = _ZERO_HEAD + _encoder.encode(article_id) + _ZERO_TAIL
    return Cached(body, _ZERO_DIGEST, ZERO_ETAG, shared.refresh_at, shared.expires)


class StatsCache:
    """Per-article stats kept per process, so that a page read thousands of times a
    second costs one Redis and one PostgreSQL read per article per `ttl_s`
    (TRACKER_STATS_CACHE), and no reader waits for them but the first.

    Stale while revalidating: past `ttl_s`, a read is answered from the entry it finds
    and starts one refresh of that article in the background (one at a time per
    article); an entry is served for `max_age_s` (TRACKER_STATS_MAX_AGE, what the
    answers' Cache-Control allows anyway), after which a read waits for a fresh one.
    The articles missed in one event-loop tick are fetched together (up to 100 ids per
    Redis round trip and PostgreSQL statement), and so are the refreshes that come due
    within 50 ms; concurrent misses share one fetch, so within a process an article's
    counts never go back.

    Anyone can ask for any id: the cache is bounded in bytes, entries go as they expire,
    and ids with nothing counted share one empty entry (their answer is made on a hit).
    Callers give it valid ids only: the stats route answers an entry it finds without
    checking the id again.
    """

    def __init__(
        self, fetch: Fetch, *, ttl_s: float, max_age_s: float = 0.0, max_bytes: int = 32 << 20
    ) -> None:
        self.fetch = fetch
        self.ttl_s = ttl_s
        self.serve_s = max(ttl_s, max_age_s)
        self.max_bytes = max_bytes
        self.bytes = 0
        self.refreshes = 0  # background refreshes started (for tests and metrics)
        # In the order they were stored, so the oldest (first to expire) come first.
        self._entries: dict[str, Cached] = {}
        self._loading: dict[str, asyncio.Future[dict[str, Cached]]] = {}
        # The misses of this tick, and the refreshes gathered: each one pending fetch.
        self._ticks: dict[bool, _Pending] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def found(self, article_id: str) -> Cached | None:
        """The article's entry if one may be served now (a refresh started if it is due),
        without waiting: the read path of every article page."""
        return self._found(article_id, time.monotonic())

    def _found(self, article_id: str, now: float) -> Cached | None:
        entry = self._entries.get(article_id)
        if entry is None or entry.expires <= now:
            return None
        if entry.refresh_at <= now and article_id not in self._loading:
            self.refreshes += 1
            self._queue(article_id, refresh=True)
        return entry if entry.body else _zero(article_id, entry)

    async def one(self, article_id: str) -> Cached:
        entry = self.found(article_id) if self.ttl_s > 0 else None
        if entry is not None:
            return entry
        (entry,) = await self.get([article_id])
        return entry

    async def get(self, article_ids: Sequence[str]) -> list[Cached]:
        if self.ttl_s <= 0:
            fetched = await self.fetch(list(dict.fromkeys(article_ids)))
            by_id = {r.article_id: _tagged(_encoder.encode(r), 0.0, 0.0) for r in fetched}
            return [by_id[article_id] for article_id in article_ids]
        now = time.monotonic()
        self._evict(now)
        # A listing's hundred ids: the common case (each held, none due) in one loop
        # without a call per id; anything else as `_found` does it.
        entries = self._entries
        held = [entries.get(article_id) for article_id in article_ids]
        ready = [e for e in held if e is not None and e.refresh_at > now and e.body]
        if len(ready) == len(held):
            return ready
        found: dict[str, Cached] = {}
        waiting: dict[str, asyncio.Future[dict[str, Cached]]] = {}
        for article_id in article_ids:
            if article_id in found or article_id in waiting:
                continue
            entry = self._found(article_id, now)
            if entry is not None:
                found[article_id] = entry
            else:
                waiting[article_id] = self._loading.get(article_id) or self._queue(article_id)
        for article_id, loading in waiting.items():
            found[article_id] = (await asyncio.shield(loading))[article_id]
        return [found[article_id] for article_id in article_ids]

    def _store(self, article_id: str, stats: ArticleStats, now: float) -> Cached:
        refresh_at, expires = now + self.ttl_s, now + self.serve_s
        if _is_zero(stats):
            kept = Cached(b"", b"", "", refresh_at, expires)
            entry = _zero(article_id, kept)  # the answer a hit will make, ETag and all
        else:
            entry = kept = _tagged(_encoder.encode(stats), refresh_at, expires)
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

    def _queue(
        self, article_id: str, *, refresh: bool = False
    ) -> asyncio.Future[dict[str, Cached]]:
        pending = self._ticks.get(refresh)
        if pending is None:
            loop = asyncio.get_running_loop()
            loading: asyncio.Future[dict[str, Cached]] = loop.create_future()
            # Retrieved here so that a failure nobody waited for (a background refresh:
            # the entry it would have replaced is served until it expires) is not reported.
            loading.add_done_callback(lambda f: f.cancelled() or f.exception())
            fire = (
                loop.call_later(REFRESH_GATHER_S, self._fire, refresh)
                if refresh
                else loop.call_soon(self._fire, refresh)
            )
            pending = self._ticks[refresh] = _Pending(loading, [], fire)
        pending.article_ids.append(article_id)
        self._loading[article_id] = pending.loading
        return pending.loading

    def _fire(self, refresh: bool) -> None:
        pending = self._ticks.pop(refresh, None)
        if pending is None:
            return
        task = asyncio.create_task(
            self._load(pending.article_ids, pending.loading, one_by_one=refresh)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _load(
        self,
        article_ids: list[str],
        loading: asyncio.Future[dict[str, Cached]],
        *,
        one_by_one: bool,
    ) -> None:
        chunks = [
            article_ids[start : start + FETCH_CHUNK]
            for start in range(0, len(article_ids), FETCH_CHUNK)
        ]
        results: dict[str, Cached] = {}
        try:
            if one_by_one:
                # A background refresh, chunk after chunk: the rows of a thousand articles
                # read at once would hold the loop from every request in the meantime.
                for chunk in chunks:
                    self._store_all(await self.fetch(chunk), results)
            else:  # readers wait: all at once
                for fetched in await asyncio.gather(*(self.fetch(c) for c in chunks)):
                    self._store_all(fetched, results)
        except BaseException as exc:
            loading.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            for article_id in article_ids:
                self._loading.pop(article_id, None)
        self._evict(time.monotonic())
        loading.set_result(results)

    def _store_all(self, fetched: list[ArticleStats], results: dict[str, Cached]) -> None:
        now = time.monotonic()
        for stats in fetched:
            results[stats.article_id] = self._store(stats.article_id, stats, now)

    async def close(self) -> None:
        """Background refreshes cancelled (the app is closing its pools)."""
        for pending in self._ticks.values():
            pending.fire.cancel()
            pending.loading.cancel()
        self._ticks.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class _Pending(NamedTuple):
    """A fetch to come: who waits for it, of which articles, and the call that starts it."""

    loading: asyncio.Future[dict[str, Cached]]
    article_ids: list[str]
    fire: asyncio.Handle


def _cost(article_id: str, entry: Cached) -> int:
    return len(article_id) + len(entry.body) + _ENTRY_OVERHEAD_BYTES
