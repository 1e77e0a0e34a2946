"""What must hold in Redis before tracker writes to it: nothing it stores may be evicted,
and its data must have been written with this process's shard count."""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from tracker.core.env_values import MAX_REDIS_SHARDS
from tracker.core.errors import RedisUnavailable
from tracker.core.settings import Settings
from tracker.redis_side.client import RedisClient, primary_infos
from tracker.redis_side.keys import Keys
from tracker.redis_side.scripts import redis_unavailable_on_error

log = logging.getLogger(__name__)


class StartupRefused(Exception):
    """tracker will not start this way; the message says why and what to do."""


async def check_memory_policy(redis: RedisClient, settings: Settings) -> None:
    """An evicting Redis loses what tracker promised to keep: with allkeys-* the batch
    generation counter and pending counters, with volatile-* the salts, reader sketches
    and de-duplication keys."""
    with redis_unavailable_on_error():
        infos = await primary_infos(redis, "memory")  # every primary of a cluster
    for memory in infos:
        policy = str(memory.get("maxmemory_policy", "noeviction"))
        if policy != "noeviction" and not settings.allow_eviction:
            raise StartupRefused(
                f"Redis has maxmemory-policy {policy}: it may evict counts tracker "
                "acknowledged. Set `maxmemory-policy noeviction` (Redis then refuses writes "
                "when full, and tracker answers 503), or TRACKER_ALLOW_EVICTION=1 to start "
                "anyway."
            )
    if not all(int(memory.get("maxmemory", 0)) for memory in infos):
        log.warning(
            "Redis has no maxmemory: if a long PostgreSQL outage fills the machine, Redis "
            "is killed rather than refusing writes; set maxmemory with noeviction"
        )


async def check_shard_count(redis: RedisClient, keys: Keys) -> None:
    """Record the shard count the first time; refuse another one afterwards. Changing it
    moves every article to another shard: what the old shards hold would be stranded."""
    with redis_unavailable_on_error():
        async with redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.shard_count, keys.shards, nx=True)
            pipe.get(keys.shard_count)
            created, recorded = await pipe.execute()
    if created:
        stranded = await _data_beyond(redis, keys)
        if stranded:
            await redis.delete(keys.shard_count)
            raise _refused(keys.shards, f"more than {keys.shards} (shard {stranded} holds data)")
        return
    if int(recorded) != keys.shards:
        raise _refused(keys.shards, recorded.decode())


async def _data_beyond(redis: RedisClient, keys: Keys) -> int | None:
    """The first shard past the count that holds pending data, if any (data from before
    the count was recorded)."""
    beyond = Keys(keys.prefix, MAX_REDIS_SHARDS).all_shards()[keys.shards :]
    with redis_unavailable_on_error():
        async with redis.pipeline(transaction=False) as pipe:
            for shard in beyond:
                pipe.exists(shard.live, shard.batch, shard.sealed)
            found = await pipe.execute()
    return next((shard.shard for shard, n in zip(beyond, found, strict=True) if n), None)


def _refused(wanted: int, recorded: str) -> StartupRefused:
    return StartupRefused(
        f"TRACKER_REDIS_SHARDS={wanted}, but the data in Redis was written with {recorded} "
        "shard(s). To change it: stop every `tracker serve`, run `tracker flush --drain` "
        f"with TRACKER_REDIS_SHARDS={wanted} (it flushes what the old shards hold and moves "
        "the reader sketches), then start them again. Or set the old value back."
    )


class Preflight:
    """The checks, made at start, or, while Redis does not answer, as soon as it does.
    Until they passed, nothing is written: a refusal found late leaves the process up
    (answering 503, `/readyz` saying why) rather than writing into the wrong layout."""

    RETRY_EVERY_S: Final = 2.0

    def __init__(self, redis: RedisClient, keys: Keys, settings: Settings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.passed = False
        self.refused: str | None = None

    async def check(self) -> None:
        """Raises StartupRefused, or RedisUnavailable when Redis cannot be asked."""
        await check_memory_policy(self.redis, self.settings)
        await check_shard_count(self.redis, self.keys)
        self.passed = True

    def require(self) -> None:
        """Raises RedisUnavailable until the checks have passed."""
        if not self.passed:
            raise RedisUnavailable(self.refused or "Redis's settings are not checked yet")

    async def check_until_answered(self) -> None:
        while not self.passed:
            try:
                await self.check()
            except RedisUnavailable:
                await asyncio.sleep(self.RETRY_EVERY_S)
            except StartupRefused as exc:
                self.refused = str(exc)
                log.critical("refusing to write to Redis: %s", exc)
                return
