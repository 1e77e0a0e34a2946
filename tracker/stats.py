"""Per-article counts as the website shows them: Postgres plus what Redis still holds."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from redis.asyncio import Redis

from . import buffer, db
from .keys import PREVIEW, REFERRAL, SHARE, VIEW_METRIC, Keys
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
        if piece.batch_id in stored.applied:
            continue
        for article_id, metrics in piece.counts.items():
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
