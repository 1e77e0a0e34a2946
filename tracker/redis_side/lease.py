"""A lease in Redis that lets one flusher at a time do the work.

It only saves work: correctness comes from the batch ids PostgreSQL records, so two
flushers that both believe they hold it still apply each batch once.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket

from tracker.core.errors import RedisUnavailable
from tracker.redis_side.client import RedisClient
from tracker.redis_side.scripts import (
    DROP_LEASE,
    RENEW_LEASE,
    Call,
    redis_unavailable_on_error,
    run_one,
)


def owner_name() -> str:
    """Who holds a lease: host, process and a token (a restarted process is another owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Lease:
    def __init__(
        self, redis: RedisClient, key: str, *, ttl_s: float, owner: str | None = None
    ) -> None:
        self.redis = redis
        self.key = key
        self.ttl_ms = int(ttl_s * 1000)
        self.owner = owner or owner_name()

    async def acquire(self) -> bool:
        """Take the lease, or keep it if it is ours already (a run of ours cut short)."""
        with redis_unavailable_on_error():
            acquired = await self.redis.set(self.key, self.owner, nx=True, px=self.ttl_ms)
        return bool(acquired) or await self.renew()

    async def renew(self) -> bool:
        """Extend the lease; False if it is no longer ours."""
        renewed = await run_one(
            self.redis, Call(RENEW_LEASE, (self.key,), (self.owner, self.ttl_ms))
        )
        return bool(renewed)

    async def release(self) -> None:
        """Give it up if ours; a Redis away now lets it expire by itself."""
        with contextlib.suppress(RedisUnavailable):
            await run_one(self.redis, Call(DROP_LEASE, (self.key,), (self.owner,)))
