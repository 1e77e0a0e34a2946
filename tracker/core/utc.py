"""Hours and days as whole numbers since the Unix epoch (UTC): the hourly buckets of the
counters, and the day of a reader sketch and of a salt."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final

HOUR_S: Final = 3_600
DAY_S: Final = 86_400
_EPOCH: Final = date(1970, 1, 1)


def hour_of(now_s: float) -> int:
    """The hour bucket an event received at `now_s` falls in."""
    return int(now_s // HOUR_S)


def day_of(now_s: float) -> int:
    """The UTC day of `now_s`."""
    return int(now_s // DAY_S)


def hour_start(hour: int) -> datetime:
    """The moment an hour bucket begins."""
    return datetime.fromtimestamp(hour * HOUR_S, tz=UTC)


def date_of(day: int) -> date:
    """The date of a day number."""
    return _EPOCH + timedelta(days=day)


def day_number(when: date) -> int:
    """The day number of a date."""
    return (when - _EPOCH).days
