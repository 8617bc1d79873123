-- The language an operator reads the console in (`pl`, `en`), chosen in the console;
-- NULL: the browser's language decides.

ALTER TABLE operators ADD COLUMN locale TEXT;
