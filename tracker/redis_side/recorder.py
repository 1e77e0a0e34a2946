"""Recording events in Redis: which counters an event adds to, and one script call per
shard the events touch, all in one round trip.

Every call touches one shard's keys only (the live hash, the readers' state on the
articles, address and rate keys, reader sketches), so it runs unchanged on Redis Cluster.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from tracker.core.errors import RedisUnavailable
from tracker.core.metadata import FIELDS, MetaFields, as_dict, cleaned
from tracker.core.settings import Settings
from tracker.core.utc import day_of, hour_of
from tracker.events.bots import HUMAN
from tracker.events.models import MAX_ENGAGED_S, Event
from tracker.redis_side import keys as k
from tracker.redis_side.client import RedisClient, RedisNodes
from tracker.redis_side.keys import Keys, ShardKeys, epoch_candidate, state_name, uniques_name
from tracker.redis_side.preflight import Preflight
from tracker.redis_side.readers import Visitor
from tracker.redis_side.record_call import (
    EventRecord,
    FieldGroup,
    RecordHead,
    RequestRecord,
    arguments,
    raw_text,
)
from tracker.redis_side.scripts import RECORD, Call, run_calls, run_durably
from tracker.redis_side.units import VIEW_UNIT, Unit, event_units, unit_record

Entry = tuple[Event, Visitor]
# The events of one request, recorded together.
Request = Sequence[Entry]

_MINUTE_MS: Final = 60_000
# A reader's state on an article (its counted view, event ids) is kept this much past
# the longest a page counts engaged time (or the de-duplication window if longer): a
# retry after a 503 comes within seconds, a page's engaged time when it is hidden.
READER_STATE_SLACK_S: Final = 60
# Articles each trending bucket keeps per shard (cut back to these once half again as
# many): the head that trending ranks. An address naming new articles endlessly adds no
# more than that to Redis a bucket.
TRENDING_KEEP: Final = 200


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
    no_view: int = 0
    engaged_limit: int = 0


_metadata_values: Final = operator.attrgetter(*FIELDS)
_NO_METADATA: Final = (None,) * len(FIELDS)


def _metadata_text(event: Event) -> str:
    """What the event says of its article, as the record script keeps it (JSON); events
    of one page say the same, so each text is made once."""
    values = _metadata_values(event)
    return "" if values == _NO_METADATA else _metadata_of(values)


@functools.lru_cache(maxsize=4096)
def _metadata_of(values: tuple[Any, ...]) -> str:
    metadata = as_dict(cleaned(MetaFields(*values)))
    return json.dumps(metadata, separators=(",", ":"), ensure_ascii=False) if metadata else ""


def _event_id(event_id: str) -> msgspec.Raw:
    """A client's event id, kept compactly (8 bytes) in the reader's state."""
    return raw_text(hashlib.blake2b(event_id.encode(), digest_size=8).digest())


@functools.lru_cache(maxsize=8192)
def _fields(
    hour: int, day: int | None, metrics: tuple[str, ...], article_id: str
) -> tuple[str, ...]:
    """The live hash's fields a unit adds to: per metric its hourly bucket and total, and
    for a reader's view its sketch's marker. A story's fields are made once an hour."""
    fields = []
    for metric in metrics:
        fields.append(k.bucket_field(hour, metric, article_id))
        fields.append(k.total_field(metric, article_id))
    if day is not None:
        fields.append(k.uniques_field(day, article_id))
    return tuple(fields)


class _ShardCall:
    """One shard's RECORD call, built request by request."""

    def __init__(self, shard: ShardKeys, head: RecordHead) -> None:
        self.shard = shard
        self._head = msgspec.structs.replace(
            head,
            epoch_candidate=epoch_candidate(),
            sealed_prefix=shard.sealed_prefix,
            trending_prefix=shard.trending_prefix,
            state_prefix=shard.state_prefix,
            hash_state_prefix=shard.hash_state_prefix,
            rate_prefix=shard.rate_prefix,
            sketch_prefix=shard.sketch_prefix,
        )
        self.parts: dict[int, RequestRecord] = {}
        self._metas: dict[str, int] = {}
        self._units: dict[Unit, int] = {}
        self._groups: dict[tuple[int, int | None, tuple[str, ...], str], int] = {}
        self._group_list: list[FieldGroup] = []

    def meta_index(self, text: str) -> int:
        if not text:
            return 0
        index = self._metas.get(text)
        if index is None:
            index = self._metas[text] = len(self._metas) + 1
        return index

    def unit_index(self, unit: Unit) -> int:
        """The call's record of this kind of unit (1-based)."""
        index = self._units.get(unit)
        if index is None:
            index = self._units[unit] = len(self._units) + 1
        return index

    def group_index(
        self, hour: int, day: int | None, metrics: tuple[str, ...], article_id: str
    ) -> int:
        """The call's field group (1-based) of an article's metrics in an hour, with the
        day's sketch for a reader's view."""
        key = (hour, day, metrics, article_id)
        index = self._groups.get(key)
        if index is None:
            sketch = "" if day is None else uniques_name(day, article_id)
            fields = _fields(hour, day, metrics, article_id)
            self._group_list.append(FieldGroup(article_id, sketch, fields))
            index = self._groups[key] = len(self._group_list)
        return index

    def part(self, request: int, rate: str) -> RequestRecord:
        part = self.parts.get(request)
        if part is None:
            part = self.parts[request] = RequestRecord(rate, [])
        return part

    def call(self) -> Call:
        shard = self.shard
        keys = [shard.live, shard.sealed, shard.gen, shard.epoch, shard.activity]
        units = [unit_record(unit) for unit in self._units]
        args = arguments(
            self._head, list(self._metas), units, self._group_list, list(self.parts.values())
        )
        return Call(RECORD, keys, args)


class Recorder:
    """Stores events in Redis: counters, readers' state, limit keys, reader sketches."""

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
        # The rate limit counts events: each costs its address this many ms of a minute.
        self.event_cost_ms = (
            math.ceil(_MINUTE_MS / settings.rate_limit_per_min)
            if settings.rate_limit_per_min > 0
            else 0
        )
        self.seal_at_fields = settings.flush_max_batch_fields
        self.state_ttl_s = max(self.dedup_window_s, MAX_ENGAGED_S) + READER_STATE_SLACK_S
        # Untrusted events' metadata is a first claim: a piece keeps its first value.
        self.first_claim = not settings.trust_event_metadata

    def calls(self, requests: Sequence[Request], now_s: float) -> list[tuple[Call, list[int]]]:
        """One script call per shard the requests touch, each with the indexes of the
        requests it carries (in the order the script answers for them)."""
        hour = hour_of(now_s)
        day = day_of(now_s)
        head = RecordHead(
            now_ms=int(now_s * 1000),
            window_s=self.dedup_window_s,
            readers_per_address=self.readers_per_address,
            event_cost_ms=self.event_cost_ms,
            seal_at_fields=self.seal_at_fields,
            state_ttl_s=self.state_ttl_s,
            max_engaged_s=MAX_ENGAGED_S,
            trending_keep=TRENDING_KEEP,
            trending_bucket_ms=k.TRENDING_BUCKET_S * 1000,
            epoch_candidate="",  # each shard's call draws its own
            sealed_prefix="",
            trending_prefix="",
            state_prefix="",
            hash_state_prefix="",
            rate_prefix="",
            sketch_prefix="",
            first_claim=self.first_claim,
        )
        shards: dict[int, _ShardCall] = {}
        for index, request in enumerate(requests):
            for event, visitor in request:
                shard_keys = self.keys.for_article(event.article_id)
                shard = shards.get(shard_keys.shard)
                if shard is None:
                    shard = shards[shard_keys.shard] = _ShardCall(shard_keys, head)
                rate = visitor.address.hex() if self.event_cost_ms and visitor.address else ""
                self._add(shard, shard.part(index, rate), event, visitor, hour, day)
        return [(shard.call(), list(shard.parts)) for shard in shards.values()]

    def _add(
        self,
        shard: _ShardCall,
        part: RequestRecord,
        event: Event,
        visitor: Visitor,
        hour: int,
        day: int,
    ) -> None:
        article_id = event.article_id
        reader_view = visitor.agent.kind == HUMAN and event.type == "view"
        units = []
        for unit in event_units(event, visitor):
            sketch_day = day if reader_view and unit.kind == VIEW_UNIT else None
            units.append(shard.unit_index(unit))
            units.append(shard.group_index(hour, sketch_day, unit.metrics, article_id))
        part.events.append(
            EventRecord(
                state=state_name(visitor.address or visitor.reader, article_id),
                reader=raw_text(visitor.reader),
                metadata=shard.meta_index(_metadata_text(event)),
                event_id=_event_id(event.id) if event.id else "",
                units=units,
            )
        )

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
        for (_, indexes), answer in zip(calls, results, strict=True):
            counted, repeats, limited, retried, no_view, engaged_limit, waits = answer
            recorded.counted += int(counted)
            recorded.repeats += int(repeats)
            recorded.address_limited += int(limited)
            recorded.retried += int(retried)
            recorded.no_view += int(no_view)
            recorded.engaged_limit += int(engaged_limit)
            for index, wait in zip(indexes, waits, strict=True):
                recorded.retry_after_ms[index] = max(recorded.retry_after_ms[index], int(wait))
        return recorded
