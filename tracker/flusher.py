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
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .batches import RedisBatches
from .errors import DatabaseUnavailable, RedisUnavailable
from .lease import Lease
from .metrics import Metrics
from .settings import Settings
from .store import Store

log = logging.getLogger(__name__)

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
    """Redis side, PostgreSQL side and the lease, joined only here."""

    def __init__(
        self,
        settings: Settings,
        batches: RedisBatches,
        store: Store,
        lease: Lease,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.batches = batches
        self.store = store
        self.lease = lease
        self.metrics = metrics
        self.clock = clock
        self.consecutive_failures = 0
        self._last_prune = 0.0

    async def flush_once(self) -> FlushResult:
        """One pass over all shards. Raises RedisUnavailable / DatabaseUnavailable."""
        started = time.perf_counter()
        self.metrics.flush_runs.inc()
        try:
            if not await self.lease.acquire():
                return FlushResult(lease=False)
            try:
                result = FlushResult()
                for shard in range(self.settings.redis_shards):
                    await self._flush_shard(shard, result)
                    if not await self.lease.renew():
                        log.warning("flush lease lost mid-run; stopping this run")
                        break
                await self._maybe_prune()
            finally:
                await self.lease.release()
        except (RedisUnavailable, DatabaseUnavailable) as exc:
            reason = "redis" if isinstance(exc, RedisUnavailable) else "postgres"
            self.metrics.flush_failures.labels(reason).inc()
            raise
        self.metrics.flush_duration.observe(time.perf_counter() - started)
        self.metrics.last_flush_success.set(time.time())
        return result

    async def _flush_shard(self, shard: int, result: FlushResult) -> None:
        for _ in range(MAX_BATCHES_PER_SHARD):
            batch = await self.batches.claim(shard, parts=self.settings.flush_parallelism)
            if batch is None:
                return
            applied = await self.store.apply(batch)
            await self.batches.release(batch, self.clock())
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
                log.info("batch %s was applied before; released it", batch.id)
            if not batch.resumed:
                # The live hash was cut in this run; what came after waits for the next.
                return

    async def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = now
        await self.store.prune(
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
            pending = await self.batches.pending_stats()
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
