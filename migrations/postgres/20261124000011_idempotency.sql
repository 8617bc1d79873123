-- What the platform asked for under an Idempotency-Key, so a retry of the same request
-- returns the message the first one created instead of creating another. Keys are
-- per caller (the operator a token acts as).

CREATE TABLE idempotency_keys (
    actor          TEXT        NOT NULL,
    key            TEXT        NOT NULL,
    request_sha256 TEXT        NOT NULL,
    -- Set in the same transaction that inserts the key, once the message exists.
    message_id     BIGINT      REFERENCES messages (id),
    created_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (actor, key)
);
