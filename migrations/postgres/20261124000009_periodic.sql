-- Periodic rules: what they read (birth dates, contract balances, instalments), what
-- keeps each occurrence unique, and what the scheduler remembers.

ALTER TABLE recipients ADD COLUMN birth_date DATE;
-- What the contract's holder owes now (in grosze; negative: paid in advance) and
-- since when it has been overdue.
ALTER TABLE contracts ADD COLUMN balance_cents BIGINT;
ALTER TABLE contracts ADD COLUMN arrears_since DATE;

CREATE TABLE instalments (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_id       TEXT        NOT NULL UNIQUE,
    contract_id       BIGINT      NOT NULL REFERENCES contracts (id) ON DELETE CASCADE,
    due_date          DATE        NOT NULL,
    amount_cents      BIGINT      NOT NULL CHECK (amount_cents >= 0),
    paid              BOOLEAN     NOT NULL,
    paid_amount_cents BIGINT,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX instalments_due ON instalments (due_date) WHERE NOT paid;
CREATE INDEX instalments_contract ON instalments (contract_id);

-- One row per occurrence of a rule (birthday/<student>/<year>, …): the primary key
-- is what makes a rule run twice, restarted or raced create nothing twice.
CREATE TABLE occurrences (
    key         TEXT        PRIMARY KEY,
    rule        TEXT        NOT NULL,
    batch_id    BIGINT      REFERENCES batches (id),
    created_at  TIMESTAMPTZ NOT NULL
);

-- The last run of each rule, and the last school day it has covered, so that a
-- missed run is caught up once.
CREATE TABLE rule_runs (
    rule            TEXT        PRIMARY KEY,
    last_run_at     TIMESTAMPTZ NOT NULL,
    covered_through DATE        NOT NULL
);

-- Periodic batches are one per rule and school day.
ALTER TABLE batches ADD COLUMN periodic_key TEXT;
CREATE UNIQUE INDEX batches_periodic ON batches (periodic_key) WHERE periodic_key IS NOT NULL;

ALTER TABLE messages DROP CONSTRAINT messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check CHECK (status IN ('blocked',
    'awaiting_approval', 'rejected', 'queued', 'sending', 'sent', 'delivered', 'failed',
    'unknown', 'cancelled', 'expired'));
-- The rule occurrence that made it.
ALTER TABLE messages ADD COLUMN occurrence_key TEXT;
-- What must still hold when it is sent ("instalment:<id>" unpaid, "arrears:<id>"
-- still owing); otherwise it is cancelled as no_longer_relevant.
ALTER TABLE messages ADD COLUMN relevance TEXT;
-- After this it is too late (a birthday greeting): expired with too_late.
ALTER TABLE messages ADD COLUMN expires_at TIMESTAMPTZ;
CREATE INDEX messages_occurrence ON messages (occurrence_key) WHERE occurrence_key IS NOT NULL;
