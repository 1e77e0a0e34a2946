"""PostgreSQL connections: the pool, and what a server that is away looks like."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import asyncpg

from tracker.core.errors import DatabaseUnavailable
from tracker.pg import queries as q

Pool = asyncpg.Pool
if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn = asyncpg.Connection[Any] | PoolConnectionProxy[Any]


# What asyncpg raises when the server is away, restarting, too slow or full: SQLSTATE
# classes 08 (connection), 53 (insufficient resources: too many connections, disk full)
# and 57 (operator intervention: shutdown, cannot connect now, query cancelled).
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InsufficientResourcesError,
    asyncpg.OperatorInterventionError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    # A pooled connection the server cut mid-query can be left in a state asyncpg
    # refuses to use once more; the pool replaces it.
    asyncpg.exceptions.InternalClientError,
    # A read replica that has not replayed the latest migration yet (SQLSTATE 42P01,
    # 42703, 42883): its schema arrives with its lag.
    asyncpg.UndefinedTableError,
    asyncpg.UndefinedColumnError,
    asyncpg.UndefinedFunctionError,
)


@contextlib.contextmanager
def database_unavailable_on_error() -> Iterator[None]:
    """What asyncpg raises for a server that is away, restarting or slow, as
    DatabaseUnavailable."""
    try:
        yield
    except UNAVAILABLE_ERRORS as exc:
        raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc


async def open_pool(url: str, *, size: int, timeout_s: float, parallel_workers: int = 0) -> Pool:
    return await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=size,
        timeout=timeout_s,
        command_timeout=timeout_s,
        # A pooled connection that saw the server restart is dropped, not handed out.
        max_inactive_connection_lifetime=60,
        server_settings={"max_parallel_workers_per_gather": str(parallel_workers)},
    )


async def ping(pool: Pool) -> None:
    with database_unavailable_on_error():
        await pool.fetchval(q.PING)
