"""python -m bench cluster: tracker on a Redis Cluster of the bench's own (3 primaries on
loopback) against tracker on one Redis, in one run: ingest with 1, 2 and 4 processes, and
the flush of the same dirty counters by one flusher for all shards or two flushers with
half the shards each (separate processes).

On this two-core machine the server processes share core 0 (wrk has core 1) and the
Redis nodes float, so more processes show the cost of coordination, not added capacity;
on a larger machine, give each process a core of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench.harness import (
    EMPTY_TABLES,
    WORKLOADS,
    cleanup_redis,
    ensure_wrk,
    run_wrk,
    server,
    tracker_env,
)
from bench.modes import fill
from tests.cluster import Cluster, start_cluster
from tracker.core.settings import Settings
from tracker.flush.background import make_flusher
from tracker.ops.embedded import free_port
from tracker.ops.metrics import Metrics
from tracker.pg import db, migrations
from tracker.redis_side.client import RedisClient, open_redis
from tracker.redis_side.keys import Keys

SHARDS = 6
PROCESSES = (1, 2, 4)


def cluster(args: argparse.Namespace) -> None:
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as directory:
        started = start_cluster(Path(directory), primaries=3, replicas=0)
        parts = args.only.split(",") if args.only else ["ingest", "flush"]
        try:
            if "ingest" in parts:
                _ingest(args, wrk, started)
            if "flush" in parts:
                asyncio.run(_flushes(args, started))
        finally:
            started.stop()


def _ingest(args: argparse.Namespace, wrk: str, started: Cluster) -> None:
    print(f"ingest, uniform (1,000 articles), {args.seconds:g} s per run, {SHARDS} shards")
    print(f"{'processes':>9}  {'one Redis':>10}  {'cluster':>10}  ratio")
    for processes in PROCESSES:
        rates = {}
        for where in ("one Redis", "cluster"):
            port = free_port()
            prefix = "bench-cl-" + secrets.token_hex(4)
            env = {
                **tracker_env(args, port, prefix),
                "TRACKER_REDIS_SHARDS": str(SHARDS),
                "TRACKER_FLUSH_INTERVAL": "1",
            }
            if where == "cluster":
                env |= {"TRACKER_REDIS_URL": started.url, "TRACKER_REDIS_CLUSTER": "1"}
            command = [sys.executable, "-m", "tracker", "serve", "--workers", str(processes)]
            with server(f"cluster-{processes}-{where}", command, port, env):
                run_wrk(wrk, port, WORKLOADS["uniform"], args.warmup, args.connections)
                result = run_wrk(wrk, port, WORKLOADS["uniform"], args.seconds, args.connections)
            rates[where] = result.rps
            if where == "one Redis":
                cleanup_redis(args.redis_url, prefix)
        print(
            f"{processes:>9}  {rates['one Redis']:>10,.0f}  {rates['cluster']:>10,.0f}  "
            f"{rates['cluster'] / rates['one Redis']:.2f}",
            flush=True,
        )


async def _flushes(args: argparse.Namespace, started: Cluster) -> None:
    print(f"\nflush of {args.counters:,} dirty counters (shares) over {SHARDS} shards")
    everything = (tuple(range(SHARDS)),)
    halves = (tuple(range(SHARDS // 2)), tuple(range(SHARDS // 2, SHARDS)))
    runs = (
        ("one Redis", args.redis_url, False, everything),
        ("cluster", started.url, True, everything),
        ("cluster", started.url, True, halves),
    )
    for where, url, on_cluster, layout in runs:
        prefix = "bench-clf-" + secrets.token_hex(4)
        redis = open_redis(url, timeout_s=30, cluster=on_cluster)
        try:
            await fill(redis, Keys(prefix, SHARDS), args.counters, "shares")
        finally:
            await redis.aclose()
        began = time.perf_counter()
        with ProcessPoolExecutor(len(layout)) as pool:
            futures = [
                pool.submit(_flush_in_process, url, on_cluster, args.database_url, prefix, shards)
                for shards in layout
            ]
            took = [future.result() for future in futures]
        wall = time.perf_counter() - began
        print(
            f"{where}, {len(layout)} flusher(s): {wall:.2f} s wall "
            f"(each: {', '.join(f'{t:.2f} s' for t in took)}), "
            f"{args.counters / max(took):,.0f} counters/s",
            flush=True,
        )
        await _truncate(args.database_url)
        if not on_cluster:
            cleanup_redis(url, prefix)


def _flush_in_process(
    url: str, on_cluster: bool, database_url: str, prefix: str, shards: tuple[int, ...]
) -> float:
    return asyncio.run(_flush(url, on_cluster, database_url, prefix, shards))


async def _flush(
    url: str, on_cluster: bool, database_url: str, prefix: str, shards: tuple[int, ...]
) -> float:
    settings = Settings(
        redis_url=url,
        redis_cluster=on_cluster,
        database_url=database_url,
        redis_prefix=prefix,
        redis_shards=SHARDS,
        flush_shards=shards,
    )
    redis: RedisClient = open_redis(url, timeout_s=30, cluster=on_cluster)
    pool = await db.open_pool(database_url, size=4, timeout_s=60)
    try:
        async with pool.acquire() as conn:
            await migrations.migrate(conn)
        flusher = make_flusher(settings, redis, pool, Metrics())
        began = time.perf_counter()
        await flusher.flush_once()
        return time.perf_counter() - began
    finally:
        await redis.aclose()
        await pool.close()


async def _truncate(database_url: str) -> None:
    pool = await db.open_pool(database_url, size=1, timeout_s=60)
    try:
        await pool.execute(EMPTY_TABLES)
    finally:
        await pool.close()
