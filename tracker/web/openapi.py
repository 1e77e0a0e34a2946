"""The OpenAPI 3.1 description of tracker's HTTP API, served at /openapi.json: schemas
generated from the msgspec Structs the handlers decode and encode, paths (what no type
says) from openapi_paths.py and openapi_reports.py."""

from __future__ import annotations

from typing import Any, Final

import msgspec

from tracker import __version__
from tracker.events.models import CHANNELS, QUARTERS, EventBatch, event_schema
from tracker.events.plausible import plausible_schema
from tracker.reports.stats import ArticleStats
from tracker.web.openapi_paths import (
    UNAVAILABLE,
    error,
    ingest_paths,
    operations_paths,
    stats_paths,
)
from tracker.web.openapi_reports import report_paths, report_schemas
from tracker.web.responses import Accepted, ErrorBody

# What no type of stats.ArticleStats says: what each field means, and the keys of its
# objects (a channel, a quarter, a counted metric).
STATS_DESCRIPTIONS: Final = {
    "uniques": "Distinct readers, counted once per day (all time)",
    "shares": "Share clicks per channel",
    "referrals": "Views that came from a share channel (referrer or utm_source)",
    "previews": "Fetches by a channel's link-preview bot: the link is being shared",
    "engaged_readers": "Readers who sent an engage event",
    "engaged_avg_s": "Seconds visible and active, per engaged reader",
    "read_through": "Share of engaged readers who reached the end",
    "read_depth": "Readers who reached 25, 50, 75 and 100 % of the body",
    "imported": "What of views and shares_total came from a previous counter (tracker import)",
}
STATS_KEYS: Final = {
    "shares": CHANNELS,
    "referrals": CHANNELS,
    "previews": CHANNELS,
    "read_depth": tuple(str(q) for q in QUARTERS),
    "imported": ("views", "shares_total"),
}


def article_stats_schema() -> dict[str, Any]:
    """stats.ArticleStats' JSON Schema, with descriptions and the objects' keys."""
    _, components = msgspec.json.schema_components([ArticleStats])
    schema: dict[str, Any] = components["ArticleStats"]
    schema["description"] = "An article's counts, including what is not flushed yet"
    properties = schema["properties"]
    for name, description in STATS_DESCRIPTIONS.items():
        properties[name]["description"] = description
    for name, keys in STATS_KEYS.items():
        count = properties[name].pop("additionalProperties")
        properties[name]["properties"] = {key: count for key in keys}
        properties[name]["additionalProperties"] = False
    return schema


def _generated_schemas() -> dict[str, Any]:
    """The components msgspec derives from the Structs, with what their types cannot say:
    a batch's bounds are a setting (TRACKER_MAX_BATCH_EVENTS, 100 by default)."""
    _, components = msgspec.json.schema_components(
        [EventBatch, ErrorBody, Accepted], ref_template="#/components/schemas/{name}"
    )
    schemas: dict[str, Any] = {
        "EventBatch": components["EventBatch"],
        "Error": components["ErrorBody"],
        "Accepted": components["Accepted"],
    }
    schemas["EventBatch"]["properties"]["events"].update(minItems=1, maxItems=100)
    return schemas


def build_openapi() -> dict[str, Any]:
    reports_errors = {
        "400": error("Invalid parameter; `detail.field` names it"),
        "401": error("No token, or an unknown one"),
        "403": error("The token was revoked"),
        "429": error("Too many failed attempts from this address", retry_after=True),
        "503": UNAVAILABLE,
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tracker",
            "version": __version__,
            "description": "View and share counter for news article pages.",
        },
        "paths": {
            **ingest_paths(),
            **stats_paths(),
            **operations_paths(),
            **report_paths(reports_errors),
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "tracker token create",
                }
            },
            "schemas": {
                **report_schemas(),
                **_generated_schemas(),
                "Event": event_schema(),
                "PlausibleEvent": plausible_schema(),
                "ArticleStats": article_stats_schema(),
            },
        },
    }


def openapi_bytes() -> bytes:
    return msgspec.json.encode(build_openapi())
