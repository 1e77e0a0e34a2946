"""The work tracker does in the background of a process: the flusher's loop (with its
final flush on the way out) and the reading of articles' pages it feeds. Each is an
async context manager, opened by the app's cleanup contexts or by `tracker flush`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import aiohttp

from tracker.core.settings import Settings
from tracker.flush.flusher import Flusher
from tracker.ops.metrics import Metrics
from tracker.pages.reader import TIMEOUT_S as PAGE_TIMEOUT_S
from tracker.pages.reader import PageFetcher, PageReader
from tracker.pg import db
from tracker.pg.replica import Replica
from tracker.pg.store import Store
from tracker.redis_side.batches import RedisBatches
from tracker.redis_side.client import RedisClient, RedisNodes
from tracker.redis_side.keys import Keys
from tracker.redis_side.lease import Lease, owner_name
from tracker.redis_side.preflight import Preflight
from tracker.redis_side.sketches import RedisSketches

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def page_reading(
    settings: Settings, pool: db.Pool, metrics: Metrics
) -> AsyncIterator[PageReader | None]:
    """The reader of articles' pages, running in the background; None without site
    origins to read from."""
    origins = frozenset(settings.page_origins)
    if not origins:
        yield None
        return
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=PAGE_TIMEOUT_S), trust_env=False
    ) as session:
        reader = PageReader(
            pool, PageFetcher(session, origins), metrics, refresh_s=settings.metadata_refresh_s
        )
        task = asyncio.create_task(reader.run(), name="tracker-pages")
        try:
            yield reader
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def make_flusher(
    settings: Settings,
    redis: RedisClient,
    pool: db.Pool,
    metrics: Metrics,
    *,
    keys: Keys | None = None,
    nodes: RedisNodes | None = None,
    read_pool: db.Pool | None = None,
    clock: Callable[[], float] = time.time,
    preflight: Preflight | None = None,
    pages: PageReader | None = None,
) -> Flusher:
    """The flusher of TRACKER_FLUSH_SHARDS (all by default); with a read replica
    (`read_pool`), batches leave Redis only once the replica has them."""
    keys = keys or Keys.of(settings)
    owner = owner_name()
    shards = settings.flush_shards or range(settings.redis_shards)
    leases = {
        shard: Lease(redis, keys.shard(shard).lease, ttl_s=settings.flush_lease_s, owner=owner)
        for shard in shards
    }
    # Only a real replica lags; the reads' pool of the primary itself needs no wait.
    replica = (
        Replica(pool, read_pool, max_lag_s=settings.database_timeout_s)
        if read_pool is not None and settings.read_database_url is not None
        else None
    )
    return Flusher(
        settings,
        RedisBatches(redis, keys, nodes=nodes, wait_timeout_s=settings.redis_timeout_s / 2),
        RedisSketches(redis, keys),
        Store(pool, clock=clock),
        leases,
        Lease(redis, keys.upkeep_lease, ttl_s=settings.flush_lease_s, owner=owner),
        metrics,
        clock=clock,
        preflight=preflight,
        replica=replica,
        pages=pages,
    )


@contextlib.asynccontextmanager
async def flushing(flusher: Flusher, settings: Settings) -> AsyncIterator[None]:
    """The flusher's loop in the background; on exit it is stopped, and what is pending
    is flushed once more before the connections close."""
    stop = asyncio.Event()
    task = asyncio.create_task(flusher.run(stop), name="tracker-flusher")
    try:
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, settings.shutdown_timeout_s)
        except TimeoutError:
            log.warning("flusher did not stop in time; cancelled")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                flusher.run_once_logged(sketches=True), settings.shutdown_timeout_s
            )
