"""tracker's connections pack commands with hiredis: the same bytes redis-py would send."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.connection import Connection

from tracker.redis_side.client import open_redis


@pytest.mark.parametrize(
    "args",
    [
        ("CLIENT SETNAME", "tracker"),
        (b"CLIENT SETNAME", "tracker"),
        ("EVALSHA", "a" * 40, 2, "k1", "k2", 7, -3, 2.5, b"\x00\xff", "é"),
    ],
    ids=["text name", "bytes name", "script call"],
)
async def test_commands_are_packed_as_redis_py_packs_them(args: tuple[Any, ...]) -> None:
    client = open_redis("redis://127.0.0.1:6379/0", timeout_s=1.0)
    try:
        packed = client.connection_pool.make_connection()
        assert type(packed) is not Connection
        assert b"".join(packed.pack_command(*args)) == b"".join(Connection().pack_command(*args))
    finally:
        await client.aclose()
