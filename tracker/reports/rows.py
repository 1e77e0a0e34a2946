"""The shapes of reports: what a report asks (PopularQuery, TakeoffQuery), what Redis holds
of it that PostgreSQL does not (Unapplied), an article's metadata as read, and the rows
and reports the handlers encode (their JSON Schemas are the OpenAPI document's)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

import msgspec

from tracker.core.periods import Period
from tracker.events.counts import ALL_METRICS, PREVIEW
from tracker.reports.metric import Metric

MAX_LIMIT: Final = 100


@dataclass(frozen=True, slots=True)
class PopularQuery:
    period: Period
    metric: Metric
    category: str | None = None
    lang: str | None = None
    author: str | None = None
    by_group: bool = False
    limit: int = 20
    offset: int = 0
    # Only articles whose metadata is verified (the public most-read list).
    verified_only: bool = False


@dataclass(frozen=True, slots=True)
class TakeoffQuery:
    published: Period  # articles published in it
    window_hours: int  # views in their first hours
    category: str | None = None
    lang: str | None = None
    author: str | None = None
    limit: int = 20


# Metrics a row shows besides the ranked one (previews are not readers: left out).
ROW_METRICS: Final = tuple(m for m in ALL_METRICS if not m.startswith(PREVIEW))


class Row(msgspec.Struct):
    rank: int
    article_id: str
    value: int | float
    views: int
    uniques: int
    shares: dict[str, int]
    shares_total: int
    referrals: dict[str, int]
    title: str | None = None
    url: str | None = None
    category: str | None = None
    lang: str | None = None
    author: str | None = None
    published: str | None = None
    group: str | None = None
    articles: list[str] | None = None  # with group_by=group: the group's articles
    engaged_readers: int = 0
    engaged_avg_s: float = 0.0
    read_through: float = 0.0
    # Whether the title, URL and the rest come from the newsroom (editors, the article's
    # own page, trusted senders), not from an anonymous event's claim.
    verified: bool = False
    # The views of an all-time row that came from a previous counter (tracker import).
    imported: int = 0


class Report(msgspec.Struct):
    start: str = msgspec.field(name="from")
    end: str = msgspec.field(name="to")
    metric: str = "views"
    rows: list[Row] = msgspec.field(default_factory=list)


@dataclass(slots=True)
class Unapplied:
    """What Redis holds of the period that PostgreSQL does not yet, for the articles a
    pending slice names; the recent days' readers Redis counts; and the most any other
    article may have pending (0: none has anything)."""

    bound: int = 0
    # article_id -> metric -> count over the period
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    # article_id -> (hour, metric) -> count (from slices read per hour)
    by_hour: dict[str, dict[tuple[int, str], int]] = field(default_factory=dict)
    # article_id -> day -> readers in the day's sketch in Redis
    readers: dict[str, dict[int, int]] = field(default_factory=dict)
    # the articles with the most pending activity, most first
    candidates: list[str] = field(default_factory=list)
    # article_id -> the metadata its pending events carry (shown, as unverified, for an
    # article PostgreSQL has none of yet)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)

    def metric(self, article_id: str, metrics: Iterable[str]) -> int:
        found = self.counts.get(article_id, {})
        return sum(found.get(m, 0) for m in metrics)


@dataclass(slots=True)
class Article:
    article_id: str
    meta: dict[str, Any]

    def key(self, by_group: bool) -> str:
        return (self.meta.get("group_id") or self.article_id) if by_group else self.article_id

    def matches(self, query: PopularQuery) -> bool:
        if query.verified_only and not self.meta.get("verified"):
            return False
        return all(
            wanted is None or self.meta.get(name) == wanted
            for name, wanted in (
                ("category", query.category),
                ("lang", query.lang),
                ("author", query.author),
            )
        )


def iso(moment: datetime | date) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class TrendingRow(Row, kw_only=True):
    previous: int  # in the window before
    rise: float | None  # times the window before; None when that was nothing


class TrendingReport(msgspec.Struct):
    window: str
    metric: str
    rows: list[TrendingRow]
