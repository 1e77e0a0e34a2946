"""Report periods: what an editor asks for (`24h`, `7d`, or from/to) as whole UTC hours,
read as the rolled-up whole weeks the weekly roll-ups answer, the other rolled-up days the
daily roll-ups answer, and every other hour, which the hourly buckets answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from tracker.core.errors import InvalidInput
from tracker.core.utc import DAY_S, HOUR_S, hour_start

# Hours back from the current one (which is included, as far as it has gone).
HOUR_PERIODS: Final = {"1h": 1, "24h": 24}
# Calendar days back, today included.
DAY_PERIODS: Final = {"7d": 7, "30d": 30}
ALL_TIME: Final = "all"
PERIODS: Final = (*HOUR_PERIODS, *DAY_PERIODS, ALL_TIME)
# The length of a named period, counted from a moment of one's own (an article's
# publication), rather than ending now.
SPANS_H: Final = {"1h": 1, "24h": 24, "7d": 7 * 24, "30d": 30 * 24}


@dataclass(frozen=True, slots=True)
class Period:
    """Hours since the epoch, [first_hour, end_hour); all_time also counts imported
    counts, which belong to no hour."""

    first_hour: int
    end_hour: int
    all_time: bool = False

    @property
    def start(self) -> datetime:
        return hour_start(self.first_hour)

    @property
    def end(self) -> datetime:
        return hour_start(self.end_hour)

    def reaches(self, hour: int) -> bool:
        return self.first_hour <= hour < self.end_hour

    @property
    def days(self) -> tuple[int, int]:
        """[first, end) UTC day numbers the period touches (for readers, per day)."""
        return self.first_hour * HOUR_S // DAY_S, -(-self.end_hour * HOUR_S // DAY_S)

    def reading(self, rolled_days: set[int], rolled_weeks: set[int]) -> Reading:
        """Where each of the period's hours is read: the rolled-up weeks wholly inside it
        from the weekly roll-ups, its other rolled-up full days from the daily ones,
        every other hour from the hourly buckets (all time reads the totals instead)."""
        if self.all_time:
            return Reading([], [], [])
        first_day = -(-self.first_hour * HOUR_S // DAY_S)  # the first day begun at midnight
        end_day = self.end_hour * HOUR_S // DAY_S
        if first_day >= end_day:  # no full day inside: hours only
            return Reading([], [], [(self.first_hour, self.end_hour)])
        weeks = [w for w in whole_weeks(first_day, end_day) if w in rolled_weeks]
        in_weeks = {w + n for w in weeks for n in range(WEEK_DAYS)}
        days: list[tuple[int, int]] = []
        hours: list[tuple[int, int]] = [(self.first_hour, first_day * 24)]
        for day in range(first_day, end_day):
            if day in in_weeks:
                continue
            if day in rolled_days:
                _extend(days, day, day + 1)
            else:
                _extend(hours, day * 24, day * 24 + 24)
        _extend(hours, end_day * 24, self.end_hour)
        return Reading(weeks, days, [(a, b) for a, b in hours if a < b])

    @property
    def full_days(self) -> tuple[int, int]:
        """[first, end) of the UTC days wholly inside the period."""
        return -(-self.first_hour * HOUR_S // DAY_S), self.end_hour * HOUR_S // DAY_S


@dataclass(frozen=True, slots=True)
class Reading:
    """Where a period is read: weeks (their Mondays' day numbers), ranges of days and
    ranges of hours, each [start, end)."""

    weeks: list[int]
    days: list[tuple[int, int]]
    hours: list[tuple[int, int]]


def _extend(ranges: list[tuple[int, int]], start: int, end: int) -> None:
    """Add [start, end) to ranges, joined to the last one where they meet."""
    if start >= end:
        return
    if ranges and ranges[-1][1] == start:
        ranges[-1] = (ranges[-1][0], end)
    else:
        ranges.append((start, end))


# Day numbers since 1970-01-01 (a Thursday): day 4 was a Monday. Weeks run Monday to
# Sunday, UTC.
_A_MONDAY: Final = 4
WEEK_DAYS: Final = 7


def week_of(day: int) -> int:
    """The Monday (day number) of the week holding `day`."""
    return day - (day - _A_MONDAY) % WEEK_DAYS


def whole_weeks(first_day: int, end_day: int) -> list[int]:
    """The Mondays of the weeks wholly inside the days [first_day, end_day)."""
    monday = week_of(first_day)
    if monday < first_day:
        monday += WEEK_DAYS
    return list(range(monday, end_day - WEEK_DAYS + 1, WEEK_DAYS))


_LATEST_S: Final = datetime(9999, 1, 1, tzinfo=UTC).timestamp()


def period_of(
    name: str | None, start: str | None, end: str | None, now_s: float, *, default: str = "24h"
) -> Period:
    """A named period ending now, or `from`/`to` (ISO 8601; a time without a zone is UTC;
    hours are whole: `from` down to its hour, `to` up to the next). `from` alone runs to
    now; `to` alone gives the named period as it was at `to`. A range that ends before it starts
    holds no hours: its report is empty. Any length is fine: full days are read from the
    daily roll-ups."""
    name = default if name is None else name
    if name not in PERIODS:
        raise InvalidInput("period", f"one of {', '.join(PERIODS)}, or from/to")
    if end is not None:
        last = _parse(end, "to")
        if start is None:
            return period_of(name, None, None, last)
        first_hour, end_hour = int(_parse(start, "from") // HOUR_S), -(-int(last) // HOUR_S)
        return Period(first_hour, max(first_hour, end_hour))
    current = int(now_s // HOUR_S)
    if start is not None:
        first_hour = int(_parse(start, "from") // HOUR_S)
        return Period(first_hour, max(first_hour, current + 1))
    if name in HOUR_PERIODS:
        return Period(current - HOUR_PERIODS[name], current + 1)
    if name in DAY_PERIODS:
        today = int(now_s // DAY_S)
        return Period((today - DAY_PERIODS[name] + 1) * 24, current + 1)
    return Period(0, current + 1, all_time=True)


def _parse(text: str, field: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            field, "expected ISO 8601, e.g. 2026-11-20 or 2026-11-20T08:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Nothing was counted before 1970; past 9998 an hour's end would leave datetime's range.
    return min(max(moment.timestamp(), 0.0), _LATEST_S)
