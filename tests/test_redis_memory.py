"""Redis must keep what tracker stored: an evicting Redis is refused at start, and a
reader sketch has no expiry until PostgreSQL holds it (before, a PostgreSQL outage of
over a day dropped that day's sketches silently)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from tests.helpers import MakeClient, flush, post_events, stats, view
from tracker.core.settings import Settings
from tracker.core.utc import day_of
from tracker.ops.embedded import EmbeddedRedis
from tracker.redis_side.preflight import StartupRefused
from tracker.web.app import create_app
from tracker.web.app_keys import CLOCK, KEYS, SERVICES
from tracker.web.server import started


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl"])
async def test_an_evicting_redis_is_refused_unless_allowed(
    settings: Settings, make_client: MakeClient, own_redis: EmbeddedRedis, policy: str
) -> None:
    admin = Redis.from_url(own_redis.url)
    await admin.config_set("maxmemory-policy", policy)
    await admin.aclose()
    on_own = settings.with_overrides(redis_url=own_redis.url)

    with pytest.raises(StartupRefused, match=f"maxmemory-policy {policy}"):
        async with started(create_app(on_own, run_flusher=False)):
            pass

    client = await make_client(on_own.with_overrides(allow_eviction=True))
    assert await post_events(client, view("evicting")) == 202


async def test_a_sketch_expires_only_once_stored(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings)
    redis, keys = client.app[SERVICES].redis, client.app[KEYS]
    day = day_of(client.app[CLOCK]())
    sketch = keys.for_article("ttl").uniques(day, "ttl")

    await post_events(client, view("ttl"))
    assert await redis.ttl(sketch) == -1  # not in PostgreSQL yet: kept, however long

    await flush(client)
    stored_ttl = await redis.ttl(sketch)
    assert 0 < stored_ttl <= 2 * 86_400  # stored: Redis may drop it after tomorrow

    await post_events(client, view("ttl"))
    # The same reader again: the sketch is as stored, and may still expire.
    assert 0 < await redis.ttl(sketch) <= stored_ttl

    other_reader = {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Firefox/130.0"}
    response = await client.post("/api/v1/events", json=view("ttl"), headers=other_reader)
    assert response.status == 202
    assert await redis.ttl(sketch) == -1  # a new reader it does not hold yet: kept
    assert (await stats(client, "ttl"))["uniques"] == 2
