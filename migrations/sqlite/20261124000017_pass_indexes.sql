-- What a dispatch pass reads is indexed apart from the history, so a pass costs the
-- same over a million sent messages as over none.

-- Due system messages (a password reset): the claim that takes them before anything
-- else reads only them, instead of walking the due queue of a large announcement to
-- find the few among it.
CREATE INDEX messages_due_system ON messages (next_attempt_at, id)
    WHERE status = 'queued' AND kind = 'system';

-- Periodic messages whose day is over, expired by every pass.
CREATE INDEX messages_expiring ON messages (expires_at)
    WHERE status IN ('awaiting_approval', 'queued');

-- Unknown SMS left undecided, charged after a while by every pass.
CREATE INDEX messages_unknown ON messages (updated_at) WHERE status = 'unknown';
