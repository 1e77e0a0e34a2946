"""The SQL of editors' access (auth.py): tokens and the sessions opened with them."""

from __future__ import annotations

from typing import Final

TOKENS: Final = "SELECT id, token_hash, revoked_at IS NOT NULL AS revoked FROM api_tokens"
SESSIONS: Final = """
SELECT s.session_hash, s.token_id FROM editor_sessions s JOIN api_tokens t ON t.id = s.token_id
WHERE s.revoked_at IS NULL AND t.revoked_at IS NULL AND s.expires_at > now()
"""
USED: Final = "UPDATE api_tokens SET last_used_at = now() WHERE id = ANY($1::bigint[])"
OPEN: Final = """
INSERT INTO editor_sessions (session_hash, token_id, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3))
"""
CLOSE: Final = "UPDATE editor_sessions SET revoked_at = now() WHERE session_hash = $1"
# Revoking a token ends its sessions in the same statement.
REVOKE: Final = """
WITH revoked AS (
    UPDATE api_tokens SET revoked_at = now()
    WHERE revoked_at IS NULL AND (name = $1 OR id::text = $1)
    RETURNING id
), ended AS (
    UPDATE editor_sessions SET revoked_at = now()
    WHERE revoked_at IS NULL AND token_id IN (SELECT id FROM revoked)
)
SELECT count(*) FROM revoked
"""


ADD: Final = "INSERT INTO api_tokens (name, token_hash) VALUES ($1, $2)"
LIST: Final = "SELECT id, name, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY id"
