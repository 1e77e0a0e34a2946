"""Per-article counts as the website shows them: Postgres plus what Redis still holds."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence

import msgspec
from redis.asyncio import Redis

from . import buffer, db
from .keys import PREVIEW, REFERRAL, SHARE, VIEW_METRIC, Keys, part_of
from .models import CHANNELS


class ArticleStats(msgspec.Struct, frozen=True):
    article_id: str
    views: int
    uniques: int
    shares: dict[str, int]
    shares_total: int
    referrals: dict[str, int]
    previews: dict[str, int]


def _per_channel(metrics: dict[str, int], kind: str) -> dict[str, int]:
    return {channel: metrics.get(f"{kind}:{channel}", 0) for channel in CHANNELS}


def _article_stats(article_id: str, metrics: dict[str, int], readers: int) -> ArticleStats:
    shares = _per_channel(metrics, SHARE)
    return ArticleStats(
        article_id=article_id,
        views=metrics.get(VIEW_METRIC, 0),
        uniques=readers,
        shares=shares,
        shares_total=sum(shares.values()),
        referrals=_per_channel(metrics, REFERRAL),
        previews=_per_channel(metrics, PREVIEW),
    )


async def article_stats(
    redis: Redis, pool: db.Pool, keys: Keys, article_ids: Sequence[str], now_s: float
) -> list[ArticleStats]:
    """Counts for each id, in the order asked, never counting a flushed batch twice.

    Redis first (atomically per shard, each piece with its batch id), then Postgres in
    one statement that also says which of those ids it already holds: those pieces are
    dropped. Any interleaving with a flush gives a total that never decreases.

    Readers (uniques, all time) are the stored days' readers, plus what the recent days'
    sketches in Redis have gained since they were stored.
    """
    pending = await buffer.read_pending(redis, keys, article_ids, now_s)
    first_recent_day = buffer.sketch_days(now_s)[0]
    stored = await db.totals_with_applied(pool, article_ids, pending.pieces, first_recent_day)
    combined = {article_id: dict(stored.totals.get(article_id, {})) for article_id in article_ids}
    for piece in pending.pieces:
        done = stored.applied.get(piece.batch_id)
        for article_id, metrics in piece.counts.items():
            if done is not None and part_of(article_id, done[1]) in done[0]:
                continue  # Postgres holds this article's part of the piece already
            target = combined[article_id]
            for metric, count in metrics.items():
                target[metric] = target.get(metric, 0) + count
    results = []
    for article_id in article_ids:
        readers = stored.readers_total.get(article_id, 0)
        stored_days = stored.readers.get(article_id, {})
        for day, in_redis in pending.readers.get(article_id, {}).items():
            readers += max(0, in_redis - stored_days.get(day, 0))
        results.append(_article_stats(article_id, combined[article_id], readers))
    return results


async def readers_between(
    redis: Redis, pool: db.Pool, keys: Keys, article_id: str, first_day: int, last_day: int
) -> int:
    """Distinct readers of an article over a range of days (UTC day numbers), merging the
    stored daily sketches with those Redis still holds. A reader is counted once per day:
    the salt of reader ids rotates daily, so days cannot be linked."""
    stored = await db.daily_sketches(pool, article_id, first_day, last_day)
    shard = keys.for_article(article_id)
    live = [shard.uniques(day, article_id) for day in range(first_day, last_day + 1)]
    # Redis holds the last SKETCH_DAYS_KEPT days' sketches at most.
    live = live[-buffer.SKETCH_DAYS_KEPT :]
    return await buffer.count_union(redis, shard, list(stored.values()), live)


Fetch = Callable[[list[str]], Awaitable[list[ArticleStats]]]
_encoder = msgspec.json.Encoder()
# Stats of up to this many articles are read from Redis and Postgres together.
FETCH_CHUNK = 100


class Cached(msgspec.Struct, frozen=True):
    stats: ArticleStats
    body: bytes  # the article's JSON, encoded once
    digest: bytes  # of body, for ETags
    expires: float


def cached(stats: ArticleStats, expires: float) -> Cached:
    body = _encoder.encode(stats)
    return Cached(stats, body, hashlib.blake2b(body, digest_size=8).digest(), expires)


class StatsCache:
    """Per-article stats kept for a moment (TRACKER_STATS_CACHE, within the max-age the
    responses already allow), so that a popular page read thousands of times a second
    costs one Redis and one Postgres query per article per moment.

    The articles missed in one event-loop tick are fetched together (up to 100 ids per
    Redis round trip and Postgres statement); concurrent misses of an article share one
    fetch, so within a process an article's counts never go back.
    """

    def __init__(self, fetch: Fetch, *, ttl_s: float, max_articles: int = 100_000) -> None:
        self.fetch = fetch
        self.ttl_s = ttl_s
        self.max_articles = max_articles
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
        for article_id in article_ids:
            entry = self._entries.get(article_id)
            if entry is not None and entry.expires > now:
                found[article_id] = entry
            elif article_id not in waiting:
                waiting[article_id] = self._loading.get(article_id) or self._queue(article_id)
        for article_id, loading in waiting.items():
            found[article_id] = (await asyncio.shield(loading))[article_id]
        return [found[article_id] for article_id in article_ids]

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
        expires = time.monotonic() + self.ttl_s
        results = {r.article_id: cached(r, expires) for chunk in fetched for r in chunk}
        for article_id, entry in results.items():
            self._entries.pop(article_id, None)  # re-inserted: the dict stays in age order
            self._entries[article_id] = entry
        while len(self._entries) > self.max_articles:
            del self._entries[next(iter(self._entries))]
        loading.set_result(results)
