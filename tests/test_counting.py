"""Ingest -> Redis -> flush -> Postgres -> reads, on the real servers."""

from __future__ import annotations

import asyncpg

from tests.helpers import Client, flush, post_events, share, stats, view
from tracker.core.settings import Settings
from tracker.redis_side.keys import shard_of


async def test_posted_view_is_counted_before_and_after_flush(client: Client) -> None:
    assert await post_events(client, view("a-1")) == 202
    assert (await stats(client, "a-1"))["views"] == 1

    result = await flush(client)

    assert result.batches == 1
    assert result.events == 1
    assert (await stats(client, "a-1"))["views"] == 1


async def test_shares_are_counted_per_channel(client: Client) -> None:
    events = [share("a-2", "telegram")] * 3 + [share("a-2", "facebook"), view("a-2")]
    assert await post_events(client, *events) == 202
    await flush(client)
    assert await post_events(client, share("a-2", "telegram")) == 202

    body = await stats(client, "a-2")

    assert body["views"] == 1
    assert body["shares"]["telegram"] == 4
    assert body["shares"]["facebook"] == 1
    assert body["shares_total"] == 5
    assert body["uniques"] == 1  # one reader (the test client) viewed it


async def test_flush_writes_hourly_buckets_totals_and_metadata(
    client: Client, settings: Settings
) -> None:
    await post_events(client, view("news/2026/a", title="Budget", category="politics", lang="en"))
    await post_events(client, view("news/2026/a"), share("news/2026/a", "vk"))
    await flush(client)

    conn = await asyncpg.connect(settings.database_url)
    try:
        hourly = await conn.fetch("SELECT metric, count FROM article_hourly ORDER BY metric")
        totals = await conn.fetch("SELECT metric, count FROM article_totals ORDER BY metric")
        article = await conn.fetchrow("SELECT title, category, lang FROM articles")
    finally:
        await conn.close()
    assert [tuple(r) for r in hourly] == [("share:vk", 1), ("view", 2)]
    assert [tuple(r) for r in totals] == [("share:vk", 1), ("view", 2)]
    assert article is not None
    assert tuple(article) == ("Budget", "politics", "en")


async def test_unknown_article_reads_zeros(client: Client) -> None:
    body = await stats(client, "never-seen")
    assert body["views"] == 0
    assert body["shares_total"] == 0
    assert set(body["shares"]) >= {"telegram", "facebook", "twitter", "whatsapp"}


async def test_batch_read_keeps_the_order_asked(client: Client) -> None:
    await post_events(client, view("b"), view("b"), view("a"))
    response = await client.get("/api/v1/articles/stats", params={"ids": "c,b,a"})
    assert response.status == 200
    body = await response.json()
    assert [(a["article_id"], a["views"]) for a in body["articles"]] == [
        ("c", 0),
        ("b", 2),
        ("a", 1),
    ]


async def test_stats_carry_cache_control_and_etag(client: Client) -> None:
    await post_events(client, view("etag"))
    first = await client.get("/api/v1/articles/etag/stats")
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "public, max-age=5"

    again = await client.get("/api/v1/articles/etag/stats", headers={"If-None-Match": etag})
    assert again.status == 304

    await post_events(client, view("etag"))
    changed = await client.get("/api/v1/articles/etag/stats", headers={"If-None-Match": etag})
    assert changed.status == 200
    assert changed.headers["ETag"] != etag


async def test_sharded_keys_flush_every_shard(make_client, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(settings.with_overrides(redis_shards=4))
    ids = [f"art-{n}" for n in range(40)]
    assert await post_events(client, *[view(i) for i in ids]) == 202

    result = await flush(client)

    # A batch per shard that holds any of the 40 ids.
    assert result.batches == len({shard_of(i, 4) for i in ids})
    assert result.events == 40
    response = await client.get("/api/v1/articles/stats", params={"ids": ",".join(ids)})
    assert all(a["views"] == 1 for a in (await response.json())["articles"])
