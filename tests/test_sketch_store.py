"""Reader sketches are stored apart from the counters' exactly-once transaction, every
TRACKER_SKETCH_STORE_INTERVAL_S: a batch's release leaves the sketches it changed in the
shard's sketches-due set, and a take of that set ends only once PostgreSQL holds them."""

from __future__ import annotations

import ipaddress
import time

from redis.asyncio import Redis

from tests.helpers import Client, MakeClient, stats
from tracker.core.settings import Settings
from tracker.web.app_keys import KEYS, SERVICES


async def view(client: Client, article_id: str, address: str) -> None:
    response = await client.post(
        "/api/v1/events",
        json={"type": "view", "article_id": article_id},
        headers={"X-Forwarded-For": address},
    )
    assert response.status == 202


async def stored_readers(client: Client) -> dict[str, int]:
    rows = await client.app[SERVICES].pool.fetch(
        "SELECT article_id, readers FROM article_daily_uniques ORDER BY 1"
    )
    return {row["article_id"]: row["readers"] for row in rows}


def proxied(settings: Settings, **overrides: object) -> Settings:
    return settings.with_overrides(
        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),), **overrides
    )


async def test_the_counters_commit_without_the_sketches_which_follow_on_their_own(
    settings: Settings, make_client: MakeClient, redis: Redis
) -> None:
    client = await make_client(proxied(settings, sketch_store_interval_s=3600.0))
    for n in range(3):
        await view(client, "sk/1", f"203.0.113.{n}")
    flusher = client.app[SERVICES].flusher
    await flusher.flush_once(sketches=False)
    shard = client.app[KEYS].for_article("sk/1")
    # Counted and stored; the readers wait in Redis, named in the shard's due set.
    assert (
        await client.app[SERVICES].pool.fetchval(
            "SELECT count FROM article_totals WHERE article_id = 'sk/1'"
        )
        == 3
    )
    assert await stored_readers(client) == {}
    (member,) = await redis.smembers(shard.sketches_due)
    day = int(member.split(b" ", 1)[0])
    assert await redis.ttl(shard.uniques(day, "sk/1")) == -1  # kept until stored
    assert (await stats(client, "sk/1"))["uniques"] == 3  # reads see them meanwhile

    result = await flusher.flush_once(sketches=True)
    assert result.sketches == 1
    assert await stored_readers(client) == {"sk/1": 3}
    assert not await redis.exists(shard.sketches_due, shard.sketches_taking)
    assert (await stats(client, "sk/1"))["uniques"] == 3  # not twice


async def test_a_take_cut_short_is_stored_again_and_later_changes_wait_their_turn(
    settings: Settings, make_client: MakeClient, redis: Redis
) -> None:
    client = await make_client(proxied(settings, sketch_store_interval_s=3600.0))
    services = client.app[SERVICES]
    flusher = services.flusher
    shard_number = client.app[KEYS].for_article("sk/2").shard
    shard = client.app[KEYS].shard(shard_number)
    await view(client, "sk/2", "203.0.113.1")
    await flusher.flush_once(sketches=False)
    # A flusher takes the due sketches and dies before PostgreSQL stores them.
    taken = await flusher.sketches.take(shard_number)
    assert [article for _, article in taken] == ["sk/2"]
    assert await redis.exists(shard.sketches_taking)
    assert not await redis.exists(shard.sketches_due)
    # Meanwhile another reader comes and is flushed: due again, apart from the take.
    await view(client, "sk/2", "203.0.113.2")
    await flusher.flush_once(sketches=False)
    assert await redis.exists(shard.sketches_due)

    # The next store finishes the take (reading the sketch as it is now: both readers).
    await flusher.flush_once(sketches=True)
    assert await stored_readers(client) == {"sk/2": 2}
    assert not await redis.exists(shard.sketches_taking)
    assert await redis.exists(shard.sketches_due)  # the later change waits its turn
    await flusher.flush_once(sketches=True)
    assert not await redis.exists(shard.sketches_due, shard.sketches_taking)
    assert await stored_readers(client) == {"sk/2": 2}
    assert (await stats(client, "sk/2"))["uniques"] == 2


async def test_sketches_are_stored_at_most_once_an_interval_and_on_drain(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(proxied(settings, sketch_store_interval_s=3600.0))
    flusher = client.app[SERVICES].flusher
    await view(client, "sk/3", "203.0.113.1")
    assert (await flusher.flush_once()).sketches == 1  # the first run stores them
    await view(client, "sk/3", "203.0.113.2")
    assert (await flusher.flush_once()).sketches == 0  # within the interval: not again
    assert await stored_readers(client) == {"sk/3": 1}
    assert (await stats(client, "sk/3"))["uniques"] == 2
    assert (await flusher.drain()).sketches == 1  # a drain leaves nothing behind
    assert await stored_readers(client) == {"sk/3": 2}


async def test_a_late_flusher_ending_its_take_leaves_a_newer_take_alone(
    settings: Settings, make_client: MakeClient, redis: Redis
) -> None:
    """A flusher whose lease lapsed mid-store finishes after another took the shard, stored
    the same take and took again: it removes from the take only what it stored."""
    client = await make_client(proxied(settings, sketch_store_interval_s=3600.0))
    services = client.app[SERVICES]
    sketches, store = services.flusher.sketches, services.flusher.store
    shard_number = client.app[KEYS].for_article("sk/4").shard
    shard = client.app[KEYS].shard(shard_number)
    await view(client, "sk/4", "203.0.113.1")
    await services.flusher.flush_once(sketches=False)
    late = await sketches.take(shard_number)  # the flusher whose lease lapses
    prompt = await sketches.take(shard_number)  # the one that took the shard over
    assert late == prompt
    found = await sketches.read(shard_number, prompt)
    await store.store_sketches(found)
    await sketches.stored(shard_number, prompt, found, time.time())
    assert not await redis.exists(shard.sketches_taking)
    await view(client, "sk/5", "203.0.113.2")  # same shard: one shard here
    await services.flusher.flush_once(sketches=False)
    newer = await sketches.take(shard_number)
    assert [article for _, article in newer] == ["sk/5"]

    found_late = await sketches.read(shard_number, late)
    await store.store_sketches(found_late)
    await sketches.stored(shard_number, late, found_late, time.time())
    assert len(await redis.smembers(shard.sketches_taking)) == 1  # sk/5 still taken
    await services.flusher.flush_once(sketches=True)
    assert await stored_readers(client) == {"sk/4": 1, "sk/5": 1}
    assert not await redis.exists(shard.sketches_due, shard.sketches_taking)
