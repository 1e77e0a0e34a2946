"""Redis or Postgres away: what ingest, reads, readiness and the flusher do, and recovery.

Each test stops a server of its own (never the machine's shared ones)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.conftest import wait_until
from tests.helpers import Client, MakeClient, post_events, sample, stats, view
from tracker.core.settings import Settings
from tracker.ops.embedded import EmbeddedPostgres, EmbeddedRedis
from tracker.web.app_keys import METRICS, SERVICES

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def test_redis_down_gives_503_with_retry_after_then_recovers_without_restart(
    own_redis: EmbeddedRedis, settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings.with_overrides(redis_url=own_redis.url))
    assert await post_events(client, view("r1")) == 202
    port = own_redis.port

    await asyncio.to_thread(own_redis.stop)
    statuses = []
    for _ in range(5):
        response = await client.post("/api/v1/events", json=view("r1"))
        statuses.append(response.status)
        body = await response.json()
        assert response.headers["Retry-After"] == str(settings.retry_after_s)
        assert body["error"] == "unavailable"
        assert body["detail"]["dependency"] == "redis"
    ready = await client.get("/readyz")
    ready_body = await ready.json()
    serving = await client.get("/readyz/serving")

    await asyncio.to_thread(own_redis.start, port=port)
    recovered = await client.post("/api/v1/events", json=view("r1"))

    assert statuses == [503] * 5
    assert ready.status == 503
    assert ready_body["detail"]["redis"].startswith("unavailable")
    assert ready_body["detail"]["postgres"] == "ok"
    # Load balancers keep the instance: Redis' outage is every instance's, and reads of
    # what PostgreSQL holds go on.
    assert serving.status == 200
    assert recovered.status == 202
    # Only the two acknowledged views exist: the AOF kept the first one over the restart.
    assert (await stats(client, "r1"))["views"] == 2
    assert sample(client, "tracker_events_rejected_total", reason="unavailable") == 5


async def test_redis_killed_mid_run_never_acknowledges_what_it_did_not_store(
    own_redis: EmbeddedRedis, settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings.with_overrides(redis_url=own_redis.url))
    port = own_redis.port
    acknowledged = 0

    async def sender() -> None:
        nonlocal acknowledged
        for _ in range(300):
            response = await client.post("/api/v1/events", json=view("k1"))
            assert response.status in (202, 503)
            acknowledged += response.status == 202
            await asyncio.sleep(0.002)

    async def killer() -> None:
        await asyncio.sleep(0.2)
        await asyncio.to_thread(own_redis.kill)  # SIGKILL: no shutdown, AOF fsync=always
        await asyncio.sleep(0.2)
        await asyncio.to_thread(own_redis.start, port=port)

    await asyncio.gather(sender(), killer())

    assert 0 < acknowledged < 300
    stored = (await stats(client, "k1"))["views"]
    # Every 202 is stored. A kill can land after Redis ran the script and before its reply
    # left, so the one request in flight then may be stored yet answered 503 (never more:
    # the sender has one request in flight).
    assert acknowledged <= stored <= acknowledged + 1


async def test_postgres_down_ingest_still_accepted_flush_backs_off_and_catches_up(
    own_postgres: EmbeddedPostgres, settings: Settings, make_client: MakeClient
) -> None:
    settings = settings.with_overrides(
        database_url=own_postgres.url, flush_interval_s=0.05, flush_max_backoff_s=0.4
    )
    client = await make_client(settings, run_flusher=True)
    registry = client.app[METRICS].registry
    flusher = client.app[SERVICES].flusher

    await asyncio.to_thread(own_postgres.stop_server)
    statuses = [await post_events(client, view("p1"), view("p2")) for _ in range(20)]
    ready = await client.get("/readyz")
    ready_body = await ready.json()
    serving = await client.get("/readyz/serving")

    async def failed_twice() -> bool:
        failures = sample(registry, "tracker_flush_failures_total", reason="postgres")
        return (failures or 0) >= 2

    await wait_until(failed_twice, timeout_s=20)
    assert flusher.consecutive_failures >= 2
    assert flusher.next_delay_s() > settings.flush_interval_s  # backing off
    read_while_down = await client.get("/api/v1/articles/p1/stats")

    await asyncio.to_thread(own_postgres.start_again)

    async def all_flushed() -> bool:
        response = await client.get("/metrics")
        text = await response.text()
        return "tracker_pending_events 0.0" in text and flusher.consecutive_failures == 0

    await wait_until(all_flushed, timeout_s=30)
    conn = await asyncpg.connect(own_postgres.url)
    try:
        rows = await conn.fetch("SELECT article_id, count FROM article_totals ORDER BY 1")
    finally:
        await conn.close()

    assert statuses == [202] * 20
    assert ready.status == 503
    assert ready_body["detail"]["postgres"].startswith("unavailable")
    assert ready_body["detail"]["redis"] == "ok"
    # Before, Kubernetes' readinessProbe asked /readyz: every API pod left the Service
    # while ingest into Redis went on working.
    assert serving.status == 200
    assert (await serving.json())["status"] == "serving"
    assert read_while_down.status == 503
    assert read_while_down.headers["Retry-After"]
    assert [tuple(r) for r in rows] == [("p1", 20), ("p2", 20)]
    assert (await client.get("/readyz")).status == 200


async def test_shutdown_runs_a_final_flush(settings: Settings, make_client: MakeClient) -> None:
    client: Client = await make_client(
        settings.with_overrides(flush_interval_s=3600), run_flusher=True
    )
    assert await post_events(client, view("bye"), view("bye")) == 202

    await client.close()  # runs the app's cleanup: stop the loop, final flush, close

    conn = await asyncpg.connect(settings.database_url)
    try:
        count = await conn.fetchval(
            "SELECT count FROM article_totals WHERE article_id = 'bye' AND metric = 'view'"
        )
    finally:
        await conn.close()
    assert count == 2
