-- Operators, the roles they hold and the permissions those give. An operator's
-- permissions are their role's, plus what was granted to them, minus what was
-- revoked from them; the `owner` role holds every permission (also ones added later).

CREATE TABLE roles (
    name        TEXT    PRIMARY KEY,
    description TEXT    NOT NULL,
    builtin     BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE role_permissions (
    role        TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    permission  TEXT NOT NULL,
    PRIMARY KEY (role, permission)
);

CREATE TABLE operators (
    login       TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL REFERENCES roles (name),
    -- The platform id of the teacher this operator is, when they are one: a teacher
    -- without `send_any_audience` may send only to the groups this person teaches.
    teacher     TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- Per-operator exceptions to their role: granted = true adds a permission, false takes it away.
CREATE TABLE operator_permissions (
    login       TEXT    NOT NULL REFERENCES operators (login) ON DELETE CASCADE,
    permission  TEXT    NOT NULL,
    granted     BOOLEAN NOT NULL,
    PRIMARY KEY (login, permission)
);

INSERT INTO roles (name, description, builtin) VALUES
    ('owner', 'runs the school: every permission', TRUE),
    ('secretary', 'composes, approves and sends; manages recipients, settings and the wallet', TRUE),
    ('teacher', 'composes messages to the groups they teach, for approval', TRUE);
INSERT INTO role_permissions (role, permission) VALUES
    ('secretary', 'view'), ('secretary', 'send'), ('secretary', 'send_any_audience'),
    ('secretary', 'approve'), ('secretary', 'manage_recipients'),
    ('secretary', 'manage_settings'), ('secretary', 'top_up'),
    ('teacher', 'view'), ('teacher', 'send');
