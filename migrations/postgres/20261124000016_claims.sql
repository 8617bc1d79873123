-- Claims are numbered: each claim of a message takes the next number, and every
-- outcome, reservation and charge names the claim it belongs to, so a dispatcher
-- that lost its lease changes nothing. `handed_at` records, before the channel is
-- called, that this claim's attempt was handed over: a claim that ends without an
-- outcome goes back to the queue only if it never was, or if the channel recognises
-- a repeat; otherwise the outcome is unknown and waits for a person.

ALTER TABLE messages ADD COLUMN claim BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN handed_at TIMESTAMPTZ;
