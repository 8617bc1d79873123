-- SMS: segments and the points held for a message, the provider's message id per
-- attempt, failing phone numbers; and the prepaid wallet with its ledger.

ALTER TABLE messages ADD COLUMN segments BIGINT;
ALTER TABLE messages ADD COLUMN reserved_points BIGINT;
ALTER TABLE attempts ADD COLUMN provider_id TEXT;
ALTER TABLE recipients ADD COLUMN phone_failing_since TIMESTAMPTZ;
ALTER TABLE recipients ADD COLUMN phone_failure TEXT;

CREATE TABLE wallet (
    id          INTEGER     PRIMARY KEY CHECK (id = 1),
    balance     BIGINT      NOT NULL CHECK (balance >= 0),
    reserved    BIGINT      NOT NULL CHECK (reserved >= 0),
    low_since   TIMESTAMPTZ
);
INSERT INTO wallet (id, balance, reserved) VALUES (1, 0, 0);

CREATE TABLE wallet_ledger (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             TIMESTAMPTZ NOT NULL,
    entry          TEXT        NOT NULL CHECK (entry IN ('top_up', 'reserve', 'charge', 'refund')),
    points         BIGINT      NOT NULL CHECK (points > 0),
    message_id     BIGINT      REFERENCES messages (id) ON DELETE SET NULL,
    actor          TEXT,
    note           TEXT,
    balance_after  BIGINT      NOT NULL,
    reserved_after BIGINT      NOT NULL
);
CREATE INDEX wallet_ledger_at ON wallet_ledger (at, id);
CREATE INDEX messages_credit_held ON messages (id)
    WHERE status = 'queued' AND reason = 'insufficient_sms_credit';
