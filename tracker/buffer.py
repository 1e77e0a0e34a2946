"""Redis side of counting: record events, cut batches for the flusher, read what is pending.

Every call touches one shard's keys inside one Lua script, and a request that spans
several shards sends one script per shard in one pipeline: one round trip either way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from . import keys as k
from .bots import HUMAN, PREVIEW, Agent
from .keys import Keys, ShardKeys
from .models import Event
from .referrals import referral_channel

# One call records the events of one shard. KEYS[1] is the live hash; KEYS[2..] are the
# dedup and sketch keys the events name by index (0: none). ARGV: now_ms, dedup window
# (s), when the day's sketches expire (Unix s), number of events, then per event: dedup
# index, sketch index, reader, number of fields, the fields (each +1); then metadata
# (field, value) pairs. A repeat (its dedup key exists) adds nothing.
# Returns {counted, repeats}.
RECORD_LUA: Final = """
local live = KEYS[1]
local window = tonumber(ARGV[2])
local sketch_expires_at = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local i = 5
local counted, repeats, new_counters = 0, 0, 0
for _ = 1, n do
  local dedup = tonumber(ARGV[i])
  local sketch = tonumber(ARGV[i + 1])
  local nfields = tonumber(ARGV[i + 3])
  local fresh = true
  if dedup > 0 then
    fresh = redis.call('SET', KEYS[dedup], '1', 'NX', 'EX', window) ~= false
  end
  if fresh then
    counted = counted + 1
    for j = i + 4, i + 3 + nfields do
      if redis.call('HINCRBY', live, ARGV[j], 1) == 1 and string.byte(ARGV[j]) == 98 then
        new_counters = new_counters + 1
      end
    end
    if sketch > 0 then
      redis.call('PFADD', KEYS[sketch], ARGV[i + 2])
      redis.call('EXPIREAT', KEYS[sketch], sketch_expires_at)
    end
  else
    repeats = repeats + 1
  end
  i = i + 4 + nfields
end
if i <= #ARGV then
  redis.call('HSET', live, unpack(ARGV, i))
end
if counted > 0 then
  redis.call('HSETNX', live, '_first_ms', ARGV[1])
  redis.call('HINCRBY', live, '_events', counted)
end
if new_counters > 0 then
  redis.call('HINCRBY', live, '_counters', new_counters)
end
return {counted, repeats}
"""

# Cut a batch: resume the one left by a flusher that died, else rename live -> batch with
# the next id and the number of parts it is to be applied in (kept with it, so that a
# resumed batch is cut the same way). KEYS: live, batch, gen, epoch. ARGV: an epoch
# candidate, parts.
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
redis.call('HSET', KEYS[1], '_id', batch_id, '_parts', ARGV[2])
redis.call('RENAME', KEYS[1], KEYS[2])
return {'new', batch_id}
"""

# Delete the batch only if it is still the one this flusher applied (a stale flusher must
# not delete a newer batch). KEYS: batch. ARGV: batch id.
RELEASE_LUA: Final = """
if redis.call('HGET', KEYS[1], '_id') == ARGV[1] then
  return redis.call('UNLINK', KEYS[1])
end
return 0
"""

# What is pending for some articles, with the ids of the pieces, read atomically, and the
# reader counts of the sketches still in Redis. KEYS: live, batch, gen, epoch, then
# sketch keys. ARGV: an epoch candidate, then the fields.
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
local readers = {}
for i = 5, #KEYS do
  readers[i - 4] = redis.call('PFCOUNT', KEYS[i])
end
return {live_id, live, batch_id, batch, readers}
"""

# Readers in the union of sketches: stored ones (ARGV) and ones still in Redis
# (KEYS[3..]), merged in two scratch keys of the shard (KEYS[1], KEYS[2]).
MERGE_LUA: Final = """
redis.call('DEL', KEYS[1])
for i = 1, #ARGV do
  redis.call('SET', KEYS[2], ARGV[i])
  redis.call('PFMERGE', KEYS[1], KEYS[2])
end
if #KEYS > 2 then
  redis.call('PFMERGE', KEYS[1], unpack(KEYS, 3))
end
local readers = redis.call('PFCOUNT', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return readers
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


@contextlib.contextmanager
def redis_unavailable_on_error() -> Iterator[None]:
    """What redis-py raises for a server that is away, slow or restarting, as RedisUnavailable."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise RedisUnavailable(str(exc) or type(exc).__name__) from exc


class Script:
    """A Lua script called by SHA, loaded again if Redis lost its script cache."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA1


@dataclass(frozen=True, slots=True)
class Call:
    script: Script
    keys: Sequence[str]
    args: Sequence[str | int | bytes]


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
    with redis_unavailable_on_error():
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
MERGE: Final = Script(MERGE_LUA)


def hour_of(now_s: float) -> int:
    """Hours since the Unix epoch: the bucket an event received now falls in."""
    return int(now_s // 3600)


DAY_S: Final = 86_400


def day_of(now_s: float) -> int:
    """Days since the Unix epoch (UTC): the day of a reader sketch and of a salt."""
    return int(now_s // DAY_S)


# A day's reader sketch expires at the end of the next day, stored or not (Redis holds
# two days of sketches at most); once a past day's sketch is stored the flusher
# shortens that to PERSISTED_SKETCH_TTL_S.
SKETCH_DAYS_KEPT: Final = 2
PERSISTED_SKETCH_TTL_S: Final = 3_600


def sketch_expires_at(day: int) -> int:
    return (day + SKETCH_DAYS_KEPT) * DAY_S


@dataclass(frozen=True, slots=True)
class Visitor:
    """Who sent the events: the day's reader id and what kind of agent it is."""

    reader: bytes
    agent: Agent


@dataclass(frozen=True, slots=True)
class Recorded:
    counted: int
    repeats: int


def event_metrics(event: Event, visitor: Visitor) -> tuple[str, ...]:
    """The counters one event adds to, before de-duplication."""
    if visitor.agent.kind == PREVIEW:
        return (f"{k.PREVIEW}:{visitor.agent.channel}",)
    if event.type == "view":
        channel = referral_channel(event.referrer, event.url)
        if channel is not None:
            return (k.VIEW_METRIC, f"{k.REFERRAL}:{channel}")
        return (k.VIEW_METRIC,)
    return (event.metric,)


class _ShardCall:
    """The arguments of one shard's RECORD call, built event by event."""

    def __init__(self, live: str, now_ms: int, window_s: int, sketch_expiry: int) -> None:
        self.keys: list[str] = [live]
        self.sketch_expiry = sketch_expiry
        self._index: dict[str, int] = {}
        self.window_s = window_s
        self.now_ms = now_ms
        self.events: list[str | int | bytes] = []
        self.count = 0
        self.meta: dict[str, str] = {}

    def key_index(self, key: str) -> int:
        index = self._index.get(key)
        if index is None:
            self.keys.append(key)
            index = self._index[key] = len(self.keys)
        return index

    def add(self, dedup: int, sketch: int, reader: bytes, fields: list[str]) -> None:
        self.events += (dedup, sketch, reader, len(fields), *fields)
        self.count += 1

    def call(self) -> Call:
        args: list[str | int | bytes] = [self.now_ms, self.window_s, self.sketch_expiry, self.count]
        args += self.events
        for name, value in self.meta.items():
            args += (name, value)
        return Call(RECORD, self.keys, args)


def record_calls(
    keys: Keys, entries: Sequence[tuple[Event, Visitor]], now_s: float, dedup_window_s: int
) -> list[Call]:
    """One script call per shard the events touch."""
    hour = hour_of(now_s)
    day = day_of(now_s)
    now_ms = int(now_s * 1000)
    shards: dict[int, _ShardCall] = {}
    for event, visitor in entries:
        shard_keys = keys.for_article(event.article_id)
        shard = shards.get(shard_keys.shard)
        if shard is None:
            shard = shards[shard_keys.shard] = _ShardCall(
                shard_keys.live, now_ms, dedup_window_s, sketch_expires_at(day)
            )
        metrics = event_metrics(event, visitor)
        fields = []
        for metric in metrics:
            fields.append(k.bucket_field(hour, metric, event.article_id))
            fields.append(k.total_field(metric, event.article_id))
        sketch = 0
        if visitor.agent.kind == HUMAN and event.type == "view":
            sketch = shard.key_index(shard_keys.uniques(day, event.article_id))
            fields.append(k.uniques_field(day, event.article_id))
        dedup = 0
        if dedup_window_s > 0:
            dedup = shard.key_index(shard_keys.dedup(visitor.reader, metrics[0], event.article_id))
        shard.add(dedup, sketch, visitor.reader, fields)
        metadata = event.metadata()
        if metadata:
            shard.meta[k.meta_field(event.article_id)] = json.dumps(
                metadata, separators=(",", ":"), ensure_ascii=False
            )
    return [shard.call() for shard in shards.values()]


async def record(
    redis: Redis,
    keys: Keys,
    entries: Sequence[tuple[Event, Visitor]],
    now_s: float,
    dedup_window_s: int,
) -> Recorded:
    """Store events; returns when Redis has them. Raises RedisUnavailable otherwise."""
    results = await run_calls(redis, record_calls(keys, entries, now_s, dedup_window_s))
    return Recorded(
        counted=sum(int(r[0]) for r in results), repeats=sum(int(r[1]) for r in results)
    )


@dataclass(slots=True)
class ClaimedBatch:
    shard: ShardKeys
    redis_id: str
    resumed: bool
    parts: int = 1
    events: int = 0
    first_ms: int | None = None
    # (article_id, metric, hour) -> count
    counters: dict[tuple[str, str, int], int] = field(default_factory=dict)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    # (day, article_id) whose reader sketch changed
    uniques: set[tuple[int, str]] = field(default_factory=set)
    # (day, article_id) -> (sketch bytes, readers counted), fetched before applying
    sketches: dict[tuple[int, str], tuple[bytes, int]] = field(default_factory=dict)

    @property
    def batch_id(self) -> str:
        return self.shard.batch_id(self.redis_id)


def _epoch_candidate() -> str:
    return secrets.token_hex(6)


async def claim_batch(redis: Redis, shard: ShardKeys, *, parts: int = 1) -> ClaimedBatch | None:
    """The shard's batch to flush: a left-over one first, else the live hash cut now."""
    (claimed,) = await run_calls(
        redis,
        [
            Call(
                CLAIM,
                (shard.live, shard.batch, shard.gen, shard.epoch),
                (_epoch_candidate(), parts),
            )
        ],
    )
    if claimed is None:
        return None
    state, redis_id = (part.decode() for part in claimed)
    batch = ClaimedBatch(shard=shard, redis_id=redis_id, resumed=state == "resumed")
    with redis_unavailable_on_error():
        raw = await redis.hgetall(shard.batch)
    _parse_batch(batch, raw)
    return batch


_TOTAL_PREFIX: Final = (k.TOTAL + " ").encode()
_BUCKET_PREFIX: Final = (k.BUCKET + " ").encode()


def _parse_batch(batch: ClaimedBatch, raw: dict[Any, Any]) -> None:
    counters = batch.counters
    for raw_name, raw_value in raw.items():
        if raw_name.startswith(_TOTAL_PREFIX):
            continue  # per-article totals are for reads; Postgres sums the buckets
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
            batch.uniques.add((int(day), article_id))
        elif name == k.EVENTS:
            batch.events = int(raw_value)
        elif name == k.FIRST_MS:
            batch.first_ms = int(raw_value)
        elif name == k.PARTS:
            batch.parts = int(raw_value)


async def fetch_sketches(redis: Redis, batch: ClaimedBatch) -> None:
    """The current sketch of every (day, article) the batch touched, with its count."""
    if not batch.uniques:
        return
    wanted = sorted(batch.uniques)
    with redis_unavailable_on_error():
        async with redis.pipeline(transaction=False) as pipe:
            for day, article_id in wanted:
                key = batch.shard.uniques(day, article_id)
                pipe.get(key)
                pipe.pfcount(key)
            replies = await pipe.execute()
    for index, wanted_key in enumerate(wanted):
        sketch, count = replies[2 * index], replies[2 * index + 1]
        if sketch:  # gone only if it expired unflushed (Postgres away for days)
            batch.sketches[wanted_key] = (bytes(sketch), int(count))


async def expire_past_sketches(redis: Redis, batch: ClaimedBatch, now_s: float) -> None:
    """Past days' sketches are stored in Postgres now: let Redis drop them soon."""
    today = day_of(now_s)
    past = [key for key in batch.sketches if key[0] < today]
    if not past:
        return
    with redis_unavailable_on_error():
        async with redis.pipeline(transaction=False) as pipe:
            for day, article_id in past:
                pipe.expire(batch.shard.uniques(day, article_id), PERSISTED_SKETCH_TTL_S)
            await pipe.execute()


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


@dataclass(frozen=True, slots=True)
class Pending:
    pieces: list[PendingPiece]
    # article_id -> day -> readers counted in the day's sketch still in Redis
    readers: dict[str, dict[int, int]]


def sketch_days(now_s: float) -> tuple[int, int]:
    """The days whose sketches a read asks Redis about: yesterday's may not be stored yet."""
    today = day_of(now_s)
    return today - 1, today


async def read_pending(
    redis: Redis, keys: Keys, article_ids: Sequence[str], now_s: float
) -> Pending:
    """Atomically per shard: live and in-flight counts with their batch ids, and the
    reader counts of the recent days' sketches."""
    by_shard: dict[int, list[str]] = defaultdict(list)
    for article_id in dict.fromkeys(article_ids):
        by_shard[keys.for_article(article_id).shard].append(article_id)
    days = sketch_days(now_s)
    calls = []
    for shard, ids in by_shard.items():
        shard_keys = keys.shard(shard)
        fields = [name for article_id in ids for name in k.total_fields(article_id)]
        sketches = [shard_keys.uniques(day, a) for a in ids for day in days]
        calls.append(
            Call(
                READ,
                (shard_keys.live, shard_keys.batch, shard_keys.gen, shard_keys.epoch, *sketches),
                (_epoch_candidate(), *fields),
            )
        )
    results = await run_calls(redis, calls)
    pieces = []
    readers: dict[str, dict[int, int]] = {}
    for (shard, ids), (live_id, live, batch_id, batch, counts) in zip(
        by_shard.items(), results, strict=True
    ):
        shard_keys = keys.shard(shard)
        pieces.append(PendingPiece(shard_keys.batch_id(live_id.decode()), _counts(ids, live)))
        if batch_id is not None:
            pieces.append(PendingPiece(shard_keys.batch_id(batch_id.decode()), _counts(ids, batch)))
        for index, article_id in enumerate(ids):
            per_day = counts[index * len(days) : (index + 1) * len(days)]
            readers[article_id] = {day: int(n) for day, n in zip(days, per_day, strict=True) if n}
    return Pending(pieces, readers)


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


async def count_union(
    redis: Redis, shard: ShardKeys, stored: Sequence[bytes], live_keys: Sequence[str]
) -> int:
    """Distinct readers over stored sketches and sketches still in Redis (same shard)."""
    token = secrets.token_hex(8)
    (readers,) = await run_calls(
        redis,
        [
            Call(
                MERGE,
                (shard.scratch(token + ":a"), shard.scratch(token + ":b"), *live_keys),
                list(stored),
            )
        ],
    )
    return int(readers)


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
