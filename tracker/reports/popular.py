"""What is popular: the top articles (or groups) of a period by a metric, with their
metadata and the period's other metrics. PostgreSQL's counts plus what Redis still
holds, read the way stats are (Redis first, then one PostgreSQL snapshot that says which
pieces it holds already), so a report never counts an event twice.

A report costs what it names, not what is pending: Redis is asked only about
PostgreSQL's leaders and the articles with the most pending activity (an upper bound of
any of their pending counts). When some article not read could still outrank the last
row asked for (PostgreSQL's last plus the bound), Redis is asked about more, until none
can, or TOP_CAP articles a shard were read (for groups and ratios: every article with
anything pending)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Final

import msgspec

from tracker.core.periods import ALL_TIME, Period, period_of
from tracker.pg import report_queries as rq
from tracker.pg.db import Pool, database_unavailable_on_error
from tracker.redis_side.keys import TRENDING_VIEWS
from tracker.redis_side.pending import PendingReader
from tracker.redis_side.trending import Trending
from tracker.reports.data import members_of, not_applied, rows_of
from tracker.reports.metric import metric_of
from tracker.reports.ranking import (
    Ranked,
    pg_top,
    ranked,
    ranked_by_ratio,
    ranked_takeoff,
    takeoff_args,
)
from tracker.reports.rows import (
    ROW_METRICS,
    PopularQuery,
    Report,
    Row,
    TakeoffQuery,
    TrendingReport,
    TrendingRow,
    Unapplied,
    iso,
)

if TYPE_CHECKING:
    from asyncpg.transaction import Transaction

    from tracker.events.counts import PendingSlice
    from tracker.pg.db import Conn

# Articles with the most pending activity read at first (per shard): at least this
# many, or twice the rows asked for; four times as many on each round after.
FIRST_TOP: Final = 50
WIDEN: Final = 4
# The most articles with pending activity a ranking reads per shard. Past it, the rows
# stand as they are: PostgreSQL's counts and what Redis holds of the articles read (an
# article beyond them, and beyond PostgreSQL's leaders, has at most the bound pending).
TOP_CAP: Final = 1_000

# Ranks the keys of a report in a snapshot: (rows in order, whether settled).
Rank = Callable[["Conn", Unapplied, set[str]], Awaitable[tuple[Ranked, bool]]]


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
        wanted = query.offset + query.limit
        # Groups sum articles, and a ratio has no bound: those read all that is pending.
        top = None if query.by_group or query.metric.ratio else _first_top(wanted)

        async def rank(conn: Conn, pending: Unapplied, asked: set[str]) -> tuple[Ranked, bool]:
            if query.metric.ratio:
                min_readers = self.read_through_min_readers
                return await ranked_by_ratio(conn, query, pending, min_readers), True
            return await ranked(conn, query, pending, asked)

        rows = await self._rows(query, top, lambda: self._leaders(query), rank)
        return Report(
            start=iso(period.start), end=iso(period.end), metric=query.metric.name, rows=rows
        )

    async def takeoff(self, query: TakeoffQuery) -> Report:
        """Articles published in a period, ranked by views in their first hours: how
        fast each took off. Rows show their all-time counts besides."""
        all_time = PopularQuery(period_of(ALL_TIME, None, None, self.clock()), metric_of("views"))

        async def leaders() -> set[str]:
            with database_unavailable_on_error():
                return {
                    row["key"] for row in await self.pool.fetch(rq.TAKEOFF, *takeoff_args(query))
                }

        async def rank(conn: Conn, pending: Unapplied, asked: set[str]) -> tuple[Ranked, bool]:
            return await ranked_takeoff(conn, query, pending, asked)

        top = _first_top(query.limit)
        rows = await self._rows(all_time, top, leaders, rank, by_hour=True)
        published = query.published
        return Report(start=iso(published.start), end=iso(published.end), metric="views", rows=rows)

    async def _rows(
        self,
        query: PopularQuery,
        top: int | None,
        leaders: Callable[[], Awaitable[set[str]]],
        rank: Rank,
        *,
        by_hour: bool = False,
    ) -> list[Row]:
        """The rows `rank` orders, over `query`'s period, asking Redis about more each
        round until the order is settled."""
        asked: set[str] = set()
        while True:
            asked |= await leaders()
            found = await self._slice(query.period, top, asked, by_hour=by_hour)
            with database_unavailable_on_error():
                async with self.pool.acquire() as conn, _snapshot(conn):
                    pending = await not_applied(conn, found, query.period)
                    ranked, settled = await rank(conn, pending, asked)
                    if settled or top is None or top >= TOP_CAP:
                        return await rows_of(conn, query, ranked, pending)
            top = min(top * WIDEN, TOP_CAP)

    async def trending(
        self, trending: Trending, kind: str, window_minutes: int, limit: int
    ) -> TrendingReport:
        """The top of the last window, described as popular rows (the last hour's other
        counts) with the window before and the rise."""
        rising = await trending.top(kind, window_minutes, limit)
        last_hour = period_of("1h", None, None, self.clock())
        found = await self._slice(last_hour, 0, {r.article_id for r in rising})
        with database_unavailable_on_error():
            async with self.pool.acquire() as conn, _snapshot(conn):
                pending = await not_applied(conn, found, last_hour)
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

    async def labels(self) -> tuple[set[str], set[str]]:
        """The categories and languages articles have (what filters can find)."""
        with database_unavailable_on_error():
            async with self.pool.acquire() as conn:
                categories = {row["value"] for row in await conn.fetch(rq.CATEGORIES)}
                langs = {row["value"] for row in await conn.fetch(rq.LANGS)}
        return categories, langs

    async def _leaders(self, query: PopularQuery) -> set[str]:
        """The articles of PostgreSQL's top keys as it stands (outside the report's
        snapshot: only which articles to ask Redis about)."""
        with database_unavailable_on_error():
            async with self.pool.acquire() as conn:
                top = await pg_top(conn, query)
                members = await members_of(conn, (key for key, _ in top), query.by_group)
        return {article_id for group in members.values() for article_id in group}

    async def _slice(
        self, period: Period, top: int | None, asked: Iterable[str], *, by_hour: bool = False
    ) -> PendingSlice:
        return await self.pending.slice(
            period.first_hour,
            period.end_hour,
            self.clock(),
            metrics=ROW_METRICS,
            top=top,
            asked=asked,
            by_hour=by_hour,
        )


def _first_top(wanted: int) -> int:
    return max(FIRST_TOP, 2 * wanted)


def _snapshot(conn: Conn) -> Transaction:
    return conn.transaction(isolation="repeatable_read", readonly=True)
