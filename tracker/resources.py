"""What the app holds (typed AppKeys) and how each resource is opened and closed.

Each resource is an async context manager: the app registers them as cleanup contexts
(started in order, closed in reverse), and the CLI opens only those a command needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Final, TypeVar

from aiohttp import web

from . import db, migrations
from .app_keys import (
    ARTICLE_METADATA,
    BATCHER,
    BATCHES,
    CLOCK,
    DEADLINES,
    FAILED_ATTEMPTS,
    FLUSHER,
    KEYS,
    LOOP_LAG,
    METRICS,
    NODES,
    POOL,
    PREFLIGHT,
    READ_POOL,
    REDIS,
    REPORTS,
    SALTS,
    SETTINGS,
    STATS_CACHE,
    TIMESERIES,
    TOKENS,
    TRENDING,
    URLS,
)
from .attempts import FailedAttempts
from .auth import Tokens
from .background import flushing, make_flusher, page_reading
from .batcher import Batcher
from .batches import RedisBatches
from .embedded import EmbeddedServers
from .errors import DatabaseUnavailable, RedisUnavailable
from .metadata_store import MetadataStore
from .overload import Deadlines, LoopLag
from .pending import PendingReader
from .preflight import Preflight
from .readers import SaltStore
from .recorder import Recorder
from .redis_client import RedisClient, RedisNodes, open_redis
from .replica import Replica
from .reports import Reports
from .settings import Settings
from .stats import StatsReader
from .statscache import StatsCache
from .store import Store
from .timeseries import Timeseries
from .trending import Trending

log = logging.getLogger(__name__)
T = TypeVar("T")

STARTUP_WAIT_S: Final = 30.0


@contextlib.asynccontextmanager
async def servers(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """(redis_url, database_url): the configured ones, or, with none configured, those of
    an embedded Redis and PostgreSQL started under the data directory."""
    if settings.redis_url is not None and settings.database_url is not None:
        yield settings.redis_url, settings.database_url
        return
    embedded = EmbeddedServers.under(settings.data_dir)
    async with _running(embedded.start, embedded.stop) as urls:
        yield urls


@contextlib.asynccontextmanager
async def database_server(settings: Settings) -> AsyncIterator[str]:
    """The database URL alone (for commands that need no Redis): the configured one, or
    an embedded PostgreSQL's."""
    if settings.database_url is not None:
        yield settings.database_url
        return
    embedded = EmbeddedServers.under(settings.data_dir).postgres
    async with _running(embedded.start, embedded.stop) as url:
        yield url


@contextlib.asynccontextmanager
async def _running(start: Callable[[], T], stop: Callable[[], None]) -> AsyncIterator[T]:
    """An embedded server started and stopped off the event loop (both block)."""
    started = await asyncio.to_thread(start)
    try:
        yield started
    finally:
        await asyncio.to_thread(stop)


@contextlib.asynccontextmanager
async def redis_client(settings: Settings, url: str) -> AsyncIterator[RedisClient]:
    redis = open_redis(url, timeout_s=settings.redis_timeout_s, cluster=settings.redis_cluster)
    try:
        yield redis
    finally:
        await redis.aclose()


@contextlib.asynccontextmanager
async def postgres_pool(
    settings: Settings, url: str, *, migrate: bool, size: int | None = None
) -> AsyncIterator[db.Pool]:
    """A pool, once PostgreSQL answers (waiting a while), with the schema brought up to
    date when `migrate`."""
    deadline = time.monotonic() + STARTUP_WAIT_S
    while True:
        try:
            pool = await db.open_pool(
                url,
                size=size or settings.database_pool_size,
                timeout_s=settings.database_timeout_s,
                parallel_workers=settings.database_parallel_workers,
            )
            if migrate:
                async with pool.acquire() as conn:
                    await migrations.migrate(conn)
            break
        except db.UNAVAILABLE_ERRORS as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("waiting for PostgreSQL: %s", exc)
            await asyncio.sleep(1.0)
    try:
        yield pool
    finally:
        await asyncio.wait_for(pool.close(), settings.shutdown_timeout_s)


@contextlib.asynccontextmanager
async def read_pool(settings: Settings, primary: db.Pool) -> AsyncIterator[db.Pool]:
    """The pool reads use: of TRACKER_READ_DATABASE_URL (a replica), else the primary's."""
    if settings.read_database_url is None:
        yield primary
        return
    async with postgres_pool(settings, settings.read_database_url, migrate=False) as pool:
        replica = Replica(primary, pool, max_lag_s=settings.database_timeout_s)
        try:
            await replica.caught_up()  # the migrations just run on the primary
        except DatabaseUnavailable as exc:
            # Reads answer 503 until the replica has the schema; nothing else waits.
            log.warning("the read replica lags: %s", exc, extra={"event": "replica_lag"})
        yield pool


# The app's cleanup contexts, in the order create_app registers them.


async def servers_ctx(app: web.Application) -> AsyncIterator[None]:
    async with servers(app[SETTINGS]) as urls:
        app[URLS] = urls
        yield


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """The client, and what records through it: the salts and the batcher."""
    settings = app[SETTINGS]
    async with redis_client(settings, app[URLS][0]) as redis:
        preflight = app[PREFLIGHT] = Preflight(redis, app[KEYS], settings)
        checking = None
        try:
            await preflight.check()  # StartupRefused: tracker does not start
        except RedisUnavailable as exc:
            log.warning("Redis does not answer (%s); its settings are checked once it does", exc)
            checking = asyncio.create_task(preflight.check_until_answered())
        app[REDIS] = redis
        nodes = app[NODES] = RedisNodes(redis, timeout_s=settings.redis_timeout_s)
        app[SALTS] = SaltStore(redis, settings.redis_prefix)
        app[BATCHES] = RedisBatches(redis, app[KEYS], nodes=nodes)
        recorder = Recorder(redis, app[KEYS], settings, preflight, nodes=nodes)
        batcher = app[BATCHER] = Batcher(recorder, app[METRICS], clock=app[CLOCK])
        try:
            yield
        finally:
            if checking is not None:
                checking.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await checking
            await batcher.drain()
            await nodes.aclose()


async def postgres_ctx(app: web.Application) -> AsyncIterator[None]:
    """The primary (writes, the flusher's bookkeeping) and the pool reads use."""
    settings = app[SETTINGS]
    async with (
        postgres_pool(settings, app[URLS][1], migrate=True) as pool,
        read_pool(settings, pool) as reads,
    ):
        app[POOL] = pool
        app[READ_POOL] = reads
        yield


async def reads_ctx(app: web.Application) -> AsyncIterator[None]:
    """Stats reads join both sides: Redis' pending pieces and PostgreSQL's totals."""
    settings = app[SETTINGS]
    reader = StatsReader(PendingReader(app[REDIS], app[KEYS]), Store(app[READ_POOL]), app[CLOCK])
    app[STATS_CACHE] = StatsCache(
        reader.read, ttl_s=settings.stats_cache_s, max_bytes=settings.stats_cache_bytes
    )
    pending = PendingReader(app[REDIS], app[KEYS])
    app[REPORTS] = Reports(
        pending,
        app[READ_POOL],
        app[CLOCK],
        read_through_min_readers=settings.read_through_min_readers,
    )
    app[TIMESERIES] = Timeseries(pending, app[READ_POOL], app[CLOCK])
    app[TRENDING] = Trending(app[REDIS], app[KEYS], app[CLOCK])
    app[ARTICLE_METADATA] = MetadataStore(app[POOL])
    app[TOKENS] = Tokens(app[POOL])
    app[FAILED_ATTEMPTS] = FailedAttempts(app[REDIS], settings.redis_prefix)
    yield


async def loop_lag_ctx(app: web.Application) -> AsyncIterator[None]:
    """Watches how late the event loop runs, for shedding load, and cancels the requests
    past their deadline (overload.py)."""
    lag = app[LOOP_LAG] = LoopLag(app[SETTINGS].max_loop_lag_s)
    deadlines = app[DEADLINES] = Deadlines(app[SETTINGS].request_timeout_s)
    task = asyncio.create_task(lag.watch(deadlines), name="tracker-loop-lag")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def flusher_ctx(run_flusher: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    """The flusher, on a pool of its own: heavy reads cannot starve it of connections."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        if not run_flusher:
            # Still at hand (tests and `tracker flush` call it), on the reads' pool.
            app[FLUSHER] = make_flusher(
                settings,
                app[REDIS],
                app[POOL],
                app[METRICS],
                nodes=app[NODES],
                read_pool=app[READ_POOL],
                clock=app[CLOCK],
                preflight=app[PREFLIGHT],
            )
            yield
            return
        async with (
            postgres_pool(
                settings, app[URLS][1], migrate=False, size=settings.flush_pool_size
            ) as pool,
            page_reading(settings, app[POOL], app[METRICS]) as pages,
        ):
            flusher = app[FLUSHER] = make_flusher(
                settings,
                app[REDIS],
                pool,
                app[METRICS],
                nodes=app[NODES],
                read_pool=app[READ_POOL],
                clock=app[CLOCK],
                preflight=app[PREFLIGHT],
                pages=pages,
            )
            async with flushing(flusher, settings):
                yield

    return ctx
