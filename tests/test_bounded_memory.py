"""What a client controls cannot grow memory without bound: the stats cache is bounded in
bytes and drops entries as they expire, and ids nobody counted share one small entry
(before: about 2.6 KB per id up to 100,000 ids, evicted only over the cap)."""

from __future__ import annotations

import asyncio
import secrets

from tests.helpers import MakeClient, post_events, view
from tracker.core.settings import Settings
from tracker.reports.stats import ArticleStats
from tracker.reports.statscache import StatsCache
from tracker.web.app_keys import SERVICES


async def test_a_random_id_flood_stays_within_the_cache_bound(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(
        settings.with_overrides(stats_cache_s=30.0, stats_cache_bytes=1 << 20)
    )
    cache = client.app[SERVICES].stats_cache
    for _ in range(100):
        ids = ",".join(secrets.token_hex(16) for _ in range(100))
        response = await client.get("/api/v1/articles/stats", params={"ids": ids})
        assert response.status == 200

    print(f"10,000 random ids: the cache holds {cache.bytes:,} bytes")
    assert 0 < cache.bytes <= 1 << 20


async def test_unknown_ids_share_an_empty_entry_and_answer_zeros(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings.with_overrides(stats_cache_s=30.0))
    await post_events(client, view("known"))
    cache = client.app[SERVICES].stats_cache

    first = await (await client.get("/api/v1/articles/stats?ids=unknown-1,known")).json()
    again = await client.get("/api/v1/articles/stats?ids=unknown-1,known")  # from the cache
    body = await again.json()

    assert body == first
    assert body["articles"][0] == {
        "article_id": "unknown-1",
        "views": 0,
        "uniques": 0,
        "shares": dict.fromkeys(body["articles"][0]["shares"], 0),
        "shares_total": 0,
        "referrals": dict.fromkeys(body["articles"][0]["referrals"], 0),
        "previews": dict.fromkeys(body["articles"][0]["previews"], 0),
        "engaged_readers": 0,
        "engaged_avg_s": 0.0,
        "read_through": 0.0,
        "read_depth": {"25": 0, "50": 0, "75": 0, "100": 0},
        "imported": {"views": 0, "shares_total": 0},
    }
    assert body["articles"][1]["views"] == 1
    # The unknown id costs its name and bookkeeping, not a 700-byte answer.
    assert cache.bytes < 2 * len(first["articles"][0]["article_id"]) + 1_300


async def test_expired_entries_go_without_waiting_for_the_bound() -> None:
    async def fetch(ids: list[str]) -> list[ArticleStats]:
        return [
            ArticleStats(
                a,
                views=1,
                uniques=1,
                shares={},
                shares_total=0,
                referrals={},
                previews={},
                engaged_readers=0,
                engaged_avg_s=0.0,
                read_through=0.0,
                read_depth={},
                imported={},
            )
            for a in ids
        ]

    cache = StatsCache(fetch, ttl_s=0.05, max_bytes=1 << 30)
    await cache.get([f"a{n}" for n in range(100)])
    filled = cache.bytes
    await asyncio.sleep(0.1)
    await cache.get(["b"])

    assert filled > 0
    assert cache.bytes < filled / 50  # only "b" is left
