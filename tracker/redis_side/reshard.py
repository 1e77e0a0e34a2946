"""Changing TRACKER_REDIS_SHARDS: once the old shards are drained into PostgreSQL, the
reader sketches move to the shards their articles belong to now, and the new count is
recorded. Run by `tracker flush --drain` while no `tracker serve` writes."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from tracker.redis_side.client import RedisClient
from tracker.redis_side.keys import Keys
from tracker.redis_side.scripts import redis_unavailable_on_error

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Moved:
    sketches: int


async def recorded_shards(redis: RedisClient, keys: Keys) -> int | None:
    with redis_unavailable_on_error():
        recorded = await redis.get(keys.shard_count)
    return int(recorded) if recorded is not None else None


async def move_sketches(
    redis: RedisClient, old: Keys, new: Keys, sketches: Iterable[tuple[int, str]]
) -> Moved:
    """Each day's reader sketch of an article from its shard under `old` to its shard
    under `new`, merged into what is there already, keeping its expiry. `sketches`: the
    (day, article) of every sketch Redis may hold (once drained, PostgreSQL has stored
    them all: the recent days' there)."""
    moved = 0
    with redis_unavailable_on_error():
        for day, article_id in sketches:
            key = old.for_article(article_id).uniques(day, article_id)
            target = new.for_article(article_id).uniques(day, article_id)
            if target == key or not await redis.exists(key):
                continue
            ttl_ms, target_ttl_ms = await redis.pttl(key), await redis.pttl(target)
            await redis.pfmerge(target, key)
            # No expiry where either had none (not yet stored in PostgreSQL).
            if ttl_ms == -1:
                await redis.persist(target)
            elif target_ttl_ms != -1:
                await redis.pexpire(target, max(ttl_ms, target_ttl_ms))
            await redis.delete(key)
            moved += 1
    return Moved(sketches=moved)


async def record_shards(redis: RedisClient, keys: Keys) -> None:
    with redis_unavailable_on_error():
        await redis.set(keys.shard_count, keys.shards)
