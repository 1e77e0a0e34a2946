-- Editors' sessions: the login cookie carries a random session id (only its hash is
-- kept here), tied to the token it was opened with; logging out or revoking the token
-- ends it.
CREATE TABLE editor_sessions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_hash bytea NOT NULL UNIQUE,
    token_id     bigint NOT NULL REFERENCES api_tokens (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX editor_sessions_token ON editor_sessions (token_id);
