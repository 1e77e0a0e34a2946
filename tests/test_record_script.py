"""The record script checks all its arguments before it writes, and a round trip of
thousands of events with metadata stays inside Lua's limits (before, metadata for about
4,500 articles failed after the counters were written: a 503 for stored events)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from tracker.core.errors import RedisUnavailable
from tracker.core.settings import Settings
from tracker.core.utc import day_of
from tracker.events.bots import READER
from tracker.events.models import Event
from tracker.redis_side.keys import TRENDING_BUCKET_S, Keys, ShardKeys
from tracker.redis_side.readers import Visitor
from tracker.redis_side.record_call import (
    LAYOUT,
    EventRecord,
    RecordHead,
    RequestRecord,
    UnitRecord,
    arguments,
)
from tracker.redis_side.recorder import Recorder
from tracker.redis_side.scripts import RECORD, Call, run_one


async def test_metadata_of_thousands_of_articles_in_one_call(
    redis: Redis, redis_prefix: str
) -> None:
    keys = Keys(redis_prefix, 1)
    recorder = Recorder(redis, keys, Settings(redis_prefix=redis_prefix, dedup_window_s=0))
    visitor = Visitor(reader=b"r" * 16, agent=READER)
    events = [
        Event(type="view", article_id=f"meta/{n}", title=f"Story {n}", category="politics")
        for n in range(4_500)
    ]

    recorded = await recorder.record([[(event, visitor)] for event in events], time.time())

    assert recorded.retry_after_ms == [0] * 4_500
    live = keys.shard(0).live
    assert int(await redis.hget(live, "_events")) == 4_500
    assert await redis.hget(live, "mtitle meta/4499") == b"Story 4499"
    assert await redis.hget(live, "mcategory meta/4499") == b"politics"


def well_formed(shard: ShardKeys) -> list[Any]:
    """One request (no rate key) of one event: state key 6, no sketch, trending 'v',
    article x, metadata text 1, no id, one unit (de-duplicated as `view`, a view, amount
    1, no part) adding to one field: the arguments, so that a test can break any."""
    head = RecordHead(
        now_ms=int(time.time() * 1000),
        window_s=60,
        readers_per_address=10,
        event_cost_ms=100,
        seal_at_fields=50_000,
        state_ttl_s=3600,
        max_engaged_s=1800,
        trending_keep=300,
        trending_bucket_ms=300_000,
        epoch_candidate="epoch",
        sealed_prefix=shard.sealed_prefix,
        trending_prefix=shard.trending_prefix,
        first_claim=True,
    )
    unit = UnitRecord("view", "v", 1, "", ["t view x"])
    event = EventRecord(6, 0, "v", "x", b"r" * 16, 1, "", [unit])
    return arguments(head, ['{"title":"T"}'], [RequestRecord(0, [event])])


def shard_call(redis_prefix: str, change: Callable[[list[Any]], object]) -> tuple[Call, list[str]]:
    shard = Keys(redis_prefix, 1).shard(0)
    args = well_formed(shard)
    change(args)
    keys = [shard.live, shard.sealed, shard.gen, shard.epoch, shard.activity, f"{shard.base}:s:x"]
    return Call(RECORD, keys, args), keys


def head_with(args: list[Any], **changes: Any) -> None:
    call = msgspec.msgpack.decode(args[0])
    for name, value in changes.items():
        part, _, field = name.partition("__")
        if value is None:
            call[part].pop(field)
        else:
            call[part][field] = value
    args[0] = msgspec.msgpack.encode(call)


# The arguments: [0] the head, [1] requests, [2] rate key, [3] events, [4..10] the event's
# values (state key 4, metadata 9), [11] units, [12..15] the unit's, [16] fields, [17].
BREAKS: dict[str, Callable[[list[Any]], object]] = {
    "events": lambda a: a.__setitem__(3, "2"),  # two events, one sent
    "key": lambda a: a.__setitem__(4, "9"),  # reader state key 9 of 6
    "metadata": lambda a: a.__setitem__(9, "2"),  # metadata text 2 of 1
    "fields": lambda a: a.__setitem__(16, "3"),  # 3 fields, 1 sent
    "trailing": lambda a: a.append("extra"),  # an argument past the last event
    "not_msgpack": lambda a: a.__setitem__(0, b"\xc1"),
    "head": lambda a: head_with(a, head__now_ms=None),
    "claim": lambda a: head_with(a, head__first_claim=1),
    "layout": lambda a: head_with(a, layout__unit=["fields", "dedup", "kind", "amount", "part"]),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
async def test_a_malformed_call_writes_nothing(redis: Redis, redis_prefix: str, name: str) -> None:
    call, keys = shard_call(redis_prefix, BREAKS[name])

    with pytest.raises(RedisUnavailable, match="record: "):
        await run_one(redis, call)

    assert await redis.exists(*keys) == 0


async def test_the_well_formed_call_those_break_is_recorded(
    redis: Redis, redis_prefix: str
) -> None:
    call, keys = shard_call(redis_prefix, lambda p: None)

    assert await run_one(redis, call) == [1, 0, 0, 0, 0, 0, [0]]
    assert await redis.hget(keys[0], "t view x") == b"1"
    assert await redis.hget(keys[0], "mtitle x") == b"T"
    assert await redis.zscore(keys[4], "x") == 1
    assert await redis.hexists(keys[5], "r" * 8 + "v")


def test_the_script_reads_every_name_python_declares_and_no_other() -> None:
    """record_call.py declares the call; record.lua reads the head as `head.<name>` and
    the records as `R.<name>`, `E.<name>`, `U.<name>` (places from the layout sent with
    each call). A field added on one side and not the other fails here."""
    from importlib.resources import files

    script = files("tracker.redis_side").joinpath("lua/record.lua").read_text()
    read = {
        "head": set(re.findall(r"\bhead\.(\w+)", script)),
        "request": set(re.findall(r"\bR\.(\w+)", script)),
        "event": set(re.findall(r"\bE\.(\w+)", script)),
        "unit": set(re.findall(r"\bU\.(\w+)", script)),
    }
    declared = {"head": set(RecordHead.__struct_fields__)} | {
        kind: set(names) for kind, names in LAYOUT.items()
    }
    assert read == declared


def test_no_script_spells_the_name_of_a_key() -> None:
    """Key names are made in keys.py and handed to the scripts (before, `:sealed:` was
    spelled in five scripts and `:tr:` in two)."""
    from importlib.resources import files

    for script in files("tracker.redis_side").joinpath("lua").iterdir():
        text = script.read_text()
        spelled = re.findall(r"'(:[a-z_]+:?)'", text)
        assert spelled == [], f"{script.name} spells {spelled}"


async def test_the_keys_the_record_script_makes_are_those_python_names(
    redis: Redis, redis_prefix: str
) -> None:
    """The contract, end to end: what Python hands the script (prefixes, the per-event
    layout) is read back as Python names it: a sealed piece, a trending bucket, a sketch."""
    keys = Keys(redis_prefix, 1)
    shard = keys.shard(0)
    settings = Settings(redis_prefix=redis_prefix, dedup_window_s=0, flush_max_batch_fields=8)
    recorder = Recorder(redis, keys, settings)
    now = time.time()
    readers = [Visitor(reader=bytes([n]) * 16, agent=READER) for n in range(1, 4)]

    await recorder.record(
        [
            [(Event(type="view", article_id=f"contract/{n}"), reader)]
            for n, reader in enumerate(readers)
        ],
        now,
    )

    generations = [g.decode() for g in await redis.lrange(shard.sealed, 0, -1)]
    assert generations, "the live hash past 8 fields is sealed"
    for generation in generations:
        assert await redis.exists(shard.sealed_prefix + generation)
    bucket = int(now * 1000) // (TRENDING_BUCKET_S * 1000)
    trending = await redis.zrange(f"{shard.trending_prefix}v:{bucket}", 0, -1)
    assert sorted(trending) == [f"contract/{n}".encode() for n in range(3)]
    for n in range(3):
        assert await redis.pfcount(shard.uniques(day_of(now), f"contract/{n}")) == 1
