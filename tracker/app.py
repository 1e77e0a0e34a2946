"""create_app(settings): every resource opened and closed in one cleanup context each."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Final

from aiohttp import web

from . import buffer, db, stats
from .batcher import Batcher
from .bots import BotClassifier
from .embedded import EmbeddedServers
from .flusher import Flusher
from .keys import Keys
from .metrics import Metrics
from .middleware import cors_middleware, errors_middleware, metrics_middleware
from .openapi import openapi_bytes
from .readers import SaltStore, TrustedProxies
from .settings import Settings
from .snippet import Snippet
from .views import (
    BATCHER,
    BOTS,
    CLOCK,
    KEYS,
    METRICS,
    OPENAPI,
    POOL,
    PROXIES,
    REDIS,
    SALTS,
    SETTINGS,
    SNIPPET,
    STATS_CACHE,
    add_routes,
)

log = logging.getLogger(__name__)

URLS: Final = web.AppKey("urls", tuple[str, str])  # (redis_url, database_url)
FLUSHER: Final = web.AppKey("flusher", Flusher)
STARTUP_WAIT_S: Final = 30.0


async def embedded_ctx(app: web.Application) -> AsyncIterator[None]:
    """With no URLs configured, start Redis and PostgreSQL under the data directory."""
    settings = app[SETTINGS]
    if settings.redis_url is not None and settings.database_url is not None:
        app[URLS] = (settings.redis_url, settings.database_url)
        yield
        return
    servers = EmbeddedServers.under(settings.data_dir)
    app[URLS] = await asyncio.to_thread(servers.start)
    try:
        yield
    finally:
        await asyncio.to_thread(servers.stop)


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    redis = buffer.open_redis(app[URLS][0], timeout_s=settings.redis_timeout_s)
    app[REDIS] = redis
    app[SALTS] = SaltStore(redis, settings.redis_prefix)
    batcher = Batcher(
        redis,
        app[KEYS],
        app[METRICS],
        dedup_window_s=settings.dedup_window_s,
        clock=app[CLOCK],
    )
    app[BATCHER] = batcher
    try:
        yield
    finally:
        await batcher.drain()
        await redis.aclose()


async def postgres_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the pool and bring the schema up to date (waiting a while for Postgres)."""
    settings = app[SETTINGS]
    pool = await connect_postgres(settings, app[URLS][1], migrate=True)
    app[POOL] = pool

    async def fetch(article_ids: list[str]) -> list[stats.ArticleStats]:
        return await stats.article_stats(app[REDIS], pool, app[KEYS], article_ids, app[CLOCK]())

    app[STATS_CACHE] = stats.StatsCache(fetch, ttl_s=settings.stats_cache_s)
    try:
        yield
    finally:
        await asyncio.wait_for(pool.close(), settings.shutdown_timeout_s)


async def connect_postgres(settings: Settings, url: str, *, migrate: bool) -> db.Pool:
    deadline = time.monotonic() + STARTUP_WAIT_S
    while True:
        try:
            pool = await db.open_pool(
                url, size=settings.database_pool_size, timeout_s=settings.database_timeout_s
            )
            if migrate:
                async with pool.acquire() as conn:
                    await db.migrate(conn)
            return pool
        except db.UNAVAILABLE_ERRORS as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("waiting for Postgres: %s", exc)
            await asyncio.sleep(1.0)


def flusher_ctx(run_flusher: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        flusher = Flusher(
            app[SETTINGS], app[REDIS], app[POOL], app[KEYS], app[METRICS], clock=app[CLOCK]
        )
        app[FLUSHER] = flusher
        if not run_flusher:
            yield
            return
        stop = asyncio.Event()
        task = asyncio.create_task(flusher.run(stop), name="tracker-flusher")
        try:
            yield
        finally:
            stop.set()
            try:
                await asyncio.wait_for(task, app[SETTINGS].shutdown_timeout_s)
            except TimeoutError:
                log.warning("flusher did not stop in time; cancelled")
            # Requests are finished by now: move what they stored before closing.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(flusher.run_once_logged(), app[SETTINGS].shutdown_timeout_s)

    return ctx


def create_app(
    settings: Settings,
    *,
    run_flusher: bool = True,
    clock: Callable[[], float] = time.time,
    metrics_dir: Path | None = None,
) -> web.Application:
    """The app; `metrics_dir` when it is one of several worker processes (see workers.py)."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        # CORS outside the errors: error answers (400, 503 + Retry-After) carry its headers
        # too, or a page of an allowed origin could not read them.
        middlewares=[metrics_middleware, cors_middleware, errors_middleware],
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics(multiprocess_dir=metrics_dir)
    app[KEYS] = Keys(settings.redis_prefix, settings.redis_shards)
    app[OPENAPI] = openapi_bytes()
    app[BOTS] = BotClassifier()
    app[PROXIES] = TrustedProxies(settings.trusted_proxies)
    app[SNIPPET] = Snippet.build(settings)
    app[CLOCK] = clock
    # Started in this order, cleaned up in reverse: the final flush runs before the
    # connections close, and the embedded servers stop last.
    app.cleanup_ctx.extend([embedded_ctx, redis_ctx, postgres_ctx, flusher_ctx(run_flusher)])
    add_routes(app)
    return app
