"""Recording events in Redis: which counters an event adds to, and one script call per
shard the events touch, all in one round trip.

Every call touches one shard's keys only (the live hash, its de-duplication keys and
reader sketches), so it runs unchanged on Redis Cluster.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from . import keys as k
from .bots import HUMAN
from .bots import PREVIEW as PREVIEW_AGENT
from .counts import PREVIEW, REFERRAL, VIEW
from .keys import Keys, sketch_expires_at
from .models import Event
from .readers import Visitor
from .referrals import referral_channel
from .scripts import RECORD, Call, run_calls
from .utc import day_of, hour_of

Entry = tuple[Event, Visitor]


@dataclass(frozen=True, slots=True)
class Recorded:
    repeats: int  # events not counted: a reader's repeat within the dedup window


def event_metrics(event: Event, visitor: Visitor) -> tuple[str, ...]:
    """The counters one event adds to, before de-duplication."""
    if visitor.agent.kind == PREVIEW_AGENT:
        return (f"{PREVIEW}:{visitor.agent.channel}",)
    if event.type == "view":
        channel = referral_channel(event.referrer, event.url)
        if channel is not None:
            return (VIEW, f"{REFERRAL}:{channel}")
        return (VIEW,)
    return (event.metric,)


class _ShardCall:
    """The arguments of one shard's RECORD call, built event by event."""

    def __init__(self, live: str, now_ms: int, window_s: int, sketch_expiry: int) -> None:
        self.keys: list[str] = [live]
        self._index: dict[str, int] = {}
        self._head: list[str | int | bytes] = [now_ms, window_s, sketch_expiry]
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
        args = [*self._head, self.count, *self.events]
        for name, value in self.meta.items():
            args += (name, value)
        return Call(RECORD, self.keys, args)


class Recorder:
    """Stores events in Redis: counters, de-duplication keys and reader sketches."""

    def __init__(self, redis: Redis, keys: Keys, *, dedup_window_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.dedup_window_s = dedup_window_s

    def calls(self, entries: Sequence[Entry], now_s: float) -> list[Call]:
        """One script call per shard the events touch."""
        hour = hour_of(now_s)
        day = day_of(now_s)
        now_ms = int(now_s * 1000)
        window_s = self.dedup_window_s
        shards: dict[int, _ShardCall] = {}
        for event, visitor in entries:
            shard_keys = self.keys.for_article(event.article_id)
            shard = shards.get(shard_keys.shard)
            if shard is None:
                shard = shards[shard_keys.shard] = _ShardCall(
                    shard_keys.live, now_ms, window_s, sketch_expires_at(day)
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
            if window_s > 0:
                dedup_key = shard_keys.dedup(visitor.reader, metrics[0], event.article_id)
                dedup = shard.key_index(dedup_key)
            shard.add(dedup, sketch, visitor.reader, fields)
            metadata = event.metadata()
            if metadata:
                shard.meta[k.meta_field(event.article_id)] = json.dumps(
                    metadata, separators=(",", ":"), ensure_ascii=False
                )
        return [shard.call() for shard in shards.values()]

    async def record(self, entries: Sequence[Entry], now_s: float) -> Recorded:
        """Returns when Redis has stored the entries; raises RedisUnavailable otherwise."""
        results = await run_calls(self.redis, self.calls(entries, now_s))
        return Recorded(repeats=sum(int(r[1]) for r in results))
