"""Weekly roll-ups of the daily counts, made apart from the flush.

A week is rolled up once it has ended (by ROLL_UP_MARGIN_S, for clocks that differ a
little between hosts), in a transaction of its own that holds ROLLUP_LOCK alone; a flush
whose batch adds to a week that has ended (or is about to) holds the same lock shared
and takes that week off `rolled_weeks` in its transaction. So a week is listed only while
its weekly rows equal the sums of its days, and reports read a week from its roll-up
only then.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import TYPE_CHECKING, Final

from tracker.core.periods import WEEK_DAYS, week_of
from tracker.core.utc import DAY_S, HOUR_S
from tracker.pg import rollup_queries as q
from tracker.pg.db import Pool, database_unavailable_on_error

if TYPE_CHECKING:
    from tracker.pg.db import Conn

ROLL_UP_MARGIN_S: Final = 2 * 3600
# Weeks rolled up per upkeep run: a long history is rolled up over a few runs.
MAX_WEEKS_PER_RUN: Final = 52
_EPOCH: Final = date(1970, 1, 1)


def monday_date(monday: int) -> date:
    return _EPOCH + timedelta(days=monday)


def ended_weeks_of(hours: Iterable[int], now_s: float) -> list[date]:
    """The weeks of these hours that have ended, or end within the margin: a batch
    adding to them must take them off the rolled-up list."""
    weeks = {week_of(hour * HOUR_S // DAY_S) for hour in hours}
    return sorted(
        monday_date(monday)
        for monday in weeks
        if (monday + WEEK_DAYS) * DAY_S <= now_s + ROLL_UP_MARGIN_S
    )


async def unroll(conn: Conn, weeks: list[date]) -> None:
    """In a flush's transaction, before it adds to the weeks: they are no longer rolled
    up (waits for a roll-up under way to commit first)."""
    await conn.execute(q.LOCK_SHARED, q.ROLLUP_LOCK_ID)
    await conn.execute(q.UNROLL_WEEKS, weeks)


async def roll_up(pool: Pool, now_s: float) -> list[date]:
    """Roll up the weeks that have ended and are not rolled up (at most
    MAX_WEEKS_PER_RUN, oldest first); returns them."""
    last_monday = week_of(int((now_s - ROLL_UP_MARGIN_S) // DAY_S)) - WEEK_DAYS
    with database_unavailable_on_error():
        first_day = await pool.fetchval(q.FIRST_DAY)
        if first_day is None:
            return []
        first_monday = week_of((first_day - _EPOCH).days)
        wanted = [monday_date(m) for m in range(first_monday, last_monday + 1, WEEK_DAYS)]
        rolled = {row["week"] for row in await pool.fetch(q.ROLLED_AMONG, wanted)}
        due = [week for week in wanted if week not in rolled][:MAX_WEEKS_PER_RUN]
        metrics = [row["metric"] for row in await pool.fetch(q.METRICS)]
        for week in due:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(q.LOCK_EXCLUSIVE, q.ROLLUP_LOCK_ID)
                await conn.execute(q.ROLL_UP_WEEK, week, metrics)
                await conn.execute(q.MARK_ROLLED, week)
    return due
