"""Moves counters from Redis into Postgres, exactly once, one flusher per shard at a time.

Per shard: claim a batch (resume a left-over one, else rename the live hash), apply it
in one Postgres transaction that records its id, and only after COMMIT (and, with a read
replica, once the replica has it) delete it. A crash anywhere leaves either the batch
key (resumed next time; skipped in Postgres if its id is already recorded) or nothing to
redo. Each shard has a lease, so flushers on several hosts share the shards; the leases
only save work: correctness comes from the recorded ids.

Reader sketches are stored apart, every TRACKER_SKETCH_STORE_INTERVAL_S, outside the
counters' transaction: storing one again is harmless (redis_side/sketches.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from tracker.core.errors import DatabaseUnavailable, RedisUnavailable
from tracker.core.metadata import Source, origin_of
from tracker.core.settings import Settings
from tracker.events.counts import VIEW, Batch
from tracker.flush.loop import FlushLoop, FlushResult
from tracker.ops.metrics import Metrics
from tracker.pages.reader import PageReader
from tracker.pg.replica import Replica
from tracker.pg.store import Store
from tracker.redis_side.batches import RedisBatches
from tracker.redis_side.lease import Lease
from tracker.redis_side.preflight import Preflight
from tracker.redis_side.sketches import RedisSketches

log = logging.getLogger(__name__)

# Pruning, which first rolls up the days and weeks that ended (pg/rollups.py), by one
# flusher for all shards.
UPKEEP_EVERY_S: Final = 3600.0
# A flush run does at most this many batches per shard, so a busy shard cannot starve
# others; a backlog is drained by runs that follow each other without a pause.
MAX_BATCHES_PER_SHARD: Final = 8


class Flusher(FlushLoop):
    """Redis side, PostgreSQL side and the lease, joined only here."""

    def __init__(
        self,
        settings: Settings,
        batches: RedisBatches,
        sketches: RedisSketches,
        store: Store,
        leases: Mapping[int, Lease],
        upkeep: Lease,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
        preflight: Preflight | None = None,
        replica: Replica | None = None,
        pages: PageReader | None = None,
    ) -> None:
        """`leases`: the shards this flusher takes, each with its lease; `upkeep`: the
        lease of the work done once for all shards (pruning); `pages`: where articles
        whose page events named are offered, to read their metadata there."""
        self.settings = settings
        self.preflight = preflight
        self.batches = batches
        self.sketches = sketches
        self.store = store
        self.leases = leases
        self.upkeep = upkeep
        self.replica = replica
        self.pages = pages
        self.site_origins = frozenset(settings.page_origins)
        self.metadata_source = Source.EVENT if settings.trust_event_metadata else Source.CLAIM
        self.metrics = metrics
        self.clock = clock
        self.consecutive_failures = 0
        self._last_upkeep = 0.0
        # When each shard's sketches were last stored, by self.clock.
        self._sketches_stored_at: dict[int, float] = {}
        # A shard's batch is applied in flush_parallelism parts, a connection each.
        self.shards_at_once = max(1, store.pool.get_max_size() // settings.flush_parallelism)

    async def flush_once(self, *, sketches: bool | None = None) -> FlushResult:
        """One pass over all shards; with `sketches` (by default: when a shard's interval is
        up) their changed reader sketches are stored too. Raises RedisUnavailable /
        DatabaseUnavailable."""
        started = time.perf_counter()
        self.metrics.flush_runs.inc()
        try:
            if self.preflight is not None:
                self.preflight.require()
            result = FlushResult(lease=False)
            # Shards are flushed side by side, as many at a time as the flusher's pool
            # has connections for their parts: a shard's batch waits on PostgreSQL, not
            # on the other shards.
            gate = asyncio.Semaphore(self.shards_at_once)
            outcomes = await asyncio.gather(
                *(
                    self._flush_leased(shard, lease, result, gate, sketches=sketches)
                    for shard, lease in self.leases.items()
                ),
                return_exceptions=True,
            )
            held = sum(1 for outcome in outcomes if outcome is True)
            self.metrics.flush_lease_held.set(held)
            result.lease = held > 0
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
            if result.lease:
                await self._maybe_upkeep()
        except (RedisUnavailable, DatabaseUnavailable) as exc:
            reason = "redis" if isinstance(exc, RedisUnavailable) else "postgres"
            self.metrics.flush_failures.labels(reason).inc()
            raise
        self.metrics.flush_duration.observe(time.perf_counter() - started)
        self.metrics.last_flush_success.set(time.time())
        return result

    async def _flush_leased(
        self,
        shard: int,
        lease: Lease,
        result: FlushResult,
        gate: asyncio.Semaphore,
        *,
        sketches: bool | None,
    ) -> bool:
        """Flushes a shard if its lease is free; False if another flusher holds it."""
        async with gate:
            if not await lease.acquire():
                return False
            try:
                await self._flush_shard(shard, result)
                now_s = self.clock()
                if sketches if sketches is not None else self._sketches_due(shard, now_s):
                    await self._store_sketches(shard, result)
                    self._sketches_stored_at[shard] = now_s
            finally:
                await lease.release()
            return True

    async def _flush_shard(self, shard: int, result: FlushResult) -> None:
        for _ in range(MAX_BATCHES_PER_SHARD):
            floors = await self.store.generation_floors(shard)
            claimed = await self.batches.claim(
                shard, parts=self.settings.flush_parallelism, floors=floors
            )
            if claimed.rolled_back:
                self._rolled_back(shard, result, "its generation counter was behind")
            batch = claimed.batch
            if batch is None:
                return
            if not claimed.durable:
                # Applied only once Redis can promise the claim; resumed next run.
                raise RedisUnavailable(f"the claim of batch {batch.id} is not durable yet")
            await self.batches.load(batch)
            self._describe(batch)
            applied = await self.store.apply(batch)
            if self.replica is not None:
                await self.replica.caught_up()  # before the batch leaves Redis
            floor = dict(floors).get(batch.epoch, 0)
            if batch.resumed and applied.parts_before == 0 and batch.generation <= floor:
                # Redis handed back a batch PostgreSQL had moved past: its records were
                # pruned long ago, so it was applied again. Redis lost what said so.
                self._rolled_back(shard, result, f"batch {batch.id} was applied again")
            released = await self.batches.release(batch)
            if released:
                # Counted as it leaves Redis, once, whichever attempt applied it: a batch
                # whose parts all committed before a failure is found applied next time.
                self.metrics.flush_events.inc(batch.events)
                self.metrics.flush_counters.inc(len(batch.counters))
            if self.pages is not None and batch.page_urls:
                self.pages.offer(_views_of(batch, batch.page_urls))
            if applied.parts_now:
                result.batches += 1
                result.events += batch.events
                result.counters += len(batch.counters)
                self.metrics.flush_batches.labels("applied").inc()
            else:
                result.skipped += 1
                self.metrics.flush_batches.labels("already_applied").inc()
                log.info("batch %s was applied before; released it", batch.id)
            if claimed.cut_live:
                return  # what came after waits for the next run
        result.more = True

    def _sketches_due(self, shard: int, now_s: float) -> bool:
        """Whether the shard's interval is up, by the flusher's clock (one set back, as
        tests do, makes them due too)."""
        since = now_s - self._sketches_stored_at.get(shard, -math.inf)
        return not 0 <= since < self.settings.sketch_store_interval_s

    async def _store_sketches(self, shard: int, result: FlushResult) -> None:
        """The reader sketches the shard's applied batches changed, as they are now."""
        taken = await self.sketches.take(shard)
        if not taken:
            return
        found = await self.sketches.read(shard, taken)
        await self.store.store_sketches(found)
        if self.replica is not None:
            await self.replica.caught_up()  # before Redis may let them expire
        await self.sketches.stored(shard, taken, found, self.clock())
        result.sketches += len(found)
        self.metrics.flush_sketches.inc(len(found))

    def _describe(self, batch: Batch) -> None:
        """What the batch's events said of their articles, as what (a claim, or trusted
        events' word), and the pages on the site's origins they named."""
        batch.metadata_source = self.metadata_source
        batch.page_urls = {
            article_id: meta.url
            for article_id, meta in batch.metadata.items()
            if meta.url is not None and origin_of(meta.url) in self.site_origins
        }

    async def drain(self, *, lease_wait_s: float = 60.0) -> FlushResult:
        """Flush until Redis holds nothing more: every live hash, sealed piece and batch
        of every shard applied. Waits for the lease up to `lease_wait_s`."""
        total = FlushResult()
        deadline = time.monotonic() + lease_wait_s
        while True:
            result = await self.flush_once(sketches=True)
            if not result.lease:
                if time.monotonic() > deadline:
                    return result
                await asyncio.sleep(0.5)
                continue
            total.batches += result.batches
            total.skipped += result.skipped
            total.events += result.events
            total.counters += result.counters
            total.rollbacks += result.rollbacks
            total.sketches += result.sketches
            if result.batches == result.skipped == 0:
                return total

    async def pending_events(self) -> int:
        return (await self.batches.pending_stats()).events

    def _rolled_back(self, shard: int, result: FlushResult, what: str) -> None:
        result.rollbacks += 1
        self.metrics.redis_rollbacks.inc()
        log.warning(
            "Redis came back older than PostgreSQL for shard %d (%s): events it lost "
            "after being flushed may be counted twice; none acknowledged since is lost",
            shard,
            what,
        )

    async def _maybe_upkeep(self) -> None:
        now = time.monotonic()
        if now - self._last_upkeep < UPKEEP_EVERY_S:
            return
        self._last_upkeep = now
        if not await self.upkeep.acquire():
            return  # another flusher does it
        try:
            await self.store.prune(
                applied_batch_days=self.settings.applied_batch_retention_days,
                hourly_days=self.settings.hourly_retention_days,
                keep=await self.batches.batch_ids(),
                now_s=self.clock(),
            )
        finally:
            await self.upkeep.release()


def _views_of(batch: Batch, article_ids: Iterable[str]) -> dict[str, int]:
    """The batch's views of each article (which pages are read first)."""
    views = dict.fromkeys(article_ids, 0)
    for (article_id, metric, _), count in batch.counters.items():
        if metric == VIEW and article_id in views:
            views[article_id] += count
    return views
