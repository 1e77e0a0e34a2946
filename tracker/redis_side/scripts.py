"""The one runner of tracker's Lua scripts (tracker/redis_side/lua/*.lua).

Scripts are called by SHA and loaded again when Redis has lost its script cache (after a
restart): nothing ran then, so the call is simply made again. Several calls go in one
pipeline: one round trip (per node, in a cluster).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from redis.exceptions import (
    AskError,
    NoScriptError,
    RedisClusterException,
    RedisError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tracker.core.errors import RedisUnavailable
from tracker.redis_side.client import RedisClient, RedisNodes


@contextlib.contextmanager
def redis_unavailable_on_error() -> Iterator[None]:
    """What redis-py raises for a server that is away, slow or restarting, as RedisUnavailable."""
    try:
        yield
    except (RedisError, RedisClusterException, OSError) as exc:
        raise RedisUnavailable(str(exc) or type(exc).__name__) from exc


class Script:
    """A Lua script of tracker/redis_side/lua, read once, called by its SHA1."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = (resources.files("tracker.redis_side") / "lua" / f"{name}.lua").read_text()
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
SLICE: Final = Script("slice")
TRENDING: Final = Script("trending")
PENDING: Final = Script("pending")
RENEW_LEASE: Final = Script("renew_lease")
DROP_LEASE: Final = Script("drop_lease")
SKETCHES: Final = Script("sketches")
TAKE_SKETCHES: Final = Script("take_sketches")
STORED_SKETCHES: Final = Script("stored_sketches")
FAILURES: Final = Script("failures")


async def run_one(redis: RedisClient, call: Call) -> Any:
    (result,) = await run_calls(redis, [call])
    return result


async def run_calls(redis: RedisClient, calls: Sequence[Call]) -> list[Any]:
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


async def run_durably(
    nodes: RedisNodes, calls: Sequence[Call], command: Sequence[Any]
) -> list[tuple[Any, Any]]:
    """Run script calls, each node's followed by `command` (WAIT, WAITAOF) on the same
    connection, which waits for those writes to reach replicas or disk: per call, (its
    result, the reply of the command that followed it)."""
    answers: list[tuple[Any, Any]] = [(None, None)] * len(calls)
    with redis_unavailable_on_error():
        groups: dict[int, tuple[Any, list[int]]] = {}
        for index, call in enumerate(calls):
            client = await nodes.of(call.keys[0])
            groups.setdefault(id(client), (client, []))[1].append(index)
        try:
            for client, indexes in groups.values():
                found = await _run_then(client, [calls[i] for i in indexes], command)
                for index, answer in zip(indexes, found, strict=True):
                    answers[index] = answer
        except (AskError, RedisConnectionError, RedisTimeoutError, OSError):
            # MOVED (an AskError too): the slot has another primary now; a node that
            # does not answer may have been replaced. The next call asks anew.
            await nodes.topology_changed()
            raise
    return answers


async def _run_then(
    client: Any, calls: Sequence[Call], command: Sequence[Any]
) -> list[tuple[Any, Any]]:
    results = await _pipeline(client, calls, then=command)
    reply = results.pop()
    missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
    if missing:
        for script in {calls[i].script.sha: calls[i].script for i in missing}.values():
            await client.script_load(script.source)
        retried = await _pipeline(client, [calls[i] for i in missing], then=command)
        again = retried.pop()
        for i, result in zip(missing, retried, strict=True):
            results[i] = result
        reply = _least(reply, again)
    for value in (*results, reply):
        if isinstance(value, Exception):
            raise value
    return [(result, reply) for result in results]


def _least(first: Any, second: Any) -> Any:
    """Of two WAIT (a count) or WAITAOF ([local, replicas]) replies, what both promise."""
    if isinstance(first, list):
        return [min(int(a), int(b)) for a, b in zip(first, second, strict=True)]
    return min(int(first), int(second))


async def _evalsha(redis: RedisClient, call: Call) -> Any:
    return await redis.execute_command(
        "EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args
    )


async def _pipeline(
    redis: RedisClient, calls: Sequence[Call], *, then: Sequence[Any] = ()
) -> list[Any]:
    # EVALSHA by name: a cluster pipeline refuses its evalsha(), and routes this one by
    # its keys (all of one shard: one slot).
    async with redis.pipeline(transaction=False) as pipe:
        for call in calls:
            pipe.execute_command("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args)
        if then:
            pipe.execute_command(*then)
        return list(await pipe.execute(raise_on_error=False))
