"""python -m bench [http|flush|flush_scale|soak|profile|reports|cluster|record]: tracker
against a bare aiohttp ceiling and naive designs, in one run, each server pinned to core 0
and wrk on core 1; `record` the Redis time per event of recording.

Needs Redis and PostgreSQL (TRACKER_TEST_REDIS_URL / TRACKER_TEST_DATABASE_URL, default
127.0.0.1:6379 and :5432/test) and wrk (installed with apt-get when missing).
"""

from __future__ import annotations

import argparse
import asyncio
import os

from bench.harness import DEFAULT_DATABASE, DEFAULT_REDIS, bench_database


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "mode",
        nargs="?",
        default="http",
        choices=("http", "flush", "flush_scale", "soak", "profile", "reports", "cluster", "record"),
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured run before each")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workload", default="uniform", help="profile mode: what load")
    parser.add_argument("--rounds", type=int, default=3, help="http mode: interleaved rounds")
    parser.add_argument("--only", default="", help="comma list of servers to run")
    parser.add_argument("--workloads", default="", help="http mode: comma list of workloads")
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
        from bench.http_table import http

        http(args)
    else:
        from bench import cluster, modes, record_cost, reports

        special = {
            "reports": reports.reports,
            "cluster": cluster.cluster,
            "record": record_cost.record,
        }
        mode = special.get(args.mode) or getattr(modes, args.mode)
        with bench_database(args.database_url) as url:
            args.database_url = url
            if asyncio.iscoroutinefunction(mode):
                asyncio.run(mode(args))
            else:
                mode(args)


if __name__ == "__main__":
    main()
