"""The HTTP table: tracker against a bare aiohttp ceiling and three simpler designs, in
interleaved rounds."""

from __future__ import annotations

import argparse
import secrets
import statistics
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
        "script-redis": ([py, "-m", "bench.script_redis", str(port), args.redis_url], {}),
        "naive-pg": ([py, "-m", "bench.naive_pg", str(port), args.database_url], {}),
        "tracker": (tracker_command, tracker_env(args, port, prefix)),
    }


def http(args: argparse.Namespace) -> None:
    with bench_database(args.database_url) as url:
        http_runs(argparse.Namespace(**{**vars(args), "database_url": url}))


PLAN: dict[str, tuple[str, ...]] = {
    "ceiling": POST_WORKLOADS + READ_WORKLOADS,
    "naive-redis": POST_WORKLOADS,
    "script-redis": POST_WORKLOADS,
    "naive-pg": POST_WORKLOADS,
    "tracker": POST_WORKLOADS + READ_WORKLOADS,
}


def http_runs(args: argparse.Namespace) -> None:
    """Rounds interleaved (every server once per round, in turn), so that a machine
    whose speed drifts moves all of them alike; the table gives each figure's median."""
    wrk = ensure_wrk()
    prefix = "bench-" + secrets.token_hex(4)
    results: list[Result] = []
    only = set(args.only.split(",")) if args.only else None
    wanted = set(args.workloads.split(",")) if args.workloads else None
    try:
        for round_number in range(1, args.rounds + 1):
            for name, workloads in PLAN.items():
                if only and name not in only:
                    continue
                if wanted is not None:
                    workloads = tuple(w for w in workloads if w in wanted)
                if workloads:
                    results += _one_server(args, wrk, name, workloads, prefix, round_number)
    finally:
        cleanup_redis(args.redis_url, prefix)
    print_table(results, args)


def _one_server(
    args: argparse.Namespace,
    wrk: str,
    name: str,
    workloads: tuple[str, ...],
    prefix: str,
    round_number: int,
) -> list[Result]:
    results = []
    port = free_port()
    command, env = servers(args, port, prefix)[name]
    # N workers get N cores (the last shared with wrk: this is a two-core machine).
    cores = f"0-{args.workers - 1}" if name == "tracker" and args.workers > 1 else "0"
    with server(name, command, port, env, cores=cores):
        for workload_name in workloads:
            if name == "tracker" and workload_name == READ_WORKLOADS[0]:
                took = wait_drained(port)
                print(f"tracker      flushed what ingest left in {took:.1f} s", file=sys.stderr)
            workload = WORKLOADS[workload_name]
            if args.warmup > 0:
                run_wrk(wrk, port, workload, args.warmup, args.connections)
            result = run_wrk(wrk, port, workload, args.seconds, args.connections)
            result.server = name
            result.round_number = round_number
            results.append(result)
            print(
                f"round {round_number} {name:12} {workload.name:9} {result.rps:10.0f} rps "
                f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                f"non-2xx {result.non_2xx}",
                file=sys.stderr,
            )
    return results


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_table(results: list[Result], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    rounds = max((r.round_number for r in results), default=1)
    by: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        by.setdefault((r.server, r.workload), []).append(r)
    table = Table(
        title=f"wrk -t1 -c{args.connections} -d{args.seconds:g}s; server on core 0, wrk on core 1;"
        f" median of {rounds} interleaved round(s)"
    )
    for column in ("server", "workload", "req/s", "events/s", "p50 ms", "p99 ms", "non-2xx"):
        table.add_column(column, justify="left" if column in ("server", "workload") else "right")
    for (server_name, workload), runs in by.items():
        table.add_row(
            server_name, workload,
            f"{_median([r.rps for r in runs]):,.0f}",
            f"{_median([r.events_per_s for r in runs]):,.0f}",
            f"{_median([r.p50_ms for r in runs]):.2f}",
            f"{_median([r.p99_ms for r in runs]):.2f}",
            str(sum(r.non_2xx + r.errors for r in runs)),
        )  # fmt: skip
    console = Console(width=120)
    console.print(table)
    peers = ("naive-redis", "script-redis", "naive-pg")
    ratios = Table(
        title="ratios within each round, their median (req/s against the ceiling on the same"
        " workload; p99 against its p99; req/s against each peer)"
    )
    for column in (
        "server",
        "workload",
        "x ceiling rps",
        "x ceiling p99",
        *(f"x {p}" for p in peers),
    ):
        ratios.add_column(column, justify="left" if column in ("server", "workload") else "right")
    within = {(r.server, r.workload, r.round_number): r for r in results}
    for (server_name, workload), runs in by.items():
        if server_name == "ceiling":
            continue
        cells = []
        for base_name in ("ceiling", "ceiling-p99", *peers):
            if base_name != "ceiling" and base_name != "ceiling-p99" and server_name != "tracker":
                cells.append("")
                continue
            values = []
            for r in runs:
                base = within.get((base_name.removesuffix("-p99"), workload, r.round_number))
                if base is not None:
                    mine, theirs = (
                        (r.p99_ms, base.p99_ms) if base_name == "ceiling-p99" else (r.rps, base.rps)
                    )
                    values.append(mine / theirs)
            cells.append(f"{_median(values):.2f}" if values else "")
        ratios.add_row(server_name, workload, *cells)
    console.print(ratios)
