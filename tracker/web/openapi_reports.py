"""The OpenAPI description of the reports: response schemas generated from the msgspec
structs the handlers encode, parameters from the same constants the handlers check."""

from __future__ import annotations

from typing import Any

import msgspec

from tracker.core.metadata import PUBLISHED_PATTERN, ArticleMeta
from tracker.core.periods import PERIODS
from tracker.events.models import ARTICLE_ID_PATTERN, CHANNELS
from tracker.redis_side.trending import KINDS, WINDOWS
from tracker.reports.rows import MAX_LIMIT, Report, TrendingReport
from tracker.reports.timeseries import GRANULARITIES, Series
from tracker.web import most_read
from tracker.web.report_views import FORMATS, GROUP_BY, MAX_LABEL, MAX_OFFSET, TAKEOFF_WINDOWS

METRICS = [
    "views",
    "uniques",
    "shares",
    *(f"shares:{c}" for c in CHANNELS),
    "referrals",
    *(f"referrals:{c}" for c in CHANNELS),
    "engaged",
    "read_through",
]
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    parameter: dict[str, Any] = {"name": name, "in": "query", "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


def _enum(values: Any) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


def _label(name: str) -> dict[str, Any]:
    schema = {"type": "string", "maxLength": MAX_LABEL, "pattern": "^[^\\u0000]*$"}
    return _query(name, schema, f"Only articles of this {name}")


_PERIOD = [
    _query("period", _enum(PERIODS), "Ending now, or as it stood at `to`; from/to give a range"),
    _query("from", {"type": "string", "format": "date-time"}, "ISO 8601; to now without `to`"),
    _query("to", {"type": "string", "format": "date-time"}, "ISO 8601; default now"),
]
_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT})
_ARTICLE_ID = {
    "name": "article_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": ARTICLE_ID_PATTERN, "maxLength": 128},
}


def _ok(ref: str, *, csv: bool = False) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": {"$ref": ref}}}
    if csv:
        content["text/csv"] = {"schema": {"type": "string"}}
    return {"description": "The report", "content": content}


def _get(operation: str, summary: str, parameters: list[dict[str, Any]], ok: dict[str, Any],
         errors: dict[str, Any], *, secured: bool = True) -> dict[str, Any]:  # fmt: skip
    get: dict[str, Any] = {
        "operationId": operation,
        "summary": summary,
        "parameters": parameters,
        "responses": {"200": ok, **errors},
    }
    if secured:
        get["security"] = _BEARER
    return {"get": get}


def report_paths(errors: dict[str, Any]) -> dict[str, Any]:
    """`errors`: the shared error responses (400, 401, 403, 429, 503)."""
    filters = [_label("category"), _label("lang"), _label("author")]
    return {
        "/api/v1/reports/popular": _get(
            "popularReport",
            "Top articles (or story groups) of a period by a metric",
            [
                *_PERIOD,
                _query("metric", _enum(METRICS)),
                *filters,
                _query("group_by", _enum(GROUP_BY)),
                _LIMIT,
                _query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}),
                _query("format", _enum(FORMATS)),
            ],
            _ok("#/components/schemas/Report", csv=True),
            errors,
        ),
        "/api/v1/reports/trending": _get(
            "trendingReport",
            "What is taking off: the last window against the one before",
            [_query("window", _enum(WINDOWS)), _query("metric", _enum(KINDS)), _LIMIT],
            _ok("#/components/schemas/TrendingReport"),
            errors,
        ),
        "/api/v1/reports/takeoff": _get(
            "takeoffReport",
            "Articles published in a period, ranked by views in their first hour/day/week",
            [
                *_PERIOD,
                _query("window", _enum(TAKEOFF_WINDOWS)),
                *filters,
                _LIMIT,
                _query("format", _enum(FORMATS)),
            ],
            _ok("#/components/schemas/Report", csv=True),
            errors,
        ),
        "/api/v1/articles/{article_id}/timeseries": _get(
            "articleTimeseries",
            "One article's curve per hour or day, zero-filled",
            [
                _ARTICLE_ID,
                *_PERIOD,
                _query("granularity", _enum(GRANULARITIES)),
                _query("since_publish", _enum(("false", "true"))),
            ],
            _ok("#/components/schemas/Series"),
            errors,
        ),
        "/api/v1/articles/{article_id}": {
            **_get(
                "articleMetadata",
                "An article's metadata as shown, what each source said, and its page's reading",
                [_ARTICLE_ID],
                _ok("#/components/schemas/DescribedArticle"),
                {**errors, "404": errors["400"]},
            ),
            "put": {
                "operationId": "setArticleMetadata",
                "summary": "The article's metadata as editors set it: no event or page changes it",
                "parameters": [_ARTICLE_ID],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ArticleMeta"}}
                    },
                },
                "responses": {
                    "200": _ok("#/components/schemas/DescribedArticle"),
                    "413": errors["400"],
                    "415": errors["400"],
                    **errors,
                },
                "security": _BEARER,
            },
        },
        "/api/v1/popular": _get(
            "mostRead",
            f"The public most-read list (views), cached {most_read.FRESH_S:.0f} s",
            [
                _query("period", _enum(most_read.PERIODS)),
                _label("category"),
                _label("lang"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": most_read.MAX_LIMIT}),
            ],
            {"description": "The list", "content": {"application/json": {}}},
            {"400": errors["400"], "503": errors["503"]},
            secured=False,
        ),
    }


def report_schemas() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [Report, TrendingReport, Series, ArticleMeta], ref_template="#/components/schemas/{name}"
    )
    components["ArticleMeta"]["properties"]["published"] = {
        "anyOf": [
            {"type": "string", "format": "date-time", "pattern": PUBLISHED_PATTERN},
            {"type": "null"},
        ]
    }
    meta = {"$ref": "#/components/schemas/ArticleMeta"}
    components["DescribedArticle"] = {
        "type": "object",
        "description": "The metadata shown (ArticleMeta's fields), whether it is verified, "
        "each source's (editor, page, event, claim) and how reading the page last went",
        "required": ["article_id", "verified", "sources", "page"],
        "properties": {
            "article_id": {"type": "string"},
            "verified": {"type": "boolean"},
            "sources": {"type": "object", "additionalProperties": meta},
            "page": {"type": "object"},
        },
    }
    return components
