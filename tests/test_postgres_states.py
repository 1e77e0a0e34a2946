"""A PostgreSQL that is full, cancelling or cutting connections is a known state: reads
and /readyz answer 503 with Retry-After, never 500."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.helpers import Client, MakeClient
from tracker.core.settings import Settings
from tracker.pg import db


@pytest.fixture
async def limited_role(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """A login role of this test's own (not a superuser: limits hold for it), owning the
    test's database; (its name, the database URL that logs in as it)."""
    assert settings.database_url is not None
    name = "tracker_role_" + secrets.token_hex(4)
    admin = await asyncpg.connect(settings.database_url)
    try:
        await admin.execute(f"CREATE ROLE {name} LOGIN")
        database = urlsplit(settings.database_url).path.lstrip("/")
        await admin.execute(f'ALTER DATABASE "{database}" OWNER TO {name}')
        await admin.execute(f"ALTER SCHEMA public OWNER TO {name}")
    finally:
        await admin.close()
    parts = urlsplit(settings.database_url)
    url = urlunsplit(parts._replace(netloc=f"{name}@{parts.hostname}:{parts.port or 5432}"))
    yield name, url
    admin = await asyncpg.connect(settings.database_url)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name
        )
        await admin.execute(f'ALTER DATABASE "{database}" OWNER TO postgres')
        await admin.execute("ALTER SCHEMA public OWNER TO pg_database_owner")
        await admin.execute(f"REASSIGN OWNED BY {name} TO postgres")
        await admin.execute(f"DROP ROLE {name}")
    finally:
        await admin.close()


async def as_admin(settings: Settings, *statements: str) -> None:
    admin = await asyncpg.connect(settings.database_url)
    try:
        for statement in statements:
            await admin.execute(statement)
    finally:
        await admin.close()


async def assert_503(client: Client, path: str) -> None:
    response = await client.get(path)
    body = await response.json()
    assert response.status == 503, body
    assert "Retry-After" in response.headers


async def test_too_many_connections_is_503(
    settings: Settings, make_client: MakeClient, limited_role: tuple[str, str]
) -> None:
    name, url = limited_role
    client = await make_client(settings.with_overrides(database_url=url, database_pool_size=2))
    assert (await client.get("/api/v1/articles/a/stats")).status == 200
    # No more connections for the role (SQLSTATE 53300), and the pool's are cut.
    await as_admin(settings, f"ALTER ROLE {name} CONNECTION LIMIT 0")
    admin = await asyncpg.connect(settings.database_url)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name
        )
    finally:
        await admin.close()

    for path in ("/api/v1/articles/a/stats", "/readyz", "/api/v1/articles/stats?ids=a,b"):
        await assert_503(client, path)


async def test_a_cancelled_statement_is_503(
    settings: Settings, make_client: MakeClient, limited_role: tuple[str, str]
) -> None:
    """statement_timeout cancels the read (SQLSTATE 57014) while a lock holds it up."""
    name, url = limited_role
    await as_admin(settings, f"ALTER ROLE {name} SET statement_timeout = '200ms'")
    client = await make_client(settings.with_overrides(database_url=url))
    locker = await asyncpg.connect(settings.database_url)
    try:
        await locker.execute("BEGIN")
        await locker.execute("LOCK TABLE article_totals IN ACCESS EXCLUSIVE MODE")
        await assert_503(client, "/api/v1/articles/locked/stats")
    finally:
        await locker.close()
    assert (await client.get("/api/v1/articles/locked/stats")).status == 200


async def test_connections_cut_under_the_pool_are_not_500(
    settings: Settings, client: Client
) -> None:
    await client.get("/api/v1/articles/a/stats")
    await as_admin(
        settings,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    statuses = [(await client.get("/api/v1/articles/a/stats")).status for _ in range(3)]
    assert set(statuses) <= {200, 503}
    assert statuses[-1] == 200  # the pool reconnected


async def test_readyz_answers_503_whatever_a_check_raises(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(pool: db.Pool) -> None:
        raise RuntimeError("a driver bug")

    monkeypatch.setattr(db, "ping", broken)
    response = await client.get("/readyz")
    body = await response.json()
    assert response.status == 503
    assert body["detail"]["postgres"].startswith("unavailable: a driver bug")
    # A check that raises leaves the pool as it was: reads go on.
    assert (await client.get("/api/v1/articles/a/stats")).status == 200
