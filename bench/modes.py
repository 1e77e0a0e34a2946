"""Bench modes beyond the HTTP table: flush at scale, memory soak, and a py-spy profile."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import asyncpg
import psutil
from redis.asyncio import Redis

from bench.harness import (
    EMPTY_TABLES,
    ROOT,
    WORKLOADS,
    WRK_DIR,
    Workload,
    cleanup_redis,
    ensure_wrk,
    pinned,
    run_wrk,
    server,
    tracker_env,
    wait_drained,
)
from tracker.core.settings import Settings
from tracker.events.bots import READER
from tracker.events.models import CHANNELS, Event
from tracker.flush.background import make_flusher
from tracker.ops.embedded import free_port
from tracker.ops.metrics import Metrics
from tracker.pg import db, migrations
from tracker.redis_side.client import RedisClient, open_redis
from tracker.redis_side.keys import Keys
from tracker.redis_side.readers import Visitor
from tracker.redis_side.recorder import Recorder


@contextlib.asynccontextmanager
async def connections(
    args: argparse.Namespace, prefix: str
) -> AsyncIterator[tuple[RedisClient, asyncpg.Pool]]:
    redis = open_redis(args.redis_url, timeout_s=30)
    pool = await db.open_pool(args.database_url, size=4, timeout_s=60)
    async with pool.acquire() as conn:
        await migrations.migrate(conn)
    try:
        yield redis, pool
    finally:
        async for key in redis.scan_iter(match=f"{prefix}:*", count=5000):
            await redis.delete(key)
        await redis.aclose()
        await pool.close()


# asyncpg reads timeout=None as the pool's command timeout: the anchor gets its own.
ANCHOR_TIMEOUT_S: Final = 600.0
ANCHOR_SQL = (
    "CREATE TEMP TABLE anchor_staging (article_id text, hour int, metric text, n bigint)",
    "CREATE TEMP TABLE anchor_counts (article_id text, hour int, metric text, n bigint,"
    " PRIMARY KEY (article_id, hour, metric))",
)


async def anchor(pool: asyncpg.Pool, rows: int) -> float:
    """The least a flush of `rows` counters can cost PostgreSQL on this machine: one COPY
    into a staging table and one upsert into a keyed table, in one transaction."""
    hour = int(time.time() // 3600)
    records = [(f"bench/a{n // 11}", hour, CHANNELS[n % len(CHANNELS)], 1) for n in range(rows)]
    async with pool.acquire() as conn:
        for sql in ANCHOR_SQL:
            await conn.execute(sql)
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table(
                "anchor_staging", records=records, timeout=ANCHOR_TIMEOUT_S
            )
            await conn.execute(
                "INSERT INTO anchor_counts SELECT * FROM anchor_staging"
                " ON CONFLICT (article_id, hour, metric)"
                " DO UPDATE SET n = anchor_counts.n + EXCLUDED.n",
                timeout=ANCHOR_TIMEOUT_S,
            )
        took = time.perf_counter() - started
        await conn.execute("DROP TABLE anchor_staging, anchor_counts")
    return took


async def flush(args: argparse.Namespace) -> None:
    """Time one flush of `--counters` dirty counters (and, apart, of as many reader
    sketches), each against the anchor: a bare COPY and upsert of as many rows."""
    url = args.database_url
    for kind in ("shares", "views"):
        prefix = "bench-flush-" + secrets.token_hex(4)
        settings = Settings(redis_url=args.redis_url, database_url=url, redis_prefix=prefix)
        keys = Keys(prefix, 1)
        async with connections(args, prefix) as (redis, pool):
            floor = await anchor(pool, args.counters)
            started = time.perf_counter()
            counters = await fill(redis, keys, args.counters, kind)
            filled = time.perf_counter() - started
            flusher = make_flusher(settings, redis, pool, Metrics())
            started = time.perf_counter()
            result = await flusher.flush_once(sketches=False)
            took = time.perf_counter() - started
            # The reader sketches are stored apart, every few seconds: timed on their own.
            started = time.perf_counter()
            stored = await flusher.flush_once(sketches=True)
            sketches_took = time.perf_counter() - started
            rows = await pool.fetchval("SELECT count(*) FROM article_hourly")
            await pool.execute(EMPTY_TABLES)
        print(
            f"flush of {counters:,} dirty counters ({kind}): {took:.3f} s = "
            f"{took / floor:.1f}x the anchor (COPY + upsert of {args.counters:,} rows: "
            f"{floor:.3f} s)  [{result.events:,} events, {rows:,} rows; filled in "
            f"{filled:.1f} s]"
        )
        if stored.sketches:
            print(
                f"  then {stored.sketches:,} reader sketches, stored apart: "
                f"{sketches_took:.3f} s = {sketches_took / floor:.1f}x the anchor"
            )


async def flush_scale(args: argparse.Namespace) -> None:
    """Flush cost grows with the distinct counters of an interval, not with its events: the
    same 1,000 articles x 11 share channels dirtied by N and by 10 x N events."""
    for events in (args.counters, 10 * args.counters):
        prefix = "bench-scale-" + secrets.token_hex(4)
        settings = Settings(redis_url=args.redis_url, database_url=args.database_url,
                            redis_prefix=prefix)  # fmt: skip
        async with connections(args, prefix) as (redis, pool):
            memory_before = int((await redis.info("memory"))["used_memory"])
            await fill(redis, Keys(prefix, 1), events, "shares", articles=1_000)
            held = int((await redis.info("memory"))["used_memory"]) - memory_before
            flusher = make_flusher(settings, redis, pool, Metrics())
            started = time.perf_counter()
            result = await flusher.flush_once()
            took = time.perf_counter() - started
            rows = await pool.fetchval("SELECT count(*) FROM article_hourly")
            await pool.execute(EMPTY_TABLES)
        print(
            f"flush of {result.events:,} events on 1,000 articles: {took:.3f} s, "
            f"{result.counters:,} counters, {rows:,} hourly rows; Redis held "
            f"{held / 2**20:.1f} MiB ({held / max(result.counters, 1):.0f} B per counter)"
        )


async def fill(
    redis: RedisClient, keys: Keys, counters: int, kind: str, *, articles: int | None = None
) -> int:
    """`counters` distinct dirty hourly counters: shares over 11 channels, or views (each
    view also dirties its article's reader sketch)."""
    now = time.time()
    entries = []
    for n in range(counters):
        visitor = Visitor(reader=n.to_bytes(16, "big"), agent=READER)
        if kind == "views":
            event = Event(type="view", article_id=f"bench/a{n}")
        else:
            channel = CHANNELS[n % len(CHANNELS)]
            article = n // len(CHANNELS) if articles is None else n // len(CHANNELS) % articles
            event = Event(type="share", article_id=f"bench/a{article}", channel=channel)
        entries.append((event, visitor))
    settings = Settings(dedup_window_s=0, rate_limit_per_min=0, flush_max_batch_fields=10_000_000)
    recorder = Recorder(redis, keys, settings)
    for start in range(0, len(entries), 5_000):
        await recorder.record([entries[start : start + 5_000]], now)
    return counters


async def soak(args: argparse.Namespace) -> None:
    """Send `--events` events in batches of 100 to a running tracker; watch its RSS and
    Redis' memory. De-duplication runs with a 60 s window, so that what it keeps in Redis
    (one key per reader, article and metric in the window) reaches its plateau in the run."""
    wrk = ensure_wrk()
    port = free_port()
    prefix = "bench-soak-" + secrets.token_hex(4)
    env = {**tracker_env(args, port, prefix), "TRACKER_DEDUP_WINDOW": "60"}
    redis = Redis.from_url(args.redis_url)
    baseline = int((await redis.info("memory"))["used_memory"])
    command = [sys.executable, "-m", "tracker", "serve"]
    samples: list[tuple[float, int, int, int]] = []
    try:
        with server("tracker-soak", command, port, env):
            tracker = _tracker_process(port)
            sent = 0
            started = time.monotonic()
            workload = WORKLOADS["batch100"]
            while sent < args.events:
                result = run_wrk(wrk, port, workload, 10, args.connections)
                sent += int(result.rps * 10 * workload.events)
                memory = int((await redis.info("memory"))["used_memory"]) - baseline
                rss = tracker.memory_info().rss
                samples.append((time.monotonic() - started, sent, rss, memory))
                print(
                    f"{samples[-1][0]:6.0f} s  {sent:>12,} events  tracker RSS "
                    f"{rss / 2**20:7.1f} MiB  Redis +{memory / 2**20:7.1f} MiB  "
                    f"({result.rps * 100:,.0f} events/s, non-2xx {result.non_2xx})",
                    flush=True,
                )
            flood_rss = random_id_flood(wrk, port, args, tracker)
    finally:
        async for key in redis.scan_iter(match=f"{prefix}:*", count=5000):
            await redis.delete(key)
        await redis.aclose()
    warm = [s for s in samples if s[0] >= samples[-1][0] * 0.2] or samples
    warm_rss = [s[2] for s in warm]
    mid = sorted(warm_rss)[len(warm_rss) // 2]
    low, high = min(warm_rss), max(warm_rss)
    print(
        f"after warm-up: tracker RSS {low / 2**20:.1f}-{high / 2**20:.1f} MiB "
        f"({(high - mid) / mid:+.1%} / {(low - mid) / mid:+.1%} around the median); "
        f"Redis +{min(s[3] for s in warm) / 2**20:.0f}-{max(s[3] for s in warm) / 2**20:.0f} MiB"
    )
    print(
        f"random-id flood: tracker RSS {flood_rss[0] / 2**20:.1f} MiB before, "
        f"{max(flood_rss) / 2**20:.1f} MiB at most, {flood_rss[-1] / 2**20:.1f} MiB after"
    )


def random_id_flood(
    wrk: str, port: int, args: argparse.Namespace, tracker: psutil.Process
) -> list[int]:
    """Listing reads of 100 random ids each (nearly all unknown), as a client filling the
    stats cache on purpose would send: the cache must stay within its bound."""
    flood = Workload("random-ids", "stats.lua", {"IDS": "100", "ARTICLES": "1000000000"})
    rss = [tracker.memory_info().rss]
    for _ in range(6):
        result = run_wrk(wrk, port, flood, 10, args.connections)
        rss.append(tracker.memory_info().rss)
        print(
            f"random ids: {result.rps * 100:,.0f} ids/s  tracker RSS {rss[-1] / 2**20:7.1f} MiB",
            flush=True,
        )
    return rss


def _tracker_process(port: int) -> psutil.Process:
    for connection in psutil.net_connections("tcp"):
        address = connection.laddr
        listening = connection.status == "LISTEN" and connection.pid is not None
        if listening and address and address[1] == port and connection.pid is not None:
            return psutil.Process(connection.pid)
    raise RuntimeError("tracker's process not found")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy not found: pip install -e '.[bench]'")
    return found


def profile(args: argparse.Namespace) -> None:
    """py-spy record of tracker under one workload (`--workload`, uniform by default):
    the time of each function's own, and with what it calls (inclusive)."""
    wrk = ensure_wrk()
    out = ROOT / "artifacts"
    out.mkdir(exist_ok=True)
    port = free_port()
    prefix = "bench-profile-" + secrets.token_hex(4)
    command = [sys.executable, "-m", "tracker", "serve"]
    raw = out / "profile.txt"
    try:
        with server("tracker-profile", command, port, tracker_env(args, port, prefix)):
            pid = _tracker_process(port).pid
            workload = WORKLOADS[args.workload]
            if workload.script != "post.lua":  # something to read: one uniform run first
                run_wrk(wrk, port, WORKLOADS["uniform"], 3, args.connections)
                wait_drained(port)
            load = subprocess.Popen(
                pinned("1", [wrk, "-t1", f"-c{args.connections}", f"-d{args.seconds + 4:.0f}s",
                             "-s", str(WRK_DIR / workload.script), f"http://127.0.0.1:{port}"]),
                env={**os.environ, **workload.env},
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(2)
            # Non-blocking: a stopped process stops at its next system call, which drew
            # the samples to them (getpid, made by asyncio.get_running_loop: 20 %).
            subprocess.run(
                [py_spy(), "record", "--nonblocking", "-p", str(pid), "-d",
                 f"{args.seconds:.0f}", "-r", "250", "-f", "raw", "-o", str(raw)],
                check=True, capture_output=True,
            )  # fmt: skip
            subprocess.run(
                [py_spy(), "record", "--nonblocking", "-p", str(pid), "-d", "3",
                 "-o", str(out / "profile.svg")],
                check=False, capture_output=True,
            )  # fmt: skip
            load.wait()
    finally:
        cleanup_redis(args.redis_url, prefix)
    summarize(raw)


def summarize(raw: Path) -> None:
    from collections import Counter

    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        total += int(samples)
        frames = stack.split(";")
        own[frames[-1]] += int(samples)
        # A function counted once per stack however deep it recurses; named without
        # its line, so that its samples at different lines add up.
        for name in {frame.split(":")[0] + ")" for frame in frames if "(" in frame}:
            inclusive[name] += int(samples)
    print(f"{total} samples; most time of its own:")
    for frame, count in own.most_common(20):
        print(f"{100 * count / total:5.1f}%  {frame}")
    print("most time with what it calls:")
    for frame, count in inclusive.most_common(45):
        print(f"{100 * count / total:5.1f}%  {frame}")
