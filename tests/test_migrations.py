"""Migrations: in order, recorded, idempotent, and safe from two processes at once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg

from tracker.pg import migrations


async def tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


async def test_migrate_twice_applies_once(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        first = await migrations.migrate(conn)
        second = await migrations.migrate(conn)
        versions = await migrations.schema_versions(conn)
    finally:
        await conn.close()

    assert first == [m.version for m in migrations.load_migrations()]
    assert second == []
    assert [v for v, _ in versions] == first
    assert {"article_hourly", "article_totals", "articles", "applied_batches"} <= await tables(
        database_url
    )


async def test_concurrent_migrations_apply_each_version_once(database_url: str) -> None:
    conns = [await asyncpg.connect(database_url) for _ in range(6)]
    try:
        results = await asyncio.gather(*(migrations.migrate(c) for c in conns))
        versions = await migrations.schema_versions(conns[0])
    finally:
        for conn in conns:
            await conn.close()

    applied = [v for result in results for v in result]
    assert sorted(applied) == [m.version for m in migrations.load_migrations()]
    assert len(versions) == len(migrations.load_migrations())


def test_migrate_command_from_two_processes_at_once(database_url: str, redis_url: str) -> None:
    env = {
        **os.environ,
        "TRACKER_DATABASE_URL": database_url,
        "TRACKER_REDIS_URL": redis_url,
        "TRACKER_LOG_LEVEL": "warning",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tracker", "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], outputs
    for stdout, _ in outputs:
        assert "schema up to date" in stdout
        assert "0001_init" in stdout


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [m.version for m in migrations.load_migrations()]
    assert versions == list(range(1, len(versions) + 1))
