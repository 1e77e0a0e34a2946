"""The OpenAPI 3.1 description of tracker's HTTP API, served at /openapi.json."""

from __future__ import annotations

from typing import Any, Final

import msgspec

from . import __version__
from .models import ARTICLE_ID_PATTERN, CHANNELS, QUARTERS, event_schema
from .openapi_reports import report_paths, report_schemas
from .plausible import plausible_schema
from .stats import ArticleStats

_ERROR = {"$ref": "#/components/schemas/Error"}
_PLAUSIBLE = {"$ref": "#/components/schemas/PlausibleEvent"}
# `ids`: 1 to 100 article ids joined by commas, with spaces around them and empty parts
# ignored (what parse_article_ids accepts).
_ONE_ID = ARTICLE_ID_PATTERN.removeprefix("^").removesuffix("$")
IDS_PATTERN = f"^[\\s,]*{_ONE_ID}([\\s,]*,[\\s,]*{_ONE_ID}){{0,99}}[\\s,]*$"


def _error(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ERROR}},
    }
    if retry_after:
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        }
    return response


def _stats_ok(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": "Counts, including events not yet flushed to Postgres",
        "headers": {
            "ETag": {"schema": {"type": "string"}},
            "Cache-Control": {"schema": {"type": "string"}},
        },
        "content": {"application/json": {"schema": schema}},
    }


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


def build_openapi() -> dict[str, Any]:
    event = event_schema()
    unavailable = _error("Redis or Postgres cannot answer now", retry_after=True)
    # anyOf: an object with `events` is a batch, whatever else it holds (an Event allows
    # more properties, so one body can fit both).
    events_body = {
        "anyOf": [
            {"$ref": "#/components/schemas/Event"},
            {"$ref": "#/components/schemas/EventBatch"},
        ]
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tracker",
            "version": __version__,
            "description": "View and share counter for news article pages.",
        },
        "paths": {
            "/api/v1/events": {
                "post": {
                    "operationId": "ingestEvents",
                    "summary": "Record one event or a batch of up to 100",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": events_body},
                            # navigator.sendBeacon sends the same JSON as text/plain.
                            "text/plain": {"schema": events_body},
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "Stored in Redis",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["accepted"],
                                        "properties": {"accepted": {"type": "integer"}},
                                    }
                                }
                            },
                        },
                        "400": _error("Malformed or invalid; `detail.field` names the field"),
                        "413": _error("Body or batch too large"),
                        "415": _error("Content type other than application/json or text/plain"),
                        "503": unavailable,
                    },
                }
            },
            "/api/event": {
                "post": {
                    "operationId": "plausibleEvent",
                    "summary": "Plausible's Events API: one event of Plausible's script or clients",
                    "description": "A `pageview` counts as a view; a custom event named in "
                    "TRACKER_PLAUSIBLE_SHARE_EVENTS (`Share`) with a `channel` prop as a "
                    "share; other events (engagement, other custom events, a page whose URL "
                    "holds no article id) are acknowledged and not counted. The article id: "
                    "`props.article_id`, else from the URL's path (TRACKER_ARTICLE_ID_FROM_URL). "
                    "The reader: the request's address and User-Agent (X-Forwarded-For from "
                    "TRACKER_TRUSTED_PROXIES).",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": _PLAUSIBLE},
                            # Plausible's script posts its JSON as text/plain (no preflight).
                            "text/plain": {"schema": _PLAUSIBLE},
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "Stored in Redis, or acknowledged and not counted",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["accepted"],
                                        "properties": {"accepted": {"type": "integer"}},
                                    }
                                }
                            },
                        },
                        "400": _error("Malformed or invalid; `detail.field` names the field"),
                        "403": _error("The domain (or the Origin) is not an allowed site"),
                        "413": _error("Body too large"),
                        "415": _error("Content type other than application/json or text/plain"),
                        "429": _error("Over the address's rate limit", retry_after=True),
                        "503": unavailable,
                    },
                }
            },
            "/api/v1/articles/{article_id}/stats": {
                "get": {
                    "operationId": "articleStats",
                    "summary": "Counts for one article (zeros for an unknown id)",
                    "parameters": [
                        {
                            "name": "article_id",
                            "in": "path",
                            "required": True,
                            "schema": {
                                "type": "string",
                                "pattern": ARTICLE_ID_PATTERN,
                                "maxLength": 128,
                            },
                        }
                    ],
                    "responses": {
                        "200": _stats_ok({"$ref": "#/components/schemas/ArticleStats"}),
                        "304": {"description": "Not modified (If-None-Match)"},
                        "400": _error("Invalid article id"),
                        "404": _error("No such route"),
                        "503": unavailable,
                    },
                }
            },
            "/api/v1/articles/stats": {
                "get": {
                    "operationId": "articlesStats",
                    "summary": "Counts for up to 100 articles, in the order asked",
                    "parameters": [
                        {
                            "name": "ids",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "pattern": IDS_PATTERN},
                            "description": "Comma-separated article ids, at most 100",
                        }
                    ],
                    "responses": {
                        "200": _stats_ok(
                            {
                                "type": "object",
                                "required": ["articles"],
                                "properties": {
                                    "articles": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/ArticleStats"},
                                    }
                                },
                            }
                        ),
                        "304": {"description": "Not modified (If-None-Match)"},
                        "400": _error("Missing or invalid ids, or more than 100"),
                        "503": unavailable,
                    },
                }
            },
            "/p.gif": {
                "get": {
                    "operationId": "pixel",
                    "summary": "Count an event from a page without JavaScript (AMP, e-mail)",
                    "description": "Takes any query and always answers the 1x1 GIF (an image "
                    "tag shows no error): an invalid event is not counted, and is counted in "
                    "tracker_pixel_errors_total. `a`: the article id (as in events); `t`: "
                    "view (default) or share; `c`: the channel of a share; `u`: the page URL "
                    "(default: the Referer); `r`: the referrer.",
                    "parameters": [
                        {"name": name, "in": "query", "schema": {"type": "string"}}
                        for name in ("a", "t", "c", "u", "r")
                    ],
                    "responses": {
                        "200": {
                            "description": "A 1x1 transparent GIF, Cache-Control: no-store",
                            "content": {"image/gif": {}},
                        }
                    },
                }
            },
            "/tracker.js": {
                "get": {
                    "operationId": "trackerJs",
                    "summary": "The page snippet: counts views and shares, fills view counts",
                    "responses": {
                        "200": {
                            "description": "JavaScript, cacheable, with an ETag",
                            "content": {"text/javascript": {}},
                        },
                        "304": {"description": "Not modified (If-None-Match)"},
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "The process is alive",
                    "responses": {"200": {"description": "Alive"}},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Redis and Postgres both answer",
                    "responses": {
                        "200": {"description": "Ready"},
                        "503": _error("Not ready; `detail` says which dependency"),
                    },
                }
            },
            "/readyz/serving": {
                "get": {
                    "operationId": "serving",
                    "summary": "This process can serve (for load balancers; no dependency asked)",
                    "responses": {
                        "200": {"description": "Serving"},
                        "503": _error("Its startup check refused Redis' layout"),
                    },
                }
            },
            "/runbook": {
                "get": {
                    "operationId": "runbook",
                    "summary": "The operators' runbook: what each alert means, what to do",
                    "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus exposition format",
                    "responses": {
                        "200": {
                            "description": "Metrics",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            **report_paths(
                {
                    "400": _error("Invalid parameter; `detail.field` names it"),
                    "401": _error("No token, or an unknown one"),
                    "403": _error("The token was revoked"),
                    "429": _error("Too many failed attempts from this address", retry_after=True),
                    "503": unavailable,
                }
            ),
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1"}},
                }
            },
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
                "Event": event,
                "PlausibleEvent": plausible_schema(),
                "EventBatch": {
                    "type": "object",
                    "required": ["events"],
                    "properties": {
                        "events": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 100,
                            "items": {"$ref": "#/components/schemas/Event"},
                        }
                    },
                },
                "ArticleStats": article_stats_schema(),
                "Error": {
                    "type": "object",
                    "required": ["error", "detail"],
                    "properties": {"error": {"type": "string"}, "detail": {}},
                },
            },
        },
    }


def openapi_bytes() -> bytes:
    return msgspec.json.encode(build_openapi())
