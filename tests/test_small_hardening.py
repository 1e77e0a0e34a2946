"""Smaller findings: answers that depend on Origin say so, and the stored page URL keeps
no query parameter but utm_* (a reader's tokens stay out of the database)."""

from __future__ import annotations

import asyncpg

from tests.helpers import Client, flush, post_events, view
from tracker.core.settings import Settings
from tracker.web.app_keys import SERVICES


async def test_answers_on_cors_paths_vary_with_origin(client: Client) -> None:
    without = await client.get("/api/v1/articles/v/stats")
    other = await client.get("/api/v1/articles/v/stats", headers={"Origin": "https://x.example"})
    beacon = await client.post("/api/v1/events", json=view("v"))

    for response in (without, other, beacon):
        assert "Origin" in response.headers.get("Vary", ""), response.headers


async def test_the_stored_url_keeps_the_path_and_utm_parameters_only(
    client: Client, settings: Settings
) -> None:
    url = "https://news.example/2026/vote?session=abc123&utm_source=tg&email=a%40b.c#comments"
    await post_events(client, view("url-1", url=url, title="Vote"))
    await flush(client)

    conn = await asyncpg.connect(settings.database_url)
    try:
        stored = await conn.fetchval("SELECT url FROM articles WHERE article_id = 'url-1'")
    finally:
        await conn.close()
    assert stored == "https://news.example/2026/vote?utm_source=tg"


async def test_a_url_that_is_not_http_is_not_stored(client: Client, settings: Settings) -> None:
    """Reports and the most-read box make links of stored URLs: never a javascript: one."""
    await post_events(client, view("url-2", url="javascript:alert(1)", title="Bait"))
    await flush(client)

    conn = await asyncpg.connect(settings.database_url)
    try:
        stored = await conn.fetchval("SELECT url FROM articles WHERE article_id = 'url-2'")
    finally:
        await conn.close()
    assert stored is None


async def test_serving_readiness_fails_only_when_the_startup_check_refused(
    client: Client,
) -> None:

    assert (await client.get("/readyz/serving")).status == 200
    client.app[SERVICES].preflight.refused = "TRACKER_REDIS_SHARDS=2, but Redis holds 4"

    response = await client.get("/readyz/serving")

    assert response.status == 503
    assert response.headers["Retry-After"]
    assert (await response.json())["detail"]["redis"].startswith("refused: ")
