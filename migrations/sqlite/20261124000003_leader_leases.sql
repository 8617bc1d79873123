-- Leader leases: one row per kind of work only one instance should do at a time (on
-- SQLite there is one daemon, which always wins; the table keeps both backends alike).
CREATE TABLE leader_leases (
    name        TEXT    PRIMARY KEY,
    owner       TEXT    NOT NULL,
    until       TEXT    NOT NULL
);
