"""Moves counters from Redis into Postgres, exactly once, one flusher at a time.

Per shard: claim a batch (resume a left-over one, else rename the live hash), apply it
in one Postgres transaction that records its id, and only after COMMIT delete it. A
crash anywhere leaves either the batch key (resumed next time; skipped in Postgres if
its id is already recorded) or nothing to redo. The lease only saves work: correctness
comes from the recorded ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis

from . import buffer, db
from .buffer import Call, RedisUnavailable, Script, redis_unavailable_on_error
from .db import DatabaseUnavailable
from .keys import Keys, ShardKeys
from .metrics import Metrics
from .settings import Settings

log = logging.getLogger(__name__)

RENEW_LEASE: Final = Script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
""")
DROP_LEASE: Final = Script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
""")

PRUNE_EVERY_S: Final = 3600.0
# A flush run does at most this many batches per shard, so a busy shard cannot starve others.
MAX_BATCHES_PER_SHARD: Final = 4


@dataclass(slots=True)
class FlushResult:
    lease: bool = True
    batches: int = 0
    skipped: int = 0
    events: int = 0
    counters: int = 0


class Flusher:
    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        pool: db.Pool,
        keys: Keys,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.settings = settings
        self.redis = redis
        self.pool = pool
        self.keys = keys
        self.metrics = metrics
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.consecutive_failures = 0
        self._last_prune = 0.0

    async def _lease(self) -> bool:
        with redis_unavailable_on_error():
            acquired = await self.redis.set(
                self.keys.lease, self.owner, nx=True, px=self._lease_ms()
            )
        # Not acquired: it may be ours already, from a run of this flusher cut short.
        return bool(acquired) or await self._renew()

    def _lease_ms(self) -> int:
        return int(self.settings.flush_lease_s * 1000)

    async def _renew(self) -> bool:
        (renewed,) = await buffer.run_calls(
            self.redis, [Call(RENEW_LEASE, (self.keys.lease,), (self.owner, self._lease_ms()))]
        )
        return bool(renewed)

    async def _drop_lease(self) -> None:
        with contextlib.suppress(RedisUnavailable):
            await buffer.run_calls(
                self.redis, [Call(DROP_LEASE, (self.keys.lease,), (self.owner,))]
            )

    async def flush_once(self) -> FlushResult:
        """One pass over all shards. Raises RedisUnavailable / DatabaseUnavailable."""
        started = time.perf_counter()
        self.metrics.flush_runs.inc()
        try:
            if not await self._lease():
                return FlushResult(lease=False)
            try:
                result = FlushResult()
                for shard in self.keys.all_shards():
                    await self._flush_shard(shard, result)
                    if not await self._renew():
                        log.warning("flush lease lost mid-run; stopping this run")
                        break
                await self._maybe_prune()
            finally:
                await self._drop_lease()
        except (RedisUnavailable, DatabaseUnavailable) as exc:
            reason = "redis" if isinstance(exc, RedisUnavailable) else "postgres"
            self.metrics.flush_failures.labels(reason).inc()
            raise
        self.metrics.flush_duration.observe(time.perf_counter() - started)
        self.metrics.last_flush_success.set(time.time())
        return result

    async def _flush_shard(self, shard: ShardKeys, result: FlushResult) -> None:
        for _ in range(MAX_BATCHES_PER_SHARD):
            batch = await buffer.claim_batch(
                self.redis, shard, parts=self.settings.flush_parallelism
            )
            if batch is None:
                return
            await buffer.fetch_sketches(self.redis, batch)
            applied = await db.apply_batch(self.pool, batch)
            await buffer.release_batch(self.redis, batch)
            await buffer.expire_past_sketches(self.redis, batch, self.clock())
            if applied:
                result.batches += 1
                result.events += batch.events
                result.counters += len(batch.counters)
                self.metrics.flush_batches.labels("applied").inc()
                self.metrics.flush_events.inc(batch.events)
                self.metrics.flush_counters.inc(len(batch.counters))
            else:
                result.skipped += 1
                self.metrics.flush_batches.labels("already_applied").inc()
                log.info("batch %s was applied before; released it", batch.batch_id)
            if not batch.resumed:
                # The live hash was cut in this run; what came after waits for the next.
                return

    async def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = now
        await db.prune(
            self.pool,
            applied_batch_days=self.settings.applied_batch_retention_days,
            hourly_days=self.settings.hourly_retention_days,
        )

    def next_delay_s(self) -> float:
        """The interval, or after failures an exponential backoff with jitter."""
        interval = self.settings.flush_interval_s
        if self.consecutive_failures == 0:
            return interval
        backoff = min(
            self.settings.flush_max_backoff_s, interval * 2.0 ** min(self.consecutive_failures, 16)
        )
        return backoff * random.uniform(0.5, 1.0)

    async def _due_early(self) -> bool:
        """Whether enough events wait that the flush should not wait for the interval."""
        try:
            pending = await buffer.pending_stats(self.redis, self.keys)
        except RedisUnavailable:
            return False
        return pending.events >= self.settings.flush_max_pending_events

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every interval until `stop` is set; failures back off and are retried."""
        while not stop.is_set():
            delay = self.next_delay_s()
            deadline = time.monotonic() + delay
            while not stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=min(remaining, 1.0))
                if self.consecutive_failures == 0 and delay > 1.0 and await self._due_early():
                    break
            if stop.is_set():
                return
            await self.run_once_logged()

    async def run_once_logged(self) -> FlushResult | None:
        try:
            result = await self.flush_once()
        except (RedisUnavailable, DatabaseUnavailable) as exc:
            self.consecutive_failures += 1
            log.warning(
                "flush failed (%s: %s); retrying in about %.1f s",
                type(exc).__name__,
                exc,
                self.next_delay_s(),
            )
            return None
        except Exception:
            # A bug or an unexpected server answer must not end the flusher: log it,
            # count it, and retry with backoff like any other failure.
            self.consecutive_failures += 1
            self.metrics.flush_failures.labels("error").inc()
            log.exception(
                "flush failed unexpectedly; retrying in about %.1f s", self.next_delay_s()
            )
            return None
        if self.consecutive_failures:
            log.info("flush recovered after %d failed attempt(s)", self.consecutive_failures)
        self.consecutive_failures = 0
        if result.batches or result.skipped:
            log.debug(
                "flushed %d batch(es), %d event(s), %d counter(s); %d already applied",
                result.batches,
                result.events,
                result.counters,
                result.skipped,
            )
        return result
