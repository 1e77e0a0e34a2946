"""Storage for reports: hourly buckets in monthly partitions created ahead and dropped
whole past retention with every daily and all-time total unchanged; and a database made
by the previous version upgraded in place, its data moved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tests.helpers import Client, Clock, MakeClient, flush, post_events, view
from tracker.core.settings import Settings
from tracker.pg import migrations
from tracker.pg.store import Store
from tracker.web.app_keys import SERVICES

pytestmark = [pytest.mark.timeout(120)]


async def fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


def months_ahead(n: int) -> datetime:
    now = datetime.now(tz=UTC)
    month = now.month - 1 + n
    return datetime(now.year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


async def partitions(url: str) -> list[str]:
    rows = await fetch(
        url,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'article_hourly' ORDER BY 1",
    )
    return [row["relname"] for row in rows]


async def test_old_partitions_are_dropped_whole_and_every_total_stays(
    settings: Settings, make_client: MakeClient
) -> None:
    """Four months of data; retention of 40 days drops the months entirely older."""
    first = months_ahead(2)
    clock = Clock(first.timestamp())
    client = await make_client(settings.with_overrides(rate_limit_per_min=0), clock=clock)
    moments = [first + timedelta(days=d, hours=3) for d in range(0, 120, 9)]
    for n, moment in enumerate(moments):
        clock.now = moment.timestamp()
        await post_events(client, *[view(f"ret/{n % 3}")] * (n + 1))
        await flush(client)  # each month's partition created as its rows come

    # Every day rolled up, the last one included (the flusher's upkeep does it once a day
    # has ended): the daily rows hold all, and stay when the hours go.
    store: Store = client.app[SERVICES].flusher.store
    clock.now = moments[-1].timestamp() + 2 * 86_400
    assert len((await store.roll_up()).days) >= 100
    daily_sql = "SELECT article_id, metric, day, count FROM article_daily ORDER BY 1, 2, 3"
    totals_sql = "SELECT article_id, metric, count FROM article_totals ORDER BY 1, 2"
    daily, totals = (
        await fetch(settings.database_url or "", daily_sql),
        await fetch(settings.database_url or "", totals_sql),
    )
    hourly_sum = await fetch(
        settings.database_url or "", "SELECT sum(count) AS n FROM article_hourly"
    )
    before = await partitions(settings.database_url or "")

    dropped = await store.prune(
        applied_batch_days=30, hourly_days=40, now_s=moments[-1].timestamp()
    )

    after = await partitions(settings.database_url or "")
    print(f"partitions {before} -> {after}; dropped {dropped}")
    assert dropped
    assert set(dropped) == set(before) - set(after)
    cutoff = moments[-1] - timedelta(days=40)
    for name in dropped:  # whole months, all of them older than retention
        month = datetime.strptime(name.removeprefix("article_hourly_"), "%Y%m").replace(tzinfo=UTC)
        assert (month + timedelta(days=31)).replace(day=1) <= cutoff
    assert await fetch(settings.database_url or "", daily_sql) == daily
    assert await fetch(settings.database_url or "", totals_sql) == totals
    remaining = await fetch(
        settings.database_url or "", "SELECT sum(count) AS n FROM article_hourly"
    )
    assert remaining[0]["n"] < hourly_sum[0]["n"]
    assert (
        sum(row["count"] for row in daily)
        == sum(row["count"] for row in totals)
        == sum(range(1, len(moments) + 1))
    )


async def test_partitions_for_the_coming_months_are_made_ahead(
    settings: Settings, client: Client
) -> None:
    await client.app[SERVICES].flusher.store.prune(applied_batch_days=30, hourly_days=90)
    names = await partitions(settings.database_url or "")
    for n in range(3):
        assert f"article_hourly_{months_ahead(n):%Y%m}" in names


async def test_a_database_of_the_previous_version_is_upgraded_with_its_data(
    settings: Settings,
) -> None:
    url = settings.database_url or ""
    conn = await asyncpg.connect(url)
    try:
        # The previous version: migrations up to 0005, and data as its flusher wrote it.
        await conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in migrations.load_migrations():
            if migration.version <= 5:
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
        await conn.execute(
            """
            INSERT INTO article_hourly (article_id, metric, hour, count) VALUES
              ('old/1', 'view', '2026-09-30 22:00Z', 3),
              ('old/1', 'view', '2026-10-01 01:00Z', 4),
              ('old/1', 'share:vk', '2026-10-01 01:00Z', 1),
              ('old/2', 'view', '2026-11-02 10:00Z', 5);
            INSERT INTO article_totals (article_id, metric, count) VALUES
              ('old/1', 'view', 7), ('old/1', 'share:vk', 1), ('old/2', 'view', 5);
            INSERT INTO articles (article_id, title, first_seen) VALUES
              ('old/1', 'Old one', '2026-09-30 21:30Z');
            """
        )
        applied = await migrations.migrate(conn)
        hourly = await conn.fetch(
            "SELECT article_id, metric, hour, count FROM article_hourly ORDER BY 1, 2, 3"
        )
        daily = await conn.fetch(
            "SELECT article_id, metric, day::text, count FROM article_daily ORDER BY 1, 2, 3"
        )
        articles = await conn.fetch("SELECT article_id, title, published FROM articles ORDER BY 1")
        kind = await conn.fetchval("SELECT relkind FROM pg_class WHERE relname = 'article_hourly'")
    finally:
        await conn.close()

    assert applied == [m.version for m in migrations.load_migrations() if m.version > 5]
    assert kind == b"p"  # partitioned
    assert [(r["article_id"], r["metric"], r["count"]) for r in hourly] == [
        ("old/1", "share:vk", 1), ("old/1", "view", 3), ("old/1", "view", 4), ("old/2", "view", 5),
    ]  # fmt: skip
    assert [tuple(r) for r in daily] == [
        ("old/1", "share:vk", "2026-10-01", 1),
        ("old/1", "view", "2026-09-30", 3),
        ("old/1", "view", "2026-10-01", 4),
        ("old/2", "view", "2026-11-02", 5),
    ]
    assert [r["article_id"] for r in articles] == ["old/1", "old/2"]
    assert articles[0]["published"] == datetime(2026, 9, 30, 21, 30, tzinfo=UTC)
