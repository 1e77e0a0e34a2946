"""The OpenAPI paths of ingest, stats and operations: what no type says (summaries,
descriptions, statuses, parameters). Their schemas are the components openapi.py
generates from the Structs the handlers decode and encode."""

from __future__ import annotations

from typing import Any, Final

from tracker.events.models import ARTICLE_ID_PATTERN

# `ids`: 1 to 100 article ids joined by commas, with spaces around them and empty parts
# ignored (what parse_article_ids accepts).
_ONE_ID = ARTICLE_ID_PATTERN.removeprefix("^").removesuffix("$")
IDS_PATTERN: Final = f"^[\\s,]*{_ONE_ID}([\\s,]*,[\\s,]*{_ONE_ID}){{0,99}}[\\s,]*$"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def error(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": ref("Error")}},
    }
    if retry_after:
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        }
    return response


UNAVAILABLE: Final = error("Redis or Postgres cannot answer now", retry_after=True)


def _operation(method: str, operation_id: str, summary: str, **rest: Any) -> dict[str, Any]:
    return {method: {"operationId": operation_id, "summary": summary, **rest}}


def _json_or_text(schema: dict[str, Any]) -> dict[str, Any]:
    # navigator.sendBeacon and Plausible's script send their JSON as text/plain (no
    # preflight): both are read the same.
    return {
        "required": True,
        "content": {"application/json": {"schema": schema}, "text/plain": {"schema": schema}},
    }


def _accepted(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": ref("Accepted")}},
    }


def _stats_ok(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": "Counts, including events not yet flushed to Postgres",
        "headers": {
            "ETag": {"schema": {"type": "string"}},
            "Cache-Control": {"schema": {"type": "string"}},
        },
        "content": {"application/json": {"schema": schema}},
    }


def ingest_paths() -> dict[str, Any]:
    # anyOf: an object with `events` is a batch, whatever else it holds (an Event allows
    # more properties, so one body can fit both).
    events_body = {"anyOf": [ref("Event"), ref("EventBatch")]}
    return {
        "/api/v1/events": _operation(
            "post",
            "ingestEvents",
            "Record one event or a batch of up to 100",
            requestBody=_json_or_text(events_body),
            responses={
                "202": _accepted("Stored in Redis"),
                "400": error("Malformed or invalid; `detail.field` names the field"),
                "413": error("Body or batch too large"),
                "415": error("Content type other than application/json or text/plain"),
                "503": UNAVAILABLE,
            },
        ),
        "/api/event": _operation(
            "post",
            "plausibleEvent",
            "Plausible's Events API: one event of Plausible's script or clients",
            description="A `pageview` counts as a view; a custom event named in "
            "TRACKER_PLAUSIBLE_SHARE_EVENTS (`Share`) with a `channel` prop as a share; "
            "other events (engagement, other custom events, a page whose URL holds no "
            "article id) are acknowledged and not counted. The article id: "
            "`props.article_id`, else from the URL's path (TRACKER_ARTICLE_ID_FROM_URL). "
            "The reader: the request's address and User-Agent (X-Forwarded-For from "
            "TRACKER_TRUSTED_PROXIES).",
            requestBody=_json_or_text(ref("PlausibleEvent")),
            responses={
                "202": _accepted("Stored in Redis, or acknowledged and not counted"),
                "400": error("Malformed or invalid; `detail.field` names the field"),
                "403": error("The domain (or the Origin) is not an allowed site"),
                "413": error("Body too large"),
                "415": error("Content type other than application/json or text/plain"),
                "429": error("Over the address's rate limit", retry_after=True),
                "503": UNAVAILABLE,
            },
        ),
        "/p.gif": _operation(
            "get",
            "pixel",
            "Count an event from a page without JavaScript (AMP, e-mail)",
            description="Takes any query and always answers the 1x1 GIF (an image tag "
            "shows no error): an invalid event is not counted, and is counted in "
            "tracker_pixel_errors_total. `a`: the article id (as in events); `t`: view "
            "(default) or share; `c`: the channel of a share; `u`: the page URL (default: "
            "the Referer); `r`: the referrer.",
            parameters=[
                {"name": name, "in": "query", "schema": {"type": "string"}}
                for name in ("a", "t", "c", "u", "r")
            ],
            responses={
                "200": {
                    "description": "A 1x1 transparent GIF, Cache-Control: no-store",
                    "content": {"image/gif": {}},
                }
            },
        ),
    }


def stats_paths() -> dict[str, Any]:
    article_id = {
        "name": "article_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": ARTICLE_ID_PATTERN, "maxLength": 128},
    }
    ids = {
        "name": "ids",
        "in": "query",
        "required": True,
        "schema": {"type": "string", "pattern": IDS_PATTERN},
        "description": "Comma-separated article ids, at most 100",
    }
    not_modified = {"description": "Not modified (If-None-Match)"}
    many = {
        "type": "object",
        "required": ["articles"],
        "properties": {"articles": {"type": "array", "items": ref("ArticleStats")}},
    }
    return {
        "/api/v1/articles/{article_id}/stats": _operation(
            "get",
            "articleStats",
            "Counts for one article (zeros for an unknown id)",
            parameters=[article_id],
            responses={
                "200": _stats_ok(ref("ArticleStats")),
                "304": not_modified,
                "400": error("Invalid article id"),
                "404": error("No such route"),
                "503": UNAVAILABLE,
            },
        ),
        "/api/v1/articles/stats": _operation(
            "get",
            "articlesStats",
            "Counts for up to 100 articles, in the order asked",
            parameters=[ids],
            responses={
                "200": _stats_ok(many),
                "304": not_modified,
                "400": error("Missing or invalid ids, or more than 100"),
                "503": UNAVAILABLE,
            },
        ),
    }


def operations_paths() -> dict[str, Any]:
    def simple(operation_id: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
        return _operation("get", operation_id, summary, responses=responses)

    return {
        "/tracker.js": simple(
            "trackerJs",
            "The page snippet: counts views and shares, fills view counts",
            {
                "200": {
                    "description": "JavaScript, cacheable, with an ETag",
                    "content": {"text/javascript": {}},
                },
                "304": {"description": "Not modified (If-None-Match)"},
            },
        ),
        "/healthz": simple("healthz", "The process is alive", {"200": {"description": "Alive"}}),
        "/readyz": simple(
            "readyz",
            "Redis and Postgres both answer",
            {
                "200": {"description": "Ready"},
                "503": error("Not ready; `detail` says which dependency"),
            },
        ),
        "/readyz/serving": simple(
            "serving",
            "This process can serve (for load balancers; no dependency asked)",
            {
                "200": {"description": "Serving"},
                "503": error("Its startup check refused Redis' layout"),
            },
        ),
        "/runbook": simple(
            "runbook",
            "The operators' runbook: what each alert means, what to do",
            {"200": {"description": "HTML", "content": {"text/html": {}}}},
        ),
        "/metrics": simple(
            "metrics",
            "Prometheus exposition format",
            {
                "200": {
                    "description": "Metrics",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        ),
        "/openapi.json": simple(
            "openapi", "This document", {"200": {"description": "OpenAPI 3.1"}}
        ),
    }
