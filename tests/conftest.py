"""Fixtures: the machine's real Redis and Postgres (or embedded ones where none answer),
a fresh database and key prefix per test, and servers of a test's own to stop and kill."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from redis.asyncio import Redis

from tests.chromium import browser  # noqa: F401  (the fixture, for the browser tests)
from tests.helpers import BROWSER_UA, Client, MakeClient
from tracker.core.settings import Settings
from tracker.ops.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from tracker.web.app import create_app

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    if not parts.hostname:  # a Unix socket: let the client find out
        return True
    try:
        with socket.create_connection((parts.hostname, parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("TRACKER_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    if _answers(url, 6379):
        yield url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("session-redis"))
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def admin_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("TRACKER_TEST_DATABASE_URL", DEFAULT_DATABASE_URL)
    if _answers(url, 5432):
        yield url
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("session-postgres") / "pg")
    yield server.start()
    server.stop()


def database_url_for(admin_url: str, name: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path="/" + name))


async def create_database(admin_url: str) -> str:
    name = "tracker_test_" + secrets.token_hex(6)
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database_url_for(admin_url, name)


async def drop_database(admin_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def database_url(admin_database_url: str) -> AsyncIterator[str]:
    """A database of this test's own, dropped afterwards."""
    url = await create_database(admin_database_url)
    yield url
    await drop_database(admin_database_url, url)


@pytest.fixture
def redis_prefix() -> str:
    return "test-" + secrets.token_hex(5)


@pytest.fixture
async def redis(redis_url: str, redis_prefix: str) -> AsyncIterator[Redis]:
    """A client on the test Redis; the test's keys (its prefix) are deleted afterwards."""
    client = Redis.from_url(redis_url)
    yield client
    await delete_prefix(client, redis_prefix)
    await client.aclose()


async def delete_prefix(client: Redis, prefix: str) -> None:
    """A thousand keys a command: a reconciliation run leaves tens of thousands. Keys of
    prefixes made from the test's (its own plus a letter) go too."""
    keys: list[bytes] = []
    async for key in client.scan_iter(match=f"{prefix}*", count=1000):
        keys.append(key)
        if len(keys) == 1000:
            await client.unlink(*keys)
            keys.clear()
    if keys:
        await client.unlink(*keys)


@pytest.fixture
def settings(redis_url: str, database_url: str, redis_prefix: str, redis: Redis) -> Settings:
    """Settings for one test: its own database and key prefix, a short flush interval."""
    return Settings(
        redis_url=redis_url,
        database_url=database_url,
        redis_prefix=redis_prefix,
        flush_interval_s=0.2,
        # Counting tests post the same event again and again; de-duplication and the rate
        # limit have tests of their own.
        dedup_window_s=0,
        rate_limit_per_min=0,
        # Reads right after writes must see them; the stats cache has tests of its own.
        stats_cache_s=0,
        redis_timeout_s=1.0,
        database_timeout_s=3.0,
        shutdown_timeout_s=5.0,
        # A shared CI machine stalls a process for half a second at times: shedding has
        # tests of its own (test_overload), the others must not see its 503s.
        max_loop_lag_s=5.0,
    )


@pytest.fixture
def make_client(
    database_url: str,
    redis: Redis,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> MakeClient:
    """make_client(settings, run_flusher=False): the app under test, started and cleaned up.

    Asks for the database and Redis first so that the app is closed before they are
    dropped (fixtures are torn down in reverse order of setup)."""

    async def make(settings: Settings, *, run_flusher: bool = False, **app_options: Any) -> Client:
        return await aiohttp_client(
            create_app(settings, run_flusher=run_flusher, **app_options),
            headers={"User-Agent": BROWSER_UA},
        )

    return make


@pytest.fixture
async def client(settings: Settings, make_client: MakeClient) -> Client:
    """The app on the test's settings, without the background flusher (tests flush by hand)."""
    return await make_client(settings)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A redis-server of this test's own on a free port (AOF fsync always), to stop or kill."""
    server = EmbeddedRedis(tmp_path / "own-redis", appendfsync="always")
    server.start(port=free_port())
    yield server
    server.stop()


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """An embedded PostgreSQL of this test's own, to restart or stop."""
    server = EmbeddedPostgres(tmp_path / "own-pg")
    server.start()
    yield server
    try:
        server.start_again()
    finally:
        server.stop()


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], *, timeout_s: float, interval_s: float = 0.05
) -> None:
    """Poll until predicate() is true; fail the test with the timeout otherwise."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)
