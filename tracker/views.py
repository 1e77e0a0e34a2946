"""HTTP handlers: parse, call a domain function, answer. Errors become JSON in one middleware."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from . import buffer, db, stats
from .buffer import RedisUnavailable
from .db import DatabaseUnavailable
from .keys import Keys
from .metrics import Metrics
from .models import InvalidEvent, parse_article_ids, parse_events, validate_article_id
from .settings import Settings

log = logging.getLogger(__name__)

SETTINGS: Final = web.AppKey("settings", Settings)
METRICS: Final = web.AppKey("metrics", Metrics)
KEYS: Final = web.AppKey("keys", Keys)
# Set by the connection contexts in app.py once Redis and Postgres are reachable.
REDIS: Final = web.AppKey("redis", Redis)
POOL: Final = web.AppKey("pool", db.Pool)
OPENAPI: Final = web.AppKey("openapi", bytes)

INGEST_CONTENT_TYPES: Final = ("application/json", "text/plain")
MAX_IDS: Final = 100
_encoder: Final = msgspec.json.Encoder()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(
    payload: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=_encoder.encode(payload),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(
    status: int, error: str, detail: Any, *, headers: dict[str, str] | None = None
) -> web.Response:
    return json_response({"error": error, "detail": detail}, status=status, headers=headers)


def unavailable(request: web.Request, which: str, exc: Exception) -> web.Response:
    retry_after = str(request.app[SETTINGS].retry_after_s)
    return error_response(
        503,
        "unavailable",
        {"dependency": which, "message": f"{which} cannot take or give data now; retry later"},
        headers={"Retry-After": retry_after},
    )


_STATUS_ERRORS: Final = {
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors and aiohttp's own become the JSON error shape; nothing leaks a 500 page."""
    try:
        return await handler(request)
    except InvalidEvent as exc:
        error = "too_large" if exc.status == 413 else "invalid"
        return error_response(exc.status, error, {"field": exc.field, "message": exc.message})
    except RedisUnavailable as exc:
        return unavailable(request, "redis", exc)
    except DatabaseUnavailable as exc:
        return unavailable(request, "postgres", exc)
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
    metrics = request.app[METRICS]
    metrics.http_requests.labels(template, request.method, str(response.status)).inc()
    metrics.http_duration.labels(template).observe(time.perf_counter() - started)
    return response


async def ingest(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    metrics = request.app[METRICS]
    if request.content_type not in INGEST_CONTENT_TYPES:
        metrics.events_rejected.labels("unsupported_media_type").inc()
        return error_response(
            415,
            "unsupported_media_type",
            {
                "field": "Content-Type",
                "message": "send application/json, or text/plain (navigator.sendBeacon)",
            },
        )
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        metrics.events_rejected.labels("too_large").inc()
        return _too_large(settings)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        metrics.events_rejected.labels("too_large").inc()
        return _too_large(settings)
    except web.RequestPayloadError as exc:  # e.g. a body that is not the gzip it claims
        metrics.events_rejected.labels("invalid").inc()
        raise InvalidEvent("body", f"cannot read the body: {exc}") from None
    try:
        events = parse_events(body, max_events=settings.max_batch_events)
    except InvalidEvent as exc:
        metrics.events_rejected.labels("too_large" if exc.status == 413 else "invalid").inc()
        raise
    try:
        await buffer.record(request.app[REDIS], request.app[KEYS], events, time.time())
    except RedisUnavailable:
        metrics.events_rejected.labels("unavailable").inc(len(events))
        raise
    for event in events:
        metrics.events_accepted.labels(event.type).inc()
    return json_response({"accepted": len(events)}, status=202)


def _too_large(settings: Settings) -> web.Response:
    return error_response(
        413, "too_large", {"field": "body", "message": f"at most {settings.max_body_bytes} bytes"}
    )


async def _stats_response(request: web.Request, payload: Any) -> web.Response:
    body = _encoder.encode(payload)
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    headers = {
        "Cache-Control": f"public, max-age={request.app[SETTINGS].stats_max_age_s}",
        "ETag": etag,
    }
    if etag in {tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")}:
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", headers=headers)


async def article_stats(request: web.Request) -> web.Response:
    article_id = validate_article_id(request.match_info["article_id"])
    (result,) = await stats.article_stats(
        request.app[REDIS], request.app[POOL], request.app[KEYS], [article_id]
    )
    return await _stats_response(request, result)


async def articles_stats(request: web.Request) -> web.Response:
    ids = parse_article_ids(request.query.get("ids"), max_ids=MAX_IDS)
    results = await stats.article_stats(
        request.app[REDIS], request.app[POOL], request.app[KEYS], ids
    )
    return await _stats_response(request, {"articles": results})


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _check(probe: Awaitable[Any], timeout_s: float) -> str:
    try:
        await asyncio.wait_for(probe, timeout_s)
    except (RedisUnavailable, DatabaseUnavailable, TimeoutError, OSError) as exc:
        return f"unavailable: {exc or type(exc).__name__}"
    except RedisError as exc:
        return f"unavailable: {exc}"
    return "ok"


async def _ping_redis(redis: Redis) -> None:
    await redis.ping()


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    timeout_s = app[SETTINGS].redis_timeout_s
    redis_state, postgres_state = await asyncio.gather(
        _check(_ping_redis(app[REDIS]), timeout_s), _check(db.ping(app[POOL]), timeout_s)
    )
    metrics = app[METRICS]
    metrics.dependency_up.labels("redis").set(redis_state == "ok")
    metrics.dependency_up.labels("postgres").set(postgres_state == "ok")
    checks = {"redis": redis_state, "postgres": postgres_state}
    if redis_state == postgres_state == "ok":
        return json_response({"status": "ready", "checks": checks})
    return error_response(
        503, "not_ready", checks, headers={"Retry-After": str(app[SETTINGS].retry_after_s)}
    )


async def metrics_view(request: web.Request) -> web.Response:
    app = request.app
    metrics = app[METRICS]
    try:
        pending = await asyncio.wait_for(
            buffer.pending_stats(app[REDIS], app[KEYS]), app[SETTINGS].redis_timeout_s
        )
    except (RedisUnavailable, TimeoutError):
        metrics.dependency_up.labels("redis").set(0)
    else:
        metrics.dependency_up.labels("redis").set(1)
        metrics.set_pending(pending, int(time.time() * 1000))
    return web.Response(
        body=metrics.exposition(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/events", ingest)
    # Registered before the single-article route; ids may hold '/', hence the regex.
    app.router.add_get("/api/v1/articles/stats", articles_stats)
    # [\s\S], not `.`: an id with a newline is a bad id (400), not an unknown route (404).
    app.router.add_get(r"/api/v1/articles/{article_id:[\s\S]+}/stats", article_stats)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/openapi.json", openapi)
