"""Shedding load at the door: when the event loop runs late, a request that would only
queue behind the others is answered 503 at once, so memory and the latency of the
requests that are answered stay bounded."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Final

# How often the loop is sampled; its lag is how late the sample wakes up.
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

    async def watch(self) -> None:
        """Runs until cancelled."""
        while True:
            expected = time.monotonic() + SAMPLE_EVERY_S
            await asyncio.sleep(SAMPLE_EVERY_S)
            self.sample(max(0.0, time.monotonic() - expected))
