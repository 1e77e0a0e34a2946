"""The HTTP table: tracker against a bare aiohttp ceiling and two naive designs."""

from __future__ import annotations

import argparse
import secrets
import sys

from bench.harness import (
    POST_WORKLOADS,
    READ_WORKLOADS,
    WORKLOADS,
    Result,
    bench_database,
    cleanup_redis,
    ensure_wrk,
    run_wrk,
    server,
    tracker_env,
    wait_drained,
)
from tracker.ops.embedded import free_port


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
            # N workers get N cores (the last shared with wrk: this is a two-core machine).
            cores = f"0-{args.workers - 1}" if name == "tracker" and args.workers > 1 else "0"
            with server(name, command, port, env, cores=cores):
                for workload_name in workloads:
                    if name == "tracker" and workload_name == READ_WORKLOADS[0]:
                        took = wait_drained(port)
                        print(f"tracker      flushed what ingest left in {took:.1f} s",
                              file=sys.stderr)  # fmt: skip
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
