"""Unique readers: per-day HyperLogLog sketches in Redis, stored in Postgres by the
flusher (apart from the counters: test_sketch_store.py), merged for any range of days;
Redis keeps two days of sketches at most."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import time

import pytest
from redis.asyncio import Redis

from tests.helpers import Client, Clock, MakeClient, stats
from tracker.core.settings import Settings
from tracker.core.utc import DAY_S
from tracker.redis_side.keys import sketch_expires_at
from tracker.web.app_keys import KEYS, SERVICES

ARTICLE = "2026/11/uniques"
# Days in the future: Redis expiry times derived from them are not already past.
FIRST_DAY = int(time.time() // DAY_S) + 30
READERS_PER_DAY = (3_000, 3_500, 3_500)  # 10,000 distinct readers over three days
TOLERANCE = 0.02


def within(estimate: int, truth: int) -> bool:
    return abs(estimate - truth) <= TOLERANCE * truth


async def fix_salts(redis: Redis, prefix: str) -> None:
    """Known salts for the simulated days, so the sketches (and the test) are repeatable."""
    for day in range(FIRST_DAY, FIRST_DAY + 3):
        salt = hashlib.blake2b(f"salt-{day}".encode(), digest_size=32).digest()
        await redis.set(f"{prefix}:salt:{day}", salt, exat=(day + 2) * DAY_S)


async def visit(client: Client, reader: int, semaphore: asyncio.Semaphore) -> None:
    # A /64 per reader: tracker takes an IPv6 /64 as one address.
    address = str(ipaddress.IPv6Address("2001:db8::") + (reader << 64))
    async with semaphore:
        response = await client.post(
            "/api/v1/events",
            json={"type": "view", "article_id": ARTICLE},
            headers={"X-Forwarded-For": address},
        )
        assert response.status == 202


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_ten_thousand_readers_over_three_days_within_two_percent(
    settings: Settings, make_client: MakeClient, redis: Redis
) -> None:
    clock = Clock(FIRST_DAY * DAY_S + 3_600.0)
    client = await make_client(
        settings.with_overrides(
            trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
            dedup_window_s=1800,
            # Counting is the point here, not shedding: a busy CI machine must not 503.
            max_loop_lag_s=30.0,
            redis_timeout_s=10.0,
        ),
        clock=clock,
    )
    app = client.app
    await fix_salts(redis, settings.redis_prefix)
    semaphore = asyncio.Semaphore(32)
    first_reader = 0
    for offset, readers in enumerate(READERS_PER_DAY):
        clock.now = (FIRST_DAY + offset) * DAY_S + 3_600.0
        batch = range(first_reader, first_reader + readers)
        await asyncio.gather(*(visit(client, r, semaphore) for r in batch))
        # Some readers come back later the same day: the same reader, not a new one.
        clock.now += 7_200
        await asyncio.gather(*(visit(client, r, semaphore) for r in batch[:500]))
        await app[SERVICES].flusher.flush_once(sketches=True)
        first_reader += readers

    clock.now = (FIRST_DAY + 3) * DAY_S + 600.0  # the morning after
    await app[SERVICES].flusher.flush_once(sketches=True)

    async def stored_readers() -> list[int]:
        rows = await app[SERVICES].pool.fetch(
            "SELECT readers FROM article_daily_uniques WHERE article_id = $1 ORDER BY day",
            ARTICLE,
        )
        return [row["readers"] for row in rows]

    per_day = await stored_readers()
    all_time = (await stats(client, ARTICLE))["uniques"]
    print(f"per day {per_day} (truth {list(READERS_PER_DAY)}); stats {all_time} (truth 10000)")
    assert len(per_day) == 3
    assert all(within(est, truth) for est, truth in zip(per_day, READERS_PER_DAY, strict=True))
    assert within(all_time, 10_000)

    # Redis keeps each day's sketch until the end of the next day at most.
    shard = app[KEYS].for_article(ARTICLE)
    for day in range(FIRST_DAY, FIRST_DAY + 3):
        expires_at = await redis.expiretime(shard.uniques(day, ARTICLE))
        assert 0 < expires_at <= sketch_expires_at(day)

    # The sketches expire from Redis: the answers come from Postgres alone, unchanged.
    for day in range(FIRST_DAY, FIRST_DAY + 3):
        await redis.delete(shard.uniques(day, ARTICLE))
    assert await stored_readers() == per_day
    assert within((await stats(client, ARTICLE))["uniques"], 10_000)


async def test_views_count_readers_the_same_day_once(client: Client) -> None:
    for _ in range(3):
        await client.post("/api/v1/events", json={"type": "view", "article_id": "u1"})
    body = await stats(client, "u1")
    assert (body["views"], body["uniques"]) == (3, 1)  # dedup off here: three loads


async def test_uniques_survive_flush_without_double_counting(client: Client) -> None:
    await client.post("/api/v1/events", json={"type": "view", "article_id": "u2"})
    before = (await stats(client, "u2"))["uniques"]
    await client.app[SERVICES].flusher.flush_once()
    after = (await stats(client, "u2"))["uniques"]
    await client.post("/api/v1/events", json={"type": "view", "article_id": "u2"})
    again = (await stats(client, "u2"))["uniques"]
    assert (before, after, again) == (1, 1, 1)


async def test_shares_and_bots_add_no_readers(client: Client) -> None:
    await client.post("/api/v1/events", json={"type": "share", "article_id": "u3", "channel": "vk"})
    await client.post(
        "/api/v1/events",
        json={"type": "view", "article_id": "u3"},
        headers={"User-Agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"},
    )
    assert (await stats(client, "u3"))["uniques"] == 0
