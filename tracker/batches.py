"""The flusher's side of Redis: cut a shard's batch, hand it over as a plain Batch, and
delete it once PostgreSQL holds it.

A batch key waits in Redis until it is released, so a flusher that dies anywhere leaves
it to be resumed; its id lets PostgreSQL tell whether it was applied already.
"""

from __future__ import annotations

import json
from typing import Any, Final

from redis.asyncio import Redis

from . import keys as k
from .counts import Batch, DayArticle, PendingStats, Sketch
from .keys import PERSISTED_SKETCH_TTL_S, Keys, ShardKeys, epoch_candidate
from .scripts import CLAIM, PENDING, RELEASE, Call, redis_unavailable_on_error, run_calls, run_one
from .utc import day_of

_TOTAL_PREFIX: Final = (k.TOTAL + " ").encode()
_BUCKET_PREFIX: Final = (k.BUCKET + " ").encode()


class RedisBatches:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def claim(self, shard: int, *, parts: int = 1) -> Batch | None:
        """The shard's batch to flush, with its reader sketches: a left-over one first,
        else the live hash cut now. None when nothing waits."""
        shard_keys = self.keys.shard(shard)
        claimed = await run_one(
            self.redis,
            Call(
                CLAIM,
                (shard_keys.live, shard_keys.batch, shard_keys.gen, shard_keys.epoch),
                (epoch_candidate(), parts),
            ),
        )
        if claimed is None:
            return None
        state, redis_id = (part.decode() for part in claimed)
        batch = Batch(id=shard_keys.batch_id(redis_id), shard=shard, resumed=state == "resumed")
        with redis_unavailable_on_error():
            raw = await self.redis.hgetall(shard_keys.batch)
        touched = _parse(batch, raw)
        await self._fetch_sketches(shard_keys, batch, touched)
        return batch

    async def _fetch_sketches(
        self, shard: ShardKeys, batch: Batch, touched: set[DayArticle]
    ) -> None:
        """The current sketch of every (day, article) the batch touched, with its count."""
        if not touched:
            return
        wanted = sorted(touched)
        with redis_unavailable_on_error():
            async with self.redis.pipeline(transaction=False) as pipe:
                for day, article_id in wanted:
                    key = shard.uniques(day, article_id)
                    pipe.get(key)
                    pipe.pfcount(key)
                replies = await pipe.execute()
        for index, day_article in enumerate(wanted):
            data, readers = replies[2 * index], replies[2 * index + 1]
            if data:  # gone only if it expired unflushed (PostgreSQL away for days)
                batch.sketches[day_article] = Sketch(bytes(data), int(readers))

    async def release(self, batch: Batch, now_s: float) -> bool:
        """Delete the batch key once PostgreSQL holds the batch (only if it is still this
        batch), and let the past days' sketches it carried expire soon. False if the key
        was gone already."""
        shard = self.keys.shard(batch.shard)
        redis_id = shard.redis_id(batch.id)
        deleted = await run_one(self.redis, Call(RELEASE, (shard.batch,), (redis_id,)))
        today = day_of(now_s)
        past = [day_article for day_article in batch.sketches if day_article[0] < today]
        if past:
            with redis_unavailable_on_error():
                async with self.redis.pipeline(transaction=False) as pipe:
                    for day, article_id in past:
                        pipe.expire(shard.uniques(day, article_id), PERSISTED_SKETCH_TTL_S)
                    await pipe.execute()
        return bool(deleted)

    async def pending_stats(self) -> PendingStats:
        """How much waits in Redis, over all shards, and since when."""
        calls = [Call(PENDING, (s.live, s.batch), ()) for s in self.keys.all_shards()]
        events = counters = 0
        oldest: int | None = None
        for shard_result in await run_calls(self.redis, calls):
            for raw_events, raw_counters, raw_first in shard_result:
                events += int(raw_events)
                counters += int(raw_counters)
                if raw_first:
                    first = int(raw_first)
                    oldest = first if oldest is None else min(oldest, first)
        return PendingStats(events=events, counters=counters, oldest_event_ms=oldest)


def _parse(batch: Batch, raw: dict[Any, Any]) -> set[DayArticle]:
    """Fill the batch from its hash; returns the (day, article) whose sketch changed."""
    counters = batch.counters
    touched: set[DayArticle] = set()
    for raw_name, raw_value in raw.items():
        if raw_name.startswith(_TOTAL_PREFIX):
            continue  # per-article totals are for reads; PostgreSQL sums the buckets
        if raw_name.startswith(_BUCKET_PREFIX):
            _, hour, metric, article_id = raw_name.decode().split(" ", 3)
            counters[(article_id, metric, int(hour))] = int(raw_value)
            continue
        name = raw_name.decode()
        kind, _, rest = name.partition(" ")
        if kind == k.META:
            batch.metadata[rest] = json.loads(raw_value)
        elif kind == k.UNIQUES:
            day, article_id = rest.split(" ", 1)
            touched.add((int(day), article_id))
        elif name == k.EVENTS:
            batch.events = int(raw_value)
        elif name == k.PARTS:
            batch.parts = int(raw_value)
    return touched
