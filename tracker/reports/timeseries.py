"""One article's curve: views, readers, shares and referrals per hour or per day over a
period, zero-filled; aligned on its first hour with `since_publish` (how fast did it
take off, against another story's curve)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import msgspec

from tracker.core.errors import InvalidInput
from tracker.core.periods import Period
from tracker.core.utc import DAY_S, HOUR_S
from tracker.events.counts import REFERRAL, SHARE, VIEW
from tracker.pg import report_queries as rq
from tracker.pg.db import Pool, database_unavailable_on_error
from tracker.redis_side.pending import PendingReader
from tracker.reports.data import not_applied, per_channel, readers_by_day
from tracker.reports.rows import ROW_METRICS, iso

GRANULARITIES: Final = {"hour": HOUR_S, "day": DAY_S}
MAX_BUCKETS: Final = 24 * 93


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    article_id: str
    period: Period  # absolute, or its length from the hour of publication
    granularity: str = "hour"
    since_publish: bool = False


class Bucket(msgspec.Struct):
    start: str
    views: int
    uniques: int | None  # readers are counted per day: none per hour
    shares: dict[str, int]
    shares_total: int
    referrals: dict[str, int]
    offset: int | None = None  # hours or days since publication, with since_publish


class Series(msgspec.Struct):
    article_id: str
    granularity: str
    start: str = msgspec.field(name="from")
    end: str = msgspec.field(name="to")
    published: str | None = None
    since_publish: bool = False
    buckets: list[Bucket] = msgspec.field(default_factory=list)


def granularity_of(text: str | None) -> str:
    granularity = "hour" if text is None else text
    if granularity not in GRANULARITIES:
        raise InvalidInput("granularity", "hour or day")
    return granularity


class Timeseries:
    def __init__(self, pending: PendingReader, pool: Pool, clock: Callable[[], float]) -> None:
        self.pending = pending
        self.pool = pool
        self.clock = clock

    async def series(self, query: SeriesQuery) -> Series:
        step_s = GRANULARITIES[query.granularity]
        with database_unavailable_on_error():
            published = await self.pool.fetchval(rq.PUBLISHED_OF, query.article_id)
        period = query.period
        if query.since_publish:
            if published is None:
                raise InvalidInput("since_publish", "the article is not known yet")
            first = int(published.timestamp() // HOUR_S)
            period = Period(first, first + period.end_hour - period.first_hour)
        first_s = period.first_hour * HOUR_S // step_s * step_s
        starts = range(first_s, period.end_hour * HOUR_S, step_s)
        if len(starts) > MAX_BUCKETS:
            raise InvalidInput(
                "granularity", f"at most {MAX_BUCKETS} buckets: a shorter range, or per day"
            )
        counts = await self._counts(query, period, first_s)
        buckets = []
        for index, start in enumerate(starts):
            metrics = counts.get(start, {})
            shares = per_channel(metrics, SHARE)
            buckets.append(
                Bucket(
                    start=iso(datetime.fromtimestamp(start, tz=UTC)),
                    views=metrics.get(VIEW, 0),
                    uniques=metrics.get("readers", 0) if step_s == DAY_S else None,
                    shares=shares,
                    shares_total=sum(shares.values()),
                    referrals=per_channel(metrics, REFERRAL),
                    offset=index if query.since_publish else None,
                )
            )
        return Series(
            article_id=query.article_id,
            granularity=query.granularity,
            start=iso(period.start),
            end=iso(period.end),
            published=iso(published) if published else None,
            since_publish=query.since_publish,
            buckets=buckets,
        )

    async def _counts(
        self, query: SeriesQuery, period: Period, first_s: int
    ) -> dict[int, dict[str, int]]:
        """bucket start (s) -> metric -> count, PostgreSQL's and Redis's together; per
        day also "readers"."""
        step_s = GRANULARITIES[query.granularity]
        article_id = query.article_id
        found = await self.pending.slice(
            period.first_hour,
            period.end_hour,
            self.clock(),
            metrics=ROW_METRICS,
            top=0,
            asked=[article_id],
            by_hour=True,
        )
        counts: dict[int, dict[str, int]] = {}

        def add(start_s: int, metric: str, count: int) -> None:
            bucket = counts.setdefault(start_s // step_s * step_s, {})
            bucket[metric] = bucket.get(metric, 0) + count

        with database_unavailable_on_error():
            async with (
                self.pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                pending = await not_applied(conn, found, period)
                sql = rq.HOURLY_OF if step_s == HOUR_S else rq.DAILY_OF
                # The end of the last bucket: per day, the whole of the last day.
                end_s = -(-period.end_hour * HOUR_S // step_s) * step_s
                end = datetime.fromtimestamp(end_s, tz=UTC)
                start = datetime.fromtimestamp(first_s, tz=UTC)
                for row in await conn.fetch(sql, article_id, start, end):
                    add(int(row["start"].timestamp()), row["metric"], row["count"])
                for (hour, metric), count in pending.by_hour.get(article_id, {}).items():
                    if period.reaches(hour):
                        add(hour * HOUR_S, metric, count)
                if step_s == DAY_S:
                    per_day = await readers_by_day(conn, period, [article_id], pending)
                    for day, readers in per_day.get(article_id, {}).items():
                        add(day * DAY_S, "readers", readers)
        return counts
