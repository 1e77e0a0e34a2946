"""Per-article counts as the website shows them: PostgreSQL plus what Redis still holds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated

import msgspec

from tracker.events.counts import PREVIEW, READ, REFERRAL, SHARE, VIEW, engagement
from tracker.events.models import CHANNELS, QUARTERS
from tracker.pg.store import Store
from tracker.redis_side.pending import PendingReader, sketch_days

Count = Annotated[int, msgspec.Meta(ge=0)]
Counts = dict[str, Count]


class ArticleStats(msgspec.Struct, frozen=True):
    """What `GET /api/v1/articles/{id}/stats` answers; the OpenAPI document's schema is
    made from it (openapi.py adds descriptions and the keys of the per-channel objects)."""

    article_id: str
    views: Count
    uniques: Count
    shares: Counts
    shares_total: Count
    referrals: Counts
    previews: Counts
    # How far readers got (engage events): readers who sent one, their engaged seconds
    # on average, the share of them who reached the end of the body, and readers per
    # quarter reached.
    engaged_readers: Count
    engaged_avg_s: Annotated[float, msgspec.Meta(ge=0)]
    read_through: Annotated[float, msgspec.Meta(ge=0, le=1)]
    read_depth: Counts
    # What of the counts above came from a previous counter (`tracker import`).
    imported: Counts


def _per_channel(metrics: dict[str, int], kind: str) -> dict[str, int]:
    return {channel: metrics.get(f"{kind}:{channel}", 0) for channel in CHANNELS}


def _article_stats(
    article_id: str, metrics: dict[str, int], readers: int, imported: dict[str, int]
) -> ArticleStats:
    shares = _per_channel(metrics, SHARE)
    engaged_readers, engaged_avg_s, read_through = engagement(metrics)
    return ArticleStats(
        article_id=article_id,
        views=metrics.get(VIEW, 0),
        uniques=readers,
        shares=shares,
        shares_total=sum(shares.values()),
        referrals=_per_channel(metrics, REFERRAL),
        previews=_per_channel(metrics, PREVIEW),
        engaged_readers=engaged_readers,
        engaged_avg_s=engaged_avg_s,
        read_through=read_through,
        read_depth={str(q): metrics.get(f"{READ}:{q}", 0) for q in QUARTERS},
        imported={
            "views": imported.get(VIEW, 0),
            "shares_total": sum(n for m, n in imported.items() if m.startswith(f"{SHARE}:")),
        },
    )


class StatsReader:
    """Joins the read side of Redis with PostgreSQL, never counting a flushed batch twice."""

    def __init__(self, pending: PendingReader, store: Store, clock: Callable[[], float]) -> None:
        self.pending = pending
        self.store = store
        self.clock = clock

    async def read(self, article_ids: Sequence[str]) -> list[ArticleStats]:
        """Counts for each id, in the order asked.

        Redis first (atomically per shard, each piece with its batch id), then PostgreSQL
        in one statement that also says which of those ids it already holds: those pieces
        are dropped. Any interleaving with a flush gives a total that never decreases.

        Readers (uniques, all time) are the stored days' readers, plus what the recent
        days' sketches in Redis have gained since they were stored.
        """
        now_s = self.clock()
        pending = await self.pending.read(article_ids, now_s)
        stored = await self.store.totals_with_applied(
            article_ids, [piece.batch_id for piece in pending.pieces], sketch_days(now_s)[0]
        )
        combined = {a: dict(stored.totals.get(a, {})) for a in article_ids}
        for piece in pending.pieces:
            applied = stored.applied.get(piece.batch_id)
            for article_id, metrics in piece.counts.items():
                if applied is not None and applied.holds(article_id):
                    continue  # PostgreSQL holds this article's part of the piece already
                target = combined[article_id]
                for metric, count in metrics.items():
                    target[metric] = target.get(metric, 0) + count
        results = []
        for article_id in article_ids:
            readers = stored.readers_total.get(article_id, 0)
            stored_days = stored.readers.get(article_id, {})
            for day, in_redis in pending.readers.get(article_id, {}).items():
                readers += max(0, in_redis - stored_days.get(day, 0))
            imported = stored.imported.get(article_id, {})
            results.append(_article_stats(article_id, combined[article_id], readers, imported))
        return results
