"""Editors' access: tokens (created once and shown once, kept only as a hash,
revocable) and the sessions the login form opens with one (the cookie carries a random
session id, never the token; logging out or revoking the token ends it).

Each process checks credentials against a snapshot of the valid ones, read again every
SNAPSHOT_S (and, when one it does not know is presented, at most every ON_DEMAND_S): a
check costs no query, a revocation takes effect everywhere within SNAPSHOT_S, and
nothing about checking depends on who else failed."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Final, TypeVar

from tracker.pg import auth_queries
from tracker.pg.db import Pool, database_unavailable_on_error

T = TypeVar("T")

TOKEN_PREFIX: Final = "trk_"  # noqa: S105 - a prefix that marks tokens, not a secret
SNAPSHOT_S: Final = 5.0
ON_DEMAND_S: Final = 1.0
SESSION_S: Final = 30 * 86_400


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


@dataclass(slots=True)
class _Snapshot:
    # token hash -> (token id, revoked)
    tokens: dict[bytes, tuple[int, bool]] = field(default_factory=dict)
    # session hash -> token id (sessions that are open, of tokens not revoked)
    sessions: dict[bytes, int] = field(default_factory=dict)
    read_at: float = float("-inf")


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Tokens:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._snapshot = _Snapshot()
        self._reading: asyncio.Future[None] | None = None
        self._used: set[int] = set()

    async def create(self, name: str) -> str:
        """A new token; only its hash is stored, so this is the one time it is seen."""
        token = new_token()
        with database_unavailable_on_error():
            await self.pool.execute(auth_queries.ADD, name, token_hash(token))
        return token

    async def list(self) -> list[TokenInfo]:
        with database_unavailable_on_error():
            rows = await self.pool.fetch(auth_queries.LIST)
        return [TokenInfo(**dict(row)) for row in rows]

    async def revoke(self, which: str) -> int:
        """Revoke tokens by id or by name, and end their sessions; returns how many."""
        with database_unavailable_on_error():
            revoked = await self.pool.fetchval(auth_queries.REVOKE, which)
        await self._read()  # this process at once; the others within SNAPSHOT_S
        return int(revoked)

    async def check(self, token: str) -> TokenState:
        """The state of a presented token."""
        presented = token_hash(token)
        found = await self._find(lambda: self._snapshot.tokens.get(presented))
        if found is None:
            return TokenState.UNKNOWN
        token_id, revoked = found
        if revoked:
            return TokenState.REVOKED
        self._used.add(token_id)
        return TokenState.VALID

    async def check_session(self, session: str) -> TokenState:
        """The state of a presented session id (an unknown, ended or expired one, or one
        whose token was revoked, is unknown)."""
        presented = token_hash(session)
        token_id = await self._find(lambda: self._snapshot.sessions.get(presented))
        if token_id is None:
            return TokenState.UNKNOWN
        self._used.add(token_id)
        return TokenState.VALID

    async def open_session(self, token: str) -> str:
        """A new session of a valid token: its id, for the cookie (only its hash kept)."""
        found = self._snapshot.tokens.get(token_hash(token))
        if found is None or found[1]:
            raise ValueError("open_session needs a valid token: check it first")
        session = secrets.token_urlsafe(32)
        with database_unavailable_on_error():
            await self.pool.execute(
                auth_queries.OPEN, token_hash(session), found[0], float(SESSION_S)
            )
        self._snapshot.sessions[token_hash(session)] = found[0]
        return session

    async def close_session(self, session: str) -> None:
        """Ends a session: at once here, in other processes within SNAPSHOT_S."""
        presented = token_hash(session)
        with database_unavailable_on_error():
            await self.pool.execute(auth_queries.CLOSE, presented)
        self._snapshot.sessions.pop(presented, None)

    async def _find(self, look: Callable[[], T | None]) -> T | None:
        """`look` in a snapshot fresh enough: read again when stale, or when what was
        presented is unknown and the snapshot older than ON_DEMAND_S."""
        age = time.monotonic() - self._snapshot.read_at
        if age > SNAPSHOT_S:
            await self._read()
        found = look()
        if found is None and time.monotonic() - self._snapshot.read_at > ON_DEMAND_S:
            await self._read()
            found = look()
        return found

    async def _read(self) -> None:
        """One read at a time; the others wait for it. Writes the tokens used since."""
        if self._reading is not None:
            await asyncio.shield(self._reading)
            return
        reading = self._reading = asyncio.get_running_loop().create_future()
        try:
            used, self._used = self._used, set()
            with database_unavailable_on_error():
                async with self.pool.acquire() as conn:
                    tokens = await conn.fetch(auth_queries.TOKENS)
                    sessions = await conn.fetch(auth_queries.SESSIONS)
                    if used:
                        await conn.execute(auth_queries.USED, sorted(used))
            self._snapshot = _Snapshot(
                tokens={bytes(r["token_hash"]): (r["id"], r["revoked"]) for r in tokens},
                sessions={bytes(r["session_hash"]): r["token_id"] for r in sessions},
                read_at=time.monotonic(),
            )
            reading.set_result(None)
        except BaseException as exc:
            self._used |= used  # written with the next read
            reading.set_exception(exc if isinstance(exc, Exception) else RuntimeError("stopped"))
            reading.exception()
            raise
        finally:
            self._reading = None
