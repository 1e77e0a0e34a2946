"""`python -m bench record`: the Redis time of recording events, per event, from Redis' own
accounts (`INFO commandstats` after `CONFIG RESETSTAT`): the record script's calls of 4
requests of 100 events (a tick's worth of batches), 90 % views and 10 % shares over 1,000
articles, each request from an address and reader of its own, de-duplication on. Also the
Python time to build and pack each call. Issue 20 asks for ≤ 8 µs of Redis per event.

CONFIG RESETSTAT clears the whole server's command statistics: use a Redis of your own."""

from __future__ import annotations

import argparse
import random
import statistics
import time
import timeit
from typing import Final

from redis.asyncio import Redis

from bench.harness import cleanup_redis
from tracker.core.settings import Settings
from tracker.events.bots import READER
from tracker.events.models import CHANNELS, Event
from tracker.redis_side.keys import Keys
from tracker.redis_side.readers import Visitor
from tracker.redis_side.recorder import Recorder, Request
from tracker.redis_side.scripts import run_calls

CALLS: Final = 250
REQUESTS_PER_CALL: Final = 4
EVENTS_PER_REQUEST: Final = 100
ARTICLES: Final = 1_000
ROUNDS: Final = 3


def _requests(rng: random.Random) -> list[Request]:
    requests: list[Request] = []
    for _ in range(REQUESTS_PER_CALL):
        visitor = Visitor(reader=rng.randbytes(16), agent=READER, address=rng.randbytes(8))
        events = []
        for _ in range(EVENTS_PER_REQUEST):
            article_id = f"news/2026/a{rng.randint(1, ARTICLES)}"
            if rng.random() < 0.9:
                events.append(Event(type="view", article_id=article_id))
            else:
                events.append(
                    Event(type="share", article_id=article_id, channel=rng.choice(CHANNELS))
                )
        requests.append([(event, visitor) for event in events])
    return requests


async def _round(redis: Redis, recorder: Recorder, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    now = time.time()
    batches = [_requests(rng) for _ in range(CALLS)]
    build_s = timeit.timeit(lambda: recorder.calls(batches[0], now), number=20) / 20
    calls = [[call for call, _ in recorder.calls(batch, now)] for batch in batches]
    await redis.config_resetstat()
    started = time.perf_counter()
    for shard_calls in calls:
        await run_calls(redis, shard_calls)
    wall_s = time.perf_counter() - started
    stats = await redis.info("commandstats")
    events = CALLS * REQUESTS_PER_CALL * EVENTS_PER_REQUEST
    per_call = REQUESTS_PER_CALL * EVENTS_PER_REQUEST
    result = {"build": build_s / per_call * 1e6, "wall": wall_s / events * 1e6}
    for name, stat in stats.items():
        command = name.removeprefix("cmdstat_")
        result[command] = stat["usec"] / events
        result[f"{command} calls"] = stat["calls"] / events
    return result


async def record(args: argparse.Namespace) -> None:
    prefix = f"bench-record-{random.randrange(1 << 32):08x}"
    settings = Settings(redis_prefix=prefix, dedup_window_s=1800)
    redis = Redis.from_url(args.redis_url)
    recorder = Recorder(redis, Keys.of(settings), settings)
    rounds = []
    try:
        for seed in range(ROUNDS):
            rounds.append(await _round(redis, recorder, seed))
            cleanup_redis(args.redis_url, prefix)
    finally:
        cleanup_redis(args.redis_url, prefix)
        await redis.aclose()
    median = {name: statistics.median(r.get(name, 0.0) for r in rounds) for name in rounds[0]}
    each = ", ".join(f"{r['evalsha']:.2f}" for r in rounds)
    print(
        f"{CALLS} calls of {REQUESTS_PER_CALL} x {EVENTS_PER_REQUEST} events over {ARTICLES} "
        f"articles; the median of {ROUNDS} rounds ({each} µs)"
    )
    print(f"Redis, the record script (EVALSHA): {median['evalsha']:6.2f} µs per event")
    for name in sorted(_commands(median), key=lambda name: -median[name]):
        calls = median[f"{name} calls"]
        print(f"  of which {name:20s} {median[name]:5.2f} µs ({calls:.2f} calls an event)")
    print(f"Python, building and packing a call: {median['build']:5.2f} µs per event")
    print(f"The round trips, wall:               {median['wall']:5.2f} µs per event")


def _commands(median: dict[str, float]) -> list[str]:
    """The commands the script called (what the bench itself sent left out, and what
    other clients of the server sent meanwhile, mostly)."""
    own = {"evalsha", "build", "wall", "config|resetstat", "script|load", "info"}
    return [
        name
        for name in median
        if not name.endswith(" calls") and name not in own and median[f"{name} calls"] >= 0.01
    ]
