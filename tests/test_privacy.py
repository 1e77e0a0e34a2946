"""Raw addresses are stored nowhere: not in Redis, not in Postgres, not in the logs."""

from __future__ import annotations

import ipaddress
import logging

import asyncpg
import pytest
from redis.asyncio import Redis

from tests.helpers import MakeClient, flush, share, stats, view
from tracker.core.settings import Settings

ADDRESSES = ("203.0.113.77", "2001:db8::beef", "198.51.100.123")


def needles() -> list[bytes]:
    """Every form an address could be stored in: text (short and long), packed bytes,
    and the packed bytes as hex (how Postgres shows bytea as text)."""
    found: list[bytes] = []
    for text in ADDRESSES:
        address = ipaddress.ip_address(text)
        forms = {text.encode(), address.exploded.encode(), address.compressed.encode()}
        forms |= {address.packed, address.packed.hex().encode()}
        found += sorted(forms)
    return found


def leaks(blob: bytes) -> list[bytes]:
    lowered = blob.lower()
    return [needle for needle in needles() if needle in blob or needle.lower() in lowered]


def as_bytes(value: object) -> bytes:
    """The client answers bytes (decode_responses is off); anything else is a surprise."""
    assert isinstance(value, bytes), value
    return value


async def redis_contents(redis: Redis, prefix: str) -> dict[bytes, list[bytes]]:
    """Every key under the prefix with every piece of its value, whatever its type."""
    contents: dict[bytes, list[bytes]] = {}
    async for raw_key in redis.scan_iter(match=f"{prefix}:*", count=1000):
        key = as_bytes(raw_key)
        kind = as_bytes(await redis.type(key)).decode()
        values: list[object]
        if kind == "string":  # counters, salts, dedup markers, HyperLogLogs
            value = await redis.get(key)
            values = [] if value is None else [value]
        elif kind == "hash":
            values = [piece for item in (await redis.hgetall(key)).items() for piece in item]
        elif kind == "set":
            values = list(await redis.smembers(key))
        elif kind == "zset":
            pairs = await redis.zrange(key, 0, -1, withscores=True)
            values = [pair[0] for pair in pairs]
        elif kind == "list":
            values = list(await redis.lrange(key, 0, -1))
        elif kind == "none":  # expired between SCAN and TYPE
            continue
        else:
            pytest.fail(f"unexpected Redis type {kind} of {key!r}")
        contents[key] = [as_bytes(value) for value in values]
    return contents


async def postgres_contents(database_url: str) -> dict[str, list[bytes]]:
    """Every row of every table of the test database: as text, and raw bytea values."""
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        contents: dict[str, list[bytes]] = {}
        for schema, table in tables:
            name = f'"{schema}"."{table}"'
            as_text = await conn.fetch(f"SELECT t::text AS row FROM {name} AS t")  # noqa: S608
            raw = await conn.fetch(f"SELECT * FROM {name}")  # noqa: S608
            parts = [record["row"].encode() for record in as_text]
            parts += [
                value for record in raw for value in record.values() if isinstance(value, bytes)
            ]
            contents[name] = parts
        return contents
    finally:
        await conn.close()


async def test_the_search_finds_an_address_in_any_form_and_type(
    redis: Redis, redis_prefix: str
) -> None:
    """The search itself, on planted values: else an empty walk would pass."""
    packed = ipaddress.ip_address("2001:db8::beef").packed
    await redis.set(f"{redis_prefix}:planted:string", b"x" + packed + b"y")
    await redis.hset(f"{redis_prefix}:planted:hash", "f", "seen 203.0.113.77 here")
    await redis.sadd(f"{redis_prefix}:planted:set", "2001:0db8:0000:0000:0000:0000:0000:beef")
    await redis.zadd(f"{redis_prefix}:planted:zset", {"198.51.100.123": 1.0})
    await redis.rpush(f"{redis_prefix}:planted:list", bytes.fromhex("cb00714d"))
    await redis.pfadd(f"{redis_prefix}:planted:hll", "anything")
    await redis.set(f"{redis_prefix}:planted:key:203.0.113.77", "1")

    contents = await redis_contents(redis, redis_prefix)

    assert len(contents) == 7
    found = {key for key, parts in contents.items() if leaks(key) or any(map(leaks, parts))}
    assert found == {key for key in contents if b":hll" not in key}
    assert leaks(b"\\x" + packed.hex().upper().encode()) != []  # bytea as text


async def test_raw_addresses_are_stored_nowhere(
    settings: Settings,
    make_client: MakeClient,
    redis: Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # Set apart: `tracker serve` quiets it, and the level outlives the test that set it.
    caplog.set_level(logging.DEBUG, logger="aiohttp.access")
    client = await make_client(
        settings.with_overrides(
            trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),), dedup_window_s=600
        )
    )
    for address in ADDRESSES:
        headers = {"X-Forwarded-For": address}
        posted = await client.post(
            "/api/v1/events",
            json={
                "events": [
                    view("private-1", referrer="https://t.me/news", title="A story"),
                    share("private-1", "telegram"),
                    view("private-2", url="https://news.example/2?utm_source=newsletter"),
                ]
            },
            headers=headers,
        )
        assert posted.status == 202
        repeat = await client.post("/api/v1/events", json=view("private-1"), headers=headers)
        assert repeat.status == 202
        for params in ({"a": "private-3"}, {"a": "private-3", "t": "share", "c": "vk"}):
            pixel = await client.get("/p.gif", params=params, headers=headers)
            assert pixel.status == 200
    # With a port, as some proxies send it.
    posted = await client.post(
        "/api/v1/events", json=view("private-4"), headers={"X-Forwarded-For": "203.0.113.77:4711"}
    )
    assert posted.status == 202

    before_flush = await redis_contents(redis, settings.redis_prefix)
    result = await flush(client)
    assert result.events > 0
    # Something after the flush, so the live hash holds data again.
    posted = await client.post(
        "/api/v1/events", json=view("private-5"), headers={"X-Forwarded-For": ADDRESSES[1]}
    )
    assert posted.status == 202
    after_flush = await redis_contents(redis, settings.redis_prefix)

    # The run was counted, per reader: the addresses were used, just not kept.
    first = await stats(client, "private-1")
    assert (first["views"], first["uniques"], first["shares"]["telegram"]) == (3, 3, 3)
    assert first["referrals"]["telegram"] == 3
    assert (await stats(client, "private-3"))["uniques"] == 3

    for contents in (before_flush, after_flush):
        assert any(b":salt:" in key for key in contents)  # the walk did see the keys
        assert any(b":u:" in key for key in contents)  # and the reader sketches
        for key, parts in contents.items():
            assert leaks(key) == [], key
            for part in parts:
                assert leaks(part) == [], (key, part[:80])

    rows = await postgres_contents(settings.database_url or "")
    assert any("article_daily_uniques" in table and parts for table, parts in rows.items())
    for table, parts in rows.items():
        for part in parts:
            assert leaks(part) == [], (table, part[:80])

    records = caplog.records
    assert any(record.name == "aiohttp.access" for record in records)  # it was captured
    for record in records:
        text = f"{record.name} {record.getMessage()} {record.args!r} {record.__dict__!r}"
        assert leaks(text.encode()) == [], text
    assert leaks(caplog.text.encode()) == []
