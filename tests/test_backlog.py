"""A backlog after a long PostgreSQL outage drains in bounded batches while the service
keeps answering (before, the whole live hash was one batch: past about a million
counters its statements timed out and the flusher failed the same way forever)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from redis.asyncio import Redis

from tests.conftest import wait_until
from tests.helpers import MakeClient, post_events, share, stats
from tracker.core.settings import Settings
from tracker.events.bots import READER
from tracker.events.models import CHANNELS, Event
from tracker.redis_side.keys import Keys
from tracker.redis_side.readers import Visitor
from tracker.redis_side.recorder import Recorder
from tracker.web.app_keys import SERVICES

# Forty batches' worth (two fields a counter): enough to show every batch bounded and the
# service answering throughout (a million counters once, at the default bound of 50,000
# fields; the same forty batches at a smaller bound take the suite less time).
COUNTERS = 200_000
BATCH_FIELDS = 10_000
pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


async def record_backlog(redis: Redis, settings: Settings, counters: int) -> None:
    """`counters` distinct hourly counters (shares over every channel of many articles),
    recorded the way ingest records them, with nothing flushing: an outage's backlog."""
    recorder = Recorder(redis, Keys.of(settings), settings)
    visitor = Visitor(reader=b"r" * 16, agent=READER)
    now = time.time()
    step = 5_000
    for start in range(0, counters, step):
        request = [
            (
                Event(
                    type="share",
                    article_id=f"bl/{n // len(CHANNELS)}",
                    channel=CHANNELS[n % len(CHANNELS)],
                ),
                visitor,
            )
            for n in range(start, min(start + step, counters))
        ]
        await recorder.record([request], now)


async def test_a_forty_batch_backlog_drains_in_bounded_batches_while_serving(
    settings: Settings, make_client: MakeClient, redis: Redis
) -> None:
    backlog = settings.with_overrides(
        dedup_window_s=0,
        rate_limit_per_min=0,
        flush_max_batch_fields=BATCH_FIELDS,
        flush_interval_s=0.5,
    )
    started = time.monotonic()
    await record_backlog(redis, backlog, COUNTERS)
    sealed = await redis.llen(Keys(settings.redis_prefix, 1).shard(0).sealed)
    took = time.monotonic() - started
    print(f"backlog of {COUNTERS:,} counters recorded in {took:.1f} s: {sealed} sealed pieces")
    assert sealed >= 2 * COUNTERS // BATCH_FIELDS - 1  # two fields per counter

    client = await make_client(backlog, run_flusher=True)
    latencies: list[float] = []
    draining = True

    async def keep_asking() -> None:
        n = 0
        while draining:
            began = time.perf_counter()
            assert (await client.get("/healthz")).status == 200
            assert await post_events(client, share(f"live/{n}", "telegram")) == 202
            await stats(client, "bl/0")
            latencies.append(time.perf_counter() - began)
            n += 1
            await asyncio.sleep(0.05)

    async def drained() -> bool:
        return (await client.app[SERVICES].batches.pending_stats()).counters == 0

    asker = asyncio.create_task(keep_asking())
    began = time.monotonic()
    try:
        await wait_until(drained, timeout_s=300, interval_s=0.5)
    finally:
        draining = False
        await asker
    took = time.monotonic() - began
    worst = max(latencies)
    print(
        f"drained in {took:.1f} s; {len(latencies)} rounds of health + ingest + stats meanwhile, "
        f"slowest {worst * 1e3:.0f} ms"
    )
    assert worst < 1.0

    conn = await asyncpg.connect(settings.database_url)
    try:
        stored = await conn.fetchval(
            "SELECT sum(count) FROM article_hourly WHERE article_id LIKE 'bl/%'"
        )
        batches = await conn.fetchval("SELECT count(DISTINCT batch_id) FROM applied_batches")
        largest = await conn.fetchval("SELECT max(counters) FROM applied_batches")
    finally:
        await conn.close()
    print(f"{int(stored):,} events stored in {batches} batches; the largest part {largest:,} rows")
    assert stored == COUNTERS
    assert largest <= BATCH_FIELDS
    assert (await stats(client, "bl/0"))["shares_total"] == len(CHANNELS)
