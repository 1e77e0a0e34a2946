"""The flusher's side of Redis: cut a shard's next batch, hand it over as a plain Batch,
and delete it once PostgreSQL holds it.

A batch key waits in Redis until it is released, so a flusher that dies anywhere leaves
it to be resumed; its id lets PostgreSQL tell whether it was applied already.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from tracker.core.metadata import ArticleMeta, from_dict
from tracker.events.counts import Batch, DayArticle, PendingStats
from tracker.redis_side import keys as k
from tracker.redis_side.client import RedisClient, RedisNodes
from tracker.redis_side.keys import Keys, epoch_candidate
from tracker.redis_side.scripts import (
    CLAIM,
    PENDING,
    RELEASE,
    Call,
    redis_unavailable_on_error,
    run_calls,
    run_durably,
    run_one,
)
from tracker.redis_side.sketches import sketch_members

log = logging.getLogger(__name__)

_TOTAL_PREFIX: Final = (k.TOTAL + " ").encode()
_BUCKET_PREFIX: Final = (k.BUCKET + " ").encode()
# Fields parsed between two yields to the event loop: a large batch never holds it long.
_PARSE_STEP: Final = 5_000
# How long what INFO said about persistence and replicas is trusted.
_DURABILITY_CHECK_EVERY_S: Final = 60.0


@dataclass(frozen=True, slots=True)
class Claimed:
    batch: Batch | None
    # Redis was found older than PostgreSQL (its generation counter behind what was
    # applied): ids were moved past it.
    rolled_back: bool
    # The live hash was cut: what comes after it waits for the next run.
    cut_live: bool = False
    # Redis promised the claim (WAITAOF, WAIT) where it can: it may be applied.
    durable: bool = True


class RedisBatches:
    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        *,
        nodes: RedisNodes | None = None,
        wait_timeout_s: float = 1.0,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.nodes = nodes or RedisNodes(redis, timeout_s=wait_timeout_s * 2)
        self.wait_timeout_ms = max(1, int(wait_timeout_s * 1000))
        # Per node (a cluster's primaries differ): when asked, and how to wait there.
        self._durability: dict[int, tuple[float, tuple[Any, ...] | None]] = {}

    async def claim(
        self, shard: int, *, parts: int = 1, floors: Sequence[tuple[str, int]] = ()
    ) -> Claimed:
        """The shard's next batch, without its contents yet (see load): a left-over one
        first, then the oldest sealed piece, else the live hash cut now. `floors`: the
        highest generation PostgreSQL applied per epoch of the shard."""
        shard_keys = self.keys.shard(shard)
        floor_args = [value for pair in floors for value in pair]
        call = Call(
            CLAIM,
            (
                shard_keys.live,
                shard_keys.batch,
                shard_keys.gen,
                shard_keys.epoch,
                shard_keys.sealed,
            ),
            (epoch_candidate(), parts, shard_keys.sealed_prefix, *floor_args),
        )
        # Before PostgreSQL applies a claim, the claim itself must survive a Redis crash
        # or failover where Redis can promise that: WAITAOF (Redis 7.2+ with an append-
        # only file) or WAIT for a replica, on the claim's own connection. Redis before
        # 7.2 without replicas (the embedded one) cannot; the generation floor in
        # PostgreSQL then bounds what a rollback costs.
        durability = await self._durability_command(shard_keys.live)
        durable = True
        if durability is None:
            claimed = await run_one(self.redis, call)
        else:
            ((claimed, acknowledged),) = await run_durably(self.nodes, [call], durability)
            durable = _acknowledged(durability[0], acknowledged)
        if claimed is None:
            return Claimed(None, rolled_back=False)
        state, redis_id, rolled_back = claimed[0].decode(), claimed[1].decode(), bool(claimed[2])
        if state == "none":
            return Claimed(None, rolled_back)
        epoch, _, generation = redis_id.rpartition(":")
        batch = Batch(
            id=shard_keys.batch_id(redis_id),
            shard=shard,
            epoch=epoch,
            generation=int(generation),
            resumed=state == "resumed",
        )
        return Claimed(batch, rolled_back, cut_live=state == "live", durable=durable)

    async def load(self, batch: Batch) -> None:
        """Fill a claimed batch: its counters, metadata, and the reader sketches it
        changed (stored apart: sketches.py)."""
        shard = self.keys.shard(batch.shard)
        with redis_unavailable_on_error():
            raw = await self.redis.hgetall(shard.batch)
        batch.sketches_changed = await _parse(batch, raw)

    async def _durability_command(self, key: str) -> tuple[Any, ...] | None:
        """What promises a write on `key`'s node: WAITAOF, WAIT, or nothing it can do."""
        now = time.monotonic()
        with redis_unavailable_on_error():
            node = await self.nodes.of(key)
        known = self._durability.get(id(node))
        if known is not None and now - known[0] < _DURABILITY_CHECK_EVERY_S:
            return known[1]
        with redis_unavailable_on_error():
            info = await node.info()
        version = tuple(int(part) for part in str(info.get("redis_version", "0.0")).split(".")[:2])
        replicas = int(info.get("connected_slaves", 0))
        command: tuple[Any, ...] | None = None
        if info.get("aof_enabled") and version >= (7, 2):
            command = ("WAITAOF", 1, 0, self.wait_timeout_ms)
        elif replicas:
            command = ("WAIT", 1, self.wait_timeout_ms)
        self._durability[id(node)] = (now, command)
        return command

    async def release(self, batch: Batch) -> bool:
        """Delete the batch key once PostgreSQL holds the batch (only if it is still this
        batch), leaving the sketches it changed to be stored. False if the key was gone
        already."""
        shard = self.keys.shard(batch.shard)
        held: dict[str, int] = {}
        for (article_id, _, _), count in batch.counters.items():
            held[article_id] = held.get(article_id, 0) + count
        deleted = await run_one(
            self.redis,
            Call(
                RELEASE,
                (shard.batch, shard.activity, shard.sketches_due),
                (
                    shard.redis_id(batch.id),
                    len(held),
                    *(v for pair in held.items() for v in pair),
                    *sketch_members(batch.sketches_changed),
                ),
            ),
        )
        return bool(deleted)

    async def batch_ids(self) -> list[str]:
        """The ids of the batches being applied now (a batch key per shard at most)."""
        with redis_unavailable_on_error():
            async with self.redis.pipeline(transaction=False) as pipe:
                for shard in self.keys.all_shards():
                    pipe.hget(shard.batch, "_id")
                replies = await pipe.execute()
        return [
            shard.batch_id(reply.decode())
            for shard, reply in zip(self.keys.all_shards(), replies, strict=True)
            if reply is not None
        ]

    async def pending_stats(self) -> PendingStats:
        """How much waits in Redis, over all shards, and since when."""
        calls = [
            Call(PENDING, (s.live, s.batch, s.sealed), (s.sealed_prefix,))
            for s in self.keys.all_shards()
        ]
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


def _given(kind: str, raw: bytes) -> dict[str, str]:
    """A metadata field the record script kept ('m<field>'), or an earlier release's
    JSON of them all ('m')."""
    if kind != k.META:
        return {kind.removeprefix(k.META): raw.decode()}
    try:
        found = json.loads(raw)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _metadata(given: dict[str, str]) -> ArticleMeta | None:
    """What events said of an article (checked when it came in); None if it is not what
    tracker wrote (then it is left out, not the batch)."""
    try:
        return from_dict(given)
    except (TypeError, msgspec.ValidationError):
        log.warning("left out metadata that is not tracker's: %.100r", given)
        return None


def _acknowledged(command: str, reply: Any) -> bool:
    if command == "WAITAOF":  # [local fsyncs, replica fsyncs]
        return int(reply[0]) >= 1
    return int(reply) >= 1


async def _parse(batch: Batch, raw: dict[Any, Any]) -> set[DayArticle]:
    """Fill the batch from its hash, yielding to the loop every _PARSE_STEP fields;
    returns the (day, article) whose sketch changed."""
    counters = batch.counters
    touched: set[DayArticle] = set()
    given: dict[str, dict[str, str]] = {}
    for n, (raw_name, raw_value) in enumerate(raw.items(), 1):
        if n % _PARSE_STEP == 0:
            await asyncio.sleep(0)
        if raw_name.startswith(_TOTAL_PREFIX):
            continue  # per-article totals are for reads; PostgreSQL sums the buckets
        if raw_name.startswith(_BUCKET_PREFIX):
            _, hour, metric, article_id = raw_name.decode().split(" ", 3)
            counters[(article_id, metric, int(hour))] = int(raw_value)
            continue
        name = raw_name.decode()
        kind, _, rest = name.partition(" ")
        if kind.startswith(k.META):
            given.setdefault(rest, {}).update(_given(kind, raw_value))
        elif kind == k.UNIQUES:
            day, article_id = rest.split(" ", 1)
            touched.add((int(day), article_id))
        elif name == k.EVENTS:
            batch.events = int(raw_value)
        elif name == k.PARTS:
            batch.parts = int(raw_value)
    for article_id, values in given.items():
        meta = _metadata(values)
        if meta is not None:
            batch.metadata[article_id] = meta
    return touched
