-- Tokens the platform uses to call Herald's HTTP API. A token acts as its operator,
-- with that operator's permissions at the time of each request. Only the SHA-256 of
-- its secret is kept: the token itself is shown once, when it is created.

CREATE TABLE api_tokens (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT        NOT NULL UNIQUE,
    operator      TEXT        NOT NULL REFERENCES operators (login),
    secret_sha256 TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    created_by    TEXT        NOT NULL,
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    revoked_by    TEXT
);
