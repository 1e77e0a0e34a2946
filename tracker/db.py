"""PostgreSQL side: pool, migrations, applying a batch in one transaction, reading totals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

import asyncpg

from . import queries as q
from .buffer import ClaimedBatch, PendingPiece
from .keys import part_of
from .models import METADATA_FIELDS

log = logging.getLogger(__name__)

Pool = asyncpg.Pool
if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn = asyncpg.Connection[Any] | PoolConnectionProxy[Any]


class DatabaseUnavailable(Exception):
    """Postgres could not answer now (down, restarting, timed out)."""


# What asyncpg raises when the server is away, restarting or too slow.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.QueryCanceledError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)


@contextlib.contextmanager
def database_unavailable_on_error() -> Iterator[None]:
    """What asyncpg raises for a server that is away, restarting or slow, as
    DatabaseUnavailable."""
    try:
        yield
    except UNAVAILABLE_ERRORS as exc:
        raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc


async def open_pool(url: str, *, size: int, timeout_s: float) -> Pool:
    return await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=size,
        timeout=timeout_s,
        command_timeout=timeout_s,
        # A pooled connection that saw the server restart is dropped, not handed out.
        max_inactive_connection_lifetime=60,
    )


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


_MIGRATION_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>\w+)\.sql$")


def load_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("tracker.sql").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(
                Migration(int(match.group("version")), match.group("name"), entry.read_text())
            )
    return sorted(found, key=lambda m: m.version)


async def migrate(conn: Conn) -> list[int]:
    """Apply what is missing, in order; returns the versions applied now.

    An advisory lock held for the transaction makes concurrent runs take turns; the
    second finds everything recorded and does nothing.
    """
    applied_now = []
    async with conn.transaction():
        await conn.execute(q.LOCK_MIGRATIONS, q.MIGRATION_LOCK_ID)
        await conn.execute(q.MIGRATIONS_TABLE)
        done = {row["version"] for row in await conn.fetch(q.APPLIED_MIGRATIONS)}
        for migration in load_migrations():
            if migration.version in done:
                continue
            log.info("applying migration %04d_%s", migration.version, migration.name)
            await conn.execute(migration.sql)
            await conn.execute(q.RECORD_MIGRATION, migration.version, migration.name)
            applied_now.append(migration.version)
    return applied_now


async def schema_versions(conn: Conn) -> list[tuple[int, str]]:
    return [(row["version"], row["name"]) for row in await conn.fetch(q.SCHEMA_VERSIONS)]


def _hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, tz=UTC)


async def apply_batch(pool: Pool, batch: ClaimedBatch) -> bool:
    """Add a batch's counters, in `batch.parts` transactions at once (articles split by
    part_of), each recording (batch id, part). A part recorded before (applied by a
    flusher that died before releasing the batch) is not added again. True if any part
    was applied now; raises DatabaseUnavailable if any failed (the batch is then resumed
    later, and the parts that did commit are skipped)."""
    parts = [_Part() for _ in range(batch.parts)]
    for key, count in batch.counters.items():
        parts[part_of(key[0], batch.parts)].counters.append((key, count))
    for article_id, metadata in batch.metadata.items():
        parts[part_of(article_id, batch.parts)].metadata[article_id] = metadata
    for day_article, sketch in batch.sketches.items():
        parts[part_of(day_article[1], batch.parts)].sketches[day_article] = sketch
    results = await asyncio.gather(
        *(_apply_part(pool, batch, number, part) for number, part in enumerate(parts)),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException):
            with database_unavailable_on_error():
                raise result
    return any(results)


@dataclass(slots=True)
class _Part:
    counters: list[tuple[tuple[str, str, int], int]] = field(default_factory=list)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    sketches: dict[tuple[int, str], tuple[bytes, int]] = field(default_factory=dict)


async def _apply_part(pool: Pool, batch: ClaimedBatch, number: int, part: _Part) -> bool:
    hour_starts: dict[int, datetime] = {}
    rows = [
        (
            article_id,
            metric,
            hour_starts.get(hour) or hour_starts.setdefault(hour, _hour_start(hour)),
            count,
        )
        for (article_id, metric, hour), count in part.counters
    ]
    meta_ids = sorted(part.metadata)
    meta_columns = [[part.metadata[a].get(name) for a in meta_ids] for name in METADATA_FIELDS]
    # The batch's event count goes with part 0: the parts' counts add up to it.
    events = batch.events if number == 0 else 0
    async with pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetchval(
            q.INSERT_APPLIED_BATCH,
            batch.batch_id,
            number,
            batch.parts,
            batch.shard.shard,
            events,
            len(rows),
        )
        if inserted is None:
            return False
        if rows:
            await conn.execute(q.CREATE_INCOMING)
            await conn.copy_records_to_table(q.INCOMING_TABLE, records=rows)
            await conn.execute(q.ADD_HOURLY)
            await conn.execute(q.ADD_TOTALS)
        if meta_ids:
            await conn.execute(q.UPSERT_ARTICLES, meta_ids, *meta_columns)
        if part.sketches:
            await _store_sketches(conn, part.sketches)
        return True


async def _store_sketches(conn: Conn, sketches: dict[tuple[int, str], tuple[bytes, int]]) -> None:
    wanted = sorted(sketches)
    await conn.execute(
        q.UPSERT_DAILY_UNIQUES,
        [article_id for _, article_id in wanted],
        [day for day, _ in wanted],
        [sketches[key][0] for key in wanted],
        [sketches[key][1] for key in wanted],
    )


async def daily_sketches(
    pool: Pool, article_id: str, first_day: int, last_day: int
) -> dict[int, bytes]:
    with database_unavailable_on_error():
        rows = await pool.fetch(q.DAILY_SKETCHES, article_id, first_day, last_day)
    return {row["day"]: bytes(row["sketch"]) for row in rows}


@dataclass(frozen=True, slots=True)
class Stored:
    # article_id -> metric -> count
    totals: dict[str, dict[str, int]]
    # batch id -> (parts applied, how many parts the batch has)
    applied: dict[str, tuple[set[int], int]]
    # article_id -> day -> readers stored, for the days asked
    readers: dict[str, dict[int, int]]
    # article_id -> readers summed over every stored day
    readers_total: dict[str, int]


async def totals_with_applied(
    pool: Pool, article_ids: Sequence[str], pieces: Sequence[PendingPiece], since_day: int
) -> Stored:
    """Stored totals per article and metric, which of the pieces' batch ids are applied,
    and the readers stored for days from `since_day` on; one snapshot."""
    with database_unavailable_on_error():
        rows = await pool.fetch(
            q.TOTALS_WITH_APPLIED,
            list(article_ids),
            [piece.batch_id for piece in pieces],
            since_day,
        )
    stored = Stored(totals={}, applied={}, readers={}, readers_total={})
    for row in rows:
        if row["ids"] is not None:
            for batch_id, number, parts in zip(
                row["ids"], row["part_nos"], row["part_counts"], strict=True
            ):
                stored.applied.setdefault(batch_id, (set(), parts))[0].add(number)
        article_id = row["article_id"]
        if article_id is None:
            continue
        if row["metric"] == q.READERS_TOTAL:
            stored.readers_total[article_id] = row["count"]
        elif row["day"] is not None:
            stored.readers.setdefault(article_id, {})[row["day"]] = row["count"]
        else:
            stored.totals.setdefault(article_id, {})[row["metric"]] = row["count"]
    return stored


async def prune(pool: Pool, *, applied_batch_days: int, hourly_days: int) -> None:
    with database_unavailable_on_error():
        await pool.execute(q.PRUNE_APPLIED_BATCHES, applied_batch_days)
        if hourly_days > 0:
            await pool.execute(q.PRUNE_HOURLY, hourly_days)


async def ping(pool: Pool) -> None:
    with database_unavailable_on_error():
        await pool.fetchval(q.PING)
