"""A read replica (TRACKER_READ_DATABASE_URL) that stats and reports read from.

Reads add what Redis holds to what the database they read has applied; a batch deleted
from Redis before the replica has it would vanish from the counts for the replica's lag.
So the flusher deletes a batch only once the replica has replayed the primary's WAL up
to the batch's commit: a count read from the replica never goes down.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from tracker.core.errors import DatabaseUnavailable
from tracker.pg import queries
from tracker.pg.db import Pool, database_unavailable_on_error

POLL_EVERY_S: Final = 0.05


class Replica:
    def __init__(self, primary: Pool, replica: Pool, *, max_lag_s: float) -> None:
        self.primary = primary
        self.replica = replica
        self.max_lag_s = max_lag_s

    async def caught_up(self) -> None:
        """Returns once the replica holds what the primary has committed so far; raises
        DatabaseUnavailable if it does not within max_lag_s (the batch stays in Redis and
        is released by a later run)."""
        with database_unavailable_on_error():
            position = await self.primary.fetchval(queries.PRIMARY_POSITION)
            deadline = time.monotonic() + self.max_lag_s
            while not await self.replica.fetchval(queries.REPLAYED, position):
                if time.monotonic() > deadline:
                    raise DatabaseUnavailable(
                        f"the read replica has not replayed {position} within {self.max_lag_s:g} s"
                    )
                await asyncio.sleep(POLL_EVERY_S)
