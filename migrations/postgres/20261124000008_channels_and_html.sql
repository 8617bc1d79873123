-- A send may go by email and SMS together ("both"), or by SMS only to those without
-- a usable email address ("sms_if_no_email"): the batch keeps the choice; `channel`
-- stays the channel of its recorded text. Email may carry an HTML part beside the
-- plain text, in batches, messages and template variants.
ALTER TABLE batches ADD COLUMN channels TEXT;
UPDATE batches SET channels = channel;
ALTER TABLE batches ADD COLUMN html TEXT;
ALTER TABLE messages ADD COLUMN html TEXT;
ALTER TABLE templates ADD COLUMN html TEXT;
