"""Per-article counts as the website shows them: Postgres plus what Redis still holds."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from redis.asyncio import Redis

from . import buffer, db
from .keys import VIEW_METRIC, Keys
from .models import CHANNELS


class ArticleStats(msgspec.Struct, frozen=True):
    article_id: str
    views: int
    uniques: int
    shares: dict[str, int]
    shares_total: int


def _article_stats(article_id: str, metrics: dict[str, int]) -> ArticleStats:
    shares = {channel: metrics.get(f"share:{channel}", 0) for channel in CHANNELS}
    return ArticleStats(
        article_id=article_id,
        views=metrics.get(VIEW_METRIC, 0),
        uniques=0,
        shares=shares,
        shares_total=sum(shares.values()),
    )


async def article_stats(
    redis: Redis, pool: db.Pool, keys: Keys, article_ids: Sequence[str]
) -> list[ArticleStats]:
    """Counts for each id, in the order asked, never counting a flushed batch twice.

    Redis first (atomically per shard, each piece with its batch id), then Postgres in
    one statement that also says which of those ids it already holds: those pieces are
    dropped. Any interleaving with a flush gives a total that never decreases.
    """
    pieces = await buffer.read_pending(redis, keys, article_ids)
    stored, applied = await db.totals_with_applied(pool, article_ids, pieces)
    combined = {article_id: dict(stored.get(article_id, {})) for article_id in article_ids}
    for piece in pieces:
        if piece.batch_id in applied:
            continue
        for article_id, metrics in piece.counts.items():
            target = combined[article_id]
            for metric, count in metrics.items():
                target[metric] = target.get(metric, 0) + count
    return [_article_stats(article_id, combined[article_id]) for article_id in article_ids]
