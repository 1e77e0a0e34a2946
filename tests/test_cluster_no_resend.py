"""A script call that timed out on a Redis Cluster is never sent again by the client: it
may have run (the record script adds to counters), and a second run would count twice.

redis-py before 6.0 re-sent a command that timed out on a cluster up to
`cluster_error_retry_attempts` (3) times, whatever `retry=` said (its execute_command and
its pipeline's execute); 6.0 reads the retry object. pyproject.toml asks for 6.0 or later.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster

from tests.cluster import start_cluster
from tracker.core.errors import RedisUnavailable
from tracker.redis_side.client import open_redis
from tracker.redis_side.scripts import Call, Script, run_calls

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

BUSY_MS = 800
TIMEOUT_S = 0.3


def counting_script() -> Script:
    """A script that takes BUSY_MS, then adds one to its key: how many times it ran."""
    script = Script.__new__(Script)
    script.name = "count"
    script.source = f"""
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local until_ms = now_ms() + {BUSY_MS}
while now_ms() < until_ms do end
return redis.call('INCR', KEYS[1])
"""
    script.sha = hashlib.sha1(script.source.encode()).hexdigest()  # noqa: S324 - Redis's name
    return script


@pytest.mark.parametrize("calls", [1, 2], ids=["one call", "a pipeline of two"])
async def test_a_timed_out_script_call_runs_once(tmp_path: Path, calls: int) -> None:
    cluster = start_cluster(tmp_path / "cluster", primaries=3, replicas=0)
    client = open_redis(cluster.url, timeout_s=TIMEOUT_S, cluster=True)
    assert isinstance(client, RedisCluster)
    try:
        await client.initialize()
        script = counting_script()
        keys = [f"resend:{{s0}}:{n}" for n in range(calls)]
        await client.script_load(script.source)  # on every primary
        started = time.monotonic()
        # The script outlasts the client's timeout: it runs on, and the client gives up.
        with pytest.raises(RedisUnavailable):
            await run_calls(client, [Call(script, [key], []) for key in keys])
        gave_up_s = time.monotonic() - started
        await asyncio.sleep(calls * BUSY_MS / 1000 * 4 + 0.5)  # any sent again ran by now

        ran = [int(await client.get(key) or 0) for key in keys]
    finally:
        await client.aclose()
        cluster.stop()

    print(f"gave up after {gave_up_s:.2f} s; the script ran {ran} time(s)")
    assert ran == [1] * calls
    assert gave_up_s < BUSY_MS / 1000
