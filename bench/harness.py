"""What the bench modes share: workloads, wrk runs, servers pinned to a core, a database
and a key prefix of the bench's own."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tracker.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
WRK_DIR = Path(__file__).resolve().parent / "wrk"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/test"
# Every table a flush writes, emptied between two measured flushes (shard_generations
# too: a new prefix's batches would otherwise look like a Redis that came back older).
EMPTY_TABLES = (
    "TRUNCATE article_hourly, article_totals, articles, applied_batches,"
    " article_daily_uniques, article_daily, shard_generations"
)
SERVER_CORE = "0"
LOAD_CORE = "1"


@dataclass
class Result:
    server: str
    workload: str
    rps: float
    events_per_request: int
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int
    round_number: int = 1

    @property
    def events_per_s(self) -> float:
        return self.rps * self.events_per_request


@dataclass(frozen=True)
class Workload:
    name: str
    script: str
    env: dict[str, str]
    events: int = 1  # events per request


WORKLOADS = {
    "uniform": Workload("uniform", "post.lua", {"ARTICLES": "1000", "BATCH": "1"}),
    "hot": Workload("hot", "post.lua", {"ARTICLES": "1", "BATCH": "1"}),
    "batch100": Workload("batch100", "post.lua", {"ARTICLES": "1000", "BATCH": "100"}, 100),
    "stats": Workload("stats", "stats.lua", {"IDS": "1"}),
    "stats100": Workload("stats100", "stats.lua", {"IDS": "100"}),
    # The public most-read list, as its widget asks for it (answered from the cache).
    "popular": Workload("popular", "get.lua", {"PATH_WANTED": "/api/v1/popular"}),
}
POST_WORKLOADS = ("uniform", "hot", "batch100")
READ_WORKLOADS = ("stats", "stats100", "popular")


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing it with apt-get", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    return shutil.which("wrk") or "wrk"


def pinned(core: str, command: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", core, *command]
    return command


@contextlib.contextmanager
def server(
    name: str, command: list[str], port: int, env: dict[str, str], *, cores: str = SERVER_CORE
) -> Iterator[None]:
    log = ROOT / "artifacts" / f"bench-{name}.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            pinned(cores, command),
            env={**os.environ, **env},
            stdout=out,
            stderr=out,
            cwd=ROOT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start; see {log}") from None
                time.sleep(0.1)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(wrk: str, port: int, workload: Workload, seconds: float, connections: int) -> Result:
    command = pinned(
        LOAD_CORE,
        [
            wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
            "-s", str(WRK_DIR / workload.script), f"http://127.0.0.1:{port}",
        ],
    )  # fmt: skip
    out = subprocess.run(
        command, env={**os.environ, **workload.env}, capture_output=True, text=True, check=True
    ).stdout
    # wrk's own output, every run: the figures' source (artifacts/wrk-raw.txt, or the
    # file TRACKER_BENCH_RAW names).
    raw = Path(os.environ.get("TRACKER_BENCH_RAW") or ROOT / "artifacts" / "wrk-raw.txt")
    raw.parent.mkdir(parents=True, exist_ok=True)
    with raw.open("a") as log:
        log.write(
            f"$ {' '.join(f'{k}={v}' for k, v in workload.env.items())} {' '.join(command)}\n"
        )
        log.write(out + "\n")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latencies = {p: float(v) * _UNITS[u] for p, v, u in _LATENCY.findall(out)}
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Result(
        server="",
        workload=workload.name,
        rps=rps,
        events_per_request=workload.events,
        p50_ms=latencies.get("50", float("nan")),
        p99_ms=latencies.get("99", float("nan")),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        errors=sum(int(g) for g in errors.groups()) if errors else 0,
    )


def wait_drained(port: int, *, timeout_s: float = 120.0) -> float:
    """Wait until tracker's flusher has moved everything to PostgreSQL (its
    tracker_pending_events gauge, read at each scrape, is 0); returns the seconds it took.
    Reads are timed after it, not while a flush of the ingest workloads runs beside them."""
    started = time.monotonic()
    pending = re.compile(rb"^tracker_pending_events ([\d.e+]+)$", re.MULTILINE)
    while time.monotonic() - started < timeout_s:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            found = pending.search(answer.read())
        if found is None or float(found.group(1)) == 0:
            break
        time.sleep(0.5)
    return time.monotonic() - started


def tracker_env(args: argparse.Namespace, port: int, prefix: str) -> dict[str, str]:
    """tracker behind a trusted proxy (wrk sends a new X-Forwarded-For per request, so
    every request is a new reader), de-duplication on."""
    settings = Settings(
        redis_url=args.redis_url,
        database_url=args.database_url,
        redis_prefix=prefix,
        port=port,
        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
        log_level="WARNING",
    )
    return settings.as_env()


def cleanup_redis(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=5000))
    for start in range(0, len(keys), 5000):
        client.delete(*keys[start : start + 5000])
    client.delete("naive:counts")
    client.close()


@contextlib.contextmanager
def bench_database(admin_url: str) -> Iterator[str]:
    """A database of the bench's own, dropped afterwards."""
    import asyncpg

    name = "tracker_bench_" + secrets.token_hex(4)

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
