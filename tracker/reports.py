"""What is popular: the top articles (or groups) of a period by a metric, with their
metadata and the period's other metrics. PostgreSQL's counts plus what Redis still
holds, read the way stats are (Redis first, then one PostgreSQL snapshot that says which
pieces it holds already), so a report never counts an event twice."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import msgspec

from . import report_queries as rq
from .counts import VIEW
from .db import Pool, database_unavailable_on_error
from .keys import TRENDING_VIEWS
from .pending import PendingReader
from .periods import ALL_TIME, period_of
from .report_data import (
    PopularQuery,
    Report,
    TakeoffQuery,
    TrendingReport,
    TrendingRow,
    Unapplied,
    articles_of,
    counts_of,
    iso,
    members_of,
    not_applied,
    period_args,
    readers_of,
    rows_of,
)
from .report_metrics import metric_of
from .trending import Trending
from .utc import HOUR_S

if TYPE_CHECKING:
    from .db import Conn

# Metrics a row shows besides the ranked one (previews are not readers: left out).


class Reports:
    def __init__(
        self,
        pending: PendingReader,
        pool: Pool,
        clock: Callable[[], float],
        *,
        read_through_min_readers: int = 1,
    ) -> None:
        self.pending = pending
        self.pool = pool
        self.clock = clock
        # Ranking by read-through leaves out articles with fewer engaged readers.
        self.read_through_min_readers = read_through_min_readers

    async def popular(self, query: PopularQuery) -> Report:
        period = query.period
        pending_range = await self.pending.read_range(period.first_hour, period.end_hour)
        with database_unavailable_on_error():
            async with (
                self.pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                pending = await not_applied(conn, pending_range, self._recent_readers)
                if query.metric.ratio:
                    ranked = await _ranked_by_ratio(
                        conn, query, pending, self.read_through_min_readers
                    )
                else:
                    ranked = await _ranked(conn, query, pending)
                rows = await rows_of(conn, query, ranked, pending)
        return Report(
            start=iso(period.start), end=iso(period.end), metric=query.metric.name, rows=rows
        )

    async def takeoff(self, query: TakeoffQuery) -> Report:
        """Articles published in a period, ranked by views in their first hours: how
        fast each took off. Rows show their all-time counts besides."""
        published = query.published
        now_hour = int(self.clock() // HOUR_S)
        pending_range = await self.pending.read_range(now_hour - 1, now_hour + 1)
        filters = (query.category, query.lang, query.author)
        with database_unavailable_on_error():
            async with (
                self.pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                pending = await not_applied(conn, pending_range, self._recent_readers)
                top = await conn.fetch(
                    rq.TAKEOFF,
                    published.start,
                    published.end,
                    query.window_hours,
                    *filters,
                    query.limit + len(pending.counts),
                )
                values = {row["key"]: row["value"] for row in top}
                view = PopularQuery(published, metric_of("views"), *filters)
                for article in (await articles_of(conn, pending.counts, pending)).values():
                    opened = article.meta.get("published")
                    if opened is None or not article.matches(view):
                        continue
                    first_hour = int(opened.timestamp() // HOUR_S)
                    if published.reaches(first_hour) and now_hour < first_hour + query.window_hours:
                        values[article.article_id] = values.get(
                            article.article_id, 0
                        ) + pending.metric(article.article_id, (VIEW,))
                ranked = _top(values, 0, query.limit)
                all_time = period_of(ALL_TIME, None, None, self.clock())
                rows = await rows_of(conn, PopularQuery(all_time, view.metric), ranked, pending)
        return Report(start=iso(published.start), end=iso(published.end), metric="views", rows=rows)

    async def trending(
        self, trending: Trending, kind: str, window_minutes: int, limit: int
    ) -> TrendingReport:
        """The top of the last window, described as popular rows (the last hour's other
        counts) with the window before and the rise."""
        rising = await trending.top(kind, window_minutes, limit)
        now_s = self.clock()
        last_hour = period_of("1h", None, None, now_s)
        pending_range = await self.pending.read_range(last_hour.first_hour, last_hour.end_hour)
        with database_unavailable_on_error():
            async with (
                self.pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                pending = await not_applied(conn, pending_range, self._recent_readers)
                rows = await rows_of(
                    conn,
                    PopularQuery(last_hour, metric_of("views")),
                    [(r.article_id, r.value) for r in rising],
                    pending,
                )
        return TrendingReport(
            window=f"{window_minutes}m",
            metric="views" if kind == TRENDING_VIEWS else "shares",
            rows=[
                TrendingRow(**msgspec.structs.asdict(row), previous=r.previous, rise=r.rise)
                for row, r in zip(rows, rising, strict=True)
            ],
        )

    async def _recent_readers(self, article_ids: list[str]) -> dict[str, dict[int, int]]:
        pending = await self.pending.read(article_ids, self.clock(), counts=False)
        return pending.readers


async def _ranked(conn: Conn, query: PopularQuery, pending: Unapplied) -> list[tuple[str, float]]:
    """(key, value) of the rows asked for, in order: PostgreSQL's top keys and the keys
    of articles with pending counts, each valued as both together."""
    wanted = query.offset + query.limit
    filters = (query.category, query.lang, query.author)
    metric = query.metric
    if metric.metrics:
        top = await conn.fetch(
            rq.RANK, *period_args(query.period, metric.metrics), *filters, wanted, query.by_group
        )
    else:
        first_day, end_day = query.period.days
        top = await conn.fetch(
            rq.RANK_READERS, first_day, end_day, wanted, *filters, query.by_group
        )
    values = {row["key"]: row["value"] for row in top}
    articles = await articles_of(conn, pending.counts, pending)
    pending_keys = {
        a.key(query.by_group) for a in articles.values() if a.matches(query)
    } - values.keys()
    if not metric.metrics:
        # Readers: what the recent days' sketches in Redis gained counts too.
        values = await _values_of(conn, query, values.keys() | pending_keys, pending)
    else:
        if pending_keys:
            values.update(await _values_of(conn, query, pending_keys, pending))
        for article in articles.values():
            key = article.key(query.by_group)
            if key in values and article.matches(query):
                values[key] += pending.metric(article.article_id, metric.metrics)
    return _top(values, query.offset, query.limit)


async def _ranked_by_ratio(
    conn: Conn, query: PopularQuery, pending: Unapplied, min_readers: int
) -> list[tuple[str, float]]:
    """A ratio of two metrics (read-through) per key, of the keys with at least
    `min_readers` of the second: every key's sums from PostgreSQL, plus what Redis
    holds, then ranked here (a ratio has no top-N in SQL that pending counts keep)."""
    numerator, denominator = query.metric.metrics
    filters = (query.category, query.lang, query.author)
    sums: dict[str, dict[str, int]] = {}
    for row in await conn.fetch(
        rq.SUMS_BY_KEY, *period_args(query.period, query.metric.metrics), *filters, query.by_group
    ):
        sums.setdefault(row["key"], {})[row["metric"]] = row["count"]
    articles = await articles_of(conn, pending.counts, pending)
    for article in articles.values():
        if article.matches(query):
            target = sums.setdefault(article.key(query.by_group), {})
            for metric in query.metric.metrics:
                target[metric] = target.get(metric, 0) + pending.metric(
                    article.article_id, (metric,)
                )
    values: dict[str, float] = {}
    for key, found in sums.items():
        below = found.get(denominator, 0)
        if below and below >= min_readers:
            values[key] = round(min(1.0, found.get(numerator, 0) / below), 3)
    return _top(values, query.offset, query.limit)


def _top(values: Mapping[str, float], offset: int, limit: int) -> list[tuple[str, float]]:
    ordered = sorted(values.items(), key=lambda item: (-item[1], item[0]))
    return ordered[offset : offset + limit]


async def _values_of(
    conn: Conn, query: PopularQuery, keys: set[str], pending: Unapplied
) -> dict[str, int]:
    """PostgreSQL's value of keys that were not in its top."""
    members = await members_of(conn, keys, query.by_group)
    ids = [i for group in members.values() for i in group]
    if query.metric.metrics:
        counts = await counts_of(conn, query.period, ids, query.metric.metrics)
        return {
            key: sum(sum(counts.get(i, {}).values()) for i in group)
            for key, group in members.items()
        }
    readers = await readers_of(conn, query.period, ids, pending)
    return {key: sum(readers.get(i, 0) for i in group) for key, group in members.items()}
