"""The app's cleanup contexts: each opens what the app holds (typed in app_keys.py), sets
its AppKeys, and closes it on cleanup. create_app registers them in order (closed in
reverse); the CLI opens only what a command needs, with the same builders (pools.py,
redis_client.opened_redis, embedded.servers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from tracker.core.errors import RedisUnavailable
from tracker.flush.background import flushing, make_flusher, page_reading
from tracker.ops.embedded import servers
from tracker.pg.auth import Tokens
from tracker.pg.metadata_store import MetadataStore
from tracker.pg.pools import postgres_pool, read_pool
from tracker.pg.store import Store
from tracker.redis_side.attempts import FailedAttempts
from tracker.redis_side.batcher import Batcher
from tracker.redis_side.batches import RedisBatches
from tracker.redis_side.client import RedisNodes, opened_redis
from tracker.redis_side.pending import PendingReader
from tracker.redis_side.preflight import Preflight
from tracker.redis_side.readers import SaltStore
from tracker.redis_side.recorder import Recorder
from tracker.redis_side.trending import Trending
from tracker.reports.popular import Reports
from tracker.reports.stats import StatsReader
from tracker.reports.statscache import StatsCache
from tracker.reports.timeseries import Timeseries
from tracker.web.app_keys import (
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
from tracker.web.overload import Deadlines, LoopLag

log = logging.getLogger(__name__)


async def servers_ctx(app: web.Application) -> AsyncIterator[None]:
    async with servers(app[SETTINGS]) as urls:
        app[URLS] = urls
        yield


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """The client, and what records through it: the salts and the batcher."""
    settings = app[SETTINGS]
    async with opened_redis(settings, app[URLS][0]) as redis:
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
