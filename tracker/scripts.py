"""The Redis connection and the one runner of tracker's Lua scripts (tracker/lua/*.lua).

Scripts are called by SHA and loaded again when Redis has lost its script cache (after a
restart): nothing ran then, so the call is simply made again. Several calls go in one
pipeline: one round trip.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from .errors import RedisUnavailable


@contextlib.contextmanager
def redis_unavailable_on_error() -> Iterator[None]:
    """What redis-py raises for a server that is away, slow or restarting, as RedisUnavailable."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise RedisUnavailable(str(exc) or type(exc).__name__) from exc


def open_redis(url: str, *, timeout_s: float, max_connections: int = 64) -> Redis:
    # No automatic retries: a retried HINCRBY whose first reply was lost counts twice.
    return Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        max_connections=max_connections,
        decode_responses=False,
        health_check_interval=0,
    )


class Script:
    """A Lua script of tracker/lua, read once, called by its SHA1."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = (resources.files("tracker") / "lua" / f"{name}.lua").read_text()
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA1


@dataclass(frozen=True, slots=True)
class Call:
    script: Script
    keys: Sequence[str]
    args: Sequence[str | int | bytes]


RECORD: Final = Script("record")
CLAIM: Final = Script("claim")
RELEASE: Final = Script("release")
READ: Final = Script("read")
RANGE: Final = Script("range")
TRENDING: Final = Script("trending")
PENDING: Final = Script("pending")
RENEW_LEASE: Final = Script("renew_lease")
DROP_LEASE: Final = Script("drop_lease")


async def run_one(redis: Redis, call: Call) -> Any:
    (result,) = await run_calls(redis, [call])
    return result


async def run_calls(redis: Redis, calls: Sequence[Call]) -> list[Any]:
    """Run script calls in one round trip; raises RedisUnavailable if Redis cannot."""
    with redis_unavailable_on_error():
        if len(calls) == 1:
            call = calls[0]
            try:
                return [await _evalsha(redis, call)]
            except NoScriptError:
                await redis.script_load(call.script.source)
                return [await _evalsha(redis, call)]
        results = await _pipeline(redis, calls)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            for script in {calls[i].script.sha: calls[i].script for i in missing}.values():
                await redis.script_load(script.source)
            retried = await _pipeline(redis, [calls[i] for i in missing])
            for i, result in zip(missing, retried, strict=True):
                results[i] = result
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results


async def run_then(redis: Redis, call: Call, *command: Any) -> tuple[Any, Any]:
    """Run a script call, then `command` on the same connection (WAIT and WAITAOF wait
    for the writes of their own connection): (the script's result, the command's)."""
    with redis_unavailable_on_error():
        for attempt in (1, 2):
            async with redis.pipeline(transaction=False) as pipe:
                pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
                pipe.execute_command(*command)
                result, reply = await pipe.execute(raise_on_error=False)
            if isinstance(result, NoScriptError) and attempt == 1:
                await redis.script_load(call.script.source)
                continue
            for value in (result, reply):
                if isinstance(value, Exception):
                    raise value
            return result, reply
    raise AssertionError("unreachable")


async def _evalsha(redis: Redis, call: Call) -> Any:
    return await redis.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)


async def _pipeline(redis: Redis, calls: Sequence[Call]) -> list[Any]:
    async with redis.pipeline(transaction=False) as pipe:
        for call in calls:
            pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
        return list(await pipe.execute(raise_on_error=False))
