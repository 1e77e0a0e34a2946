"""Redis side of counting: record events, cut batches for the flusher, read what is pending.

Every call touches one shard's keys inside one Lua script, and a request that spans
several shards sends one script per shard in one pipeline: one round trip either way.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from . import keys as k
from .keys import Keys, ShardKeys
from .models import Event

# ARGV: now_ms, number of counter pairs, then (field, increment) pairs, then (field, value)
# metadata pairs. Counts new `b` fields so the flusher knows the batch size without HLEN.
RECORD_LUA: Final = """
local live = KEYS[1]
redis.call('HSETNX', live, '_first_ms', ARGV[1])
local pairs = tonumber(ARGV[2])
local events = tonumber(ARGV[3])
local new_counters = 0
local i = 4
for _ = 1, pairs do
  local incr = tonumber(ARGV[i + 1])
  local value = redis.call('HINCRBY', live, ARGV[i], incr)
  if value == incr and string.sub(ARGV[i], 1, 2) == 'b ' then
    new_counters = new_counters + 1
  end
  i = i + 2
end
if i <= #ARGV then
  redis.call('HSET', live, unpack(ARGV, i))
end
redis.call('HINCRBY', live, '_events', events)
if new_counters > 0 then
  redis.call('HINCRBY', live, '_counters', new_counters)
end
return events
"""

# Cut a batch: resume the one left by a flusher that died, else rename live -> batch with
# the next id. KEYS: live, batch, gen, epoch. ARGV: an epoch candidate.
CLAIM_LUA: Final = """
local batch_id = redis.call('HGET', KEYS[2], '_id')
if batch_id then
  return {'resumed', batch_id}
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
redis.call('SET', KEYS[4], ARGV[1], 'NX')
local epoch = redis.call('GET', KEYS[4])
local gen = redis.call('INCR', KEYS[3])
batch_id = epoch .. ':' .. gen
redis.call('HSET', KEYS[1], '_id', batch_id)
redis.call('RENAME', KEYS[1], KEYS[2])
return {'new', batch_id}
"""

# Delete the batch only if it is still the one this flusher applied (a stale flusher must
# not delete a newer batch). KEYS: batch. ARGV: batch id.
RELEASE_LUA: Final = """
if redis.call('HGET', KEYS[1], '_id') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# What is pending for some articles, with the ids of the pieces, read atomically.
# KEYS: live, batch, gen, epoch. ARGV: an epoch candidate, then the fields.
READ_LUA: Final = """
redis.call('SET', KEYS[4], ARGV[1], 'NX')
local epoch = redis.call('GET', KEYS[4])
local gen = tonumber(redis.call('GET', KEYS[3]) or '0')
local live_id = epoch .. ':' .. (gen + 1)
local live = redis.call('HMGET', KEYS[1], unpack(ARGV, 2))
local batch_id = redis.call('HGET', KEYS[2], '_id')
local batch = false
if batch_id then
  batch = redis.call('HMGET', KEYS[2], unpack(ARGV, 2))
end
return {live_id, live, batch_id, batch}
"""

# Size and age of what waits in one shard. KEYS: live, batch.
PENDING_LUA: Final = """
local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, '_events', '_counters', '_first_ms')
  out[i] = {v[1] or '0', v[2] or '0', v[3] or ''}
end
return out
"""


class RedisUnavailable(Exception):
    """Redis could not take or give the data now (down, slow, restarting)."""


class Script:
    """A Lua script called by SHA, loaded again if Redis lost its script cache."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA1


@dataclass(frozen=True, slots=True)
class Call:
    script: Script
    keys: Sequence[str]
    args: Sequence[str | int]


def open_redis(url: str, *, timeout_s: float, max_connections: int = 64) -> Redis:
    # No automatic retries: a retried HINCRBY whose first reply was lost counts twice.
    return Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        max_connections=max_connections,
        decode_responses=False,
        health_check_interval=0,
    )


async def run_calls(redis: Redis, calls: Sequence[Call]) -> list[Any]:
    """Run script calls in one round trip; reload scripts Redis forgot (nothing ran then)."""
    try:
        if len(calls) == 1:
            call = calls[0]
            try:
                return [
                    await redis.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
                ]
            except NoScriptError:
                await redis.script_load(call.script.source)
                return [
                    await redis.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
                ]
        results = await _pipeline(redis, calls)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            for script in {calls[i].script.sha: calls[i].script for i in missing}.values():
                await redis.script_load(script.source)
            retried = await _pipeline(redis, [calls[i] for i in missing])
            for i, result in zip(missing, retried, strict=True):
                results[i] = result
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results
    except (RedisError, OSError) as exc:
        raise RedisUnavailable(str(exc) or type(exc).__name__) from exc


async def _pipeline(redis: Redis, calls: Sequence[Call]) -> list[Any]:
    async with redis.pipeline(transaction=False) as pipe:
        for call in calls:
            pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
        return list(await pipe.execute(raise_on_error=False))


RECORD: Final = Script(RECORD_LUA)
CLAIM: Final = Script(CLAIM_LUA)
RELEASE: Final = Script(RELEASE_LUA)
READ: Final = Script(READ_LUA)
PENDING: Final = Script(PENDING_LUA)


def hour_of(now_s: float) -> int:
    """Hours since the Unix epoch: the bucket an event received now falls in."""
    return int(now_s // 3600)


def record_calls(keys: Keys, events: Sequence[Event], now_s: float) -> list[Call]:
    """One script call per shard the events touch, with equal counters summed."""
    hour = hour_of(now_s)
    per_shard: dict[int, dict[str, int]] = defaultdict(dict)
    events_per_shard: dict[int, int] = defaultdict(int)
    meta_per_shard: dict[int, dict[str, str]] = defaultdict(dict)
    for event in events:
        shard_keys = keys.for_article(event.article_id)
        counters = per_shard[shard_keys.shard]
        metric = event.metric
        for name in (
            k.bucket_field(hour, metric, event.article_id),
            k.total_field(metric, event.article_id),
        ):
            counters[name] = counters.get(name, 0) + 1
        events_per_shard[shard_keys.shard] += 1
        metadata = event.metadata()
        if metadata:
            meta_per_shard[shard_keys.shard][k.meta_field(event.article_id)] = json.dumps(
                metadata, separators=(",", ":"), ensure_ascii=False
            )
    now_ms = int(now_s * 1000)
    calls = []
    for shard, counters in per_shard.items():
        args: list[str | int] = [now_ms, len(counters), events_per_shard[shard]]
        for name, incr in counters.items():
            args += (name, incr)
        for name, value in meta_per_shard[shard].items():
            args += (name, value)
        calls.append(Call(RECORD, (keys.shard(shard).live,), args))
    return calls


async def record(redis: Redis, keys: Keys, events: Sequence[Event], now_s: float) -> int:
    """Store events; returns when Redis has them. Raises RedisUnavailable otherwise."""
    await run_calls(redis, record_calls(keys, events, now_s))
    return len(events)


@dataclass(slots=True)
class ClaimedBatch:
    shard: ShardKeys
    redis_id: str
    resumed: bool
    events: int = 0
    first_ms: int | None = None
    # (article_id, metric, hour) -> count
    counters: dict[tuple[str, str, int], int] = field(default_factory=dict)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def batch_id(self) -> str:
        return self.shard.batch_id(self.redis_id)


def _epoch_candidate() -> str:
    return secrets.token_hex(6)


async def claim_batch(redis: Redis, shard: ShardKeys) -> ClaimedBatch | None:
    """The shard's batch to flush: a left-over one first, else the live hash cut now."""
    (claimed,) = await run_calls(
        redis,
        [Call(CLAIM, (shard.live, shard.batch, shard.gen, shard.epoch), (_epoch_candidate(),))],
    )
    if claimed is None:
        return None
    state, redis_id = (part.decode() for part in claimed)
    batch = ClaimedBatch(shard=shard, redis_id=redis_id, resumed=state == "resumed")
    try:
        raw = await redis.hgetall(shard.batch)
    except (RedisError, OSError) as exc:
        raise RedisUnavailable(str(exc)) from exc
    _parse_batch(batch, raw)
    return batch


def _parse_batch(batch: ClaimedBatch, raw: dict[Any, Any]) -> None:
    for raw_name, raw_value in raw.items():
        name = raw_name.decode()
        kind, _, rest = name.partition(" ")
        if kind == k.BUCKET:
            hour, metric, article_id = rest.split(" ", 2)
            batch.counters[(article_id, metric, int(hour))] = int(raw_value)
        elif kind == k.META:
            batch.metadata[rest] = json.loads(raw_value)
        elif name == k.EVENTS:
            batch.events = int(raw_value)
        elif name == k.FIRST_MS:
            batch.first_ms = int(raw_value)


async def release_batch(redis: Redis, batch: ClaimedBatch) -> bool:
    """Delete the batch key once Postgres holds it. False if it was gone already."""
    (deleted,) = await run_calls(redis, [Call(RELEASE, (batch.shard.batch,), (batch.redis_id,))])
    return bool(deleted)


@dataclass(frozen=True, slots=True)
class PendingPiece:
    """Counts still in Redis for some articles, and the batch id they will be flushed as."""

    batch_id: str
    # article_id -> metric -> count
    counts: dict[str, dict[str, int]]


async def read_pending(redis: Redis, keys: Keys, article_ids: Sequence[str]) -> list[PendingPiece]:
    """Atomically per shard: live and in-flight counts with their batch ids."""
    by_shard: dict[int, list[str]] = defaultdict(list)
    for article_id in dict.fromkeys(article_ids):
        by_shard[keys.for_article(article_id).shard].append(article_id)
    calls = []
    for shard, ids in by_shard.items():
        shard_keys = keys.shard(shard)
        fields = [name for article_id in ids for name in k.total_fields(article_id)]
        calls.append(
            Call(
                READ,
                (shard_keys.live, shard_keys.batch, shard_keys.gen, shard_keys.epoch),
                (_epoch_candidate(), *fields),
            )
        )
    results = await run_calls(redis, calls)
    pieces = []
    for (shard, ids), (live_id, live, batch_id, batch) in zip(
        by_shard.items(), results, strict=True
    ):
        shard_keys = keys.shard(shard)
        pieces.append(PendingPiece(shard_keys.batch_id(live_id.decode()), _counts(ids, live)))
        if batch_id is not None:
            pieces.append(PendingPiece(shard_keys.batch_id(batch_id.decode()), _counts(ids, batch)))
    return pieces


def _counts(
    article_ids: Sequence[str], values: Sequence[bytes | None]
) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    width = len(k.ALL_METRICS)
    for index, article_id in enumerate(article_ids):
        row = values[index * width : (index + 1) * width]
        found = {m: int(v) for m, v in zip(k.ALL_METRICS, row, strict=True) if v is not None}
        if found:
            counts[article_id] = found
    return counts


@dataclass(frozen=True, slots=True)
class PendingStats:
    events: int
    counters: int
    oldest_event_ms: int | None


async def pending_stats(redis: Redis, keys: Keys) -> PendingStats:
    """How much waits in Redis, over all shards, and since when."""
    calls = [Call(PENDING, (s.live, s.batch), ()) for s in keys.all_shards()]
    events = counters = 0
    oldest: int | None = None
    for shard_result in await run_calls(redis, calls):
        for raw_events, raw_counters, raw_first in shard_result:
            events += int(raw_events)
            counters += int(raw_counters)
            if raw_first:
                first = int(raw_first)
                oldest = first if oldest is None else min(oldest, first)
    return PendingStats(events=events, counters=counters, oldest_event_ms=oldest)


def now_s() -> float:
    return time.time()
