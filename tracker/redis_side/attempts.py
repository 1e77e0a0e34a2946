"""Failed attempts to use a credential (an unknown or revoked token or session), limited
per address and in all: each counted in one Redis call, exactly under any concurrency,
and never so many calls at once that they hold the connections ingest needs. A valid
credential is checked without Redis, so never refused for what others did."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Final

from tracker.redis_side.client import RedisClient
from tracker.redis_side.scripts import FAILURES, Call, run_one

FAILURES_PER_ADDRESS: Final = 10
FAILURES_IN_ALL: Final = 300
WINDOW_S: Final = 60
# Calls counting failures at once, per process: a burst waits, the pool stays free.
AT_ONCE: Final = 4


class FailedAttempts:
    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self.redis = redis
        # One hash slot for both keys: the script runs on a cluster too.
        self._base = f"{prefix}:{{auth}}"
        self._gate = asyncio.Semaphore(AT_ONCE)

    async def counted(self, address: str) -> bool:
        """Count one failure from `address`; True when it is past a limit (then 429)."""
        digest = hashlib.blake2b(address.encode(), digest_size=12, person=b"auth").hexdigest()
        keys = (f"{self._base}:failures:{digest}", f"{self._base}:failures")
        limits = (FAILURES_PER_ADDRESS, FAILURES_IN_ALL, WINDOW_S)
        async with self._gate:
            over = await run_one(self.redis, Call(FAILURES, keys, limits))
        return bool(over)
