-- The hold switch that pauses all dispatch (one row), and the audit log of every
-- change made by a person.

CREATE TABLE hold_switch (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    on_since    TEXT,
    reason      TEXT,
    set_by      TEXT
);
INSERT INTO hold_switch (id) VALUES (1);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    -- What it was done to ("batch 3", "message 17", "wallet", "dispatch").
    subject     TEXT    NOT NULL,
    -- What the person saw and did, as JSON.
    details     TEXT    NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at, id);
CREATE INDEX audit_log_actor ON audit_log (actor, at);
