"""The middleware: request metrics, around CORS for the allowed origins, around JSON
errors (the one place a refusal is answered and counted), load shedding and deadlines.

One middleware rather than three: each one more is another call and coroutine on every
request's path. Handlers marked `answers_itself` pass through it; they use `guarded` and
`error_answer` from here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from aiohttp import web

from tracker.core.errors import ClientClosed, OriginNotAllowed, Overloaded, TrackerError
from tracker.web.app_keys import DEADLINES, LOOP_LAG, METRICS, PROXIES, SETTINGS
from tracker.web.protocol import answers_by_itself, arrived_at
from tracker.web.responses import error_response, refusal

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")

# How many events a request carries, set by the handlers that record events: a refusal
# of such a request counts in tracker_events_rejected_total, per request until its body
# is parsed and per event after.
EVENTS_IN_REQUEST: Final = web.RequestKey("events_in_request", int)
# When the request's head arrived (loop time).
ARRIVED_AT: Final = web.RequestKey("arrived_at", float)

# The paths that record events: tracker's own, and Plausible's Events API.
INGEST_PATHS: Final = frozenset({"/api/v1/events", "/api/event"})
# Paths a page on another origin may call: ingest (both) and the stats reads.
CORS_PREFIXES: Final = ("/api/v1/events", "/api/event", "/api/v1/articles/", "/api/v1/popular")
CORS_METHODS: Final = "GET, POST, OPTIONS"
PREFLIGHT_MAX_AGE_S: Final = 86_400
# Answered even when the loop lags: orchestrators and Prometheus must see the state.
NEVER_SHED: Final = frozenset({"/healthz", "/readyz", "/metrics"})
# Nobody reads the answer to a client that went away; nginx's code for it.
CLIENT_CLOSED_STATUS: Final = 499

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
    if isinstance(exc, ClientClosed):
        return web.Response(status=CLIENT_CLOSED_STATUS)
    return refusal(exc, retry_after_s=app[SETTINGS].retry_after_s)


@web.middleware
async def tracker_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Requests by route, method and status, timed from the arrival of their head: the
    time a request waited in this process is part of what its client waited."""
    if answers_by_itself(handler):  # reached here in servers other than TrackerServer
        return await handler(request)
    loop = asyncio.get_running_loop()
    arrived = request[ARRIVED_AT] = arrived_at(request)
    if request.path.startswith(CORS_PREFIXES):
        response = await _with_cors(request, handler)
    else:
        response = await _answered_guarded(request, handler)
    request.app[METRICS].observe_request(
        _route_of(request), request.method, response.status, loop.time() - arrived
    )
    return response


async def _answered_guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors and aiohttp's own become the JSON error shape; nothing leaks a 500
    page. Requests are shed while the loop lags, and each has a deadline."""
    try:
        return await guarded(request, handler, request.get(ARRIVED_AT))
    except Exception as exc:
        return error_answer(request, exc)


async def guarded(
    request: web.Request, handler: Callable[[web.Request], Awaitable[T]], arrived: float | None
) -> T:
    """The handler's answer, unless the loop lags (Overloaded at once) or it runs past
    its deadline (cancelled, then Overloaded)."""
    app = request.app
    loop = asyncio.get_running_loop()
    now = loop.time()
    if request.path not in NEVER_SHED:
        waited_s = now - (now if arrived is None else arrived)
        if app[LOOP_LAG].overloaded or waited_s > app[SETTINGS].max_loop_lag_s:
            raise Overloaded("the event loop lags; shedding load")
    deadlines = app[DEADLINES]
    task = asyncio.current_task(loop)
    assert task is not None
    deadlines.enter(task, now)
    try:
        return await handler(request)
    except asyncio.CancelledError:
        # Cancelled for its deadline, and by nothing else (a shutdown): answered.
        if deadlines.leave(task) and task.uncancel() == 0:
            raise Overloaded("the request ran past TRACKER_REQUEST_TIMEOUT") from None
        raise
    finally:
        deadlines.leave(task)


def error_answer(request: web.Request, exc: Exception) -> web.Response:
    """The JSON answer to what a handler raised (an HTTPException under 400 goes on up)."""
    if isinstance(exc, TrackerError):
        return reject(
            request, exc, events=request.get(EVENTS_IN_REQUEST, _request_of_events(request))
        )
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        name = _STATUS_ERRORS.get(exc.status, exc.reason.lower().replace(" ", "_"))
        headers = {h: v for h, v in exc.headers.items() if h in ("Allow", "Retry-After")}
        return error_response(exc.status, name, {"message": exc.reason}, headers=headers)
    log.exception(
        "unexpected error answering %s %s",
        request.method,
        request.path,
        extra={"event": "request_error", "route": _route_of(request)},
        exc_info=exc,
    )
    return error_response(500, "internal", {"message": "unexpected error; it was logged"})


def _route_of(request: web.Request) -> str:
    """The route's template (`/api/v1/articles/{article_id}/stats`): a bounded label."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _request_of_events(request: web.Request) -> int:
    """1 for a request refused before its handler said how many events it carries."""
    return 1 if request.method == "POST" and request.path in INGEST_PATHS else 0


def origin_allowed(request: web.Request, origin: str) -> bool:
    """Listed in TRACKER_ALLOWED_ORIGINS (or `*` listed), or the service's own origin."""
    allowed = request.app[SETTINGS].allowed_origins
    if "*" in allowed or origin.rstrip("/") in allowed:
        return True
    return origin.split("://", 1)[-1] == request.host


def cors_headers(allow_origin: str) -> dict[str, str]:
    """The CORS headers of an answer to an allowed page: `allow_origin` its origin, or `*`
    when every origin is allowed."""
    return {
        "Access-Control-Allow-Origin": allow_origin,
        "Access-Control-Expose-Headers": "ETag, Retry-After",
        "Vary": "Origin",
    }


async def _with_cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Preflights answered here; a POST from an origin not allowed is refused (403) and not
    counted, since sendBeacon's text/plain POST reaches the server without a preflight.
    Every answer on these paths varies with Origin, so caches keep them apart."""
    origin = request.headers.get("Origin")
    if origin is None:
        if request.method == "POST" and not may_omit_origin(request):
            return _vary(reject(request, origin_required(), events=1))
        return _vary(await _answered_guarded(request, handler))
    allowed = origin_allowed(request, origin)
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        if not allowed:
            return _vary(reject(request, not_allowed(origin), events=0))
        headers = cors_headers(_allow_origin(request, origin))
        headers["Access-Control-Allow-Methods"] = CORS_METHODS
        headers["Access-Control-Allow-Headers"] = request.headers.get(
            "Access-Control-Request-Headers", "Content-Type"
        )
        headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_S)
        return web.Response(status=204, headers=headers)
    if not allowed:
        if request.method == "POST":
            return _vary(reject(request, not_allowed(origin), events=1))
        # Readable by non-browser clients only.
        return _vary(await _answered_guarded(request, handler))
    response = await _answered_guarded(request, handler)
    response.headers.update(cors_headers(_allow_origin(request, origin)))
    return response


def _allow_origin(request: web.Request, origin: str) -> str:
    return "*" if "*" in request.app[SETTINGS].allowed_origins else origin


def may_omit_origin(request: web.Request) -> bool:
    """Browsers always send Origin on a POST; only server-side senders omit it. With
    TRACKER_REQUIRE_ORIGIN they must come through a trusted proxy."""
    settings = request.app[SETTINGS]
    if not settings.require_origin:
        return True
    return request.remote is not None and request.app[PROXIES].holds(request.remote)


def _vary(response: web.StreamResponse) -> web.StreamResponse:
    response.headers["Vary"] = "Origin"
    return response


def not_allowed(origin: str) -> OriginNotAllowed:
    return OriginNotAllowed("Origin", f"{origin} is not allowed")


def origin_required() -> OriginNotAllowed:
    return OriginNotAllowed("Origin", "required (TRACKER_REQUIRE_ORIGIN); browsers send it")
