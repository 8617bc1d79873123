-- Operators, the roles they hold and the permissions those give. An operator's
-- permissions are their role's, plus what was granted to them, minus what was
-- revoked from them; the `owner` role holds every permission (also ones added later).

CREATE TABLE roles (
    name        TEXT    PRIMARY KEY,
    description TEXT    NOT NULL,
    builtin     INTEGER NOT NULL DEFAULT 0
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
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Per-operator exceptions to their role: granted = 1 adds a permission, 0 takes it away.
CREATE TABLE operator_permissions (
    login       TEXT    NOT NULL REFERENCES operators (login) ON DELETE CASCADE,
    permission  TEXT    NOT NULL,
    granted     INTEGER NOT NULL CHECK (granted IN (0, 1)),
    PRIMARY KEY (login, permission)
);

INSERT INTO roles (name, description, builtin) VALUES
    ('owner', 'runs the school: every permission', 1),
    ('secretary', 'composes, approves and sends; manages recipients, settings and the wallet', 1),
    ('teacher', 'composes messages to the groups they teach, for approval', 1);
INSERT INTO role_permissions (role, permission) VALUES
    ('secretary', 'view'), ('secretary', 'send'), ('secretary', 'send_any_audience'),
    ('secretary', 'approve'), ('secretary', 'manage_recipients'),
    ('secretary', 'manage_settings'), ('secretary', 'top_up'),
    ('teacher', 'view'), ('teacher', 'send');
