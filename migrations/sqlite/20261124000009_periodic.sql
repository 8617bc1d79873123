-- no-transaction
-- Periodic rules: what they read (birth dates, contract balances, instalments), what
-- keeps each occurrence unique, and what the scheduler remembers.
--
-- SQLite cannot change a CHECK constraint in place, so `messages` is rebuilt to
-- allow the new status `expired` (the table-rebuild procedure of SQLite's ALTER
-- TABLE documentation). Foreign keys are off meanwhile so that dropping the old
-- table cascades nothing; the statements between BEGIN and COMMIT are one
-- transaction, and sqlx records the migration only after it.
PRAGMA foreign_keys = OFF;
BEGIN;

ALTER TABLE recipients ADD COLUMN birth_date TEXT;
-- What the contract's holder owes now (in grosze; negative: paid in advance) and
-- since when it has been overdue.
ALTER TABLE contracts ADD COLUMN balance_cents INTEGER;
ALTER TABLE contracts ADD COLUMN arrears_since TEXT;

CREATE TABLE instalments (
    id                INTEGER PRIMARY KEY,
    external_id       TEXT    NOT NULL UNIQUE,
    contract_id       INTEGER NOT NULL REFERENCES contracts (id) ON DELETE CASCADE,
    due_date          TEXT    NOT NULL,
    amount_cents      INTEGER NOT NULL CHECK (amount_cents >= 0),
    paid              INTEGER NOT NULL CHECK (paid IN (0, 1)),
    paid_amount_cents INTEGER,
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL
);
CREATE INDEX instalments_due ON instalments (due_date) WHERE paid = 0;
CREATE INDEX instalments_contract ON instalments (contract_id);

-- One row per occurrence of a rule (birthday/<student>/<year>, …): the primary key
-- is what makes a rule run twice, restarted or raced create nothing twice.
CREATE TABLE occurrences (
    key         TEXT    PRIMARY KEY,
    rule        TEXT    NOT NULL,
    batch_id    INTEGER REFERENCES batches (id),
    created_at  TEXT    NOT NULL
);

-- The last run of each rule, and the last school day it has covered, so that a
-- missed run is caught up once.
CREATE TABLE rule_runs (
    rule            TEXT PRIMARY KEY,
    last_run_at     TEXT NOT NULL,
    covered_through TEXT NOT NULL
);

-- Periodic batches are one per rule and school day.
ALTER TABLE batches ADD COLUMN periodic_key TEXT;
CREATE UNIQUE INDEX batches_periodic ON batches (periodic_key) WHERE periodic_key IS NOT NULL;

CREATE TABLE messages_new (
    id                    INTEGER PRIMARY KEY,
    batch_id              INTEGER REFERENCES batches (id),
    kind                  TEXT    NOT NULL CHECK (kind IN ('system', 'informational', 'periodic')),
    channel               TEXT    NOT NULL CHECK (channel IN ('email', 'sms')),
    recipient_id          INTEGER REFERENCES recipients (id) ON DELETE SET NULL,
    recipient_external_id TEXT    NOT NULL,
    address               TEXT,
    subject               TEXT,
    body                  TEXT    NOT NULL,
    status                TEXT    NOT NULL CHECK (status IN ('blocked', 'awaiting_approval',
                              'rejected', 'queued', 'sending', 'sent', 'delivered', 'failed',
                              'unknown', 'cancelled', 'expired')),
    reason                TEXT,
    attempts              INTEGER NOT NULL DEFAULT 0,
    next_attempt_at       TEXT,
    lease_owner           TEXT,
    lease_until           TEXT,
    created_at            TEXT    NOT NULL,
    updated_at            TEXT    NOT NULL,
    sent_at               TEXT,
    segments              INTEGER,
    reserved_points       INTEGER,
    html                  TEXT,
    -- The rule occurrence that made it.
    occurrence_key        TEXT,
    -- What must still hold when it is sent ("instalment:<id>" unpaid, "arrears:<id>"
    -- still owing); otherwise it is cancelled as no_longer_relevant.
    relevance             TEXT,
    -- After this it is too late (a birthday greeting): expired with too_late.
    expires_at            TEXT
);
INSERT INTO messages_new (id, batch_id, kind, channel, recipient_id, recipient_external_id,
        address, subject, body, status, reason, attempts, next_attempt_at, lease_owner,
        lease_until, created_at, updated_at, sent_at, segments, reserved_points, html)
    SELECT id, batch_id, kind, channel, recipient_id, recipient_external_id, address,
        subject, body, status, reason, attempts, next_attempt_at, lease_owner, lease_until,
        created_at, updated_at, sent_at, segments, reserved_points, html
    FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE status = 'queued';
CREATE INDEX messages_leased ON messages (lease_until) WHERE status = 'sending';
CREATE INDEX messages_batch ON messages (batch_id, status);
CREATE INDEX messages_recipient ON messages (recipient_id, created_at);
CREATE INDEX messages_created ON messages (created_at);
CREATE INDEX messages_credit_held ON messages (id)
    WHERE status = 'queued' AND reason = 'insufficient_sms_credit';
CREATE INDEX messages_occurrence ON messages (occurrence_key) WHERE occurrence_key IS NOT NULL;

COMMIT;
PRAGMA foreign_keys = ON;
