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
    assert await redis.hget(live, "m meta/4499") == b'{"title":"Story 4499","category":"politics"}'


def request_head(events: str) -> list[str]:
    """One request, no rate key, `events` events."""
    return ["1", "0", events]


# An event with key 5 (dedup), trending 'v', article x, reader r, amount 1, weight 1.
EVENT = ["0", "5", "0", "0", "v", "x", "r", "1", "1"]


@pytest.mark.parametrize(
    "layout",
    [
        # requests, rate key, events; event id, dedup, address, sketch keys, trending,
        # article, reader, amount, weight, fields
        [
            "1",
            "0",
            "2",
            "0",
            "5",
            "0",
            "0",
            "v",
            "x",
            "r",
            "1",
            "1",
            "1",
            "t view x",
        ],  # 2 events, 1 sent
        ["1", "0", "1", "0", "9", "0", "0", "v", "x", "r", "1", "1", "1", "t view x"],  # key 9 of 5
        [
            "1",
            "0",
            "1",
            "0",
            "5",
            "0",
            "0",
            "v",
            "x",
            "r",
            "1",
            "1",
            "3",
            "t view x",
        ],  # 3 fields, 1 sent
        [
            "1",
            "0",
            "1",
            "0",
            "5",
            "0",
            "0",
            "v",
            "x",
            "r",
            "1",
            "1",
            "1",
            "t view x",
            "m x",
        ],  # half a pair
    ],
    ids=["events", "key", "fields", "metadata"],
)
async def test_a_malformed_call_writes_nothing(
    redis: Redis, redis_prefix: str, layout: list[str]
) -> None:
    shard = Keys(redis_prefix, 1).shard(0)
    head = [int(time.time() * 1000), 60, 10, 100, 50_000, "epoch", shard.base]
    call = Call(
        RECORD,
        [shard.live, shard.sealed, shard.gen, shard.epoch, f"{shard.base}:d:x"],
        [*head, *layout],
    )

    with pytest.raises(RedisUnavailable, match="record: "):
        await run_one(redis, call)

    assert await redis.exists(shard.live, f"{shard.base}:d:x", shard.gen) == 0


async def test_the_well_formed_call_those_break_is_recorded(
    redis: Redis, redis_prefix: str
) -> None:
    shard = Keys(redis_prefix, 1).shard(0)
    head = [int(time.time() * 1000), 60, 10, 100, 50_000, "epoch", shard.base]
    layout = [
        "1",
        "0",
        "1",
        "0",
        "5",
        "0",
        "0",
        "v",
        "x",
        "r",
        "1",
        "1",
        "1",
        "t view x",
        "m x",
        "{}",
    ]
    call = Call(
        RECORD,
        [shard.live, shard.sealed, shard.gen, shard.epoch, f"{shard.base}:d:x"],
        [*head, *layout],
    )

    assert await run_one(redis, call) == [1, 0, 0, 0, [0]]
    assert await redis.hget(shard.live, "t view x") == b"1"
    assert await redis.exists(f"{shard.base}:d:x") == 1
