"""Concurrent requests share Redis round trips.

Every request that arrives in one event-loop tick joins the open batch; at the end of
the tick the batch goes to Redis as one script call per shard, in one pipeline. Each
request is answered when Redis has answered for it (stored, or over its address's rate
limit), or fails (503) with every other request of that batch if the round trip failed.
(Holding batches back while a round trip is in flight, for bigger batches, measured
slower: the round trips then no longer overlap.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from tracker.core.errors import Ignored, Overloaded, RateLimited, RedisUnavailable
from tracker.ops.metrics import Metrics
from tracker.redis_side.client import REDIS_MAX_CONNECTIONS
from tracker.redis_side.recorder import Recorder, Request

log = logging.getLogger(__name__)

# A batch past this many events is sent at once rather than at the end of the tick, so
# one script call never holds Redis for long.
MAX_ROUND_TRIP_EVENTS: Final = 1_000
# Round trips waiting for Redis at once; past this Redis is behind, and a new request
# would only wait for its deadline: it is shed at once instead. Three quarters of the
# client's connections: the rest stay free for reads, and no round trip fails for want of
# a connection.
MAX_ROUND_TRIPS_IN_FLIGHT: Final = REDIS_MAX_CONNECTIONS * 3 // 4


class Batcher:
    def __init__(self, recorder: Recorder, metrics: Metrics, *, clock: Callable[[], float]) -> None:
        self.recorder = recorder
        self.metrics = metrics
        self.clock = clock
        self._requests: list[Request] = []
        self._events = 0
        self._waiters: list[asyncio.Future[int]] = []
        self._scheduled = False
        self._in_flight: set[asyncio.Task[None]] = set()
        self.round_trips = 0

    async def record(self, request: Request) -> None:
        """Returns once Redis has stored the request's events; raises RedisUnavailable
        if it could not, RateLimited if the address is over its rate."""
        self._check_backlog()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[int] = loop.create_future()
        self._requests.append(request)
        self._events += len(request)
        self._waiters.append(waiter)
        if self._events >= MAX_ROUND_TRIP_EVENTS:
            self._send_now()
        elif not self._scheduled:
            self._scheduled = True
            # call_soon runs after the callbacks already queued for this tick: the other
            # requests that arrived with this one join the batch first.
            loop.call_soon(self._send_now)
        retry_after_ms = await waiter
        if retry_after_ms:
            raise RateLimited(max(1, -(-retry_after_ms // 1000)))

    def _check_backlog(self) -> None:
        if len(self._in_flight) >= MAX_ROUND_TRIPS_IN_FLIGHT:
            raise Overloaded("Redis is behind; shedding load")

    def _send_now(self) -> None:
        self._scheduled = False
        if not self._waiters:
            return
        requests, self._requests, self._events = self._requests, [], 0
        waiters, self._waiters = self._waiters, []
        task = asyncio.create_task(self._send(requests, waiters))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _send(self, requests: list[Request], waiters: list[asyncio.Future[int]]) -> None:
        self.round_trips += 1
        events = sum(len(request) for request in requests)
        self.metrics.redis_round_trip_events.observe(events)
        try:
            recorded = await self.recorder.record(requests, self.clock())
        except BaseException as exc:
            self.metrics.redis_round_trips.labels("error").inc()
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
        # Answered first: whatever follows, a stored event is acknowledged.
        for waiter, retry_after_ms in zip(waiters, recorded.retry_after_ms, strict=True):
            if not waiter.done():
                waiter.set_result(retry_after_ms)
        self.metrics.redis_round_trips.labels("ok").inc()
        # Counted here, not by the handler: a client gone before its answer still had its
        # events stored.
        self.metrics.count_accepted(
            [
                event
                for request, retry_after_ms in zip(requests, recorded.retry_after_ms, strict=True)
                if not retry_after_ms
                for event, _ in request
            ]
        )
        self.metrics.events_counted.inc(recorded.counted)
        ignored = self.metrics.events_ignored
        for reason, count in (
            (Ignored.DUPLICATE, recorded.repeats),
            (Ignored.ADDRESS_LIMIT, recorded.address_limited),
            (Ignored.RETRIED, recorded.retried),
            (Ignored.NO_VIEW, recorded.no_view),
            (Ignored.ENGAGED_LIMIT, recorded.engaged_limit),
        ):
            if count:
                ignored.labels(reason).inc(count)

    async def drain(self) -> None:
        """Send what is open and wait for every call in flight (at shutdown)."""
        self._send_now()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
