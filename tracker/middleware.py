"""Middlewares: JSON errors (the one place a refusal is answered and counted), request
metrics, and CORS for the allowed origins."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from .errors import OriginNotAllowed, TrackerError
from .resources import METRICS, SETTINGS
from .responses import error_response, refusal

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# How many events a request carries, set by the handlers that record events: a refusal
# of such a request counts in tracker_events_rejected_total, per request until its body
# is parsed and per event after.
EVENTS_IN_REQUEST: Final = web.RequestKey("events_in_request", int)

# Paths a page on another origin may call: ingest and the stats reads.
CORS_PREFIXES: Final = ("/api/v1/events", "/api/v1/articles/")
CORS_METHODS: Final = "GET, POST, OPTIONS"
PREFLIGHT_MAX_AGE_S: Final = 86_400

_STATUS_ERRORS: Final = {
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


def reject(request: web.Request, exc: TrackerError, *, events: int) -> web.Response:
    """The answer to a refused request, and `events` counted as rejected for its reason."""
    app = request.app
    if events:
        app[METRICS].events_rejected.labels(exc.reason).inc(events)
    return refusal(exc, retry_after_s=app[SETTINGS].retry_after_s)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors and aiohttp's own become the JSON error shape; nothing leaks a 500 page."""
    try:
        return await handler(request)
    except TrackerError as exc:
        return reject(request, exc, events=request.get(EVENTS_IN_REQUEST, 0))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        name = _STATUS_ERRORS.get(exc.status, exc.reason.lower().replace(" ", "_"))
        headers = {h: v for h, v in exc.headers.items() if h in ("Allow", "Retry-After")}
        return error_response(exc.status, name, {"message": exc.reason}, headers=headers)
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception:
        log.exception("unexpected error answering %s %s", request.method, request.path)
        return error_response(500, "internal", {"message": "unexpected error; it was logged"})


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)
    route = request.match_info.route.resource
    template = route.canonical if route is not None else "unmatched"
    request.app[METRICS].observe_request(
        template, request.method, response.status, time.perf_counter() - started
    )
    return response


def origin_allowed(request: web.Request, origin: str) -> bool:
    """Listed in TRACKER_ALLOWED_ORIGINS (or `*` listed), or the service's own origin."""
    allowed = request.app[SETTINGS].allowed_origins
    if "*" in allowed or origin.rstrip("/") in allowed:
        return True
    return origin.split("://", 1)[-1] == request.host


def _cors_headers(request: web.Request, origin: str) -> dict[str, str]:
    any_origin = "*" in request.app[SETTINGS].allowed_origins
    return {
        "Access-Control-Allow-Origin": "*" if any_origin else origin,
        "Access-Control-Expose-Headers": "ETag, Retry-After",
        "Vary": "Origin",
    }


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Preflights answered here; a POST from an origin not allowed is refused (403) and not
    counted, since sendBeacon's text/plain POST reaches the server without a preflight."""
    origin = request.headers.get("Origin")
    if origin is None or not request.path.startswith(CORS_PREFIXES):
        return await handler(request)
    allowed = origin_allowed(request, origin)
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        if not allowed:
            return reject(request, _not_allowed(origin), events=0)
        headers = _cors_headers(request, origin)
        headers["Access-Control-Allow-Methods"] = CORS_METHODS
        headers["Access-Control-Allow-Headers"] = request.headers.get(
            "Access-Control-Request-Headers", "Content-Type"
        )
        headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_S)
        return web.Response(status=204, headers=headers)
    if not allowed:
        if request.method == "POST":
            return reject(request, _not_allowed(origin), events=1)
        return await handler(request)  # readable by non-browser clients; browsers block it
    response = await handler(request)
    response.headers.update(_cors_headers(request, origin))
    return response


def _not_allowed(origin: str) -> OriginNotAllowed:
    return OriginNotAllowed("Origin", f"{origin} is not allowed")
