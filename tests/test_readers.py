"""Readers without cookies: whose address counts (X-Forwarded-For only from trusted
proxies), and the daily salt that keeps reader ids from being linked across days."""

from __future__ import annotations

import ipaddress
import time

import pytest
from multidict import CIMultiDict
from redis.asyncio import Redis

from tests.helpers import BROWSER_UA, Client, MakeClient, sample, stats, view
from tracker.core.env_values import IPNetwork
from tracker.core.settings import Settings
from tracker.core.utc import DAY_S, day_of
from tracker.redis_side.readers import SALT_GRACE_S, SaltStore, client_address, reader_id


def nets(*specs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(spec) for spec in specs)


LOOPBACK = nets("127.0.0.1/32")
PRIVATE = nets("10.0.0.0/8")
V6_PROXIES = nets("::1/128", "fd00::/8")

# (name, peer address, X-Forwarded-For, trusted proxies, the reader's address)
CASES: list[tuple[str, str | None, str | None, tuple[IPNetwork, ...], str]] = [
    ("no-xff", "198.51.100.7", None, LOOPBACK, "198.51.100.7"),
    ("empty-xff", "127.0.0.1", "", LOOPBACK, "127.0.0.1"),
    ("xff-from-untrusted-peer", "198.51.100.7", "203.0.113.77", LOOPBACK, "198.51.100.7"),
    ("xff-without-trusted-proxies", "127.0.0.1", "203.0.113.77", (), "127.0.0.1"),
    ("xff-from-trusted-peer", "127.0.0.1", "203.0.113.77", LOOPBACK, "203.0.113.77"),
    ("spaces-around-entries", "127.0.0.1", "  203.0.113.77  ", LOOPBACK, "203.0.113.77"),
    # A client's own X-Forwarded-For is believed no further than the first untrusted hop.
    (
        "spoofed-left-entry",
        "10.0.0.2",
        "192.0.2.66, 203.0.113.77",
        PRIVATE,
        "203.0.113.77",
    ),
    (
        "several-trusted-proxies",
        "10.0.0.2",
        "203.0.113.77, 10.0.0.9, 10.0.0.3",
        PRIVATE,
        "203.0.113.77",
    ),
    (
        "several-trusted-proxies-and-spoofed-left",
        "10.0.0.2",
        "192.0.2.66, 203.0.113.77, 10.0.0.9",
        PRIVATE,
        "203.0.113.77",
    ),
    ("only-trusted-hops", "10.0.0.2", "10.0.0.5, 10.0.0.9", PRIVATE, "10.0.0.5"),
    # IPv6: peers, clients, proxies, and spelling normalised.
    ("ipv6-peer", "2001:db8::1", None, LOOPBACK, "2001:db8::1"),
    ("ipv6-client-via-v4-proxy", "127.0.0.1", "2001:db8::beef", LOOPBACK, "2001:db8::beef"),
    (
        "ipv6-client-long-form",
        "127.0.0.1",
        "2001:0DB8:0000:0000:0000:0000:0000:BEEF",
        LOOPBACK,
        "2001:db8::beef",
    ),
    ("ipv6-proxy", "::1", "203.0.113.77", V6_PROXIES, "203.0.113.77"),
    (
        "ipv6-proxy-chain",
        "fd00::5",
        "2001:db8::beef, fd00::9",
        V6_PROXIES,
        "2001:db8::beef",
    ),
    ("ipv6-peer-not-in-v4-list", "::1", "203.0.113.77", LOOPBACK, "::1"),
    # A dual-stack socket shows IPv4 peers as IPv4-mapped IPv6 addresses.
    ("v4-mapped-trusted-peer", "::ffff:127.0.0.1", "203.0.113.77", LOOPBACK, "203.0.113.77"),
    ("v4-mapped-peer", "::ffff:198.51.100.7", None, LOOPBACK, "198.51.100.7"),
    ("v4-mapped-client", "127.0.0.1", "::ffff:203.0.113.77", LOOPBACK, "203.0.113.77"),
    # Ports on entries (some proxies add them).
    ("ipv4-with-port", "127.0.0.1", "203.0.113.77:51234", LOOPBACK, "203.0.113.77"),
    ("ipv6-with-port", "127.0.0.1", "[2001:db8::beef]:443", LOOPBACK, "2001:db8::beef"),
    ("ipv6-bracketed", "127.0.0.1", "[2001:db8::beef]", LOOPBACK, "2001:db8::beef"),
    # Garbage: nothing beyond it is believed.
    ("garbage-only", "127.0.0.1", "garbage", LOOPBACK, "127.0.0.1"),
    ("unknown-then-client", "127.0.0.1", "unknown, 203.0.113.77", LOOPBACK, "203.0.113.77"),
    (
        "garbage-in-trusted-chain",
        "10.0.0.2",
        "203.0.113.77, nonsense, 10.0.0.9",
        PRIVATE,
        "10.0.0.9",
    ),
    ("out-of-range-octet", "127.0.0.1", "203.0.113.300", LOOPBACK, "127.0.0.1"),
    ("trailing-empty-entry", "127.0.0.1", "203.0.113.77,", LOOPBACK, "127.0.0.1"),
    # Peers that are not IP addresses (a Unix socket) are taken as they are.
    ("no-peer", None, "203.0.113.77", LOOPBACK, ""),
    ("unix-socket-peer", "unix-socket", "203.0.113.77", LOOPBACK, "unix-socket"),
]


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "expected"),
    [pytest.param(p, f, t, e, id=name) for name, p, f, t, e in CASES],
)
def test_client_address(
    peer: str | None, forwarded_for: str | None, trusted: tuple[IPNetwork, ...], expected: str
) -> None:
    assert client_address(peer, forwarded_for, trusted) == expected


async def post_view_from(client: Client, article_id: str, forwarded_for: str) -> None:
    response = await client.post(
        "/api/v1/events", json=view(article_id), headers={"X-Forwarded-For": forwarded_for}
    )
    assert response.status == 202, await response.text()


@pytest.mark.parametrize(
    ("trusted", "readers"),
    [pytest.param(LOOPBACK, 2, id="trusted"), pytest.param((), 1, id="untrusted")],
)
async def test_forwarded_readers_with_dedup_window(
    settings: Settings, make_client: MakeClient, trusted: tuple[IPNetwork, ...], readers: int
) -> None:
    client = await make_client(settings.with_overrides(trusted_proxies=trusted, dedup_window_s=600))

    await post_view_from(client, "relayed", "203.0.113.10")
    await post_view_from(client, "relayed", "203.0.113.11")

    body = await stats(client, "relayed")
    assert body["views"] == readers
    assert body["uniques"] == readers
    assert sample(client, "tracker_events_ignored_total", reason="duplicate") == 2 - readers


@pytest.mark.parametrize(
    ("trusted", "readers"),
    [pytest.param(LOOPBACK, 2, id="trusted"), pytest.param((), 1, id="untrusted")],
)
async def test_forwarded_readers_without_dedup_window(
    settings: Settings, make_client: MakeClient, trusted: tuple[IPNetwork, ...], readers: int
) -> None:
    client = await make_client(settings.with_overrides(trusted_proxies=trusted))

    await post_view_from(client, "relayed", "2001:db8::10")
    await post_view_from(client, "relayed", "2001:db8::11")
    await post_view_from(client, "relayed", "2001:db8::11")

    body = await stats(client, "relayed")
    assert body["views"] == 3  # every load counts with no window
    assert body["uniques"] == readers


async def test_a_proxy_that_adds_its_own_header_line_is_believed(
    settings: Settings, make_client: MakeClient
) -> None:
    """Several X-Forwarded-For lines are one comma-separated list (RFC 9110, 5.3): the
    first line is the client's own (anything), the last the trusted proxy's."""
    client = await make_client(settings.with_overrides(trusted_proxies=LOOPBACK))
    for real in ("203.0.113.10", "203.0.113.11"):
        headers = CIMultiDict(
            [
                ("User-Agent", BROWSER_UA),
                ("X-Forwarded-For", "192.0.2.66"),
                ("X-Forwarded-For", real),
            ]
        )
        response = await client.post("/api/v1/events", json=view("two-lines"), headers=headers)
        assert response.status == 202
        assert response.request_info.headers.getall("X-Forwarded-For") == ["192.0.2.66", real]

    assert (await stats(client, "two-lines"))["uniques"] == 2


# The salt.


def today() -> int:
    return day_of(time.time())


async def test_salt_is_random_32_bytes_expiring_at_the_end_of_its_day(
    redis: Redis, redis_prefix: str
) -> None:
    day = today()
    store = SaltStore(redis, redis_prefix)

    salt = await store.salt(day)

    key = f"{redis_prefix}:salt:{day}"
    assert await redis.get(key) == salt
    assert len(salt) == 32
    assert salt != bytes(32)
    end_of_day = (day + 1) * DAY_S
    ttl = await redis.ttl(key)
    assert end_of_day - time.time() - 2 <= ttl <= end_of_day + SALT_GRACE_S - time.time() + 1
    version = tuple(int(part) for part in (await redis.info("server"))["redis_version"].split("."))
    if version >= (7, 0):
        # At the end of its UTC day, plus a few minutes' grace for requests in flight.
        assert await redis.expiretime(key) == end_of_day + SALT_GRACE_S
    # Another day's salt is another random value.
    assert await store.salt(day + 1) != salt


async def test_two_processes_share_the_days_salt(
    redis: Redis, redis_url: str, redis_prefix: str
) -> None:
    day = today()
    other_redis = Redis.from_url(redis_url)
    try:
        first = SaltStore(redis, redis_prefix)
        second = SaltStore(other_redis, redis_prefix)

        first_salt = await first.salt(day)
        second_salt = await second.salt(day)
    finally:
        await other_redis.aclose()

    assert first_salt == second_salt
    # The second store now serves it from memory.
    assert second.cached(day) == first_salt


async def test_a_lagging_process_finds_yesterdays_salt_unchanged(
    redis: Redis, redis_prefix: str
) -> None:
    """Today's salt is created by one process; another whose clock still says yesterday
    must get yesterday's salt as the others had it, not a new one (salts are never
    deleted, only expired a few minutes after their day)."""
    day = today()
    yesterday_salt = await SaltStore(redis, redis_prefix).salt(day)

    await SaltStore(redis, redis_prefix).salt(day + 1)
    lagging = await SaltStore(redis, redis_prefix).salt(day)

    assert lagging == yesterday_salt
    assert await redis.ttl(f"{redis_prefix}:salt:{day}") > 0


async def test_reader_id_differs_between_days(redis: Redis, redis_prefix: str) -> None:
    day = today()
    store = SaltStore(redis, redis_prefix)
    today_salt = await store.salt(day)
    tomorrow_salt = await store.salt(day + 1)

    reader_today = reader_id(today_salt, "203.0.113.77", BROWSER_UA)
    assert reader_id(today_salt, "203.0.113.77", BROWSER_UA) == reader_today
    assert len(reader_today) == 16
    assert reader_id(tomorrow_salt, "203.0.113.77", BROWSER_UA) != reader_today
    # Address and agent both matter.
    assert reader_id(today_salt, "203.0.113.78", BROWSER_UA) != reader_today
    assert reader_id(today_salt, "203.0.113.77", BROWSER_UA + " x") != reader_today


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_the_same_reader_is_a_new_reader_the_next_day(
    settings: Settings, make_client: MakeClient
) -> None:
    """The dedup key of yesterday's view still exists (Redis expires it on the real clock),
    yet today's view counts: the reader id changed with the salt."""
    clock = Clock(time.time())
    client = await make_client(settings.with_overrides(dedup_window_s=3600), clock=clock)

    assert (await client.post("/api/v1/events", json=view("daily"))).status == 202
    assert (await client.post("/api/v1/events", json=view("daily"))).status == 202
    clock.now += DAY_S
    assert (await client.post("/api/v1/events", json=view("daily"))).status == 202

    body = await stats(client, "daily")
    assert body["views"] == 2
    assert body["uniques"] == 2  # one reader per day; days cannot be linked
    assert sample(client, "tracker_events_ignored_total", reason="duplicate") == 1.0
