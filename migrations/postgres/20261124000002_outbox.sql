-- The outbox (same meaning as the SQLite schema).

ALTER TABLE recipients ADD COLUMN email_failing_since TIMESTAMPTZ;
ALTER TABLE recipients ADD COLUMN email_failure TEXT;

CREATE TABLE batches (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          TEXT        NOT NULL CHECK (kind IN ('system', 'informational', 'periodic')),
    channel       TEXT        NOT NULL CHECK (channel IN ('email', 'sms')),
    status        TEXT        NOT NULL CHECK (status IN ('awaiting_approval', 'approved', 'rejected')),
    audience      TEXT        NOT NULL,
    subject       TEXT,
    body          TEXT        NOT NULL,
    created_by    TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    decided_by    TEXT,
    decided_at    TIMESTAMPTZ,
    decision_note TEXT
);
CREATE INDEX batches_status ON batches (status, created_at);

CREATE TABLE messages (
    id                    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id              BIGINT      REFERENCES batches (id),
    kind                  TEXT        NOT NULL CHECK (kind IN ('system', 'informational', 'periodic')),
    channel               TEXT        NOT NULL CHECK (channel IN ('email', 'sms')),
    recipient_id          BIGINT      REFERENCES recipients (id) ON DELETE SET NULL,
    recipient_external_id TEXT        NOT NULL,
    address               TEXT,
    subject               TEXT,
    body                  TEXT        NOT NULL,
    status                TEXT        NOT NULL CHECK (status IN ('blocked', 'awaiting_approval',
                              'rejected', 'queued', 'sending', 'sent', 'delivered', 'failed',
                              'unknown', 'cancelled')),
    reason                TEXT,
    attempts              BIGINT      NOT NULL DEFAULT 0,
    next_attempt_at       TIMESTAMPTZ,
    lease_owner           TEXT,
    lease_until           TIMESTAMPTZ,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL,
    sent_at               TIMESTAMPTZ
);
-- The claim reads these partial indexes, never the whole history.
CREATE INDEX messages_due ON messages (next_attempt_at, id) WHERE status = 'queued';
CREATE INDEX messages_leased ON messages (lease_until) WHERE status = 'sending';
CREATE INDEX messages_batch ON messages (batch_id, status);
CREATE INDEX messages_recipient ON messages (recipient_id, created_at);
CREATE INDEX messages_external ON messages (recipient_external_id, created_at);
CREATE INDEX messages_created ON messages (created_at);

CREATE TABLE message_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id  BIGINT      NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    at          TIMESTAMPTZ NOT NULL,
    status      TEXT        NOT NULL,
    reason      TEXT,
    actor       TEXT,
    note        TEXT
);
CREATE INDEX message_events_message ON message_events (message_id, id);

CREATE TABLE attempts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id  BIGINT      NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    number      BIGINT      NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    outcome     TEXT        NOT NULL CHECK (outcome IN ('sent', 'transient', 'permanent',
                    'unknown', 'abandoned')),
    code        BIGINT,
    detail      TEXT,
    worker      TEXT
);
CREATE INDEX attempts_message ON attempts (message_id, number);

CREATE TABLE dispatcher_passes (
    worker      TEXT        PRIMARY KEY,
    finished_at TIMESTAMPTZ NOT NULL,
    sent        BIGINT      NOT NULL,
    retried     BIGINT      NOT NULL,
    failed      BIGINT      NOT NULL,
    held        BIGINT      NOT NULL,
    blocked     BIGINT      NOT NULL
);

