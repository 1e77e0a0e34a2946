"""Reading what reports show: PostgreSQL's counts of a period, and what Redis still holds
that PostgreSQL does not, per article; the articles' metadata; and the rows built from
them (their shapes in report_rows.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from tracker.core.metadata import COLUMNS, FIELDS, TEXT_FIELDS
from tracker.core.periods import Period
from tracker.core.utc import date_of, day_number, hour_start
from tracker.events.counts import (
    REFERRAL,
    SHARE,
    TOTAL_HOUR,
    VIEW,
    AppliedParts,
    PendingSlice,
    engagement,
)
from tracker.events.models import CHANNELS
from tracker.pg import report_queries as rq
from tracker.pg.rollups import rolled_in
from tracker.reports.rows import ROW_METRICS, Article, PopularQuery, Row, Unapplied, iso

if TYPE_CHECKING:
    from tracker.pg.db import Conn


async def not_applied(conn: Conn, found: PendingSlice, period: Period) -> Unapplied:
    """The slice's counts in the period, less the parts PostgreSQL holds already (read
    in the caller's snapshot, after Redis: a piece applied meanwhile is PostgreSQL's)."""
    rows = await conn.fetch(rq.APPLIED, [piece.batch_id for piece in found.pieces])
    done: dict[str, tuple[set[int], int]] = {}
    for row in rows:
        done.setdefault(row["batch_id"], (set(), row["parts"]))[0].add(row["part"])
    applied = {i: AppliedParts(parts, frozenset(n)) for i, (n, parts) in done.items()}
    pending = Unapplied(
        bound=found.bound,
        readers=found.readers,
        candidates=[article_id for article_id, _ in found.candidates],
        metadata=found.metadata,
    )
    for piece in found.pieces:
        held = applied.get(piece.batch_id)
        for article_id, hours in piece.counts.items():
            if held is not None and held.holds(article_id):
                continue
            totals = pending.counts.setdefault(article_id, {})
            by_hour = pending.by_hour.setdefault(article_id, {})
            for (hour, metric), count in hours.items():
                if hour != TOTAL_HOUR and not period.reaches(hour):
                    continue
                totals[metric] = totals.get(metric, 0) + count
                if hour != TOTAL_HOUR:
                    by_hour[(hour, metric)] = by_hour.get((hour, metric), 0) + count
    return pending


async def period_args(conn: Conn, period: Period, metrics: Iterable[str]) -> tuple[Any, ...]:
    """The first parameters of a query of the period's counts (report_queries.py): its
    rolled-up weeks and days read from their roll-ups, every other hour from the hourly
    buckets (periods.Period.reading)."""
    rolled_days: set[int] = set()
    rolled_weeks: set[int] = set()
    first_day, end_day = period.full_days
    if first_day < end_day and not period.all_time:
        days, weeks = await rolled_in(conn, date_of(first_day), date_of(end_day))
        rolled_days = {day_number(day) for day in days}
        rolled_weeks = {day_number(week) for week in weeks}
    reading = period.reading(rolled_days, rolled_weeks)
    return (
        list(metrics),
        [date_of(start) for start, _ in reading.days],
        [date_of(end) for _, end in reading.days],
        [hour_start(start) for start, _ in reading.hours],
        [hour_start(end) for _, end in reading.hours],
        period.all_time,
        [date_of(monday) for monday in reading.weeks],
    )


async def articles_of(
    conn: Conn, ids: Iterable[str], pending: Unapplied | None = None
) -> dict[str, Article]:
    """Metadata as PostgreSQL shows it; for an article it has none of yet, what its
    pending events claim (unverified)."""
    wanted = list(dict.fromkeys(ids))
    found = {
        row["article_id"]: Article(row["article_id"], dict(row))
        for row in await conn.fetch(rq.ARTICLES, wanted)
    }
    for article_id in wanted:
        article = found.setdefault(article_id, Article(article_id, {}))
        claimed = pending.metadata.get(article_id) if pending is not None else None
        if claimed and not any(article.meta.get(column) for column in TEXT_COLUMNS):
            article.meta.update(_columns_of(claimed))
            article.meta["verified"] = False
    return found


# The metadata columns that are text (`published` is always set: the first hour).
TEXT_COLUMNS: Final = tuple(c for c, f in zip(COLUMNS, FIELDS, strict=True) if f in TEXT_FIELDS)


def _columns_of(claimed: dict[str, str]) -> dict[str, Any]:
    """Metadata as events carry it, under the articles table's column names."""
    found: dict[str, Any] = {}
    for name, column in zip(FIELDS, COLUMNS, strict=True):
        value = claimed.get(name)
        if value is None:
            continue
        if name == "published":
            try:
                found[column] = datetime.fromisoformat(value)
            except ValueError:
                continue
        else:
            found[column] = value
    return found


async def members_of(conn: Conn, keys: Iterable[str], by_group: bool) -> dict[str, list[str]]:
    keys = list(keys)
    if not by_group:
        return {key: [key] for key in keys}
    members: dict[str, list[str]] = {key: [] for key in keys}
    for row in await conn.fetch(rq.GROUP_MEMBERS, keys):
        if row["key"] in members:
            members[row["key"]].append(row["article_id"])
    for key, ids in members.items():
        if not ids:  # pending only: not in PostgreSQL yet
            ids.append(key)
    return members


async def counts_of(
    conn: Conn, period: Period, ids: list[str], metrics: Iterable[str]
) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for row in await conn.fetch(rq.COUNTS_OF, *await period_args(conn, period, metrics), ids):
        found.setdefault(row["article_id"], {})[row["metric"]] = row["count"]
    return found


async def readers_of(
    conn: Conn, period: Period, ids: list[str], pending: Unapplied
) -> dict[str, int]:
    """Readers over the period's days (readers are per day, so a range's are the sum)."""
    per_day = await readers_by_day(conn, period, ids, pending)
    return {article_id: sum(per_day.get(article_id, {}).values()) for article_id in ids}


async def readers_by_day(
    conn: Conn, period: Period, ids: list[str], pending: Unapplied
) -> dict[str, dict[int, int]]:
    """article_id -> day -> readers over the period's days: those stored, and what the
    recent days' sketches in Redis have gained since."""
    first_day, end_day = period.days
    readers: dict[str, dict[int, int]] = {}
    for row in await conn.fetch(rq.READERS_BY_DAY, first_day, end_day, ids):
        readers.setdefault(row["article_id"], {})[row["day"]] = row["readers"]
    for article_id in ids:
        days = pending.readers.get(article_id, {})
        if not days:
            continue
        stored = readers.setdefault(article_id, {})
        for day, in_redis in days.items():
            if first_day <= day < end_day:
                stored[day] = max(stored.get(day, 0), in_redis)
    return readers


async def rows_of(
    conn: Conn, query: PopularQuery, ranked: list[tuple[str, float]], pending: Unapplied
) -> list[Row]:
    members = await members_of(conn, (key for key, _ in ranked), query.by_group)
    articles = await articles_of(conn, [i for group in members.values() for i in group], pending)
    # A group's row holds its articles that the filters hold.
    members = {
        key: [i for i in group if articles[i].matches(query)] or group
        for key, group in members.items()
    }
    ids = [i for group in members.values() for i in group]
    counts = await counts_of(conn, query.period, ids, ROW_METRICS)
    for article_id in ids:
        for metric, count in pending.counts.get(article_id, {}).items():
            per_article = counts.setdefault(article_id, {})
            per_article[metric] = per_article.get(metric, 0) + count
    readers = await readers_of(conn, query.period, ids, pending)
    imported = await imported_views(conn, ids) if query.period.all_time else {}
    rows = []
    for rank, (key, value) in enumerate(ranked, start=query.offset + 1):
        group = members[key]
        metrics: dict[str, int] = {}
        for article_id in group:
            for metric, count in counts.get(article_id, {}).items():
                metrics[metric] = metrics.get(metric, 0) + count
        uniques = sum(readers.get(i, 0) for i in group)
        lead = max(group, key=lambda i: (counts.get(i, {}).get(VIEW, 0), i))
        rows.append(
            _row(
                rank,
                key,
                value if query.metric.metrics else uniques,
                metrics,
                uniques,
                articles[lead].meta,
                group if query.by_group else None,
                sum(imported.get(i, 0) for i in group),
            )
        )
    return rows


def per_channel(metrics: dict[str, int], kind: str) -> dict[str, int]:
    return {channel: metrics.get(f"{kind}:{channel}", 0) for channel in CHANNELS}


def _row(
    rank: int,
    key: str,
    value: float,
    metrics: dict[str, int],
    uniques: int,
    meta: dict[str, Any],
    group: list[str] | None,
    imported: int,
) -> Row:
    shares = per_channel(metrics, SHARE)
    published = meta.get("published")
    engaged_readers, engaged_avg_s, read_through = engagement(metrics)
    return Row(
        rank=rank,
        article_id=key,
        value=value,
        views=metrics.get(VIEW, 0),
        uniques=uniques,
        shares=shares,
        shares_total=sum(shares.values()),
        referrals=per_channel(metrics, REFERRAL),
        title=meta.get("title"),
        url=meta.get("url"),
        category=meta.get("category"),
        lang=meta.get("lang"),
        author=meta.get("author"),
        published=iso(published) if isinstance(published, datetime) else None,
        group=meta.get("group_id"),
        articles=sorted(group) if group is not None else None,
        engaged_readers=engaged_readers,
        engaged_avg_s=engaged_avg_s,
        read_through=read_through,
        verified=bool(meta.get("verified")),
        imported=imported,
    )


async def imported_views(conn: Conn, ids: list[str]) -> dict[str, int]:
    """The views each article has from a previous counter (tracker import)."""
    rows = await conn.fetch(rq.IMPORTED_VIEWS, ids)
    return {row["article_id"]: row["count"] for row in rows}
