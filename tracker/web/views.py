"""The read and operations handlers, and the route table. Handlers parse, call a domain
object, answer; errors become JSON in the middleware, or in the routes every article page
takes (ingest_route.py, stats_route.py, most_read.py), which answer by themselves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from aiohttp import web

from tracker.core.errors import Unavailable
from tracker.pg import db
from tracker.redis_side.client import RedisClient
from tracker.web import article_views, editors, report_views
from tracker.web.app_keys import LOOP_LAG, METRICS, MOST_READ, OPENAPI, SERVICES, SETTINGS, SNIPPET
from tracker.web.editors import editors_only
from tracker.web.ingest import plausible_event
from tracker.web.ingest_route import PIXEL_ROUTE, IngestRoute, PixelRoute
from tracker.web.most_read import ROUTE as POPULAR_ROUTE
from tracker.web.most_read import MostRead, PopularRoute
from tracker.web.responses import error_response, json_response
from tracker.web.runbook import runbook
from tracker.web.stats_route import LISTING_ROUTE, StatsRoute


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _check(probe: Awaitable[Any], timeout_s: float) -> str:
    """ "ok", or why not: whatever the probe raises is an answer here, never a 500."""
    try:
        await asyncio.wait_for(probe, timeout_s)
    except Exception as exc:
        return f"unavailable: {exc or type(exc).__name__}"
    return "ok"


async def _ping_redis(redis: RedisClient) -> None:
    await redis.ping()


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    timeout_s = app[SETTINGS].redis_timeout_s
    redis_state, postgres_state = await asyncio.gather(
        _check(_ping_redis(app[SERVICES].redis), timeout_s),
        _check(db.ping(app[SERVICES].pool), timeout_s),
    )
    refused = app[SERVICES].preflight.refused
    if refused is not None:
        redis_state = f"refused: {refused}"
    metrics = app[METRICS]
    metrics.dependency_up.labels("redis").set(redis_state == "ok")
    metrics.dependency_up.labels("postgres").set(postgres_state == "ok")
    checks = {"redis": redis_state, "postgres": postgres_state}
    if redis_state == postgres_state == "ok":
        return json_response({"status": "ready", "checks": checks})
    return error_response(
        503, "not_ready", checks, headers={"Retry-After": str(app[SETTINGS].retry_after_s)}
    )


async def serving(request: web.Request) -> web.Response:
    """Readiness of this process alone, for load balancers (Kubernetes' readinessProbe,
    compose): 503 only when it cannot serve whatever its dependencies do (its startup
    check refused Redis' layout). Redis and PostgreSQL are not asked: an outage of either
    is everyone's (every pod would leave the Service at once, and ingest goes on into Redis
    while PostgreSQL is away); tracker_dependency_up and the alerts tell of it."""
    refused = request.app[SERVICES].preflight.refused
    if refused is not None:
        return error_response(
            503,
            "not_ready",
            {"redis": f"refused: {refused}"},
            headers={"Retry-After": str(request.app[SETTINGS].retry_after_s)},
        )
    return json_response({"status": "serving"})


async def metrics_view(request: web.Request) -> web.Response:
    """A scrape also checks both dependencies: where nothing calls /readyz (a plain
    Prometheus and Grafana), tracker_dependency_up still tells."""
    app = request.app
    metrics = app[METRICS]
    metrics.event_loop_lag.set(app[LOOP_LAG].lag_s)
    timeout_s = app[SETTINGS].redis_timeout_s
    pending, postgres_state = await asyncio.gather(
        asyncio.wait_for(app[SERVICES].batches.pending_stats(), timeout_s),
        _check(db.ping(app[SERVICES].pool), timeout_s),
        return_exceptions=True,
    )
    metrics.dependency_up.labels("postgres").set(postgres_state == "ok")
    if isinstance(pending, Unavailable | TimeoutError):
        metrics.dependency_up.labels("redis").set(0)
    elif isinstance(pending, BaseException):
        raise pending
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


async def tracker_js_integrity(request: web.Request) -> web.Response:
    """The served tracker.js's SRI hash, for a page's `integrity=` (changes with it)."""
    snippet = request.app[SNIPPET]
    headers = {"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"}
    return web.Response(text=snippet.integrity + "\n", headers=headers)


async def demo(request: web.Request) -> web.Response:
    page = request.app[SNIPPET].demo_pages.get(request.match_info.get("page", "article"))
    if page is None:
        raise web.HTTPNotFound()
    return web.Response(body=page, content_type="text/html", charset="utf-8")


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/events", IngestRoute(app[SETTINGS], app[METRICS]).answer)
    # Plausible's Events API, for sites that keep Plausible's script or clients.
    app.router.add_post("/api/event", plausible_event)
    # Registered before the single-article route; ids may hold '/', hence the regex.
    stats = StatsRoute(app[SETTINGS], app[METRICS])
    app.router.add_get(LISTING_ROUTE, stats.listing)
    # [\s\S], not `.`: an id with a newline is a bad id (400), not an unknown route (404).
    app.router.add_get(r"/api/v1/articles/{article_id:[\s\S]+}/stats", stats.article)
    app.router.add_get(
        r"/api/v1/articles/{article_id:[\s\S]+}/timeseries",
        editors_only(report_views.timeseries),
    )
    # An article itself: any id but one that names one of its parts (/stats ...), whose
    # other methods are answered 405 by their own routes.
    article = r"/api/v1/articles/{article_id:(?!stats$)(?![\s\S]*/(?:stats|timeseries)$)[\s\S]+}"
    app.router.add_put(article, editors_only(article_views.put_article))
    app.router.add_get(article, editors_only(article_views.get_article))
    app.router.add_get("/api/v1/reports/popular", editors_only(report_views.popular))
    app.router.add_get("/api/v1/reports/trending", editors_only(report_views.trending))
    app.router.add_get("/api/v1/reports/takeoff", editors_only(report_views.takeoff))
    most_read = app[MOST_READ] = MostRead()
    app.router.add_get(POPULAR_ROUTE, PopularRoute(app[SETTINGS], app[METRICS], most_read).answer)
    app.router.add_get("/reports", editors.reports_page)
    app.router.add_get("/reports/login", editors.login_page)
    app.router.add_post("/reports/login", editors.login)
    app.router.add_post("/reports/logout", editors.logout)
    app.router.add_get("/reports/assets/{name}", editors.asset)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/readyz/serving", serving)
    app.router.add_get("/runbook", runbook)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/tracker.js", tracker_js)
    app.router.add_get("/tracker.js.sha384", tracker_js_integrity)
    app.router.add_get(PIXEL_ROUTE, PixelRoute(app[METRICS]).answer)
    if app[SETTINGS].demo:
        app.router.add_get("/demo", demo)
        app.router.add_get("/demo/{page:listing}", demo)
