"""The schema: numbered SQL files in tracker/pg/sql, applied in order, once each."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from tracker.pg import queries as q

if TYPE_CHECKING:
    from tracker.pg.db import Conn

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


_MIGRATION_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>\w+)\.sql$")


def load_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("tracker.pg.sql").iterdir():
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
