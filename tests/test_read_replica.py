"""Stats and reports read from a PostgreSQL streaming replica (TRACKER_READ_DATABASE_URL)
that lags: a total never goes down, because the flusher deletes a batch from Redis only
once the replica has replayed it, and reads add what Redis holds to what the replica has
applied."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.helpers import MakeClient, flush, post_events, share, view
from tests.pg_replica import ReplicatedPostgres, start_replicated
from tracker.core.errors import DatabaseUnavailable
from tracker.core.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ARTICLES = [f"rr/{n}" for n in range(20)]


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[ReplicatedPostgres]:
    started = start_replicated(tmp_path / "pg")
    yield started
    started.stop()


async def _replay(replica_url: str, *, paused: bool) -> None:
    conn = await asyncpg.connect(replica_url)
    try:
        await conn.execute(f"SELECT pg_wal_replay_{'pause' if paused else 'resume'}()")
    finally:
        await conn.close()


async def test_totals_read_from_a_lagging_replica_never_go_down(
    settings: Settings, make_client: MakeClient, replicated: ReplicatedPostgres
) -> None:
    client = await make_client(
        settings.with_overrides(
            database_url=replicated.primary_url,
            read_database_url=replicated.replica_url,
            database_timeout_s=1.0,
        )
    )
    ids = ",".join(ARTICLES)
    sent = 0
    seen: list[int] = []

    async def total() -> int:
        response = await client.get("/api/v1/articles/stats", params={"ids": ids})
        assert response.status == 200, await response.text()
        body = await response.json()
        return sum(a["views"] + sum(a["shares"].values()) for a in body["articles"])

    for round_ in range(6):
        paused = round_ % 2 == 0
        await _replay(replicated.replica_url, paused=paused)
        for article in ARTICLES:
            assert await post_events(client, view(article), share(article, "telegram")) == 202
            sent += 2
        seen.append(await total())
        if paused:
            # The primary applies the batch; the replica does not replay it, so the
            # flusher keeps it in Redis and says so.
            with pytest.raises(DatabaseUnavailable, match="replica has not replayed"):
                await flush(client)
        else:
            result = await flush(client)
            assert result.batches >= 1
        seen.append(await total())
        assert seen[-1] == sent, (round_, seen)

    await _replay(replicated.replica_url, paused=False)
    await flush(client)
    for _ in range(50):
        seen.append(await total())
        await asyncio.sleep(0.02)
    assert seen == sorted(seen), seen
    assert seen[-1] == sent
    # Everything left Redis once the replica caught up; the primary holds all of it.
    conn = await asyncpg.connect(replicated.primary_url)
    try:
        stored = await conn.fetchval(
            "SELECT sum(count) FROM article_totals WHERE metric = 'view' OR metric LIKE 'share:%'"
        )
    finally:
        await conn.close()
    assert stored == sent
