-- The outbox: batches, messages, their transitions and delivery attempts; and the
-- dispatcher's own state. Timestamps are RFC 3339 text in UTC (they sort as text).

-- A contact point that the receiving side refused for good (SMTP 5.1.x): later
-- messages to it are blocked until the platform sends a different address.
ALTER TABLE recipients ADD COLUMN email_failing_since TEXT;
ALTER TABLE recipients ADD COLUMN email_failure TEXT;

CREATE TABLE batches (
    id            INTEGER PRIMARY KEY,
    kind          TEXT    NOT NULL CHECK (kind IN ('system', 'informational', 'periodic')),
    channel       TEXT    NOT NULL CHECK (channel IN ('email', 'sms')),
    status        TEXT    NOT NULL CHECK (status IN ('awaiting_approval', 'approved', 'rejected')),
    audience      TEXT    NOT NULL,
    subject       TEXT,
    body          TEXT    NOT NULL,
    created_by    TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    decided_by    TEXT,
    decided_at    TEXT,
    decision_note TEXT
);
CREATE INDEX batches_status ON batches (status, created_at);

CREATE TABLE messages (
    id                    INTEGER PRIMARY KEY,
    batch_id              INTEGER REFERENCES batches (id),
    kind                  TEXT    NOT NULL CHECK (kind IN ('system', 'informational', 'periodic')),
    channel               TEXT    NOT NULL CHECK (channel IN ('email', 'sms')),
    -- NULL when the platform named someone Herald does not know (recipient_unknown).
    recipient_id          INTEGER REFERENCES recipients (id) ON DELETE SET NULL,
    recipient_external_id TEXT    NOT NULL,
    -- The address the message goes to, as it was when the message was last checked.
    address               TEXT,
    subject               TEXT,
    body                  TEXT    NOT NULL,
    status                TEXT    NOT NULL CHECK (status IN ('blocked', 'awaiting_approval',
                              'rejected', 'queued', 'sending', 'sent', 'delivered', 'failed',
                              'unknown', 'cancelled')),
    reason                TEXT,
    attempts              INTEGER NOT NULL DEFAULT 0,
    -- When a queued message may be claimed (now, a retry time, a window opening).
    next_attempt_at       TEXT,
    lease_owner           TEXT,
    lease_until           TEXT,
    created_at            TEXT    NOT NULL,
    updated_at            TEXT    NOT NULL,
    sent_at               TEXT
);
-- The claim reads these partial indexes, never the whole history.
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE status = 'queued';
CREATE INDEX messages_leased ON messages (lease_until) WHERE status = 'sending';
CREATE INDEX messages_batch ON messages (batch_id, status);
CREATE INDEX messages_recipient ON messages (recipient_id, created_at);
CREATE INDEX messages_created ON messages (created_at);

-- Every transition, with its cause and, where a person acted, who.
CREATE TABLE message_events (
    id          INTEGER PRIMARY KEY,
    message_id  INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    at          TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    reason      TEXT,
    actor       TEXT,
    note        TEXT
);
CREATE INDEX message_events_message ON message_events (message_id, id);

-- Every delivery attempt with the server's answer.
CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY,
    message_id  INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    number      INTEGER NOT NULL,
    started_at  TEXT    NOT NULL,
    finished_at TEXT    NOT NULL,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('sent', 'transient', 'permanent',
                    'unknown', 'abandoned')),
    code        INTEGER,
    detail      TEXT,
    worker      TEXT
);
CREATE INDEX attempts_message ON attempts (message_id, number);

-- One row per dispatcher: when it last finished a pass and what the pass did.
CREATE TABLE dispatcher_passes (
    worker      TEXT    PRIMARY KEY,
    finished_at TEXT    NOT NULL,
    sent        INTEGER NOT NULL,
    retried     INTEGER NOT NULL,
    failed      INTEGER NOT NULL,
    held        INTEGER NOT NULL,
    blocked     INTEGER NOT NULL
);
