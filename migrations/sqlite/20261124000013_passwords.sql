-- Operators sign in to the console with a password, kept as an Argon2id PHC string
-- ($argon2id$v=19$m=…,t=…,p=…$salt$hash); NULL until one is set.

ALTER TABLE operators ADD COLUMN password_hash TEXT;
ALTER TABLE operators ADD COLUMN password_set_at TEXT;
