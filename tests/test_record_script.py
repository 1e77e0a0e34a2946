"""The record script checks all its arguments before it writes, and a round trip of
thousands of events with metadata stays inside Lua's limits (before, metadata for about
4,500 articles failed after the counters were written: a 503 for stored events)."""

from __future__ import annotations

import re
import time

import pytest
from redis.asyncio import Redis

from tracker.core.errors import RedisUnavailable
from tracker.core.settings import Settings
from tracker.core.utc import day_of
from tracker.events.bots import READER
from tracker.events.models import Event
from tracker.redis_side.keys import TRENDING_BUCKET_S, Keys
from tracker.redis_side.readers import Visitor
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


# One request (no rate key) of one event: state key 6, no sketch, trending 'v', article
# x, reader r, metadata text 1, no id, one unit (de-duplicated as `view`, a view, amount
# 1, no part) adding to one field.
UNIT = ["view", "v", "1", "", "1", "t view x"]
EVENT = ["6", "0", "v", "x", "r" * 16, "1", "", "1", *UNIT]
WELL_FORMED = ["1", '{"title":"T"}', "1", "0", "1", *EVENT]


def shard_call(redis_prefix: str, layout: list[str]) -> tuple[Call, list[str]]:
    shard = Keys(redis_prefix, 1).shard(0)
    head = [int(time.time() * 1000), 60, 10, 100, 50_000, 3600, 1800, 300, 300_000, "epoch"]
    head += [shard.sealed_prefix, shard.trending_prefix, 1]  # a first claim
    keys = [shard.live, shard.sealed, shard.gen, shard.epoch, shard.activity, f"{shard.base}:s:x"]
    return Call(RECORD, keys, [*head, *layout]), keys


@pytest.mark.parametrize(
    "layout",
    [
        ["1", "{}", "1", "0", "2", *EVENT],  # two events, one sent
        ["1", "{}", "1", "0", "1", "9", *EVENT[1:]],  # reader state key 9 of 6
        ["1", "{}", "1", "0", "1", *EVENT[:8], *UNIT[:4], "3", "t view x"],  # 3 fields, 1 sent
        ["1", "{}", "1", "0", "1", *EVENT[:5], "2", *EVENT[6:]],  # metadata text 2 of 1
        [*WELL_FORMED, "extra"],  # an argument past the last event
    ],
    ids=["events", "key", "fields", "metadata", "trailing"],
)
async def test_a_malformed_call_writes_nothing(
    redis: Redis, redis_prefix: str, layout: list[str]
) -> None:
    call, keys = shard_call(redis_prefix, layout)

    with pytest.raises(RedisUnavailable, match="record: "):
        await run_one(redis, call)

    assert await redis.exists(*keys) == 0


async def test_the_well_formed_call_those_break_is_recorded(
    redis: Redis, redis_prefix: str
) -> None:
    call, keys = shard_call(redis_prefix, WELL_FORMED)

    assert await run_one(redis, call) == [1, 0, 0, 0, 0, 0, [0]]
    assert await redis.hget(keys[0], "t view x") == b"1"
    assert await redis.hget(keys[0], "mtitle x") == b"T"
    assert await redis.zscore(keys[4], "x") == 1
    assert await redis.hexists(keys[5], "r" * 8 + "v")


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
