"""Recording events in Redis: which counters an event adds to, and one script call per
shard the events touch, all in one round trip.

Every call touches one shard's keys only (the live hash, its de-duplication, address,
rate and event-id keys, its reader sketches), so it runs unchanged on Redis Cluster.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from . import keys as k
from .bots import HUMAN
from .bots import PREVIEW as PREVIEW_AGENT
from .counts import ENGAGED, ENGAGED_S, PREVIEW, READ, REFERRAL, SHARE, VIEW
from .errors import RedisUnavailable
from .keys import Keys, ShardKeys, epoch_candidate
from .models import Event
from .preflight import Preflight
from .readers import Visitor
from .redis_client import RedisClient, RedisNodes
from .referrals import referral_channel
from .scripts import RECORD, Call, run_calls, run_durably
from .settings import Settings
from .utc import day_of, hour_of

Entry = tuple[Event, Visitor]
# The events of one request, recorded together.
Request = Sequence[Entry]

_MINUTE_MS: Final = 60_000
# Counted views and shares go into the minute's trending sets (keys.py: tr:<kind>:...).
TRENDING_KINDS: Final = {VIEW: k.TRENDING_VIEWS, SHARE: k.TRENDING_SHARES}


@dataclass(slots=True)
class Recorded:
    """What Redis did with a round trip's requests."""

    # Per request: 0 if stored, else the ms until its address may send again.
    retry_after_ms: list[int]
    # Events that added to counters.
    counted: int = 0
    # Events acknowledged and not counted, by why.
    repeats: int = 0
    address_limited: int = 0
    retried: int = 0


@dataclass(frozen=True, slots=True)
class Unit:
    """What the script adds for one event, or for one part of an engage event: `amount`
    to each of `metrics`, once per reader within the de-duplication window if `dedup`."""

    metrics: tuple[str, ...]
    amount: int = 1
    dedup: bool = True
    # Tells this part's event id apart from its event's other parts (a retry of the
    # event is then not counted again, part by part).
    part: str = ""


def event_units(event: Event, visitor: Visitor) -> tuple[Unit, ...]:
    """An engage event adds its seconds (every time: they are increments) and, once per
    reader, an engaged reader (on the page view's first) and each quarter first reached;
    link-preview fetchers do not read. Any other event is one unit."""
    if event.type != "engage":
        return _plain_units(event_metrics(event, visitor))
    if visitor.agent.kind != HUMAN:
        return ()
    units = []
    if event.engaged_s:
        units.append(Unit((ENGAGED_S,), event.engaged_s, dedup=False, part="s"))
    if event.seq == 0:
        units.append(Unit((ENGAGED,), part="e"))
    units.extend(Unit((f"{READ}:{q}",), part=f"q{q}") for q in event.quarters())
    return tuple(units)


@functools.lru_cache(maxsize=256)
def _plain_units(metrics: tuple[str, ...]) -> tuple[Unit, ...]:
    # Views, shares and previews: a few dozen kinds, made once each.
    return (Unit(metrics),)


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


@dataclass(slots=True)
class _RequestPart:
    """A request's events in one shard."""

    index: int  # of the request in the round trip
    rate_key: int
    events: list[str | int | bytes] = field(default_factory=list)
    count: int = 0


class _ShardCall:
    """The arguments of one shard's RECORD call, built request by request."""

    def __init__(self, shard: ShardKeys, head: list[str | int | bytes]) -> None:
        self.shard = shard
        self.keys: list[str] = [shard.live, shard.sealed, shard.gen, shard.epoch]
        self._index: dict[str, int] = {}
        self._head = head
        self.parts: dict[int, _RequestPart] = {}
        self.meta: dict[str, str] = {}

    def key_index(self, key: str) -> int:
        index = self._index.get(key)
        if index is None:
            self.keys.append(key)
            index = self._index[key] = len(self.keys)
        return index

    def part(self, request: int, rate_key: str | None) -> _RequestPart:
        part = self.parts.get(request)
        if part is None:
            rate = self.key_index(rate_key) if rate_key is not None else 0
            part = self.parts[request] = _RequestPart(request, rate)
        return part

    def call(self) -> Call:
        args = [*self._head, epoch_candidate(), self.shard.base, len(self.parts)]
        for part in self.parts.values():
            args += (part.rate_key, part.count, *part.events)
        for name, value in self.meta.items():
            args += (name, value)
        return Call(RECORD, self.keys, args)


class Recorder:
    """Stores events in Redis: counters, de-duplication and limit keys, reader sketches."""

    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        settings: Settings,
        preflight: Preflight | None = None,
        *,
        nodes: RedisNodes | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.preflight = preflight
        # TRACKER_REDIS_WAIT_REPLICAS: each node's calls followed by WAIT on their connection.
        self.wait_replicas = settings.redis_wait_replicas
        self.wait_timeout_ms = max(1, int(settings.redis_timeout_s * 500))
        self.nodes = nodes or RedisNodes(redis, timeout_s=settings.redis_timeout_s)
        self.dedup_window_s = settings.dedup_window_s
        # The bound on readers per address needs a window to count them in.
        self.readers_per_address = settings.max_readers_per_address if self.dedup_window_s else 0
        self.rate_interval_ms = (
            math.ceil(_MINUTE_MS / settings.rate_limit) if settings.rate_limit > 0 else 0
        )
        self.seal_at_fields = settings.flush_max_batch_fields

    def calls(self, requests: Sequence[Request], now_s: float) -> list[tuple[Call, list[int]]]:
        """One script call per shard the requests touch, each with the indexes of the
        requests it carries (in the order the script answers for them)."""
        hour = hour_of(now_s)
        day = day_of(now_s)
        head: list[str | int | bytes] = [
            int(now_s * 1000),
            self.dedup_window_s,
            self.readers_per_address,
            self.rate_interval_ms,
            self.seal_at_fields,
        ]
        shards: dict[int, _ShardCall] = {}
        for index, request in enumerate(requests):
            for event, visitor in request:
                shard_keys = self.keys.for_article(event.article_id)
                shard = shards.get(shard_keys.shard)
                if shard is None:
                    shard = shards[shard_keys.shard] = _ShardCall(shard_keys, head)
                rate_key = (
                    shard_keys.rate(visitor.address)
                    if self.rate_interval_ms and visitor.address
                    else None
                )
                self._add(shard, shard.part(index, rate_key), event, visitor, hour, day)
        return [(shard.call(), list(shard.parts)) for shard in shards.values()]

    def _add(
        self,
        shard: _ShardCall,
        part: _RequestPart,
        event: Event,
        visitor: Visitor,
        hour: int,
        day: int,
    ) -> None:
        for number, unit in enumerate(event_units(event, visitor)):
            # The first unit counts as the event; the others are more of its counters.
            weight = 1 if number == 0 else 0
            self._add_unit(shard, part, event, visitor, unit, hour, day, weight=weight)
        metadata = event.metadata()
        if metadata:
            shard.meta[k.meta_field(event.article_id)] = json.dumps(
                metadata, separators=(",", ":"), ensure_ascii=False
            )

    def _add_unit(
        self,
        shard: _ShardCall,
        part: _RequestPart,
        event: Event,
        visitor: Visitor,
        unit: Unit,
        hour: int,
        day: int,
        *,
        weight: int,
    ) -> None:
        shard_keys = shard.shard
        article_id = event.article_id
        metrics = unit.metrics
        fields = []
        for metric in metrics:
            fields.append(k.bucket_field(hour, metric, article_id))
            fields.append(k.total_field(metric, article_id))
        sketch = 0
        if visitor.agent.kind == HUMAN and event.type == "view":
            sketch = shard.key_index(shard_keys.uniques(day, article_id))
            fields.append(k.uniques_field(day, article_id))
        event_id = 0
        if event.id:
            own_id = f"{event.id}:{unit.part}" if unit.part else event.id
            event_id = shard.key_index(shard_keys.event_id(own_id, article_id))
        trend = TRENDING_KINDS.get(metrics[0].partition(":")[0], "-")
        dedup = address = 0
        if self.dedup_window_s > 0 and unit.dedup:
            dedup = shard.key_index(shard_keys.dedup(visitor.reader, metrics[0], article_id))
            if self.readers_per_address and visitor.address:
                address_key = shard_keys.address(visitor.address, metrics[0], article_id)
                address = shard.key_index(address_key)
        part.events += (
            event_id,
            dedup,
            address,
            sketch,
            trend,
            article_id,
            visitor.reader,
            unit.amount,
            weight,
            len(fields),
            *fields,
        )
        part.count += 1

    async def _run(self, calls: list[Call]) -> list[Any]:
        if not self.wait_replicas:
            return await run_calls(self.redis, calls)
        answers = await run_durably(
            self.nodes, calls, ("WAIT", self.wait_replicas, self.wait_timeout_ms)
        )
        if any(int(replicas) < self.wait_replicas for _, replicas in answers):
            # Stored on the primary, not yet on enough replicas: not promised (a 503).
            raise RedisUnavailable(
                f"fewer than {self.wait_replicas} replica(s) acknowledged within "
                f"{self.wait_timeout_ms} ms"
            )
        return [result for result, _ in answers]

    async def record(self, requests: Sequence[Request], now_s: float) -> Recorded:
        """Returns when Redis has answered for every request; raises RedisUnavailable
        otherwise (then none of them may be acknowledged)."""
        if self.preflight is not None:
            self.preflight.require()
        calls = self.calls(requests, now_s)
        results = await self._run([call for call, _ in calls])
        recorded = Recorded(retry_after_ms=[0] * len(requests))
        for (_, indexes), (counted, repeats, limited, retried, waits) in zip(
            calls, results, strict=True
        ):
            recorded.counted += int(counted)
            recorded.repeats += int(repeats)
            recorded.address_limited += int(limited)
            recorded.retried += int(retried)
            for index, wait in zip(indexes, waits, strict=True):
                recorded.retry_after_ms[index] = max(recorded.retry_after_ms[index], int(wait))
        return recorded
