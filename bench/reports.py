"""python -m bench reports: the editors' reports on a seeded history of 5,000 articles over
90 days (about 10 million hourly rows, with their daily roll-ups and reader counts), and
the public most-read endpoint against the bare aiohttp ceiling."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import asyncpg
from redis.asyncio import Redis

from bench.harness import Workload, cleanup_redis, ensure_wrk, run_wrk, server, tracker_env
from tracker.core.periods import period_of
from tracker.ops.embedded import free_port
from tracker.pg import db, migrations
from tracker.redis_side.keys import Keys
from tracker.redis_side.pending import PendingReader
from tracker.reports.metric import metric_of
from tracker.reports.popular import Reports
from tracker.reports.rows import PopularQuery

ARTICLES = 5_000
DAYS = 90
CATEGORIES = ("politics", "world", "sport", "culture", "business", "science", "local")

# The history, written by PostgreSQL itself: each article gets views in the hours after
# its publication (a lead story's thousands, the tail's handful: Zipf-like by rank),
# shares on two channels, and a few referrals.
SEED_SQL = """
INSERT INTO articles (article_id, title, url, category, lang, author, published, first_seen)
SELECT 'bench/' || n, 'Story ' || n, 'https://news.example/bench/' || n,
       (ARRAY['politics','world','sport','culture','business','science','local'])[1 + n % 7],
       CASE WHEN n % 4 = 0 THEN 'de' ELSE 'en' END, 'author-' || (n % 50),
       date_trunc('hour', now()) - make_interval(hours => (n * 431) % ($1 * 24)),
       date_trunc('hour', now()) - make_interval(hours => (n * 431) % ($1 * 24))
FROM generate_series(1, $2) AS n;

INSERT INTO article_hourly (article_id, metric, hour, count)
SELECT a.article_id, m.metric, h.hour,
       greatest(1, (m.weight * 4000 / (1 + (a.n % 997)) ^ 1.1 / (1 + h.age / 6.0)))::bigint
FROM (SELECT article_id, published, substr(article_id, 7)::int AS n FROM articles) a
CROSS JOIN LATERAL (
    SELECT a.published + make_interval(hours => k) AS hour, k AS age
    FROM generate_series(0, 24 * 80) AS k
    WHERE k < 24 OR k % (1 + a.n % 5) = 0
) h
CROSS JOIN (VALUES ('view', 1.0), ('share:telegram', 0.05), ('share:facebook', 0.03),
                   ('referral:telegram', 0.02)) AS m (metric, weight)
WHERE h.hour < now()
ORDER BY h.hour;

INSERT INTO article_daily (article_id, metric, day, count)
SELECT article_id, metric, (hour AT TIME ZONE 'UTC')::date AS day, sum(count)
FROM article_hourly GROUP BY 1, 2, 3 ORDER BY day;

INSERT INTO article_totals (article_id, metric, count)
SELECT article_id, metric, sum(count) FROM article_daily GROUP BY 1, 2;

INSERT INTO article_daily_uniques (article_id, day, sketch, readers)
SELECT article_id, day, '\\x00'::bytea, (count * 0.7)::bigint
FROM article_daily WHERE metric = 'view' ORDER BY day;
"""

SETUP_TIMEOUT_S: Final = 3600.0
PLANS: dict[str, tuple[str, tuple[Any, ...]]] = {}


async def seed(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        await migrations.migrate(conn)
        # Partitions for the 90 days of history (the flusher makes them as rows come).
        from tracker.pg.store import Store

        now_hour = int(time.time() // 3600)
        await Store(pool).ensure_partitions({now_hour - h for h in range(0, DAYS * 24 + 48, 24)})
        started = time.perf_counter()
        # Set-up steps get an hour: the pool's command timeout is a request path's, a slower
        # machine seeds 10M rows in more than a minute, and asyncpg reads timeout=SETUP_TIMEOUT_S as
        # "the pool's timeout", not as none.
        seed_sql = SEED_SQL.replace("$1", str(DAYS)).replace("$2", str(ARTICLES))
        await conn.execute(seed_sql, timeout=SETUP_TIMEOUT_S)
        # The days seeded are rolled up (their daily rows are their hours' sums), and the
        # weeks that have ended are, as the flusher's upkeep does.
        await conn.execute(
            "INSERT INTO rolled_days SELECT DISTINCT day FROM article_daily"
            " WHERE day < (now() AT TIME ZONE 'UTC')::date",
            timeout=SETUP_TIMEOUT_S,
        )
        rolled_at = time.perf_counter()
        rolled = await Store(pool).roll_up()
        print(
            f"rolled up {len(rolled.weeks)} weeks in {time.perf_counter() - rolled_at:.1f} s",
            flush=True,
        )
        # What autovacuum does on a live database: statistics, and the visibility map that
        # lets the report queries read from their covering indexes alone.
        await conn.execute("VACUUM (ANALYZE)", timeout=SETUP_TIMEOUT_S)
        # The seeding's dirty pages written out now, not while the reports are timed.
        await conn.execute("CHECKPOINT", timeout=SETUP_TIMEOUT_S)
        rows = await conn.fetchval("SELECT count(*) FROM article_hourly", timeout=SETUP_TIMEOUT_S)
        print(f"seeded {rows:,} hourly rows in {time.perf_counter() - started:.0f} s", flush=True)
        return int(rows)


async def timed(name: str, runs: int, ask: Callable[[], Awaitable[Any]]) -> None:
    await ask()  # warm
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await ask()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[int(len(samples) * 0.95) - 1]
    print(f"{name:48} p50 {statistics.median(samples):7.1f} ms  p95 {p95:7.1f} ms", flush=True)


async def explain(pool: asyncpg.Pool, reports: Reports) -> None:
    """The plans of the ranking query, as BENCHMARKS.md shows them."""
    from tracker.pg import report_queries as rq
    from tracker.reports.data import period_args

    period = period_of("30d", None, None, time.time())
    async with pool.acquire() as conn:
        args = await period_args(conn, period, ("view",))
    for name, category in (("30 days, views", None), ("30 days, views, politics", "politics")):
        plan = await pool.fetch(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + rq.RANK,
            *args,
            category,  # then lang and author
            None,
            None,
            20,  # rows wanted
            False,  # by group
            False,  # verified articles only
        )
        print(f"\n--- EXPLAIN ANALYZE: {name}")
        for row in plan:
            print(row[0])


async def reports(args: argparse.Namespace) -> None:
    prefix = "bench-reports-" + secrets.token_hex(4)
    # The pool tracker itself opens (no parallel workers by default).
    pool = await db.open_pool(args.database_url, size=4, timeout_s=60)
    redis = Redis.from_url(args.redis_url)
    try:
        await seed(pool)
        keys = Keys(prefix, 1)
        reports = Reports(PendingReader(redis, keys), pool, time.time)

        def popular(
            period: str, metric: str = "views", **filters: Any
        ) -> Callable[[], Awaitable[Any]]:
            async def ask() -> Any:
                query = PopularQuery(
                    period_of(period, None, None, time.time()), metric_of(metric), **filters
                )
                return await reports.popular(query)

            return ask

        print(f"\nreports over {ARTICLES:,} articles, {DAYS} days (top 20, 50 runs each):")
        await timed("popular 30d by views", 50, popular("30d"))
        await timed(
            "popular 30d by views, category=politics", 50, popular("30d", category="politics")
        )
        await timed("popular 24h by views", 50, popular("24h"))
        await timed("popular 7d by shares", 50, popular("7d", "shares"))
        await timed("popular 7d by uniques", 50, popular("7d", "uniques"))
        await timed("popular 30d by views, grouped", 20, popular("30d", by_group=True))
        await explain(pool, reports)
        await most_read(args, prefix)
    finally:
        await pool.close()
        await redis.aclose()
        cleanup_redis(args.redis_url, prefix)


async def most_read(args: argparse.Namespace, prefix: str) -> None:
    """`GET /api/v1/popular` (cached 30 s per process) against the ceiling's stats answer."""
    wrk = ensure_wrk()
    path = {"PATH_WANTED": "/api/v1/popular?period=24h&limit=10"}
    workload = Workload("most-read", "get.lua", path)
    results = {}
    for name, command, env, load in (
        ("ceiling", [sys.executable, "-m", "bench.ceiling"], {}, workload),
        ("tracker", [sys.executable, "-m", "tracker", "serve"], None, workload),
    ):
        port = free_port()
        if name == "ceiling":
            command = [*command, str(port)]
        with server(
            name, command, port, env if env is not None else tracker_env(args, port, prefix)
        ):
            run_wrk(wrk, port, load, 2, args.connections)
            results[name] = run_wrk(wrk, port, load, args.seconds, args.connections)
    ratio = results["tracker"].rps / results["ceiling"].rps
    print(
        f"\nmost-read: tracker {results['tracker'].rps:,.0f} req/s, ceiling "
        f"{results['ceiling'].rps:,.0f} req/s: {ratio:.2f}x (p99 {results['tracker'].p99_ms:.1f} "
        f"vs {results['ceiling'].p99_ms:.1f} ms)"
    )


def main(args: argparse.Namespace) -> None:
    asyncio.run(reports(args))
