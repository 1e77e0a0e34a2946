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
from tracker.redis_side.keys import TRENDING_BUCKET_S, Keys, ShardKeys, state_name
from tracker.redis_side.readers import Visitor
from tracker.redis_side.record_call import (
    LAYOUT,
    EventRecord,
    FieldGroup,
    RecordHead,
    RequestRecord,
    UnitRecord,
    arguments,
    raw_text,
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
    """One request (no rate key) of one event: state `x`, metadata text 1, no id, one unit
    of kind 1 (de-duplicated as `view`, a view, amount 1, no part, trending 'v') adding
    to group 1 (article x, no sketch, field `t view x`): the call, for tests to break."""
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
        state_prefix=shard.state_prefix,
        hash_state_prefix=shard.hash_state_prefix,
        rate_prefix=shard.rate_prefix,
        sketch_prefix=shard.sketch_prefix,
        first_claim=True,
    )
    units = [UnitRecord("view", "v", 1, "", "v")]
    groups = [FieldGroup("x", "", ("t view x",))]
    event = EventRecord("x", raw_text(b"r" * 16), 1, "", [1, 1])
    return arguments(head, ['{"title":"T"}'], units, groups, [RequestRecord("", [event])])


def shard_call(redis_prefix: str, change: Callable[[list[Any]], object]) -> tuple[Call, list[str]]:
    shard = Keys(redis_prefix, 1).shard(0)
    args = well_formed(shard)
    change(args)
    keys = [shard.live, shard.sealed, shard.gen, shard.epoch, shard.activity]
    return Call(RECORD, keys, args), [*keys, f"{shard.state_prefix}x"]


def changed(change: Callable[[dict[str, Any]], object]) -> Callable[[list[Any]], object]:
    """A change of the call's one argument, decoded, made by `change(call)`."""

    def apply(args: list[Any]) -> None:
        call = msgspec.msgpack.decode(args[0])
        change(call)
        args[0] = msgspec.msgpack.encode(call)

    return apply


def event_of(call: dict[str, Any]) -> list[Any]:
    return call["requests"][0][1][0]  # type: ignore[no-any-return]


BREAKS: dict[str, Callable[[list[Any]], object]] = {
    "events": changed(lambda c: c["requests"][0].__setitem__(1, 2)),  # not a list
    "state": changed(lambda c: event_of(c).__setitem__(0, 9)),  # a number, not a name
    "metadata": changed(lambda c: event_of(c).__setitem__(2, 2)),  # metadata text 2 of 1
    "unit": changed(lambda c: event_of(c)[4].__setitem__(0, 2)),  # unit kind 2 of 1
    "fields": changed(lambda c: event_of(c)[4].__setitem__(1, 2)),  # field group 2 of 1
    "pairs": changed(lambda c: event_of(c)[4].append(1)),  # a unit without its group
    "kind": changed(lambda c: c["units"][0].__setitem__(2, "1")),  # an amount that is text
    "group": changed(lambda c: c["groups"][0][2].append(7)),  # a field that is no name
    "trailing": lambda a: a.append("extra"),  # an argument past the call
    "not_msgpack": lambda a: a.__setitem__(0, b"\xc1"),
    "head": changed(lambda c: c["head"].pop("now_ms")),
    "claim": changed(lambda c: c["head"].__setitem__("first_claim", 1)),
    "layout": changed(
        lambda c: c["layout"].__setitem__("unit", ["amount", "dedup", "kind", "part", "trend"])
    ),
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
    state = msgspec.msgpack.decode(await redis.get(keys[5]))
    assert state["n"] == 1
    assert state["r" * 8]["g"] == 0


def test_the_script_reads_every_name_python_declares_and_no_other() -> None:
    """record_call.py declares the call; record.lua reads the head as `head.<name>` and
    the records as `R.<name>`, `E.<name>`, `U.<name>`, `G.<name>` (places from the layout
    sent with each call). A field added on one side and not the other fails here."""
    from importlib.resources import files

    script = files("tracker.redis_side").joinpath("lua/record.lua").read_text()
    read = {
        "head": set(re.findall(r"\bhead\.(\w+)", script)),
        "request": set(re.findall(r"\bR\.(\w+)", script)),
        "event": set(re.findall(r"\bE\.(\w+)", script)),
        "unit": set(re.findall(r"\bU\.(\w+)", script)),
        "group": set(re.findall(r"\bG\.(\w+)", script)),
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


async def test_a_state_kept_as_a_hash_before_is_read_as_it_was(
    redis: Redis, redis_prefix: str
) -> None:
    """States were hashes of text fields before they were one MessagePack text each: a
    reader whose view counted just before the upgrade is a repeat after it, and its
    engaged seconds still count from that view. The hash is left as it is (a process of
    the version before, still running in a rolling upgrade, reads it as before; it
    would fail on a text where it expects a hash)."""
    keys = Keys(redis_prefix, 1)
    settings = Settings(redis_prefix=redis_prefix, dedup_window_s=1800)
    recorder = Recorder(redis, keys, settings)
    visitor = Visitor(reader=b"r" * 16, agent=READER, address=b"a" * 8)
    now = time.time()
    viewed = int(now) - 100
    shard = keys.shard(0)
    name = state_name(b"a" * 8, "legacy")
    before = shard.hash_state_prefix + name
    await redis.hset(before, mapping={"w": f"{viewed}:1", "r" * 8 + "v": f"{viewed}:30"})

    again = await recorder.record([[(Event(type="view", article_id="legacy"), visitor)]], now)
    engaged = Event(type="engage", article_id="legacy", engaged_s=120, seq=1)
    seconds = await recorder.record([[(engaged, visitor)]], now)

    assert (again.counted, again.repeats) == (0, 1)
    assert seconds.counted == 1
    live = keys.shard(0).live
    assert await redis.hget(live, "t engaged_s legacy") == b"70"  # 100 s since, 30 granted
    state = msgspec.msgpack.decode(await redis.get(shard.state_prefix + name))
    assert state["r" * 8] == {"v": viewed, "g": 100}
    assert await redis.type(before) == b"hash"  # what the version before reads, untouched
