"""open_services: every service of a serving process opened in order and closed in
reverse (the final flush before the pools close, the embedded servers last)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from tracker.core.errors import RedisUnavailable
from tracker.core.settings import Settings
from tracker.flush.background import flushing, make_flusher, page_reading
from tracker.flush.flusher import Flusher
from tracker.ops.embedded import servers
from tracker.ops.metrics import Metrics
from tracker.pg import db
from tracker.pg.auth import Tokens
from tracker.pg.metadata_store import MetadataStore
from tracker.pg.pools import postgres_pool, read_pool
from tracker.pg.store import Store
from tracker.redis_side.attempts import FailedAttempts
from tracker.redis_side.batcher import Batcher
from tracker.redis_side.batches import RedisBatches
from tracker.redis_side.client import RedisClient, RedisNodes, opened_redis
from tracker.redis_side.keys import Keys
from tracker.redis_side.pending import PendingReader
from tracker.redis_side.preflight import Preflight
from tracker.redis_side.readers import SaltStore
from tracker.redis_side.recorder import Recorder
from tracker.redis_side.trending import Trending
from tracker.reports.listings import Listings
from tracker.reports.popular import Reports
from tracker.reports.stats import StatsReader
from tracker.reports.statscache import StatsCache
from tracker.reports.timeseries import Timeseries

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Services:
    urls: tuple[str, str]  # (redis_url, database_url): configured, or the embedded ones
    redis: RedisClient
    nodes: RedisNodes
    preflight: Preflight
    salts: SaltStore
    batches: RedisBatches
    batcher: Batcher
    pool: db.Pool  # the primary: writes, the flusher's bookkeeping
    # The primary's pool, or a replica's (TRACKER_READ_DATABASE_URL), for stats and reports.
    read_pool: db.Pool
    stats_cache: StatsCache
    listings: Listings
    reports: Reports
    timeseries: Timeseries
    trending: Trending
    article_metadata: MetadataStore
    tokens: Tokens
    failed_attempts: FailedAttempts
    flusher: Flusher


@contextlib.asynccontextmanager
async def checked(preflight: Preflight) -> AsyncIterator[None]:
    """Redis' layout checked at start (StartupRefused: tracker does not start); when Redis
    does not answer yet, checked in the background once it does."""
    try:
        await preflight.check()
    except RedisUnavailable as exc:
        log.warning("Redis does not answer (%s); its settings are checked once it does", exc)
    else:
        yield
        return
    checking = asyncio.create_task(preflight.check_until_answered())
    try:
        yield
    finally:
        checking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await checking


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings,
    keys: Keys,
    metrics: Metrics,
    clock: Callable[[], float],
    *,
    run_flusher: bool,
) -> AsyncIterator[Services]:
    async with contextlib.AsyncExitStack() as stack:
        urls = await stack.enter_async_context(servers(settings))
        redis = await stack.enter_async_context(opened_redis(settings, urls[0]))
        preflight = Preflight(redis, keys, settings)
        await stack.enter_async_context(checked(preflight))
        nodes = RedisNodes(redis, timeout_s=settings.redis_timeout_s)
        stack.push_async_callback(nodes.aclose)
        recorder = Recorder(redis, keys, settings, preflight, nodes=nodes)
        batcher = Batcher(recorder, metrics, clock=clock)
        stack.push_async_callback(batcher.drain)  # what is recorded is answered first

        pool = await stack.enter_async_context(postgres_pool(settings, urls[1], migrate=True))
        reads = await stack.enter_async_context(read_pool(settings, pool))
        # Stats and reports join both sides: Redis' pending pieces, PostgreSQL's totals.
        pending = PendingReader(redis, keys)
        stats = StatsReader(pending, Store(reads), clock)
        stats_cache = StatsCache(
            stats.read,
            ttl_s=settings.stats_cache_s,
            max_age_s=settings.stats_max_age_s,
            max_bytes=settings.stats_cache_bytes,
        )
        stack.push_async_callback(stats_cache.close)  # its refreshes end before the pools

        if run_flusher:
            # On a pool of its own: heavy reads cannot starve it of connections.
            flush_pool = await stack.enter_async_context(
                postgres_pool(settings, urls[1], migrate=False, size=settings.flush_pool_size)
            )
            pages = await stack.enter_async_context(page_reading(settings, pool, metrics))
        else:
            # Still at hand (tests and `tracker flush` call it), on the main pool.
            flush_pool, pages = pool, None
        flusher = make_flusher(
            settings,
            redis,
            flush_pool,
            metrics,
            keys=keys,
            nodes=nodes,
            read_pool=reads,
            clock=clock,
            preflight=preflight,
            pages=pages,
        )
        if run_flusher:
            await stack.enter_async_context(flushing(flusher, settings))

        yield Services(
            urls=urls,
            redis=redis,
            nodes=nodes,
            preflight=preflight,
            salts=SaltStore(redis, settings.redis_prefix),
            batches=RedisBatches(redis, keys, nodes=nodes),
            batcher=batcher,
            pool=pool,
            read_pool=reads,
            stats_cache=stats_cache,
            listings=Listings(stats_cache),
            reports=Reports(
                pending, reads, clock, read_through_min_readers=settings.read_through_min_readers
            ),
            timeseries=Timeseries(pending, reads, clock),
            trending=Trending(redis, keys, clock),
            article_metadata=MetadataStore(pool),
            tokens=Tokens(pool),
            failed_attempts=FailedAttempts(redis, settings.redis_prefix),
            flusher=flusher,
        )
