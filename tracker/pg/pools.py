"""PostgreSQL pools as the processes open them: waiting for the server at start, the schema
brought up to date, and the pool reads use (a replica's when one is configured)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Final

from tracker.core.errors import DatabaseUnavailable
from tracker.core.settings import Settings
from tracker.pg import db, migrations
from tracker.pg.replica import Replica

log = logging.getLogger(__name__)

STARTUP_WAIT_S: Final = 30.0


@contextlib.asynccontextmanager
async def postgres_pool(
    settings: Settings, url: str, *, migrate: bool, size: int | None = None
) -> AsyncIterator[db.Pool]:
    """A pool, once PostgreSQL answers (waiting a while), with the schema brought up to
    date when `migrate`."""
    deadline = time.monotonic() + STARTUP_WAIT_S
    while True:
        try:
            pool = await db.open_pool(
                url,
                size=size or settings.database_pool_size,
                timeout_s=settings.database_timeout_s,
                parallel_workers=settings.database_parallel_workers,
            )
            if migrate:
                async with pool.acquire() as conn:
                    await migrations.migrate(conn)
            break
        except db.UNAVAILABLE_ERRORS as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("waiting for PostgreSQL: %s", exc)
            await asyncio.sleep(1.0)
    try:
        yield pool
    finally:
        await asyncio.wait_for(pool.close(), settings.shutdown_timeout_s)


@contextlib.asynccontextmanager
async def read_pool(settings: Settings, primary: db.Pool) -> AsyncIterator[db.Pool]:
    """The pool reads use: of TRACKER_READ_DATABASE_URL (a replica), else the primary's."""
    if settings.read_database_url is None:
        yield primary
        return
    async with postgres_pool(settings, settings.read_database_url, migrate=False) as pool:
        replica = Replica(primary, pool, max_lag_s=settings.database_timeout_s)
        try:
            await replica.caught_up()  # the migrations just run on the primary
        except DatabaseUnavailable as exc:
            # Reads answer 503 until the replica has the schema; nothing else waits.
            log.warning("the read replica lags: %s", exc, extra={"event": "replica_lag"})
        yield pool
