"""When the flusher runs: every interval, sooner when events pile up, backing off after
failures, run after run through a backlog; and what each run says in the logs. What a run
does is the flusher's (flusher.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from tracker.core.errors import DatabaseUnavailable, RedisUnavailable
from tracker.core.settings import Settings
from tracker.ops.metrics import Metrics

# The flusher's logger: its lines keep the name operators filter on.
log = logging.getLogger("tracker.flush.flusher")


@dataclass(slots=True)
class FlushResult:
    lease: bool = True
    batches: int = 0
    skipped: int = 0
    events: int = 0
    counters: int = 0
    rollbacks: int = 0
    sketches: int = 0
    # Batches still wait (a backlog): the next run should follow at once.
    more: bool = False


class FlushLoop(ABC):
    settings: Settings
    metrics: Metrics
    consecutive_failures: int

    @abstractmethod
    async def flush_once(self, *, sketches: bool | None = None) -> FlushResult: ...

    @abstractmethod
    async def pending_events(self) -> int:
        """How many events wait in Redis."""

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
            pending = await self.pending_events()
        except RedisUnavailable:
            return False
        return pending >= self.settings.flush_max_pending_events

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every interval until `stop` is set; failures back off and are retried;
        a backlog is drained run after run."""
        backlog = False
        while not stop.is_set():
            delay = 0.0 if backlog and self.consecutive_failures == 0 else self.next_delay_s()
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
            result = await self.run_once_logged()
            backlog = result is not None and result.more

    async def run_once_logged(self, *, sketches: bool | None = None) -> FlushResult | None:
        started = time.perf_counter()
        try:
            result = await self.flush_once(sketches=sketches)
        except (RedisUnavailable, DatabaseUnavailable) as exc:
            self.consecutive_failures += 1
            log.warning(
                "flush failed (%s: %s); retrying in about %.1f s",
                type(exc).__name__,
                exc,
                self.next_delay_s(),
                extra={"event": "flush_failed", "cause": f"{type(exc).__name__}: {exc}"},
            )
            return None
        except Exception:
            # A bug or an unexpected server answer must not end the flusher: log it,
            # count it, and retry with backoff like any other failure.
            self.consecutive_failures += 1
            self.metrics.flush_failures.labels("error").inc()
            log.exception(
                "flush failed unexpectedly; retrying in about %.1f s",
                self.next_delay_s(),
                extra={"event": "flush_failed", "cause": "unexpected error"},
            )
            return None
        if self.consecutive_failures:
            log.info(
                "flush recovered after %d failed attempt(s)",
                self.consecutive_failures,
                extra={"event": "flush_recovered", "failures": self.consecutive_failures},
            )
        self.consecutive_failures = 0
        if result.batches or result.skipped:
            # One line per run that moved something (an idle run says nothing).
            log.info(
                "flushed %d batch(es), %d event(s), %d row(s) in %.3f s; %d already applied",
                result.batches,
                result.events,
                result.counters,
                time.perf_counter() - started,
                result.skipped,
                extra={
                    "event": "flush",
                    "batches": result.batches,
                    "events": result.events,
                    "rows": result.counters,
                    "skipped": result.skipped,
                    "duration_s": round(time.perf_counter() - started, 6),
                },
            )
        return result
