-- Named templates: one variant per locale and channel.
CREATE TABLE templates (
    name        TEXT NOT NULL,
    locale      TEXT NOT NULL,
    channel     TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
    subject     TEXT,
    body        TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (name, locale, channel)
);
