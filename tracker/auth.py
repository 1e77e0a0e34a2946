"""Editors' access tokens: created once and shown once, kept only as a hash, revocable;
checked in constant time; failed attempts limited per address."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Final

from .db import Pool, database_unavailable_on_error
from .redis_client import RedisClient
from .scripts import redis_unavailable_on_error

TOKEN_PREFIX: Final = "trk_"  # noqa: S105 - a prefix that marks tokens, not a secret
# A verified token is trusted this long per process (a revocation takes effect within).
CACHE_S: Final = 30.0
# Failed attempts an address may make in a minute before it is refused (429).
MAX_FAILURES_PER_MINUTE: Final = 10


class TokenState(Enum):
    VALID = "valid"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Tokens:
    def __init__(self, pool: Pool, redis: RedisClient | None = None, prefix: str = "trk") -> None:
        """`redis` counts failed attempts (the web side); the command line needs none."""
        self.pool = pool
        self.redis = redis
        self.prefix = prefix
        self._verified: dict[bytes, tuple[TokenState, float]] = {}

    async def create(self, name: str) -> str:
        """A new token; only its hash is stored, so this is the one time it is seen."""
        token = new_token()
        with database_unavailable_on_error():
            await self.pool.execute(
                "INSERT INTO api_tokens (name, token_hash) VALUES ($1, $2)", name, token_hash(token)
            )
        return token

    async def list(self) -> list[TokenInfo]:
        with database_unavailable_on_error():
            rows = await self.pool.fetch(
                "SELECT id, name, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY id"
            )
        return [TokenInfo(**dict(row)) for row in rows]

    async def revoke(self, which: str) -> int:
        """Revoke tokens by id or by name; returns how many."""
        with database_unavailable_on_error():
            result = await self.pool.execute(
                "UPDATE api_tokens SET revoked_at = now() "
                "WHERE revoked_at IS NULL AND (name = $1 OR id::text = $1)",
                which,
            )
        self._verified.clear()
        return int(result.split()[-1])

    async def check(self, token: str) -> TokenState:
        """The state of a presented token. The hash is looked up by value and compared in
        constant time; valid answers are cached for CACHE_S."""
        presented = token_hash(token)
        now = time.monotonic()
        cached = self._verified.get(presented)
        if cached is not None and cached[1] > now:
            return cached[0]
        with database_unavailable_on_error():
            row = await self.pool.fetchrow(
                "UPDATE api_tokens SET last_used_at = now() WHERE token_hash = $1 "
                "RETURNING token_hash, revoked_at",
                presented,
            )
        if row is None or not hmac.compare_digest(bytes(row["token_hash"]), presented):
            return TokenState.UNKNOWN
        state = TokenState.REVOKED if row["revoked_at"] is not None else TokenState.VALID
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[presented] = (state, now + CACHE_S)
        return state

    def _redis(self) -> RedisClient:
        if self.redis is None:
            raise RuntimeError("failed attempts are counted in Redis: give Tokens a client")
        return self.redis

    def _failures_key(self, address: str) -> str:
        digest = hashlib.blake2b(address.encode(), digest_size=12, person=b"auth").hexdigest()
        return f"{self.prefix}:authfail:{digest}"

    async def failed(self, address: str) -> int:
        """Count a failed attempt from an address; returns its failures this minute."""
        key = self._failures_key(address)
        with redis_unavailable_on_error():
            failures = int(await self._redis().incr(key))
            if failures == 1:
                await self._redis().expire(key, 60)
        return failures

    async def blocked(self, address: str) -> bool:
        with redis_unavailable_on_error():
            failures = await self._redis().get(self._failures_key(address))
        return int(failures or 0) >= MAX_FAILURES_PER_MINUTE
