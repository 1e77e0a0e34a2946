"""HTTP handlers: parse, call a domain function, answer. Errors become JSON in one middleware."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import msgspec
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from . import buffer, db
from .batcher import Batcher
from .bots import BOT, BotClassifier
from .buffer import RedisUnavailable, Visitor
from .db import DatabaseUnavailable
from .keys import Keys
from .metrics import Metrics
from .models import (
    InvalidEvent,
    parse_article_ids,
    parse_event_dict,
    parse_events,
    validate_article_id,
)
from .readers import SaltStore, TrustedProxies, client_address, day_of, reader_id
from .settings import Settings
from .snippet import PIXEL_GIF, Snippet
from .stats import StatsCache

log = logging.getLogger(__name__)

SETTINGS: Final = web.AppKey("settings", Settings)
METRICS: Final = web.AppKey("metrics", Metrics)
KEYS: Final = web.AppKey("keys", Keys)
# Set by the connection contexts in app.py once Redis and Postgres are reachable.
REDIS: Final = web.AppKey("redis", Redis)
POOL: Final = web.AppKey("pool", db.Pool)
OPENAPI: Final = web.AppKey("openapi", bytes)
BOTS: Final = web.AppKey("bots", BotClassifier)
SALTS: Final = web.AppKey("salts", SaltStore)
SNIPPET: Final = web.AppKey("snippet", Snippet)
BATCHER: Final = web.AppKey("batcher", Batcher)
PROXIES: Final = web.AppKey("proxies", TrustedProxies)
STATS_CACHE: Final = web.AppKey("stats_cache", StatsCache)
# The wall clock, replaceable in tests that simulate several days.
CLOCK: Final = web.AppKey[Callable[[], float]]("clock")

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


def unavailable(request: web.Request, which: str) -> web.Response:
    retry_after = str(request.app[SETTINGS].retry_after_s)
    return error_response(
        503,
        "unavailable",
        {"dependency": which, "message": f"{which} cannot take or give data now; retry later"},
        headers={"Retry-After": retry_after},
    )


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
    visitor = await visitor_of(request, len(events))
    if visitor is None:
        return json_response({"accepted": len(events)}, status=202)
    try:
        await request.app[BATCHER].record([(event, visitor) for event in events])
    except RedisUnavailable:
        metrics.events_rejected.labels("unavailable").inc(len(events))
        raise
    metrics.count_accepted(events)
    return accepted_response(len(events))


_ACCEPTED_ONE: Final = msgspec.json.encode({"accepted": 1})


def accepted_response(count: int) -> web.Response:
    body = _ACCEPTED_ONE if count == 1 else _encoder.encode({"accepted": count})
    return web.Response(body=body, status=202, content_type="application/json")


async def visitor_of(request: web.Request, events: int) -> Visitor | None:
    """The reader behind a request, or None when its events are not to be counted (a
    bot, or Do-Not-Track honoured): those are acknowledged, and counted in a metric."""
    app = request.app
    settings = app[SETTINGS]
    metrics = app[METRICS]
    headers = request.headers
    if settings.respect_dnt and (headers.get("DNT") == "1" or headers.get("Sec-GPC") == "1"):
        metrics.events_ignored.labels("dnt").inc(events)
        return None
    user_agent = headers.get("User-Agent", "")
    agent = app[BOTS].classify(user_agent)
    if agent.kind == BOT:
        metrics.events_ignored.labels(agent.reason or "crawler").inc(events)
        return None
    # Several X-Forwarded-For lines are one list: a proxy may add its own line after the
    # client's, so the first line alone could be the client's invention.
    forwarded_for = ", ".join(headers.getall("X-Forwarded-For", ())) or None
    address = client_address(request.remote, forwarded_for, settings.trusted_proxies)
    salt = await app[SALTS].salt(day_of(app[CLOCK]()))
    return Visitor(reader_id(salt, address, user_agent), agent)


def _too_large(settings: Settings) -> web.Response:
    return error_response(
        413, "too_large", {"field": "body", "message": f"at most {settings.max_body_bytes} bytes"}
    )


def _stats_response(request: web.Request, body: bytes, etag: str) -> web.Response:
    headers = {
        "Cache-Control": f"public, max-age={request.app[SETTINGS].stats_max_age_s}",
        "ETag": etag,
    }
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match and etag in {tag.strip() for tag in if_none_match.split(",")}:
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", headers=headers)


def _etag(digests: Sequence[bytes]) -> str:
    return '"' + hashlib.blake2b(b"".join(digests), digest_size=12).hexdigest() + '"'


async def article_stats(request: web.Request) -> web.Response:
    article_id = validate_article_id(request.match_info["article_id"])
    (entry,) = await request.app[STATS_CACHE].get([article_id])
    return _stats_response(request, entry.body, _etag([entry.digest]))


async def articles_stats(request: web.Request) -> web.Response:
    ids = parse_article_ids(request.query.get("ids"), max_ids=MAX_IDS)
    entries = await request.app[STATS_CACHE].get(ids)
    body = b'{"articles":[' + b",".join(entry.body for entry in entries) + b"]}"
    return _stats_response(request, body, _etag([entry.digest for entry in entries]))


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


async def tracker_js(request: web.Request) -> web.Response:
    snippet = request.app[SNIPPET]
    headers = {
        # Long-lived, but revalidated by ETag after a day, so a new release reaches pages.
        "Cache-Control": "public, max-age=86400, stale-while-revalidate=604800",
        "ETag": snippet.etag,
        "Access-Control-Allow-Origin": "*",
    }
    if snippet.etag in {t.strip() for t in request.headers.get("If-None-Match", "").split(",")}:
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=snippet.script, content_type="text/javascript", charset="utf-8", headers=headers
    )


PIXEL_HEADERS: Final = {"Cache-Control": "no-store", "Content-Type": "image/gif"}


async def pixel(request: web.Request) -> web.Response:
    """For pages without JavaScript: counts like a beacon, and always answers the GIF."""
    app = request.app
    query = request.query
    event = {"type": query.get("t", "view"), "article_id": query.get("a")}
    for name, key in (("channel", "c"), ("url", "u"), ("referrer", "r")):
        if key in query:
            event[name] = query[key]
    if "u" not in query and request.headers.get("Referer"):
        event["url"] = request.headers["Referer"]
    try:
        (parsed,) = parse_event_dict(event)
        visitor = await visitor_of(request, 1)
        if visitor is not None:
            await app[BATCHER].record([(parsed, visitor)])
            app[METRICS].count_accepted([parsed])
    except InvalidEvent:
        app[METRICS].pixel_errors.labels("invalid").inc()
    except RedisUnavailable:
        app[METRICS].pixel_errors.labels("unavailable").inc()
    return web.Response(body=PIXEL_GIF, headers=PIXEL_HEADERS)


async def demo(request: web.Request) -> web.Response:
    page = request.app[SNIPPET].demo_pages.get(request.match_info.get("page", "article"))
    if page is None:
        raise web.HTTPNotFound()
    return web.Response(body=page, content_type="text/html", charset="utf-8")


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
    app.router.add_get("/tracker.js", tracker_js)
    app.router.add_get("/p.gif", pixel)
    if app[SETTINGS].demo:
        app.router.add_get("/demo", demo)
        app.router.add_get("/demo/{page:listing}", demo)
