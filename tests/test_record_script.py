"""The record script checks all its arguments before it writes, and a round trip of
thousands of events with metadata stays inside Lua's limits (before, metadata for about
4,500 articles failed after the counters were written: a 503 for stored events)."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from tracker.bots import READER
from tracker.errors import RedisUnavailable
from tracker.keys import Keys
from tracker.models import Event
from tracker.readers import Visitor
from tracker.recorder import Recorder
from tracker.scripts import RECORD, Call, run_one
from tracker.settings import Settings


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
    head += [shard.base, 1]  # a first claim
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
