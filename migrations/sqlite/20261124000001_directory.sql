-- The school's directory: recipients, guardianships, groups, contracts; and the
-- holiday calendar. Timestamps are RFC 3339 text in UTC, days are YYYY-MM-DD text,
-- so both sort and compare correctly as text.

CREATE TABLE recipients (
    id            INTEGER PRIMARY KEY,
    external_id   TEXT    NOT NULL UNIQUE,
    role          TEXT    NOT NULL CHECK (role IN ('student', 'guardian', 'teacher', 'staff')),
    name          TEXT    NOT NULL,
    locale        TEXT,
    -- Contact points as the platform sent them (possibly invalid: eligibility says so).
    email         TEXT,
    phone         TEXT,
    -- The phone in E.164 when it parses as a mobile number, for look-ups by number.
    phone_e164    TEXT,
    sms_enabled   INTEGER NOT NULL DEFAULT 0 CHECK (sms_enabled IN (0, 1)),
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
);
CREATE INDEX recipients_role ON recipients (role);
CREATE INDEX recipients_email ON recipients (lower(email));
CREATE INDEX recipients_phone ON recipients (phone_e164);

CREATE TABLE guardianships (
    guardian_id   INTEGER NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
    student_id    INTEGER NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
    created_at    TEXT    NOT NULL,
    PRIMARY KEY (guardian_id, student_id)
);
CREATE INDEX guardianships_student ON guardianships (student_id);

CREATE TABLE groups (
    id            INTEGER PRIMARY KEY,
    external_id   TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
);

-- Students in a group and the teachers who teach it.
CREATE TABLE group_members (
    group_id      INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    recipient_id  INTEGER NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
    created_at    TEXT    NOT NULL,
    PRIMARY KEY (group_id, recipient_id)
);
CREATE INDEX group_members_recipient ON group_members (recipient_id);

CREATE TABLE contracts (
    id               INTEGER PRIMARY KEY,
    external_id      TEXT    NOT NULL UNIQUE,
    student_id       INTEGER NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
    number           TEXT,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'active', 'suspended', 'ended')),
    -- Consent per channel, with when it was given or withdrawn and where.
    consent_email    INTEGER NOT NULL CHECK (consent_email IN (0, 1)),
    consent_email_at TEXT,
    consent_sms      INTEGER NOT NULL CHECK (consent_sms IN (0, 1)),
    consent_sms_at   TEXT,
    consent_source   TEXT,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL
);
CREATE INDEX contracts_student ON contracts (student_id);

CREATE TABLE holidays (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,
    first_day     TEXT    NOT NULL,
    last_day      TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    CHECK (last_day >= first_day)
);
CREATE INDEX holidays_days ON holidays (last_day, first_day);
