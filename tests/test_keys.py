"""Key layout: every script call touches one Redis Cluster hash slot."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib

from redis.asyncio import Redis
from redis.crc import key_slot

from tracker.core.settings import Settings
from tracker.events.bots import READER
from tracker.events.models import Event
from tracker.redis_side.keys import Keys, shard_of, sketch_name
from tracker.redis_side.readers import Visitor
from tracker.redis_side.recorder import Recorder


def test_every_key_of_a_shard_maps_to_one_cluster_slot() -> None:
    keys = Keys("trk", 16)
    for shard in keys.all_shards():
        slots = {key_slot(k.encode()) for k in (shard.live, shard.batch, shard.gen, shard.epoch)}
        assert len(slots) == 1, shard


def test_a_multi_article_request_sends_one_single_slot_call_per_shard() -> None:
    keys = Keys("trk", 8)
    events = [Event(type="view", article_id=f"a{n}") for n in range(50)]
    visitor = Visitor(reader=b"r" * 16, agent=READER)
    # Building the calls sends nothing: the client never connects.
    recorder = Recorder(Redis(), keys, Settings(redis_shards=8, dedup_window_s=60))

    calls = recorder.calls([[(e, visitor) for e in events]], now_s=1_800_000_000)

    assert len(calls) == len({shard_of(e.article_id, 8) for e in events})
    for call, _ in calls:
        # The live hash, and the dedup and reader-sketch keys of its events: one slot.
        assert len(call.keys) > 1
        assert len({key_slot(k.encode()) for k in call.keys}) == 1


def test_shard_of_is_stable_across_processes() -> None:
    """crc32, not hash(): another process, with another hash seed, puts each article in
    the same shard (before, this compared shard_of with itself in one process)."""
    ids = ("a", "news/2026/x", "b", "art:14.v2")
    here = [shard_of(a, 4) for a in ids]
    code = f"from tracker.redis_side.keys import shard_of; print([shard_of(a, 4) for a in {ids!r}])"
    other = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert other.stdout.strip() == str(here)
    assert here == [zlib.crc32(a.encode()) % 4 for a in ids]
    assert shard_of("anything", 1) == 0


async def test_lua_names_a_sketch_as_python_does(redis: Redis) -> None:
    """slice.lua finds an article's sketches by the name keys.sketch_name gives them."""
    script = "return string.sub(redis.sha1hex(ARGV[1]), 1, 16)"
    for article_id in ("a", "2026/11/budget-vote", "x" * 128):
        from_lua = await redis.eval(script, 0, article_id)  # type: ignore[misc]
        assert from_lua.decode() == sketch_name(article_id)
