"""What one address can cost Redis: at the default limits, at most 10 MB an hour.

Before: 50 requests of 100 engage events with unique ids added 80,178 keys and 10.9 MB
(30,000 keys kept 24 h), about 32 MB a minute at the default rate. Now the rate counts
events, engagement without a counted view stores nothing, ids are kept compactly in the
reader's state and only where a repeat would not catch a retry, and each minute's
trending set keeps its head."""

from __future__ import annotations

import ipaddress
import secrets
import time
from typing import Any

from redis.asyncio import Redis

from tests.helpers import Clock, MakeClient, flush, sample
from tracker.core.settings import Settings
from tracker.redis_side.keys import TRENDING_BUCKET_S

PROXY = (ipaddress.ip_network("127.0.0.1/32"),)
ATTACKER = {"X-Forwarded-For": "198.51.100.66"}
HOUR_S = 3600
# One trending bucket (keys.TRENDING_BUCKET_S): an hour has twelve.
MINUTES = 5
EVENTS_PER_MINUTE = 600  # the default TRACKER_RATE_LIMIT
BATCH = 50  # events a request (the longest metadata fits TRACKER_MAX_BODY_BYTES)


def new_article_view(n: int) -> dict[str, Any]:
    """The costliest event an address can send: a view of an article never seen, with the
    longest id, an event id and the longest metadata."""
    article_id = f"attack/{n:08d}/" + "x" * 128
    return {
        "type": "view",
        "article_id": article_id[:128],
        "id": secrets.token_hex(32),
        "title": "t" * 512,
        "url": "https://evil.example/" + "p" * 2000,
        "category": "c" * 128,
        "author": "a" * 256,
    }


async def held_for_an_hour(redis: Redis, prefix: str) -> dict[str, float]:
    """Bytes of the test's keys, by kind, each counted for as much of an hour as it
    lives (no expiry: all of it): what they weigh in what an hour of them leaves."""
    kinds: dict[str, float] = {}
    async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
        size = await redis.memory_usage(key) or 0
        ttl_s = await redis.ttl(key)
        kind = key.decode().removeprefix(prefix).split(":")[2:3] or ["other"]
        weight = 1.0 if ttl_s < 0 else min(ttl_s, HOUR_S) / HOUR_S
        kinds[kind[0]] = kinds.get(kind[0], 0.0) + size * weight
    return kinds


async def test_one_address_at_the_default_limits_costs_redis_at_most_10_mb_an_hour(
    settings: Settings, make_client: MakeClient, redis: Redis
) -> None:
    defaults = Settings()
    clock = Clock(time.time() // TRENDING_BUCKET_S * TRENDING_BUCKET_S)
    client = await make_client(
        settings.with_overrides(
            rate_limit_per_min=defaults.rate_limit_per_min,
            dedup_window_s=defaults.dedup_window_s,
            max_readers_per_address=defaults.max_readers_per_address,
            trusted_proxies=PROXY,
        ),
        clock=clock,
    )
    assert defaults.rate_limit_per_min == EVENTS_PER_MINUTE
    sent = refused = 0
    for minute in range(MINUTES):
        # More than a minute's worth, in batches: what is over the rate is refused.
        for _ in range(EVENTS_PER_MINUTE // BATCH + 1):
            events = [new_article_view(sent + n) for n in range(BATCH)]
            response = await client.post(
                "/api/v1/events", json={"events": events}, headers=ATTACKER
            )
            if response.status == 202:
                sent += BATCH
            else:
                assert response.status == 429, await response.text()
                refused += 1
            clock.now += 60 / (EVENTS_PER_MINUTE // BATCH + 1)
        # Engagement with ids and no view: nothing to keep.
        engage = [
            {
                "type": "engage",
                "article_id": f"e/{minute}/{n}",
                "engaged_s": 1800,
                "depth": 100,
                "seq": 0,
                "id": secrets.token_hex(32),
            }
            for n in range(100)
        ]
        other = {"X-Forwarded-For": f"198.51.100.{100 + minute}"}
        response = await client.post("/api/v1/events", json={"events": engage}, headers=other)
        assert response.status == 202
    # A minute's burst at once on top: over the rate (429).
    for _ in range(EVENTS_PER_MINUTE // BATCH + 1):
        events = [new_article_view(sent + n) for n in range(BATCH)]
        response = await client.post("/api/v1/events", json={"events": events}, headers=ATTACKER)
        if response.status == 202:
            sent += BATCH
        else:
            assert response.status == 429, await response.text()
            refused += 1
    await flush(client)

    held = await held_for_an_hour(redis, settings.redis_prefix)
    # An hour sends the rate's worth and one burst: what the minutes sent, scaled to it;
    # trending keeps a bucket's head, so its part scales by buckets.
    an_hour = 60 * EVENTS_PER_MINUTE + EVENTS_PER_MINUTE
    trending = held.pop("tr", 0.0)
    grown = sum(held.values()) * an_hour / sent + trending * HOUR_S / TRENDING_BUCKET_S
    held["tr"] = trending
    print(
        f"{sent} views of new articles in {MINUTES} simulated minutes, {refused} batches "
        f"refused: Redis grows {grown / 1e6:.2f} MB an hour; bytes a view by kind: "
        + ", ".join(f"{kind} {size / sent:.0f}" for kind, size in sorted(held.items()))
    )
    assert sent <= MINUTES * EVENTS_PER_MINUTE + EVENTS_PER_MINUTE
    assert refused >= 1
    assert sample(client, "tracker_events_ignored_total", reason="no_view") == MINUTES * 100
    assert grown <= 10e6
