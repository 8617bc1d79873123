-- The hold switch that pauses all dispatch (one row), and the audit log of every
-- change made by a person.

CREATE TABLE hold_switch (
    id          INTEGER     PRIMARY KEY CHECK (id = 1),
    on_since    TIMESTAMPTZ,
    reason      TEXT,
    set_by      TEXT
);
INSERT INTO hold_switch (id) VALUES (1);

CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    actor       TEXT        NOT NULL,
    action      TEXT        NOT NULL,
    subject     TEXT        NOT NULL,
    details     TEXT        NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at, id);
CREATE INDEX audit_log_actor ON audit_log (actor, at);
