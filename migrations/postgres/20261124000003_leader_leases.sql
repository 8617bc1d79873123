-- Leader leases: one row per kind of work only one instance should do at a time
-- (reclaiming expired claims now; planning periodic rules later).
CREATE TABLE leader_leases (
    name        TEXT        PRIMARY KEY,
    owner       TEXT        NOT NULL,
    until       TIMESTAMPTZ NOT NULL
);
