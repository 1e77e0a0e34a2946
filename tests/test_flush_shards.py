"""A flusher works its shards side by side, as many at a time as its pool has connections
for their parts, and a shard that fails does not hold the others back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.helpers import MakeClient, flush, post_events, sample, stats, view
from tracker.core.errors import DatabaseUnavailable
from tracker.core.settings import Settings
from tracker.redis_side.keys import shard_of
from tracker.web.app_keys import SERVICES

SHARDS = 4


def one_article_per_shard() -> list[str]:
    found: dict[int, str] = {}
    n = 0
    while len(found) < SHARDS:
        found.setdefault(shard_of(f"fs/{n}", SHARDS), f"fs/{n}")
        n += 1
    return [found[shard] for shard in range(SHARDS)]


async def test_shards_are_flushed_side_by_side(settings: Settings, make_client: MakeClient) -> None:
    client = await make_client(
        settings.with_overrides(redis_shards=SHARDS, flush_parallelism=1, database_pool_size=4)
    )
    flusher = client.app[SERVICES].flusher
    assert flusher.shards_at_once == 4
    articles = one_article_per_shard()
    for article in articles:
        assert await post_events(client, view(article)) == 202

    # The real store's apply, watched: how many shards' batches are in it at once.
    apply = flusher.store.apply
    inside = most = 0

    async def watched(batch: Any) -> Any:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await asyncio.sleep(0.05)  # long enough for the others to arrive
        try:
            return await apply(batch)
        finally:
            inside -= 1

    flusher.store.apply = watched  # type: ignore[method-assign]
    result = await flush(client)

    assert result.batches == SHARDS
    assert most == SHARDS
    assert sample(client, "tracker_flush_lease_held") == SHARDS
    for article in articles:
        assert (await stats(client, article))["views"] == 1


async def test_a_failing_shard_leaves_the_others_flushed(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings.with_overrides(redis_shards=SHARDS))
    flusher = client.app[SERVICES].flusher
    articles = one_article_per_shard()
    for article in articles:
        assert await post_events(client, view(article)) == 202
    apply = flusher.store.apply

    async def failing_for_shard_0(batch: Any) -> Any:
        if batch.shard == 0:
            raise DatabaseUnavailable("shard 0's PostgreSQL moment")
        return await apply(batch)

    flusher.store.apply = failing_for_shard_0  # type: ignore[method-assign]
    with pytest.raises(DatabaseUnavailable, match="shard 0"):
        await flush(client)
    # Shards 1-3 were applied and released; shard 0's batch waits in Redis.
    flusher.store.apply = apply  # type: ignore[method-assign]
    result = await flush(client)
    assert result.batches == 1
    for article in articles:
        assert (await stats(client, article))["views"] == 1
