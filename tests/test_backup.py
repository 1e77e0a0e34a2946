"""Backup and restore as deploy/README.md tells them: pg_dump of a working database, a
restore into a fresh one, and the same totals, daily counts, reports and per-article
stats from the restored one (a tracker started on it answers as before)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import create_database, drop_database
from tests.helpers import MakeClient, flush, post_events, share, view
from tracker.core.settings import Settings

pytestmark = pytest.mark.slow

# What a restore must give back, table by table: an order-independent digest of each.
DIGESTS = {
    "article_totals": "SELECT article_id, metric, count FROM article_totals",
    "article_daily": "SELECT article_id, metric, day, count FROM article_daily",
    "article_hourly": "SELECT article_id, metric, hour, count FROM article_hourly",
    "article_daily_uniques": "SELECT article_id, day, sketch, readers FROM article_daily_uniques",
    "articles": "SELECT article_id, title, url, category, published FROM articles",
    "applied_batches": "SELECT batch_id, part, parts FROM applied_batches",
    "shard_generations": "SELECT * FROM shard_generations",
    "schema_migrations": "SELECT * FROM schema_migrations",
}


def client_tool(name: str, server_version: int) -> str:
    """pg_dump / pg_restore no older than the server (an older pg_dump refuses a newer
    server); skipped where there is none, failed on CI, which installs PostgreSQL."""
    path = shutil.which(name)
    if path is not None:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True)
        found = re.search(r"\(PostgreSQL\) (\d+)", out.stdout)
        if found and int(found.group(1)) >= server_version:
            return path
    reason = f"no {name} of PostgreSQL {server_version} or newer on this machine"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


async def digest(url: str) -> dict[str, list[tuple[object, ...]]]:
    conn = await asyncpg.connect(url)
    try:
        return {
            table: sorted(tuple(row) for row in await conn.fetch(query))
            for table, query in DIGESTS.items()
        }
    finally:
        await conn.close()


@pytest.fixture
async def restored_url(admin_database_url: str) -> AsyncIterator[str]:
    url = await create_database(admin_database_url)
    yield url
    await drop_database(admin_database_url, url)


async def test_a_dump_restored_into_a_fresh_database_answers_the_same(
    settings: Settings, make_client: MakeClient, restored_url: str, tmp_path: Path
) -> None:
    client = await make_client(settings)
    for n in range(20):
        assert await post_events(client, view(f"bk/{n % 4}", title=f"Story {n % 4}")) == 202
        assert await post_events(client, share(f"bk/{n % 3}", "telegram")) == 202
    await flush(client)
    before = await digest(settings.database_url)
    stats_before = await (await client.get("/api/v1/articles/stats?ids=bk/0,bk/1,bk/2")).json()
    conn = await asyncpg.connect(settings.database_url)
    server_version = conn.get_server_version().major
    await conn.close()
    dump = tmp_path / "tracker.dump"

    # The runbook's commands: a custom-format dump, restored into an empty database.
    await asyncio.to_thread(
        subprocess.run,
        [client_tool("pg_dump", server_version), "--format=custom", f"--file={dump}",
         settings.database_url],
        check=True,
        timeout=120,
    )  # fmt: skip
    await asyncio.to_thread(
        subprocess.run,
        [client_tool("pg_restore", server_version), "--no-owner", f"--dbname={restored_url}",
         str(dump)],
        check=True,
        timeout=120,
    )  # fmt: skip

    assert await digest(restored_url) == before
    assert sum(row[2] for row in before["article_totals"]) == 40  # type: ignore[misc]
    # A tracker started on the restored database (new Redis prefix: nothing pending)
    # answers the stats it answered before.
    restored = await make_client(
        settings.with_overrides(database_url=restored_url, redis_prefix=settings.redis_prefix + "r")
    )
    stats_after = await (await restored.get("/api/v1/articles/stats?ids=bk/0,bk/1,bk/2")).json()
    assert stats_after == stats_before
