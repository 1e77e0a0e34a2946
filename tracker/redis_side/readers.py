"""Readers without cookies: a keyed hash of (the day's salt, address, User-Agent).

The salt is random, kept in Redis so that every process agrees on it, and expires at
the end of its UTC day: yesterday's readers cannot be linked to today's, and no raw
address is stored anywhere.
"""

from __future__ import annotations

import hashlib
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

from tracker.core.env_values import IPNetwork
from tracker.core.utc import DAY_S
from tracker.events.bots import Agent
from tracker.redis_side.client import RedisClient
from tracker.redis_side.scripts import redis_unavailable_on_error

# Kept a little past midnight so a request that read the salt just before can finish.
SALT_GRACE_S: Final = 300


_MAPPED_V4_PREFIX: Final = b"\x00" * 10 + b"\xff\xff"
Parsed = tuple[int, int, bytes]  # (4 or 6, the address as an integer, packed bytes)


def _parse_ip(text: str) -> Parsed | None:
    """An address as it may appear in a peer or X-Forwarded-For: with a port, in
    brackets, IPv4-mapped. socket.inet_pton, because ipaddress is slow per request."""
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        packed = socket.inet_pton(socket.AF_INET, text)
    except OSError:
        try:
            packed = socket.inet_pton(socket.AF_INET6, text)
        except OSError:
            return None
        # A dual-stack socket shows an IPv4 peer as ::ffff:a.b.c.d: the same address.
        if packed.startswith(_MAPPED_V4_PREFIX):
            packed = packed[12:]
        else:
            return 6, int.from_bytes(packed), packed
    return 4, int.from_bytes(packed), packed


def _text(address: Parsed) -> str:
    return socket.inet_ntop(socket.AF_INET if address[0] == 4 else socket.AF_INET6, address[2])


class TrustedProxies:
    """TRACKER_TRUSTED_PROXIES as (version, network, mask) integers, for a fast match."""

    def __init__(self, networks: Sequence[IPNetwork]) -> None:
        self.networks = tuple(networks)
        self._masks = [(n.version, int(n.network_address), int(n.netmask)) for n in self.networks]

    def __bool__(self) -> bool:
        return bool(self._masks)

    def __contains__(self, address: Parsed) -> bool:
        version, value, _ = address
        for network_version, network, mask in self._masks:
            if network_version == version and value & mask == network:
                return True
        return False

    def holds(self, peer: str) -> bool:
        """Whether a peer address (as a socket gives it) is one of the trusted proxies."""
        parsed = _parse_ip(peer)
        return parsed is not None and parsed in self


class Client(NamedTuple):
    """A request's reader's address as text, and what the limits per address see of it:
    the address, or for IPv6 its /64 (one subscriber has a whole /64 to rotate through)."""

    address: str
    limited: str


def client_address(
    peer: str | None,
    forwarded_for: str | None,
    trusted_proxies: Sequence[IPNetwork] | TrustedProxies,
) -> str:
    """The reader's address: the peer's, unless the peer is a trusted proxy; then the
    right-most X-Forwarded-For entry that is not itself a trusted proxy."""
    return client_of(peer, forwarded_for, trusted_proxies).address


def client_of(
    peer: str | None,
    forwarded_for: str | None,
    trusted_proxies: Sequence[IPNetwork] | TrustedProxies,
) -> Client:
    """client_address, with its limited form from the same parse (ingest needs both)."""
    trusted = (
        trusted_proxies
        if isinstance(trusted_proxies, TrustedProxies)
        else TrustedProxies(trusted_proxies)
    )
    peer_ip = _parse_ip(peer) if peer else None
    if peer_ip is None:
        return Client(peer or "", peer or "")
    if not forwarded_for or not trusted or peer_ip not in trusted:
        return _client(peer_ip)
    client = peer_ip
    for part in reversed(forwarded_for.split(",")):
        hop = _parse_ip(part)
        if hop is None:
            break  # garbage from before the trusted chain: believe nothing beyond it
        client = hop
        if hop not in trusted:
            break
    return _client(client)


def _client(parsed: Parsed) -> Client:
    text = _text(parsed)
    if parsed[0] == 4:
        return Client(text, text)
    return Client(text, socket.inet_ntop(socket.AF_INET6, parsed[2][:8] + bytes(8)) + "/64")


@dataclass(frozen=True, slots=True)
class Visitor:
    """Who sent the events: the day's reader id, what kind of agent it is, and the day's
    id of its address (for the limits per address)."""

    reader: bytes
    agent: Agent
    address: bytes = b""


def reader_id(salt: bytes, address: str, user_agent: str) -> bytes:
    """16 bytes that identify a reader for one day; the address cannot be recovered."""
    digest = hashlib.blake2b(digest_size=16, key=salt[:64])
    digest.update(address.encode())
    digest.update(b"\x00")
    digest.update(user_agent.encode(errors="replace"))
    return digest.digest()


def address_id(salt: bytes, limited: str) -> bytes:
    """12 bytes that identify an address for one day (not its readers: no User-Agent),
    for the limits per address, from its limited form (Client.limited: an IPv6 address
    counts by its /64)."""
    digest = hashlib.blake2b(digest_size=12, key=salt[:64], person=b"address")
    digest.update(limited.encode())
    return digest.digest()


class SaltStore:
    """The day's salt, shared through Redis, cached per process for its day."""

    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._cached: tuple[int, bytes] | None = None

    def key(self, day: int) -> str:
        return f"{self.prefix}:salt:{day}"

    def cached(self, day: int) -> bytes | None:
        if self._cached is not None and self._cached[0] == day:
            return self._cached[1]
        return None

    async def salt(self, day: int) -> bytes:
        cached = self.cached(day)
        if cached is not None:
            return cached
        candidate = secrets.token_bytes(32)
        # Created once, by whichever process asks first, and never deleted before it
        # expires: a process whose clock lags still finds the same one.
        expires_at = (day + 1) * DAY_S + SALT_GRACE_S
        with redis_unavailable_on_error():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(self.key(day), candidate, nx=True, exat=expires_at)
                pipe.get(self.key(day))
                _, stored = await pipe.execute()
        salt = bytes(stored) if stored else candidate
        self._cached = (day, salt)
        return salt
