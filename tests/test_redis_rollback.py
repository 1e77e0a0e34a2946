"""A Redis that comes back older than it was (an AOF everysec crash, a failover to a
lagging replica) never makes tracker reuse a batch id: events acknowledged after the
restore are never lost, and what is counted twice is only what Redis itself lost, and is
reported. Where Redis can promise a claim (a replica, WAIT), it is promised before it is
applied."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import wait_until
from tests.helpers import Client, MakeClient, post_events, sample, stats, view
from tracker.core.errors import RedisUnavailable
from tracker.core.settings import Settings
from tracker.flush.loop import FlushResult
from tracker.ops.embedded import EmbeddedRedis, free_port, redis_answers, redis_server_binary
from tracker.web.app_keys import SERVICES

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
KEPT_FILES = ("redis.pid", "redis.port", "redis.log")


def snapshot(server: EmbeddedRedis, into: Path) -> None:
    """Redis's files as they are now (the server stopped, so its AOF is complete)."""
    port = server.port
    server.stop()
    shutil.copytree(server.directory, into, ignore=shutil.ignore_patterns(*KEPT_FILES))
    server.start(port=port)


def restore(server: EmbeddedRedis, snapshot_dir: Path) -> None:
    """Redis restarted from the older files, as after a crash or a failover."""
    port = server.port
    server.stop()
    for path in server.directory.iterdir():
        if path.name not in KEPT_FILES:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.copytree(snapshot_dir, server.directory, dirs_exist_ok=True)
    server.start(port=port)


async def stored_views(settings: Settings, article_id: str) -> int:
    conn = await asyncpg.connect(settings.database_url)
    try:
        total = await conn.fetchval(
            "SELECT count FROM article_totals WHERE article_id = $1 AND metric = 'view'",
            article_id,
        )
    finally:
        await conn.close()
    return int(total or 0)


async def post_until_stored(client: Client, article_id: str, n: int) -> None:
    """n views, each retried while the client's pooled connections still point at the
    Redis that was stopped (each of those answers 503 once, storing nothing)."""
    for _ in range(n):
        for _ in range(5):
            if await post_events(client, view(article_id)) == 202:
                break
        else:
            pytest.fail("Redis did not come back")


async def flush_until_done(client: Client) -> FlushResult:
    for _ in range(10):
        try:
            return await client.app[SERVICES].flusher.flush_once()
        except RedisUnavailable:
            await asyncio.sleep(0.1)
    pytest.fail("the flush kept failing")


async def test_events_after_a_restored_older_redis_are_never_lost(
    settings: Settings, make_client: MakeClient, own_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    """Before: 9 flushed, Redis rolled back, 6 more acknowledged: PostgreSQL kept 9."""
    client = await make_client(settings.with_overrides(redis_url=own_redis.url))
    await post_until_stored(client, "rb", 3)
    assert (await flush_until_done(client)).batches == 1  # the shard's epoch is set
    await post_until_stored(client, "rb", 9)
    snapshot(own_redis, tmp_path / "older")
    assert (await flush_until_done(client)).batches == 1
    assert await stored_views(settings, "rb") == 12

    restore(own_redis, tmp_path / "older")  # the claim of those 9 is lost
    await post_until_stored(client, "rb", 6)
    await flush_until_done(client)

    stored = await stored_views(settings, "rb")
    print(f"after the rollback: {stored} stored for 18 acknowledged (9 of them twice)")
    # Nothing acknowledged is lost; counted twice: only the 9 whose claim Redis lost.
    assert stored == 12 + 15
    assert sample(client, "tracker_redis_rollbacks_total") == 1
    assert (await stats(client, "rb"))["views"] == stored

    # Ids move on from there: later batches are applied, not skipped.
    await post_until_stored(client, "rb", 2)
    assert (await flush_until_done(client)).batches == 1
    assert await stored_views(settings, "rb") == stored + 2


@pytest.fixture
def replica(own_redis: EmbeddedRedis, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A replica of the test's own Redis."""
    port = free_port()
    directory = tmp_path / "replica"
    directory.mkdir()
    process = subprocess.Popen(
        [
            str(redis_server_binary()),
            "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
            "--save", "", "--appendonly", "no",
            "--replicaof", "127.0.0.1", str(own_redis.port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            if redis_answers(port):
                break
            subprocess.run(["sleep", "0.05"], check=True)
        yield process
    finally:
        process.send_signal(signal.SIGCONT)
        process.terminate()
        process.wait(10)


async def test_a_redis_that_lost_everything_is_reported(
    settings: Settings, make_client: MakeClient, own_redis: EmbeddedRedis
) -> None:
    client = await make_client(settings.with_overrides(redis_url=own_redis.url))
    await post_until_stored(client, "lost", 2)
    assert (await flush_until_done(client)).batches == 1

    await client.app[SERVICES].flusher.batches.redis.flushall()  # a new, empty Redis
    await post_until_stored(client, "lost", 1)
    await flush_until_done(client)

    assert await stored_views(settings, "lost") == 3
    assert sample(client, "tracker_redis_rollbacks_total") == 1


async def test_a_claim_waits_for_a_replica_before_it_is_applied(
    settings: Settings,
    make_client: MakeClient,
    own_redis: EmbeddedRedis,
    replica: subprocess.Popen[bytes],
) -> None:
    client = await make_client(
        settings.with_overrides(redis_url=own_redis.url, redis_timeout_s=1.0)
    )
    redis = client.app[SERVICES].flusher.batches.redis

    async def replica_connected() -> bool:
        return int((await redis.info("replication"))["connected_slaves"]) == 1

    await wait_until(replica_connected, timeout_s=10)
    await post_events(client, view("wait"), view("wait"))
    assert (await client.app[SERVICES].flusher.flush_once()).batches == 1

    # A replica that does not answer: the claim is not promised, so it is not applied.
    replica.send_signal(signal.SIGSTOP)
    await post_events(client, view("wait"))
    with pytest.raises(RedisUnavailable, match="not durable"):
        await client.app[SERVICES].flusher.flush_once()
    assert await stored_views(settings, "wait") == 2
    assert (await stats(client, "wait"))["views"] == 3

    replica.send_signal(signal.SIGCONT)
    result = await client.app[SERVICES].flusher.flush_once()
    assert result.batches == 1  # the same batch, resumed
    assert await stored_views(settings, "wait") == 3
