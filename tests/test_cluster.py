"""tracker on a Redis Cluster of the test's own (3 primaries, each with a replica, on
loopback): counts and reads as on one Redis, shards spread over the primaries, every
script within one slot; the reconciliation proof with two tracker instances and two
flushers SIGKILLed at random; and a primary's failover with WAIT acknowledgement, which
loses no acknowledged event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster

from tests.cluster import Cluster, Node, cli, start_cluster
from tests.helpers import MakeClient, flush, post_events, share, view
from tests.test_reconciliation import SHARDS, Setup, Tally, lost_and_doubled, report_and_check
from tracker.core.settings import Settings
from tracker.redis_side.client import open_redis
from tracker.redis_side.keys import Keys
from tracker.redis_side.trending import kind_of
from tracker.web.app_keys import SERVICES

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    started = start_cluster(tmp_path / "cluster", primaries=3, replicas=1)
    yield started
    started.stop()


@pytest.fixture
async def cluster_client(cluster: Cluster) -> AsyncIterator[RedisCluster]:
    client = open_redis(cluster.url, timeout_s=5, cluster=True)
    assert isinstance(client, RedisCluster)
    await client.initialize()
    yield client
    await client.aclose()


def on_cluster(settings: Settings, cluster: Cluster, **overrides: object) -> Settings:
    return settings.with_overrides(
        redis_url=cluster.url, redis_cluster=True, redis_shards=6, **overrides
    )


async def test_counts_reads_and_flushes_as_on_one_redis(
    settings: Settings, make_client: MakeClient, cluster: Cluster, cluster_client: RedisCluster
) -> None:
    client = await make_client(on_cluster(settings, cluster))
    articles = [f"cl/{n}" for n in range(30)]
    for article in articles:
        assert await post_events(client, view(article), view(article), share(article, "vk")) == 202

    before = await (
        await client.get("/api/v1/articles/stats", params={"ids": ",".join(articles)})
    ).json()
    await flush(client)
    after = await (
        await client.get("/api/v1/articles/stats", params={"ids": ",".join(articles)})
    ).json()

    assert [(a["views"], a["shares"]["vk"]) for a in before["articles"]] == [(2, 1)] * 30
    assert after == before
    # The shards' keys are spread over the three primaries, each shard within one slot.
    keys = Keys(settings.redis_prefix, 6)
    homes = {cluster_client.get_node_from_key(s.live).name for s in keys.all_shards()}  # type: ignore[union-attr]
    assert len(homes) == 3, homes
    # Trending reads every shard's sorted set, one script per shard, in one pipeline.
    rising = await client.app[SERVICES].trending.top(kind_of("views"), 60, 10)
    assert len(rising) == 10, rising
    assert all(r.value == 2 for r in rising), rising
    # Metrics and readiness see the cluster as one Redis.
    ready = await client.get("/readyz")
    assert ready.status == 200, await ready.text()


async def test_two_instances_two_flushers_killed_at_random_lose_and_double_nothing(
    make_client: MakeClient,
    cluster: Cluster,
    cluster_client: RedisCluster,
    database_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    setup = await Setup.start(
        make_client,
        cluster.url,
        database_url,
        redis_prefix,
        instances=2,
        redis_cluster=True,
    )
    run = await setup.run(
        tally=Tally(),
        redis=cluster_client,
        log_dir=tmp_path,
        kills=5,
        min_events=5_000,
        disruptions={},
        flusher_processes=2,
    )
    report_and_check(run, "Redis Cluster: two instances, two flushers SIGKILLed")
    assert run.kills >= 8
    assert run.applied_while_killing >= 5
    await _clean(cluster_client, redis_prefix)


async def test_a_failover_loses_no_acknowledged_event_with_wait(
    make_client: MakeClient,
    cluster: Cluster,
    cluster_client: RedisCluster,
    database_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    """A replica takes over twice: once by CLUSTER FAILOVER (its primary alive), once
    because its primary is SIGKILLed. Events are acknowledged only once a replica has
    them (TRACKER_REDIS_WAIT_REPLICAS=1): none is lost; requests during the gap get 503
    (some of those may still be stored: a 503 promises nothing either way)."""
    setup = await Setup.start(
        make_client,
        cluster.url,
        database_url,
        redis_prefix,
        instances=2,
        redis_cluster=True,
        redis_wait_replicas=1,
    )
    failovers: list[str] = []

    async def graceful() -> None:
        replica = _replica_of_a_primary(cluster)
        await asyncio.to_thread(cli, replica.port, "CLUSTER", "FAILOVER")
        await asyncio.to_thread(cluster.wait_ok)
        failovers.append(f"CLUSTER FAILOVER to {replica.port}")

    async def primary_killed() -> None:
        primary = next(n for n in cluster.primaries() if _has_replica(cluster, n))
        await asyncio.to_thread(primary.kill)
        await asyncio.sleep(1.0)  # requests on its slots fail meanwhile
        await asyncio.to_thread(cluster.wait_ok, 60.0)
        failovers.append(f"primary {primary.port} killed")

    tally = Tally()
    run = await setup.run(
        tally=tally,
        redis=cluster_client,
        log_dir=tmp_path,
        kills=4,
        min_events=4_000,
        disruptions={1: graceful, 2: primary_killed},
        flusher_processes=2,
    )
    lost, doubled = lost_and_doubled(tally.acknowledged, run.stored.totals)
    print(
        f"\nfailovers: {failovers}; acknowledged {tally.acknowledged_events}, statuses "
        f"{dict(tally.statuses)}; lost {lost}, stored beyond acknowledged {doubled}"
    )
    assert len(failovers) == 2
    assert lost == 0
    # What was stored was sent: nothing counted that no page sent.
    assert all(run.stored.totals[key] <= tally.sent[key] for key in run.stored.totals)
    assert not run.reads.violations, run.reads.violations[:20]
    await _clean(cluster_client, redis_prefix)


def _has_replica(cluster: Cluster, primary: Node) -> bool:
    nodes = cli(primary.port, "CLUSTER", "NODES")
    own_id = next(line.split()[0] for line in nodes.splitlines() if "myself" in line)
    return any(f" {own_id} " in line and "slave" in line for line in nodes.splitlines())


def _replica_of_a_primary(cluster: Cluster) -> Node:
    for node in cluster.nodes:
        if node.process is not None and node.role() == "slave":
            return node
    raise AssertionError("no replica")


async def _clean(client: RedisCluster, prefix: str) -> None:
    """Key by key (keys of many slots), fifty at a time."""
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    for start in range(0, len(keys), 50):
        await asyncio.gather(*(client.unlink(key) for key in keys[start : start + 50]))


assert SHARDS >= 3  # the reconciliation layout spreads over the three primaries
