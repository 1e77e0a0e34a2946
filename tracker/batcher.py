"""Concurrent requests share Redis round trips.

Every request that arrives in one event-loop tick adds its events to the open batch; at
the end of the tick the batch goes to Redis as one script call per shard, in one
pipeline. Each request is answered when Redis has confirmed the call that holds its
events, or fails (503) with every other request of that batch if the call failed.
(Holding batches back while a round trip is in flight, for bigger batches, measured
slower: the round trips then no longer overlap.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Final

from .errors import Ignored, RedisUnavailable
from .metrics import Metrics
from .recorder import Entry, Recorder

log = logging.getLogger(__name__)

# A batch past this many events is sent at once rather than at the end of the tick, so
# one script call never holds Redis for long.
MAX_BATCH_EVENTS: Final = 2_000


class Batcher:
    def __init__(self, recorder: Recorder, metrics: Metrics, *, clock: Callable[[], float]) -> None:
        self.recorder = recorder
        self.metrics = metrics
        self.clock = clock
        self._entries: list[Entry] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._scheduled = False
        self._in_flight: set[asyncio.Task[None]] = set()
        self.round_trips = 0

    async def record(self, entries: Sequence[Entry]) -> None:
        """Returns once Redis has stored the entries; raises RedisUnavailable otherwise."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._entries.extend(entries)
        self._waiters.append(waiter)
        if len(self._entries) >= MAX_BATCH_EVENTS:
            self._send_now()
        elif not self._scheduled:
            self._scheduled = True
            # call_soon runs after the callbacks already queued for this tick: the other
            # requests that arrived with this one join the batch first.
            loop.call_soon(self._send_now)
        await waiter

    def _send_now(self) -> None:
        self._scheduled = False
        if not self._waiters:
            return
        entries, self._entries = self._entries, []
        waiters, self._waiters = self._waiters, []
        task = asyncio.create_task(self._send(entries, waiters))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _send(self, entries: list[Entry], waiters: list[asyncio.Future[None]]) -> None:
        self.round_trips += 1
        try:
            recorded = await self.recorder.record(entries, self.clock())
        except BaseException as exc:
            # Every request of the batch learns of it; none is acknowledged.
            if isinstance(exc, RedisUnavailable):
                failure = exc
            else:
                if isinstance(exc, Exception):
                    log.exception("recording a batch failed unexpectedly; answered 503")
                failure = RedisUnavailable(repr(exc))
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(failure)
            if not isinstance(exc, Exception):
                raise
            return
        if recorded.repeats:
            self.metrics.events_ignored.labels(Ignored.DUPLICATE).inc(recorded.repeats)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def drain(self) -> None:
        """Send what is open and wait for every call in flight (at shutdown)."""
        self._send_now()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
