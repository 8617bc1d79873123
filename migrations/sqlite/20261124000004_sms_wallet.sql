-- SMS: segments and the points held for a message, the provider's message id per
-- attempt, failing phone numbers; and the prepaid wallet with its ledger.

ALTER TABLE messages ADD COLUMN segments INTEGER;
-- Points reserved for this message right now (NULL: none). Moved to "charged" when
-- the gateway accepts it, back to the balance when it fails or is dropped.
ALTER TABLE messages ADD COLUMN reserved_points INTEGER;
ALTER TABLE attempts ADD COLUMN provider_id TEXT;
ALTER TABLE recipients ADD COLUMN phone_failing_since TEXT;
ALTER TABLE recipients ADD COLUMN phone_failure TEXT;

-- One row. The CHECKs are the last line of defence: every change is a conditional
-- update that cannot take the balance below zero.
CREATE TABLE wallet (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    balance     INTEGER NOT NULL CHECK (balance >= 0),
    reserved    INTEGER NOT NULL CHECK (reserved >= 0),
    -- Since when the balance is low (NULL: it is not), so a crossing is reported once.
    low_since   TEXT
);
INSERT INTO wallet (id, balance, reserved) VALUES (1, 0, 0);

CREATE TABLE wallet_ledger (
    id             INTEGER PRIMARY KEY,
    at             TEXT    NOT NULL,
    entry          TEXT    NOT NULL CHECK (entry IN ('top_up', 'reserve', 'charge', 'refund')),
    points         INTEGER NOT NULL CHECK (points > 0),
    message_id     INTEGER REFERENCES messages (id) ON DELETE SET NULL,
    actor          TEXT,
    note           TEXT,
    balance_after  INTEGER NOT NULL,
    reserved_after INTEGER NOT NULL
);
CREATE INDEX wallet_ledger_at ON wallet_ledger (at, id);
CREATE INDEX messages_credit_held ON messages (id)
    WHERE status = 'queued' AND reason = 'insufficient_sms_credit';
