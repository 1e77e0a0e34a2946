"""Shedding load at the door: when the event loop runs late, a request that would only
queue behind the others is answered 503 at once, so memory and the latency of the
requests that are answered stay bounded; and a request past its deadline is cancelled
and answered 503."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Final

# How often the loop is sampled; its lag is how late the sample wakes up. Deadlines are
# checked as often: a request may run this much past its own.
SAMPLE_EVERY_S: Final = 0.05
# The lag is the worst sample of the last second: a loop that was late a moment ago is
# likely late again, and shedding should not flap from one request to the next.
WINDOW: Final = 20


class LoopLag:
    def __init__(self, max_lag_s: float) -> None:
        self.max_lag_s = max_lag_s
        self._samples: deque[float] = deque([0.0], maxlen=WINDOW)
        self.lag_s = 0.0

    @property
    def overloaded(self) -> bool:
        return self.lag_s > self.max_lag_s

    def sample(self, lag_s: float) -> None:
        self._samples.append(lag_s)
        self.lag_s = max(self._samples)

    async def watch(self, deadlines: Deadlines | None = None) -> None:
        """Runs until cancelled; cancels the requests past their deadline as it goes."""
        loop = asyncio.get_running_loop()
        while True:
            expected = time.monotonic() + SAMPLE_EVERY_S
            await asyncio.sleep(SAMPLE_EVERY_S)
            self.sample(max(0.0, time.monotonic() - expected))
            if deadlines is not None:
                deadlines.cancel_expired(loop.time())


class Deadlines:
    """The deadlines of the requests being handled, checked by the loop-lag watcher rather
    than by a timer per request: a uvloop timer costs more than the rest of a cached
    answer. Every request gets the same timeout, so the order requests came in is the
    order their deadlines fall in, and a check stops at the first one still in time."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._running: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()

    def enter(self, task: asyncio.Task[object], now: float) -> None:
        self._running[task] = now + self.timeout_s

    def leave(self, task: asyncio.Task[object]) -> bool:
        """Whether the task was cancelled for its deadline."""
        self._running.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def cancel_expired(self, now: float) -> None:
        late = []
        for task, deadline in self._running.items():
            if deadline > now:
                break
            late.append(task)
        for task in late:
            del self._running[task]
            self._expired.add(task)
            task.cancel()
