"""Readers without cookies: a keyed hash of (the day's salt, address, User-Agent).

The salt is random, kept in Redis so that every process agrees on it, and expires at
the end of its UTC day: yesterday's readers cannot be linked to today's, and no raw
address is stored anywhere.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Sequence
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .buffer import RedisUnavailable
from .settings import IPNetwork

DAY_S: Final = 86_400
# Kept a little past midnight so a request that read the salt just before can finish.
SALT_GRACE_S: Final = 300


def day_of(now_s: float) -> int:
    """Days since the Unix epoch (UTC)."""
    return int(now_s // DAY_S)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Sequence[IPNetwork]
) -> bool:
    return any(address in network for network in networks)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[IPNetwork]
) -> str:
    """The reader's address: the peer's, unless the peer is a trusted proxy; then the
    right-most X-Forwarded-For entry that is not itself a trusted proxy."""
    peer_ip = _parse_ip(peer) if peer else None
    if peer_ip is None:
        return peer or ""
    if not forwarded_for or not _trusted(peer_ip, trusted_proxies):
        return str(peer_ip)
    hops = [_parse_ip(part) for part in forwarded_for.split(",")]
    client = peer_ip
    for hop in reversed(hops):
        if hop is None:
            break  # garbage from before the trusted chain: believe nothing beyond it
        client = hop
        if not _trusted(hop, trusted_proxies):
            break
    return str(client)


def reader_id(salt: bytes, address: str, user_agent: str) -> bytes:
    """16 bytes that identify a reader for one day; the address cannot be recovered."""
    digest = hashlib.blake2b(digest_size=16, key=salt[:64])
    digest.update(address.encode())
    digest.update(b"\x00")
    digest.update(user_agent.encode(errors="replace"))
    return digest.digest()


class SaltStore:
    """The day's salt, shared through Redis, cached per process for its day."""

    def __init__(self, redis: Redis, prefix: str) -> None:
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
        expires_at = (day + 1) * DAY_S + SALT_GRACE_S
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(self.key(day), candidate, nx=True, exat=expires_at)
                pipe.get(self.key(day))
                # Yesterday's salt goes now that today's exists.
                pipe.delete(self.key(day - 1))
                _, stored, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise RedisUnavailable(str(exc)) from exc
        salt = bytes(stored) if stored else candidate
        self._cached = (day, salt)
        return salt
