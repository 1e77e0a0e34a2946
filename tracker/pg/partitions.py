"""The monthly partitions of the hourly buckets: created ahead of the rows that need
them, dropped whole once every hour in them is past retention."""

from __future__ import annotations

from datetime import UTC, date, datetime

from tracker.core.utc import hour_start
from tracker.pg import queries as q
from tracker.pg.db import Pool


def month_of(hour: int) -> date:
    """The first day of the UTC month an hour (since the epoch) falls in."""
    moment = hour_start(hour)
    return date(moment.year, moment.month, 1)


def _next(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def name_of(month: date) -> str:
    return f"{q.HOURLY_PARTITION_PREFIX}{month:%Y%m}"


def _month_of_name(name: str) -> date | None:
    digits = name.removeprefix(q.HOURLY_PARTITION_PREFIX)
    if len(digits) != 6 or not digits.isdigit():
        return None
    return date(int(digits[:4]), int(digits[4:]), 1)


async def ensure(pool: Pool, months: set[date]) -> set[date]:
    """Create the partitions of `months` that do not exist; returns every month that has
    one now. DDL under an advisory lock: two flushers never race to create one."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(q.LOCK_PARTITIONS, q.PARTITION_LOCK_ID)
        existing = {
            month
            for row in await conn.fetch(q.HOURLY_PARTITIONS)
            if (month := _month_of_name(row["relname"])) is not None
        }
        for month in sorted(months - existing):
            start = datetime(month.year, month.month, 1, tzinfo=UTC)
            end = datetime.combine(_next(month), datetime.min.time(), tzinfo=UTC)
            # Names and bounds come from dates, never from input: safe to format.
            await conn.execute(
                f"CREATE TABLE {name_of(month)} PARTITION OF article_hourly "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}') "
                "WITH (fillfactor = 70)"
            )
            existing.add(month)
    return existing


async def drop_before(pool: Pool, cutoff: date, known: set[date]) -> list[str]:
    """Drop the partitions of months that end on or before `cutoff` (a month's first day):
    every row in them is older than retention. Their days stay in article_daily."""
    dropped = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(q.LOCK_PARTITIONS, q.PARTITION_LOCK_ID)
        for row in await conn.fetch(q.HOURLY_PARTITIONS):
            month = _month_of_name(row["relname"])
            if month is not None and _next(month) <= cutoff:
                await conn.execute(f"DROP TABLE {name_of(month)}")
                known.discard(month)
                dropped.append(name_of(month))
    return dropped
