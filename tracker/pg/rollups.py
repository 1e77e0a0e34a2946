"""Daily and weekly roll-ups, made apart from the flush.

A day is rolled up (its daily rows summed from its hourly ones) once it has ended, a week
once its seven days are; each in a transaction of its own holding ROLLUP_LOCK alone. Every
flush transaction holds that lock shared and adds the counts it brings for rolled-up days
and weeks to their roll-ups (rolled_over): so a listed day's or week's roll-up always
equals its hours, whatever arrives late, and nothing is ever rolled up twice. Reports
read a period's rolled-up weeks and days from the roll-ups, the rest from the hours.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Final

from tracker.core.periods import WEEK_DAYS, week_of
from tracker.core.utc import DAY_S, HOUR_S, date_of, day_number
from tracker.pg import rollup_queries as q
from tracker.pg.db import Pool, database_unavailable_on_error

if TYPE_CHECKING:
    from tracker.pg.db import Conn

log = logging.getLogger(__name__)

# A day is rolled up this long after it ended: most of what arrives late has come by then
# (what comes later is added to the roll-up by its flush).
ROLL_UP_MARGIN_S: Final = 600


@dataclass(frozen=True, slots=True)
class Rolled:
    days: list[date]
    weeks: list[date]


async def hold_shared(conn: Conn) -> None:
    """First in a flush's transaction: no roll-up runs until it ends (and it waits for
    one under way)."""
    await conn.execute(q.LOCK_SHARED, q.ROLLUP_LOCK_ID)


async def rolled_over(conn: Conn, hours: Iterable[int]) -> None:
    """In a flush's transaction (hold_shared), once its counters are in
    incoming_counters: add those of rolled-up days and weeks to their roll-ups."""
    days = {hour * HOUR_S // DAY_S for hour in hours}
    weeks = {week_of(day) for day in days}
    rolled = await conn.fetch(
        q.ROLLED_OF, [date_of(day) for day in days], [date_of(week) for week in weeks]
    )
    rolled_days = [row["day"] for row in rolled if row["kind"] == "d"]
    rolled_weeks = [row["day"] for row in rolled if row["kind"] == "w"]
    if rolled_days:
        await conn.execute(q.ADD_ROLLED_DAYS, rolled_days)
    if rolled_weeks:
        await conn.execute(q.ADD_ROLLED_WEEKS, rolled_weeks)


async def rolled_in(conn: Pool | Conn, start: date, end: date) -> tuple[set[date], set[date]]:
    """The rolled-up days in [start, end), and the rolled-up weeks wholly inside it."""
    days: set[date] = set()
    weeks: set[date] = set()
    for row in await conn.fetch(q.ROLLED_IN, start, end):
        (days if row["kind"] == "d" else weeks).add(row["day"])
    return days, weeks


async def roll_up(pool: Pool, now_s: float) -> Rolled:
    """Roll up every day that has ended (by ROLL_UP_MARGIN_S) since the first the hourly
    buckets hold, then every week whose days all are; oldest first."""
    last_day = int((now_s - ROLL_UP_MARGIN_S) // DAY_S) - 1  # the last day ended
    with database_unavailable_on_error():
        days = await _days_due(pool, last_day)
        if days:
            metrics = [row["metric"] for row in await pool.fetch(q.HOURLY_METRICS)]
            await _roll_up_each(pool, days, q.ROLL_UP_DAY, q.MARK_DAY, metrics)
        weeks = await _weeks_due(pool, last_day)
        if weeks:
            metrics = [row["metric"] for row in await pool.fetch(q.DAILY_METRICS)]
            await _roll_up_each(pool, weeks, q.ROLL_UP_WEEK, q.MARK_WEEK, metrics)
    if days or weeks:
        log.info("rolled up %d day(s), %d week(s)", len(days), len(weeks))
    return Rolled(days, weeks)


async def _days_due(pool: Pool, last_day: int) -> list[date]:
    """The days up to `last_day` since the first hour held that are not rolled up."""
    first_hour: datetime | None = await pool.fetchval(q.FIRST_HOUR)
    if first_hour is None:
        return []
    first_day = int(first_hour.timestamp() // DAY_S)
    if first_day > last_day:
        return []
    done, _ = await rolled_in(pool, date_of(first_day), date_of(last_day + 1))
    wanted = (date_of(day) for day in range(first_day, last_day + 1))
    return [day for day in wanted if day not in done]


async def _weeks_due(pool: Pool, last_day: int) -> list[date]:
    """The weeks up to `last_day` whose seven days are rolled up and they are not."""
    first_rolled = await pool.fetchval(q.FIRST_ROLLED_DAY)
    if first_rolled is None:
        return []
    start = date_of(week_of(day_number(first_rolled)))
    end = date_of(last_day + 1)
    rolled_days, rolled_weeks = await rolled_in(pool, start, end)
    mondays = (start + timedelta(days=n) for n in range(0, (end - start).days, WEEK_DAYS))
    return [
        monday
        for monday in mondays
        if monday not in rolled_weeks
        and all(monday + timedelta(days=n) in rolled_days for n in range(WEEK_DAYS))
    ]


async def _roll_up_each(
    pool: Pool, periods: list[date], roll_up_sql: str, mark_sql: str, metrics: list[str]
) -> None:
    """Each period in a transaction of its own, holding ROLLUP_LOCK alone; one another
    flusher rolled up meanwhile is left as it is (its hours may be pruned since)."""
    for period in periods:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(q.LOCK_EXCLUSIVE, q.ROLLUP_LOCK_ID)
            if await conn.fetchval(mark_sql, period) is None:
                continue
            await conn.execute(roll_up_sql, period, metrics)
