"""The editors' report endpoints: parse the query, ask reports.py, answer JSON or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any, Final

import msgspec
from aiohttp import web
from multidict import MultiMapping

from tracker.core.errors import InvalidInput
from tracker.core.periods import SPANS_H, Period, period_of
from tracker.events.models import CHANNELS, validate_article_id
from tracker.redis_side.trending import kind_of, window_of
from tracker.reports.metric import metric_of
from tracker.reports.rows import MAX_LIMIT, PopularQuery, Report, Row, TakeoffQuery
from tracker.reports.timeseries import SeriesQuery, granularity_of
from tracker.web.app_keys import CLOCK, SERVICES
from tracker.web.responses import json_response

FORMATS: Final = ("json", "csv")
GROUP_BY: Final = ("article", "group")
MAX_OFFSET: Final = 10_000
MAX_LABEL: Final = 256
# How long after publication take-off is measured: views in the first hour, day, week.
TAKEOFF_WINDOWS: Final = {"24h": 24, "1h": 1, "7d": 168}
# A row's own columns, then its shares and referrals per channel.
ROW_COLUMNS: Final = (
    "rank", "article_id", "title", "url", "category", "lang", "author", "published",
    "group", "verified", "value", "views", "uniques", "shares_total", "imported",
)  # fmt: skip
CSV_FIELDS: Final = (
    *ROW_COLUMNS,
    *(f"shares_{c}" for c in CHANNELS),
    *(f"referrals_{c}" for c in CHANNELS),
)
# A cell a spreadsheet would read as a formula (OWASP's list): what a row's text begins
# with is the data's, so such a cell is kept as text by a leading apostrophe.
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def int_param(query: MultiMapping[str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise InvalidInput(name, f"a whole number from {low} to {high}")
    return value


def choice_param(query: MultiMapping[str], name: str, options: Sequence[str]) -> str:
    value = query.get(name, options[0])
    if value not in options:
        raise InvalidInput(name, f"one of {', '.join(options)}")
    return value


def label_param(query: MultiMapping[str], name: str) -> str | None:
    value = query.get(name) or None
    if value is None:
        return None
    if len(value) > MAX_LABEL:
        raise InvalidInput(name, f"at most {MAX_LABEL} characters")
    if "\x00" in value:
        raise InvalidInput(name, "no NUL characters")
    return value


def popular_query(request: web.Request, *, max_limit: int = MAX_LIMIT) -> PopularQuery:
    query = request.query
    return PopularQuery(
        period=period_of(
            query.get("period"), query.get("from"), query.get("to"), request.app[CLOCK]()
        ),
        metric=metric_of(query.get("metric")),
        category=label_param(query, "category"),
        lang=label_param(query, "lang"),
        author=label_param(query, "author"),
        by_group=choice_param(query, "group_by", GROUP_BY) == "group",
        limit=int_param(query, "limit", 20, 1, max_limit),
        offset=int_param(query, "offset", 0, 0, MAX_OFFSET),
    )


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell that opens as text: numbers as they are, text that would
    start a formula with an apostrophe before it."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_rows(rows: Sequence[Row]) -> list[list[Any]]:
    lines: list[list[Any]] = []
    for row in rows:
        values = msgspec.structs.asdict(row)
        line = [values.get(name) for name in ROW_COLUMNS]
        line += [row.shares[c] for c in CHANNELS] + [row.referrals[c] for c in CHANNELS]
        lines.append([csv_cell(value) for value in line])
    return lines


def csv_response(header: Sequence[str], lines: list[list[Any]], filename: str) -> web.Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(lines)
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def report_response(request: web.Request, report: Report, name: str) -> web.Response:
    if choice_param(request.query, "format", FORMATS) == "csv":
        return csv_response(CSV_FIELDS, csv_rows(report.rows), f"{name}.csv")
    return json_response(report)


async def popular(request: web.Request) -> web.Response:
    query = popular_query(request)
    choice_param(request.query, "format", FORMATS)  # refused before the work, if wrong
    return report_response(request, await request.app[SERVICES].reports.popular(query), "popular")


async def trending(request: web.Request) -> web.Response:
    query = request.query
    report = await request.app[SERVICES].reports.trending(
        request.app[SERVICES].trending,
        kind_of(query.get("metric")),
        window_of(query.get("window")),
        int_param(query, "limit", 20, 1, MAX_LIMIT),
    )
    return json_response(report)


async def takeoff(request: web.Request) -> web.Response:
    query = request.query
    published = period_of(
        query.get("period"), query.get("from"), query.get("to"), request.app[CLOCK](), default="7d"
    )
    report = await request.app[SERVICES].reports.takeoff(
        TakeoffQuery(
            published=published,
            window_hours=TAKEOFF_WINDOWS[choice_param(query, "window", tuple(TAKEOFF_WINDOWS))],
            category=label_param(query, "category"),
            lang=label_param(query, "lang"),
            author=label_param(query, "author"),
            limit=int_param(query, "limit", 20, 1, MAX_LIMIT),
        )
    )
    return report_response(request, report, "takeoff")


async def timeseries(request: web.Request) -> web.Response:
    article_id = validate_article_id(request.match_info["article_id"])
    query = request.query
    granularity = granularity_of(query.get("granularity"))
    since_publish = choice_param(query, "since_publish", ("false", "true")) == "true"
    period = period_of(
        query.get("period"), query.get("from"), query.get("to"), request.app[CLOCK](), default="7d"
    )
    name = query.get("period", "7d")
    if since_publish and name in SPANS_H:
        period = Period(0, SPANS_H[name])  # from publication: a fixed length
    series = await request.app[SERVICES].timeseries.series(
        SeriesQuery(article_id, period, granularity, since_publish)
    )
    return json_response(series)
