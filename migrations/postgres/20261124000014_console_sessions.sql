-- Signed-in console sessions. The cookie carries the session id; only its SHA-256 is
-- kept, so a copy of the database signs nobody in. `data` is the session's JSON
-- (who signed in, when); `expires_at` moves forward while the session is used.

CREATE TABLE console_sessions (
    id_sha256  TEXT    PRIMARY KEY,
    data       TEXT    NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
