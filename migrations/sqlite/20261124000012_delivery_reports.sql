-- Delivery reports from the SMS gateways, every one as it came, with what it did to
-- its message. A report that arrives before Herald recorded the gateway's acceptance
-- waits here as 'pending' and is applied when the acceptance is recorded.

CREATE TABLE delivery_reports (
    id          INTEGER PRIMARY KEY,
    gateway     TEXT    NOT NULL,
    -- Herald's key of the message as the gateway echoed it (herald-<id>-<created>).
    message_key TEXT,
    provider_id TEXT,
    -- NULL when no message of Herald's matched.
    message_id  INTEGER REFERENCES messages (id) ON DELETE SET NULL,
    state       TEXT    NOT NULL CHECK (state IN ('delivered', 'undelivered', 'in_flight',
                    'unknown')),
    status      TEXT    NOT NULL,
    reported_at TEXT,
    received_at TEXT    NOT NULL,
    effect      TEXT    NOT NULL CHECK (effect IN ('applied', 'no_change', 'pending',
                    'unknown_message'))
);
CREATE INDEX delivery_reports_message ON delivery_reports (message_id, id);
CREATE INDEX delivery_reports_pending ON delivery_reports (message_id) WHERE effect = 'pending';

-- Reports name a message by the gateway's id; this finds it without a scan.
CREATE INDEX attempts_provider_id ON attempts (provider_id) WHERE provider_id IS NOT NULL;

-- How many times an operator has sent a failed message again. Herald's key of a
-- message as the gateways see it (herald-ID-CREATED, then -N) changes with it, so a
-- gateway that deduplicates by that key takes the new send, and reports about the
-- old one are told apart.
ALTER TABLE messages ADD COLUMN send_generation INTEGER NOT NULL DEFAULT 0;
