"""python -m bench [http|flush|soak|profile]: tracker against a bare aiohttp ceiling and
naive designs, in one run, each server pinned to core 0 and wrk on core 1.

Needs Redis and PostgreSQL (TRACKER_TEST_REDIS_URL / TRACKER_TEST_DATABASE_URL, default
127.0.0.1:6379 and :5432/test) and wrk (installed with apt-get when missing).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

ROOT = Path(__file__).resolve().parent.parent
WRK_DIR = Path(__file__).resolve().parent / "wrk"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/test"
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
}
POST_WORKLOADS = ("uniform", "hot", "batch100")
READ_WORKLOADS = ("stats", "stats100")


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing it with apt-get", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    return shutil.which("wrk") or "wrk"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(core: str, command: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", core, *command]
    return command


@contextlib.contextmanager
def server(name: str, command: list[str], port: int, env: dict[str, str]) -> Iterator[None]:
    log = ROOT / "artifacts" / f"bench-{name}.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            pinned(SERVER_CORE, command),
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


def tracker_env(args: argparse.Namespace, port: int, prefix: str) -> dict[str, str]:
    return {
        "TRACKER_REDIS_URL": args.redis_url,
        "TRACKER_DATABASE_URL": args.database_url,
        "TRACKER_REDIS_PREFIX": prefix,
        "TRACKER_PORT": str(port),
        "TRACKER_TRUSTED_PROXIES": "127.0.0.1/32",
        "TRACKER_DEDUP_WINDOW": "1800",
        "TRACKER_LOG_LEVEL": "warning",
    }


def servers(
    args: argparse.Namespace, port: int, prefix: str
) -> dict[str, tuple[list[str], dict[str, str]]]:
    py = sys.executable
    tracker_command = [py, "-m", "tracker", "serve"]
    if args.workers > 1:
        tracker_command += ["--workers", str(args.workers)]
    return {
        "ceiling": ([py, "-m", "bench.ceiling", str(port)], {}),
        "naive-redis": ([py, "-m", "bench.naive_redis", str(port), args.redis_url], {}),
        "naive-pg": ([py, "-m", "bench.naive_pg", str(port), args.database_url], {}),
        "tracker": (tracker_command, tracker_env(args, port, prefix)),
    }


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


def http(args: argparse.Namespace) -> None:
    with bench_database(args.database_url) as url:
        http_runs(argparse.Namespace(**{**vars(args), "database_url": url}))


def http_runs(args: argparse.Namespace) -> None:
    wrk = ensure_wrk()
    prefix = "bench-" + secrets.token_hex(4)
    results: list[Result] = []
    plan = {
        "ceiling": POST_WORKLOADS + READ_WORKLOADS,
        "naive-redis": POST_WORKLOADS,
        "naive-pg": POST_WORKLOADS,
        "tracker": POST_WORKLOADS + READ_WORKLOADS,
    }
    only = set(args.only.split(",")) if args.only else None
    try:
        for name, workloads in plan.items():
            if only and name not in only:
                continue
            port = free_port()
            command, env = servers(args, port, prefix)[name]
            with server(name, command, port, env):
                for workload_name in workloads:
                    workload = WORKLOADS[workload_name]
                    if args.warmup > 0:
                        run_wrk(wrk, port, workload, args.warmup, args.connections)
                    result = run_wrk(wrk, port, workload, args.seconds, args.connections)
                    result.server = name
                    results.append(result)
                    print(
                        f"{name:12} {workload.name:9} {result.rps:10.0f} rps "
                        f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                        f"non-2xx {result.non_2xx}",
                        file=sys.stderr,
                    )
    finally:
        cleanup_redis(args.redis_url, prefix)
    print_table(results, args)


def print_table(results: list[Result], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    ceiling = {r.workload: r for r in results if r.server == "ceiling"}
    table = Table(
        title=f"wrk -t1 -c{args.connections} -d{args.seconds:g}s; server on core 0, wrk on core 1"
    )
    for column in ("server", "workload", "req/s", "events/s", "p50 ms", "p99 ms", "non-2xx"):
        table.add_column(column, justify="left" if column in ("server", "workload") else "right")
    for r in results:
        table.add_row(
            r.server, r.workload, f"{r.rps:,.0f}", f"{r.events_per_s:,.0f}",
            f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", str(r.non_2xx + r.errors),
        )  # fmt: skip
    console = Console(width=120)
    console.print(table)
    ratios = Table(
        title="ratios (req/s against the ceiling on the same workload; p99 against its p99)"
    )
    for column in (
        "server",
        "workload",
        "x ceiling rps",
        "x ceiling p99",
        "x naive-redis",
        "x naive-pg",
    ):
        ratios.add_column(column, justify="left" if column in ("server", "workload") else "right")
    by = {(r.server, r.workload): r for r in results}
    for r in results:
        if r.server == "ceiling" or r.workload not in ceiling:
            continue
        base = ceiling[r.workload]
        vs = []
        for naive in ("naive-redis", "naive-pg"):
            other = by.get((naive, r.workload))
            vs.append(f"{r.rps / other.rps:.2f}" if other and r.server == "tracker" else "")
        ratios.add_row(
            r.server, r.workload, f"{r.rps / base.rps:.2f}", f"{r.p99_ms / base.p99_ms:.2f}", *vs
        )
    console.print(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "mode", nargs="?", default="http", choices=("http", "flush", "soak", "profile")
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured run before each")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--only", default="", help="comma list of servers to run")
    parser.add_argument("--workers", type=int, default=1, help="tracker serve --workers")
    parser.add_argument("--counters", type=int, default=100_000, help="flush mode: dirty counters")
    parser.add_argument("--events", type=int, default=10_000_000, help="soak mode: events to send")
    parser.add_argument(
        "--redis-url", default=os.environ.get("TRACKER_TEST_REDIS_URL", DEFAULT_REDIS)
    )
    parser.add_argument(
        "--database-url", default=os.environ.get("TRACKER_TEST_DATABASE_URL", DEFAULT_DATABASE)
    )
    args = parser.parse_args()
    if args.mode == "http":
        http(args)
    else:
        from bench import modes

        mode = getattr(modes, args.mode)
        with bench_database(args.database_url) as url:
            args.database_url = url
            if asyncio.iscoroutinefunction(mode):
                asyncio.run(mode(args))
            else:
                mode(args)


if __name__ == "__main__":
    main()
