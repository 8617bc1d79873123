-- The school's directory and the holiday calendar (same meaning as the SQLite schema).

CREATE TABLE recipients (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_id   TEXT        NOT NULL UNIQUE,
    role          TEXT        NOT NULL CHECK (role IN ('student', 'guardian', 'teacher', 'staff')),
    name          TEXT        NOT NULL,
    locale        TEXT,
    -- Contact points as the platform sent them (possibly invalid: eligibility says so).
    email         TEXT,
    phone         TEXT,
    -- The phone in E.164 when it parses as a mobile number, for look-ups by number.
    phone_e164    TEXT,
    sms_enabled   BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX recipients_role ON recipients (role);
CREATE INDEX recipients_email ON recipients (lower(email));
CREATE INDEX recipients_phone ON recipients (phone_e164);

CREATE TABLE guardianships (
    guardian_id   BIGINT      NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
    student_id    BIGINT      NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (guardian_id, student_id)
);
CREATE INDEX guardianships_student ON guardianships (student_id);

CREATE TABLE groups (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_id   TEXT        NOT NULL UNIQUE,
    name          TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE group_members (
    group_id      BIGINT      NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    recipient_id  BIGINT      NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (group_id, recipient_id)
);
CREATE INDEX group_members_recipient ON group_members (recipient_id);

CREATE TABLE contracts (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_id      TEXT        NOT NULL UNIQUE,
    student_id       BIGINT      NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
    number           TEXT,
    status           TEXT        NOT NULL CHECK (status IN ('pending', 'active', 'suspended', 'ended')),
    consent_email    BOOLEAN     NOT NULL,
    consent_email_at TIMESTAMPTZ,
    consent_sms      BOOLEAN     NOT NULL,
    consent_sms_at   TIMESTAMPTZ,
    consent_source   TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX contracts_student ON contracts (student_id);

CREATE TABLE holidays (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT        NOT NULL,
    first_day     DATE        NOT NULL,
    last_day      DATE        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    CHECK (last_day >= first_day)
);
CREATE INDEX holidays_days ON holidays (last_day, first_day);
