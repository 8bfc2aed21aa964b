-- Create the sessions table: one row per login session, with its expiry and client IP.
-- page: reference/schema.md
-- mode: writes

SET lock_timeout = '5s';

BEGIN;

CREATE TABLE sessions (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash text        NOT NULL,
    ip         inet        NOT NULL,
    user_agent text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash),
    CONSTRAINT sessions_expiry_check CHECK (expires_at > created_at)
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id);
-- Expired-session cleanup and "active sessions" counts scan by expiry.
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

COMMIT;
