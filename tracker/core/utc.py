"""Hours and days as whole numbers since the Unix epoch (UTC): the hourly buckets of the
counters, and the day of a reader sketch and of a salt."""

from __future__ import annotations

from typing import Final

HOUR_S: Final = 3_600
DAY_S: Final = 86_400


def hour_of(now_s: float) -> int:
    """The hour bucket an event received at `now_s` falls in."""
    return int(now_s // HOUR_S)


def day_of(now_s: float) -> int:
    """The UTC day of `now_s`."""
    return int(now_s // DAY_S)
