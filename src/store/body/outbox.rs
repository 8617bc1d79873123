//! The outbox's SQL: messages and batches, decisions, claims, outcomes with their
//! attempts and wallet settlement, listings; and the coordination of instances.

use super::*;

/// Binds a [`MessageFilter`]'s nine parameters in `message_filter!` order.
fn bind_filter<'q>(
    query: sqlx::query::Query<'q, Db, DbArgs>,
    f: &'q MessageFilter,
) -> sqlx::query::Query<'q, Db, DbArgs> {
    query
        .bind(f.batch.map(|b| b.0))
        .bind(f.recipient.as_deref())
        .bind(f.status.map(MessageStatus::as_str))
        .bind(f.kind.map(MessageKind::as_str))
        .bind(f.channel.map(Channel::as_str))
        .bind(f.since)
        .bind(f.reason.map(Reason::as_str))
        .bind(f.before.map(|m| m.0))
        .bind(f.until)
}

async fn insert_attempt(
    conn: &mut DbConn,
    message: i64,
    number: i64,
    attempt: &Attempt,
    worker: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO attempts
            (message_id, number, started_at, finished_at, outcome, code, detail, worker,
             provider_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(message)
    .bind(number)
    .bind(attempt.started_at)
    .bind(now)
    .bind(attempt.outcome.as_str())
    .bind(attempt.code)
    .bind(&attempt.detail)
    .bind(worker)
    .bind(&attempt.provider_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A claimed message that did not finish.
#[derive(sqlx::FromRow)]
struct Unfinished {
    id: i64,
    lease_owner: Option<String>,
    attempts: i64,
    /// When it was claimed (its last change).
    updated_at: DateTime<Utc>,
    lease_until: Option<DateTime<Utc>>,
    channel: String,
    /// When this claim's attempt was handed to the channel, if it was.
    handed_at: Option<DateTime<Utc>>,
}

/// The columns of [`Unfinished`].
macro_rules! unfinished_columns {
    () => {
        "SELECT id, lease_owner, attempts, updated_at, lease_until, channel, handed_at \
         FROM messages"
    };
}

/// Records an unfinished attempt and settles what became of the message. Never
/// handed to its channel, or on a channel in `repeats_recognised`: back in the queue
/// (or failed once `max_attempts` is reached), its reserved credit given back.
/// Handed over on a channel that would not recognise a repeat: it may have reached
/// the person, so its outcome is `unknown`, its credit stays reserved, and a person
/// decides (resend or drop) rather than a second paid send going out by itself.
async fn abandon(
    conn: &mut DbConn,
    m: &Unfinished,
    detail: &str,
    max_attempts: Option<u32>,
    note: &str,
    now: DateTime<Utc>,
    repeats_recognised: &[Channel],
) -> Result<()> {
    let handed = m.handed_at.is_some();
    let recognised = repeats_recognised
        .iter()
        .any(|c| c.as_str() == m.channel.as_str());
    let unknown = handed && !recognised;
    let attempt = Attempt {
        started_at: m.handed_at.unwrap_or(m.updated_at),
        outcome: if unknown {
            AttemptOutcome::Unknown
        } else {
            AttemptOutcome::Abandoned
        },
        code: None,
        detail: detail.to_owned(),
        provider_id: None,
    };
    insert_attempt(
        conn,
        m.id,
        m.attempts + 1,
        &attempt,
        m.lease_owner.as_deref().unwrap_or("?"),
        now,
    )
    .await?;
    let exhausted = max_attempts.is_some_and(|max| m.attempts + 1 >= i64::from(max));
    let (status, reason, note) = if unknown {
        (
            MessageStatus::Unknown,
            Reason::OutcomeUnknown,
            format!("{note}: it was handed to the channel, which would not know a repeat"),
        )
    } else if exhausted {
        (
            MessageStatus::Failed,
            Reason::AttemptsExhausted,
            note.to_owned(),
        )
    } else {
        (
            MessageStatus::Queued,
            Reason::RetryScheduled,
            note.to_owned(),
        )
    };
    sqlx::query(
        "UPDATE messages
         SET status = $2, reason = $3, attempts = attempts + 1,
             next_attempt_at = CASE WHEN $2 = 'queued' THEN $4 END,
             lease_owner = NULL, lease_until = NULL, handed_at = NULL, updated_at = $4
         WHERE id = $1",
    )
    .bind(m.id)
    .bind(status.as_str())
    .bind(reason.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if unknown {
        // The credit stays held until a person decides, as for an unknown answer;
        // a delivery report that came meanwhile is applied now.
        super::reports::apply_pending(conn, m.id, now).await?;
    } else {
        settle(conn, m.id, false, now).await?;
        if exhausted {
            super::reports::close_pending(conn, m.id).await?;
        }
    }
    insert_event(conn, m.id, now, status, Some(reason), None, &note).await
}

/// Settles the points reserved for a message: charged when the gateway accepted it,
/// otherwise given back to the balance. Nothing to do when none are reserved.
pub(super) async fn settle(
    conn: &mut DbConn,
    id: i64,
    charge: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    let reserved: Option<i64> = sqlx::query_scalar(concat!(
        "SELECT reserved_points FROM messages WHERE id = $1",
        for_update!()
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .flatten();
    let Some(points) = reserved.filter(|p| *p > 0) else {
        return Ok(());
    };
    let (balance, reserved): (i64, i64) = if charge {
        sqlx::query_as(
            "UPDATE wallet SET reserved = reserved - $1 WHERE id = 1 RETURNING balance, reserved",
        )
    } else {
        sqlx::query_as(
            "UPDATE wallet SET reserved = reserved - $1, balance = balance + $1 WHERE id = 1
             RETURNING balance, reserved",
        )
    }
    .bind(points)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("UPDATE messages SET reserved_points = NULL WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let entry = if charge { "charge" } else { "refund" };
    insert_ledger(
        conn,
        now,
        entry,
        points,
        Some(id),
        None,
        None,
        (balance, reserved),
    )
    .await
}

/// Records the hand-over of claim `claim` ([`Store::hand_over`]).
async fn hand_over(
    conn: &mut DbConn,
    id: MessageId,
    claim: i64,
    now: DateTime<Utc>,
    lease_needed_until: DateTime<Utc>,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE messages SET handed_at = $3
         WHERE id = $1 AND claim = $2 AND status = 'sending' AND lease_until >= $4",
    )
    .bind(id.0)
    .bind(claim)
    .bind(now)
    .bind(lease_needed_until)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The most outcomes in one set of statements: 9 values per attempt row keep it
/// far below SQLite's 32,766 bound parameters.
const FINISH_CHUNK: usize = 512;

/// One outcome to record: claim `claim` of message `id` ended as `finish` at `at`.
struct Ending<'a> {
    id: MessageId,
    claim: i64,
    finish: &'a Finish,
    at: DateTime<Utc>,
}

/// What an outcome makes of a message: its status, reason, next attempt, time sent
/// and the note of its event.
type NewState = (
    MessageStatus,
    Option<Reason>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    String,
);

/// The [`NewState`] `finish` at `now` gives a message.
fn ending_of(finish: &Finish, now: DateTime<Utc>) -> NewState {
    match finish {
        Finish::Sent(a) => (MessageStatus::Sent, None, None, Some(now), a.detail.clone()),
        Finish::Retry(a, at) => (
            MessageStatus::Queued,
            Some(Reason::RetryScheduled),
            Some(*at),
            None,
            a.detail.clone(),
        ),
        Finish::Failed(a, reason) => (
            MessageStatus::Failed,
            Some(*reason),
            None,
            None,
            a.detail.clone(),
        ),
        Finish::Unknown(a) => (
            MessageStatus::Unknown,
            Some(Reason::OutcomeUnknown),
            None,
            None,
            a.detail.clone(),
        ),
        Finish::Blocked(reason) => (
            MessageStatus::Blocked,
            Some(*reason),
            None,
            None,
            "checked again before sending".to_owned(),
        ),
        Finish::Hold(reason, until) => (
            MessageStatus::Queued,
            Some(*reason),
            Some(*until),
            None,
            format!("held until {}", until.to_rfc3339()),
        ),
        Finish::Withdrawn(status, reason) => (
            *status,
            Some(*reason),
            None,
            None,
            "checked before sending".to_owned(),
        ),
        // Soon, not at once: whatever ate the lease (a long wait for the rate
        // limit) should not make the same pass claim it again straight away.
        Finish::Released => (
            MessageStatus::Queued,
            Some(Reason::RetryScheduled),
            Some(now + chrono::Duration::seconds(10)),
            None,
            "not sent: too little of the lease was left to send within it".to_owned(),
        ),
    }
}

/// The attempt an outcome reports, if the channel was called.
fn attempt_of(finish: &Finish) -> Option<&Attempt> {
    match finish {
        Finish::Sent(a) | Finish::Retry(a, _) | Finish::Failed(a, _) | Finish::Unknown(a) => {
            Some(a)
        }
        Finish::Blocked(_) | Finish::Hold(..) | Finish::Withdrawn(..) | Finish::Released => None,
    }
}

/// A message as an outcome finds it.
#[derive(sqlx::FromRow)]
struct Finishing {
    id: i64,
    status: String,
    claim: i64,
    attempts: i64,
    reserved_points: Option<i64>,
}

/// What a ledger line does to a message's credit.
#[derive(Clone, Copy)]
pub(super) enum Entry {
    /// Taken from the balance and held.
    Reserve,
    /// Held, now spent.
    Charge,
    /// Held, now given back to the balance.
    Refund,
}

impl Entry {
    fn as_str(self) -> &'static str {
        match self {
            Entry::Reserve => "reserve",
            Entry::Charge => "charge",
            Entry::Refund => "refund",
        }
    }
}

/// Credit moved for one message.
pub(super) struct Movement {
    pub(super) id: i64,
    pub(super) entry: Entry,
    pub(super) points: i64,
    pub(super) at: DateTime<Utc>,
}

/// The wallet's balance and reserve, locked until the transaction ends (PostgreSQL;
/// SQLite's write transaction already excludes other writers).
pub(super) async fn wallet_for_update(conn: &mut DbConn) -> Result<(i64, i64)> {
    Ok(sqlx::query_as(concat!(
        "SELECT balance, reserved FROM wallet WHERE id = 1",
        for_update!()
    ))
    .fetch_one(&mut *conn)
    .await?)
}

/// Moves credit for many messages at once: the wallet read once (locked) and written
/// once, each ledger line with the balance and reserve after it, in order, as if
/// written one by one.
pub(super) async fn move_credit(conn: &mut DbConn, movements: &[Movement]) -> Result<()> {
    if movements.is_empty() {
        return Ok(());
    }
    let (mut balance, mut reserved) = wallet_for_update(conn).await?;
    let mut lines = Vec::with_capacity(movements.len());
    for m in movements {
        match m.entry {
            Entry::Reserve => {
                balance -= m.points;
                reserved += m.points;
            }
            Entry::Charge => reserved -= m.points,
            Entry::Refund => {
                reserved -= m.points;
                balance += m.points;
            }
        }
        lines.push((m, balance, reserved));
    }
    sqlx::query("UPDATE wallet SET balance = $1, reserved = $2 WHERE id = 1")
        .bind(balance)
        .bind(reserved)
        .execute(&mut *conn)
        .await?;
    for chunk in lines.chunks(FINISH_CHUNK) {
        let mut q = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO wallet_ledger
                (at, entry, points, message_id, balance_after, reserved_after) ",
        );
        q.push_values(chunk, |mut row, (m, balance, reserved)| {
            row.push_bind(m.at)
                .push_bind(m.entry.as_str())
                .push_bind(m.points)
                .push_bind(m.id)
                .push_bind(*balance)
                .push_bind(*reserved);
        });
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}

/// `rows`, then as many `None` as make their number the next power of two: the rows
/// of a group's multi-row statement. Its text then takes one of ten forms (1 to 512
/// rows), each prepared once per connection and kept, rather than parsed anew for
/// every group, which cost the dispatcher 8 % of its CPU. The padding rows are all
/// NULL and match or insert nothing.
fn padded<T>(rows: &[T]) -> impl Iterator<Item = Option<&T>> {
    let padding = rows.len().next_power_of_two() - rows.len();
    rows.iter()
        .map(Some)
        .chain(std::iter::repeat_n(None, padding))
}

/// Records how claims ended ([`Store::finish`], [`Store::record`]) in the caller's
/// transaction: whether each was still its message's. Set-based, a few statements
/// for the whole group whatever its size, as a dispatcher records its outcomes by
/// the hundred; what is rare (credit to settle, a delivery report that came first)
/// is done per message.
async fn finish_claims(tx: &mut DbConn, owner: &str, endings: &[Ending<'_>]) -> Result<Vec<bool>> {
    if endings.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Finishing> = sqlx::query_as(concat!(
        "SELECT id, status, claim, attempts, reserved_points FROM messages WHERE id",
        in_list!("$1"),
        " ORDER BY id",
        for_update!()
    ))
    .bind(id_list(endings.iter().map(|e| e.id.0)))
    .fetch_all(&mut *tx)
    .await?;
    let found: HashMap<i64, &Finishing> = rows.iter().map(|r| (r.id, r)).collect();
    // The attempts happened whatever became of the lease: the server's answers are
    // kept, numbered after those the message had.
    let attempts: Vec<(&Ending, &Attempt, i64)> = endings
        .iter()
        .filter_map(|e| {
            let row = found.get(&e.id.0)?;
            Some((e, attempt_of(e.finish)?, row.attempts + 1))
        })
        .collect();
    if !attempts.is_empty() {
        let mut q = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO attempts
                (message_id, number, started_at, finished_at, outcome, code, detail, worker,
                 provider_id)
             SELECT column1, column2, column3, column4, column5, column6, column7, column8,
                    column9
             FROM (",
        );
        q.push_values(padded(&attempts), |mut row, attempt| match attempt {
            Some((e, a, number)) => {
                row.push_bind(e.id.0)
                    .push_bind(*number)
                    .push_bind(a.started_at)
                    .push_bind(e.at)
                    .push_bind(a.outcome.as_str())
                    .push_bind(a.code)
                    .push_bind(a.detail.as_str())
                    .push_bind(owner)
                    .push_bind(a.provider_id.as_deref());
            }
            None => {
                row.push_bind(None::<i64>)
                    .push_bind(None::<i64>)
                    .push_bind(None::<DateTime<Utc>>)
                    .push_bind(None::<DateTime<Utc>>)
                    .push_bind(None::<&str>)
                    .push_bind(None::<i64>)
                    .push_bind(None::<&str>)
                    .push_bind(None::<&str>)
                    .push_bind(None::<&str>);
            }
        });
        q.push(") AS v WHERE column1 IS NOT NULL");
        q.build().execute(&mut *tx).await?;
    }
    // The fence: only the claim that is the message's now records its outcome. A
    // message the lease rule made `unknown` still belongs to that claim (an outcome
    // kept through a database outage comes late): the answer it waited for settles
    // it, its points still held. One put back in the queue has had its points given
    // back and goes again under its key: fenced.
    let recorded: Vec<bool> = endings
        .iter()
        .map(|e| {
            found.get(&e.id.0).is_some_and(|row| {
                (row.status == MessageStatus::Sending.as_str()
                    || row.status == MessageStatus::Unknown.as_str())
                    && row.claim == e.claim
            })
        })
        .collect();
    let moving: Vec<(&Ending, _)> = endings
        .iter()
        .zip(&recorded)
        .filter(|(_, recorded)| **recorded)
        .map(|(e, _)| (e, ending_of(e.finish, e.at)))
        .collect();
    if moving.is_empty() {
        return Ok(recorded);
    }
    // Credit held is settled: charged when the server took the message, given back
    // otherwise; kept while the outcome is unknown, until a person resends (given
    // back, reserved again) or drops (given back) the message.
    let settled: Vec<Movement> = moving
        .iter()
        .filter_map(|(e, _)| {
            let points = found.get(&e.id.0)?.reserved_points.filter(|p| *p > 0)?;
            let entry = match e.finish {
                Finish::Unknown(_) => return None,
                Finish::Sent(_) => Entry::Charge,
                _ => Entry::Refund,
            };
            Some(Movement {
                id: e.id.0,
                entry,
                points,
                at: e.at,
            })
        })
        .collect();
    move_credit(&mut *tx, &settled).await?;
    let settled: std::collections::HashSet<i64> = settled.iter().map(|m| m.id).collect();
    // One statement for every message's new state: a VALUES list joined by id (its
    // columns are `column1`… on both backends).
    let mut q = sqlx::QueryBuilder::<Db>::new(
        "UPDATE messages
         SET status = v.column2, reason = v.column3, next_attempt_at = v.column4,
             sent_at = coalesce(v.column5, messages.sent_at),
             attempts = messages.attempts + v.column6,
             lease_owner = NULL, lease_until = NULL, handed_at = NULL, updated_at = v.column7,
             reserved_points = CASE WHEN v.column8 = 1 THEN NULL ELSE messages.reserved_points END
         FROM (",
    );
    q.push_values(padded(&moving), |mut row, moved| match moved {
        Some((e, (status, reason, next_at, sent_at, _))) => {
            row.push_bind(e.id.0)
                .push_bind(status.as_str())
                .push_bind(reason.map(Reason::as_str))
                .push_bind(*next_at)
                .push_bind(*sent_at)
                .push_bind(i64::from(attempt_of(e.finish).is_some()))
                .push_bind(e.at)
                .push_bind(i64::from(settled.contains(&e.id.0)));
        }
        // Matches no message.
        None => {
            row.push_bind(None::<i64>)
                .push_bind(None::<&str>)
                .push_bind(None::<&str>)
                .push_bind(None::<DateTime<Utc>>)
                .push_bind(None::<DateTime<Utc>>)
                .push_bind(None::<i64>)
                .push_bind(None::<DateTime<Utc>>)
                .push_bind(None::<i64>);
        }
    });
    q.push(") AS v WHERE messages.id = v.column1");
    q.build().execute(&mut *tx).await?;
    let mut q = sqlx::QueryBuilder::<Db>::new(
        "INSERT INTO message_events (message_id, at, status, reason, actor, note)
         SELECT column1, column2, column3, column4, column5, column6 FROM (",
    );
    q.push_values(padded(&moving), |mut row, moved| match moved {
        Some((e, (status, reason, _, _, note))) => {
            row.push_bind(e.id.0)
                .push_bind(e.at)
                .push_bind(status.as_str())
                .push_bind(reason.map(Reason::as_str))
                .push_bind(None::<&str>)
                .push_bind(note.as_str());
        }
        None => {
            row.push_bind(None::<i64>)
                .push_bind(None::<DateTime<Utc>>)
                .push_bind(None::<&str>)
                .push_bind(None::<&str>)
                .push_bind(None::<&str>)
                .push_bind(None::<&str>);
        }
    });
    q.push(") AS v WHERE column1 IS NOT NULL");
    q.build().execute(&mut *tx).await?;
    // Delivery reports that came before the answer was recorded (rare): looked up
    // for the group at once, applied or closed per message.
    let reported: Vec<i64> = sqlx::query_scalar(concat!(
        "SELECT DISTINCT message_id FROM delivery_reports
         WHERE effect = 'pending' AND message_id",
        in_list!("$1")
    ))
    .bind(id_list(moving.iter().map(|(e, _)| e.id.0)))
    .fetch_all(&mut *tx)
    .await?;
    for (e, (status, ..)) in moving.iter().filter(|(e, _)| reported.contains(&e.id.0)) {
        if matches!(status, MessageStatus::Sent | MessageStatus::Unknown) {
            super::reports::apply_pending(&mut *tx, e.id.0, e.at).await?;
        } else if status.is_final() {
            super::reports::close_pending(&mut *tx, e.id.0).await?;
        }
    }
    Ok(recorded)
}

/// A fingerprint of a batch as stored: its status and texts, and each message still
/// awaiting a decision with its text, reason, cost and last change. An edit, a
/// cancellation or a decision since changes it; messages already decided (being sent,
/// retried) do not, since a decision no longer concerns them. `None` when there is no
/// such batch. `lock`ed (PostgreSQL), the batch and its waiting messages stay as
/// fingerprinted until the transaction ends, so nothing slips in before a decision.
async fn batch_state(conn: &mut DbConn, id: BatchId, lock: bool) -> Result<Option<String>> {
    use sha2::Digest;
    macro_rules! batch {
        () => {
            "SELECT status, subject, body, html FROM batches WHERE id = $1"
        };
    }
    macro_rules! waiting {
        () => {
            "SELECT id, subject, body, html, reason, segments, updated_at FROM messages
             WHERE batch_id = $1 AND status = 'awaiting_approval' ORDER BY id"
        };
    }
    let (batch_sql, waiting_sql) = if lock {
        (
            concat!(batch!(), for_update!()),
            concat!(waiting!(), for_update!()),
        )
    } else {
        (batch!(), waiting!())
    };
    let batch: Option<(String, Option<String>, String, Option<String>)> = sqlx::query_as(batch_sql)
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?;
    let Some((status, subject, body, html)) = batch else {
        return Ok(None);
    };
    let mut hash = sha2::Sha256::new();
    for part in [Some(status), subject, Some(body), html] {
        hash.update(part.unwrap_or_default().as_bytes());
        hash.update([0]);
    }
    let rows = sqlx::query(waiting_sql)
        .bind(id.0)
        .fetch_all(&mut *conn)
        .await?;
    for row in rows {
        let id: i64 = row.try_get("id")?;
        hash.update(id.to_le_bytes());
        for text in ["subject", "body", "html", "reason"] {
            let value: Option<String> = row.try_get(text)?;
            hash.update(value.unwrap_or_default().as_bytes());
            hash.update([0]);
        }
        let segments: Option<i64> = row.try_get("segments")?;
        let updated_at: DateTime<Utc> = row.try_get("updated_at")?;
        hash.update(segments.unwrap_or_default().to_le_bytes());
        hash.update(updated_at.timestamp_micros().to_le_bytes());
    }
    Ok(Some(hex::encode(hash.finalize())))
}

/// `Some` refusal unless the batch exists, awaits approval, and is as the approver
/// saw it (`seen`, its [`batch_state`]); locks it for the decision.
async fn check_undecided(conn: &mut DbConn, id: BatchId, seen: &str) -> Result<Option<Decided>> {
    let current: Option<String> = sqlx::query_scalar(concat!(
        "SELECT status FROM batches WHERE id = $1",
        for_update!()
    ))
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(current) = current else {
        return Ok(Some(Decided::NotFound));
    };
    let current: BatchStatus = parse_code("batches.status", &current)?;
    if current != BatchStatus::AwaitingApproval {
        return Ok(Some(Decided::AlreadyDecided(current)));
    }
    if batch_state(conn, id, true).await?.as_deref() != Some(seen) {
        return Ok(Some(Decided::Changed));
    }
    Ok(None)
}

#[async_trait]
impl OutboxStore for Backend {
    async fn create_message(&self, message: &NewMessage, audit: &AuditEntry) -> Result<MessageId> {
        let mut tx = self.begin_write().await?;
        let id = insert_message(&mut tx, None, message, &audit.actor, audit.at).await?;
        if message.kind == MessageKind::System && message.status == MessageStatus::Queued {
            wake_other_instances(&mut tx).await?;
        }
        insert_audit(&mut tx, &audit.for_id(id)).await?;
        tx.commit().await?;
        Ok(MessageId(id))
    }

    async fn create_message_once(
        &self,
        message: &NewMessage,
        key: &IdempotencyKey,
        audit: &AuditEntry,
    ) -> Result<Once> {
        let mut tx = self.begin_write().await?;
        // The key's row first: a concurrent request with the same key waits here for
        // this transaction, then finds the row (PostgreSQL's unique index; SQLite's
        // single writer).
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (actor, key, request_sha256, message_id, created_at)
             SELECT $1, $2, $3, NULL, $4
             WHERE NOT EXISTS (SELECT 1 FROM idempotency_keys WHERE actor = $1 AND key = $2)
             ON CONFLICT (actor, key) DO NOTHING",
        )
        .bind(&key.actor)
        .bind(&key.key)
        .bind(&key.request_sha256)
        .bind(audit.at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            let (hash, id): (String, Option<i64>) = sqlx::query_as(
                "SELECT request_sha256, message_id FROM idempotency_keys
                 WHERE actor = $1 AND key = $2",
            )
            .bind(&key.actor)
            .bind(&key.key)
            .fetch_one(&mut *tx)
            .await?;
            return Ok(match id {
                Some(id) if hash == key.request_sha256 => Once::Existing(MessageId(id)),
                _ => Once::KeyReused,
            });
        }
        let id = insert_message(&mut tx, None, message, &audit.actor, audit.at).await?;
        sqlx::query("UPDATE idempotency_keys SET message_id = $3 WHERE actor = $1 AND key = $2")
            .bind(&key.actor)
            .bind(&key.key)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if message.kind == MessageKind::System && message.status == MessageStatus::Queued {
            wake_other_instances(&mut tx).await?;
        }
        insert_audit(&mut tx, &audit.for_id(id)).await?;
        tx.commit().await?;
        Ok(Once::Created(MessageId(id)))
    }

    async fn idempotency_key(&self, actor: &str, key: &str) -> Result<Option<KeyUse>> {
        // A row whose message_id is still NULL belongs to a transaction that has not
        // committed, which no other reader sees; the condition only says so.
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT request_sha256, message_id FROM idempotency_keys
             WHERE actor = $1 AND key = $2 AND message_id IS NOT NULL",
        )
        .bind(actor)
        .bind(key)
        .fetch_optional(&self.reads)
        .await?;
        Ok(row.map(|(request_sha256, id)| KeyUse {
            request_sha256,
            message: MessageId(id),
        }))
    }

    async fn create_batch(
        &self,
        batch: &NewBatch,
        messages: &[NewMessage],
        audit: &AuditEntry,
    ) -> Result<BatchId> {
        let now = audit.at;
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            // A batch stored approved was sent by an operator who needs no approval:
            // the decision is theirs, taken when they sent it.
            "INSERT INTO batches
                (kind, channel, status, audience, subject, body, created_by, created_at,
                 decided_by, decided_at, decision_note, channels, html)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                     CASE WHEN $3 = 'approved' THEN $7 END,
                     CASE WHEN $3 = 'approved' THEN $8 END,
                     CASE WHEN $3 = 'approved' THEN 'sent without approval' END, $9, $10)
             RETURNING id",
        )
        .bind(batch.kind.as_str())
        .bind(batch.channel.as_str())
        .bind(batch.status.as_str())
        .bind(&batch.audience)
        .bind(&batch.subject)
        .bind(&batch.body)
        .bind(&batch.created_by)
        .bind(now)
        .bind(batch.channels.as_str())
        .bind(&batch.html)
        .fetch_one(&mut *tx)
        .await?;
        bulk::insert_messages(&mut tx, id, messages, &batch.created_by, now).await?;
        insert_audit(&mut tx, &audit.for_id(id)).await?;
        tx.commit().await?;
        // Sent without approval: a queue the planner has not seen yet (one waiting
        // for approval is refreshed when it is approved).
        if batch.status == BatchStatus::Approved {
            self.count_queued(messages.len() as u64);
            self.refresh_statistics(ANALYZE_QUEUE).await;
        }
        Ok(BatchId(id))
    }

    async fn batches(&self, status: Option<BatchStatus>) -> Result<Vec<BatchSummary>> {
        let status = status.map(BatchStatus::as_str);
        let rows = sqlx::query(
            "SELECT id, kind, channel, coalesce(channels, channel) AS channels, status, audience,
                    subject, body, html, created_by, created_at, decided_by, decided_at,
                    decision_note
             FROM batches WHERE ($1 IS NULL OR status = $1) ORDER BY id DESC",
        )
        .bind(status)
        .fetch_all(&self.reads)
        .await?;
        let counts: Vec<(i64, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT m.batch_id, m.status, m.reason, count(*) FROM messages m
             JOIN batches b ON b.id = m.batch_id
             WHERE ($1 IS NULL OR b.status = $1)
             GROUP BY m.batch_id, m.status, m.reason
             ORDER BY m.batch_id, count(*) DESC",
        )
        .bind(status)
        .fetch_all(&self.reads)
        .await?;
        let mut by_batch: HashMap<i64, Vec<StatusCount>> = HashMap::new();
        for (batch, status, reason, count) in counts {
            by_batch.entry(batch).or_default().push(StatusCount {
                status: parse_code("messages.status", &status)?,
                reason: parse_reason(reason)?,
                count,
            });
        }
        rows.into_iter()
            .map(|row| {
                let id: i64 = row.try_get("id")?;
                Ok(BatchSummary {
                    id: BatchId(id),
                    kind: parse_code("batches.kind", &row.try_get::<String, _>("kind")?)?,
                    channel: parse_code("batches.channel", &row.try_get::<String, _>("channel")?)?,
                    channels: parse_code(
                        "batches.channels",
                        &row.try_get::<String, _>("channels")?,
                    )?,
                    status: parse_code("batches.status", &row.try_get::<String, _>("status")?)?,
                    audience: row.try_get("audience")?,
                    subject: row.try_get("subject")?,
                    body: row.try_get("body")?,
                    html: row.try_get("html")?,
                    created_by: row.try_get("created_by")?,
                    created_at: row.try_get("created_at")?,
                    decided_by: row.try_get("decided_by")?,
                    decided_at: row.try_get("decided_at")?,
                    decision_note: row.try_get("decision_note")?,
                    counts: by_batch.remove(&id).unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn decide_batch(
        &self,
        id: BatchId,
        decision: &Decision,
        seen: &str,
        audit: &AuditEntry,
    ) -> Result<Decided> {
        let (actor, now) = (audit.actor.as_str(), audit.at);
        let mut tx = self.begin_write().await?;
        if let Some(refused) = check_undecided(&mut tx, id, seen).await? {
            return Ok(refused);
        }
        let (batch_status, message_status, note) = match decision {
            Decision::Approve => (BatchStatus::Approved, MessageStatus::Queued, None),
            Decision::Reject(why) => (
                BatchStatus::Rejected,
                MessageStatus::Rejected,
                Some(why.as_str()),
            ),
        };
        sqlx::query(
            "UPDATE batches SET status = $2, decided_by = $3, decided_at = $4, decision_note = $5
             WHERE id = $1",
        )
        .bind(id.0)
        .bind(batch_status.as_str())
        .bind(actor)
        .bind(now)
        .bind(note)
        .execute(&mut *tx)
        .await?;
        let event_note = match decision {
            Decision::Approve => "batch approved".to_owned(),
            Decision::Reject(why) => format!("batch rejected: {why}"),
        };
        sqlx::query(
            "INSERT INTO message_events (message_id, at, status, reason, actor, note)
             SELECT id, $2, $3, NULL, $4, $5 FROM messages
             WHERE batch_id = $1 AND status = 'awaiting_approval'",
        )
        .bind(id.0)
        .bind(now)
        .bind(message_status.as_str())
        .bind(actor)
        .bind(&event_note)
        .execute(&mut *tx)
        .await?;
        let moved = sqlx::query(
            "UPDATE messages SET status = $2, reason = NULL, updated_at = $3,
                    next_attempt_at = CASE WHEN $2 = 'queued' THEN $3 END
             WHERE batch_id = $1 AND status = 'awaiting_approval'",
        )
        .bind(id.0)
        .bind(message_status.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        insert_audit(&mut tx, &audit.with_detail("messages", moved)).await?;
        tx.commit().await?;
        // An approved batch is a queue the planner has not seen yet.
        if matches!(decision, Decision::Approve) {
            self.count_queued(moved);
            self.refresh_statistics(ANALYZE_QUEUE).await;
        }
        Ok(Decided::Done(moved))
    }

    async fn decide_messages(
        &self,
        batch: BatchId,
        ids: &[MessageId],
        decision: &Decision,
        seen: &str,
        audit: &AuditEntry,
    ) -> Result<Decided> {
        let (actor, now) = (audit.actor.as_str(), audit.at);
        let mut tx = self.begin_write().await?;
        if let Some(refused) = check_undecided(&mut tx, batch, seen).await? {
            return Ok(refused);
        }
        let (status, note) = match decision {
            Decision::Approve => (MessageStatus::Queued, "message approved".to_owned()),
            Decision::Reject(why) => (MessageStatus::Rejected, format!("message rejected: {why}")),
        };
        let ids = id_list(ids.iter().map(|m| m.0));
        sqlx::query(concat!(
            "INSERT INTO message_events (message_id, at, status, reason, actor, note)
             SELECT id, $2, $3, NULL, $4, $5 FROM messages
             WHERE batch_id = $1 AND status = 'awaiting_approval' AND id",
            in_list!("$6")
        ))
        .bind(batch.0)
        .bind(now)
        .bind(status.as_str())
        .bind(actor)
        .bind(&note)
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
        let moved = sqlx::query(concat!(
            "UPDATE messages SET status = $2, reason = NULL, updated_at = $3,
                    next_attempt_at = CASE WHEN $2 = 'queued' THEN $3 END
             WHERE batch_id = $1 AND status = 'awaiting_approval' AND id",
            in_list!("$4")
        ))
        .bind(batch.0)
        .bind(status.as_str())
        .bind(now)
        .bind(&ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        insert_audit(&mut tx, &audit.with_detail("messages", moved)).await?;
        tx.commit().await?;
        if matches!(decision, Decision::Approve) {
            self.count_queued(moved);
            self.refresh_statistics(ANALYZE_QUEUE).await;
        }
        Ok(Decided::Done(moved))
    }

    async fn batch_state(&self, id: BatchId) -> Result<Option<String>> {
        let mut conn = self.reads.acquire().await?;
        batch_state(&mut conn, id, false).await
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        kinds: &[MessageKind],
        owner: &str,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Claimed>> {
        // System messages (a password reset) first, then the others, oldest due
        // first: two claims, each in the order of its own partial index, so a claim
        // reads `limit` entries of an index instead of sorting the whole queue.
        let mut claimed = Vec::new();
        if kinds.contains(&MessageKind::System) {
            claimed = self
                .claim_in_order(CLAIM_SYSTEM, now, None, owner, lease_until, limit)
                .await?;
        }
        let others: Vec<&str> = kinds
            .iter()
            .filter(|k| **k != MessageKind::System)
            .map(|k| k.as_str())
            .collect();
        let left = limit.saturating_sub(claimed.len() as u32);
        if left > 0 && !others.is_empty() {
            let more = self
                .claim_in_order(
                    CLAIM_OTHERS,
                    now,
                    Some(text_list(others)),
                    owner,
                    lease_until,
                    left,
                )
                .await?;
            claimed.extend(more);
        }
        Ok(claimed)
    }

    async fn has_due(&self, now: DateTime<Utc>, kinds: &[MessageKind]) -> Result<bool> {
        let kinds = text_list(kinds.iter().map(|k| k.as_str()));
        Ok(sqlx::query_scalar(concat!(
            "SELECT EXISTS (SELECT 1 FROM messages
                            WHERE status = 'queued' AND next_attempt_at <= $1
                              AND kind",
            in_list!("$2"),
            ")"
        ))
        .bind(now)
        .bind(kinds)
        .fetch_one(&self.reads)
        .await?)
    }

    async fn reclaim_expired(
        &self,
        now: DateTime<Utc>,
        max_attempts: u32,
        repeats_recognised: &[Channel],
    ) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let expired: Vec<Unfinished> = sqlx::query_as(concat!(
            unfinished_columns!(),
            " WHERE status = 'sending' AND lease_until < $1",
            skip_locked!()
        ))
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for m in &expired {
            let detail = format!(
                "dispatcher {} claimed the message and did not finish before its lease ran \
                 out ({})",
                m.lease_owner.as_deref().unwrap_or("?"),
                m.lease_until.map(|u| u.to_rfc3339()).unwrap_or_default()
            );
            abandon(
                &mut tx,
                m,
                &detail,
                Some(max_attempts),
                "lease expired: reclaimed",
                now,
                repeats_recognised,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(expired.len() as u64)
    }

    async fn hand_over(
        &self,
        id: MessageId,
        claim: i64,
        now: DateTime<Utc>,
        lease_needed_until: DateTime<Utc>,
    ) -> Result<bool> {
        hand_over(
            &mut *self.pool.acquire().await?,
            id,
            claim,
            now,
            lease_needed_until,
        )
        .await
    }

    async fn finish(
        &self,
        id: MessageId,
        owner: &str,
        claim: i64,
        finish: &Finish,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let ending = Ending {
            id,
            claim,
            finish,
            at: now,
        };
        let recorded = finish_claims(&mut tx, owner, &[ending]).await?;
        tx.commit().await?;
        Ok(recorded[0])
    }

    async fn record(&self, owner: &str, writes: &[Write]) -> Result<Vec<Written>> {
        let mut tx = self.begin_write().await?;
        let mut written = Vec::with_capacity(writes.len());
        // Hand-overs one by one, in order; the reservations after them, together, and
        // the outcomes last, together (no message has two writes in one group: each waits for the
        // answer to its last before it makes the next).
        let (mut places, mut endings) = (Vec::new(), Vec::new());
        let (mut reserving, mut reserves) = (Vec::new(), Vec::new());
        for (at, write) in writes.iter().enumerate() {
            written.push(match write {
                Write::HandOver {
                    id,
                    claim,
                    at,
                    lease_needed_until,
                } => Written::HandedOver(
                    hand_over(&mut tx, *id, *claim, *at, *lease_needed_until).await?,
                ),
                Write::Reserve {
                    id,
                    claim,
                    points,
                    at: when,
                } => {
                    reserving.push(at);
                    reserves.push(super::admin::Reserving {
                        id: *id,
                        claim: *claim,
                        points: *points,
                        at: *when,
                    });
                    Written::Reserved(Reservation::ClaimLost)
                }
                Write::Finish {
                    id,
                    claim,
                    finish,
                    at: when,
                } => {
                    places.push(at);
                    endings.push(Ending {
                        id: *id,
                        claim: *claim,
                        finish,
                        at: *when,
                    });
                    Written::Finished(false)
                }
            });
        }
        for (places, asked) in reserving
            .chunks(FINISH_CHUNK)
            .zip(reserves.chunks(FINISH_CHUNK))
        {
            let answers = super::admin::reserve_many(&mut tx, asked).await?;
            for (at, answer) in places.iter().zip(answers) {
                written[*at] = Written::Reserved(answer);
            }
        }
        for (places, endings) in places
            .chunks(FINISH_CHUNK)
            .zip(endings.chunks(FINISH_CHUNK))
        {
            let recorded = finish_claims(&mut tx, owner, endings).await?;
            for (at, recorded) in places.iter().zip(recorded) {
                written[*at] = Written::Finished(recorded);
            }
        }
        tx.commit().await?;
        Ok(written)
    }

    async fn cancel_batch(&self, id: BatchId, audit: &AuditEntry) -> Result<u64> {
        let (actor, now) = (audit.actor.as_str(), audit.at);
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO message_events (message_id, at, status, reason, actor, note)
             SELECT id, $2, 'cancelled', NULL, $3, 'batch cancelled by an operator'
             FROM messages WHERE batch_id = $1 AND status IN ('awaiting_approval', 'queued')",
        )
        .bind(id.0)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        // Queued messages hold no credit (it is reserved only while sending).
        let done = sqlx::query(
            "UPDATE messages SET status = 'cancelled', reason = NULL, next_attempt_at = NULL,
                    updated_at = $2
             WHERE batch_id = $1 AND status IN ('awaiting_approval', 'queued')",
        )
        .bind(id.0)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_audit(
            &mut tx,
            &audit.with_detail("messages", done.rows_affected()),
        )
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn edit_batch(
        &self,
        id: BatchId,
        edit: &BatchEdit,
        audit: &AuditEntry,
    ) -> Result<Option<u64>> {
        let (actor, now) = (audit.actor.as_str(), audit.at);
        let BatchEdit {
            channel,
            subject,
            body,
            html,
            segments,
        } = edit;
        let (subject, html) = (subject.as_deref(), html.as_deref());
        let mut tx = self.begin_write().await?;
        let found = sqlx::query(
            "UPDATE batches
             SET subject = CASE WHEN channel = $4 THEN $2 ELSE subject END,
                 body = CASE WHEN channel = $4 THEN $3 ELSE body END,
                 html = CASE WHEN channel = $4 THEN $5 ELSE html END,
                 status = 'awaiting_approval',
                 decided_by = NULL, decided_at = NULL, decision_note = NULL
             WHERE id = $1 AND status IN ('awaiting_approval', 'approved')",
        )
        .bind(id.0)
        .bind(subject)
        .bind(body)
        .bind(channel.as_str())
        .bind(html)
        .execute(&mut *tx)
        .await?;
        if found.rows_affected() == 0 {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO message_events (message_id, at, status, reason, actor, note)
             SELECT id, $2, 'awaiting_approval', 'awaiting_approval', $3,
                    'batch edited: back to approval'
             FROM messages WHERE batch_id = $1 AND status IN ('awaiting_approval', 'queued')",
        )
        .bind(id.0)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE messages
             SET status = 'awaiting_approval', reason = 'awaiting_approval',
                 next_attempt_at = NULL, updated_at = $2
             WHERE batch_id = $1 AND status IN ('awaiting_approval', 'queued')",
        )
        .bind(id.0)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Blocked messages never go, but they carry the batch's text too (the
        // approver's view shows samples from them, and must not show the old text);
        // the count is of the messages that will go with the new text.
        let edited = sqlx::query(
            "UPDATE messages SET subject = $2, body = $3, segments = $4, html = $6
             WHERE batch_id = $1 AND channel = $5
               AND status IN ('awaiting_approval', 'blocked')
             RETURNING status",
        )
        .bind(id.0)
        .bind(subject)
        .bind(body)
        .bind(segments)
        .bind(channel.as_str())
        .bind(html)
        .fetch_all(&mut *tx)
        .await?;
        let edited = edited
            .iter()
            .filter(|row| {
                row.try_get::<String, _>("status")
                    .is_ok_and(|s| s != "blocked")
            })
            .count() as u64;
        insert_audit(&mut tx, &audit.with_detail("messages", edited)).await?;
        tx.commit().await?;
        Ok(Some(edited))
    }

    async fn expire_approvals(
        &self,
        approved_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<BatchId>> {
        let mut tx = self.begin_write().await?;
        let stale: Vec<i64> = sqlx::query_scalar(
            "SELECT b.id FROM batches b
             WHERE b.status = 'approved' AND b.decided_at < $1
               -- A rule that needs no approval was not approved by anyone: nothing
               -- of it can go stale.
               AND coalesce(b.decided_by, '') NOT LIKE 'rule:%'
               AND EXISTS (SELECT 1 FROM messages m
                           WHERE m.batch_id = b.id AND m.status = 'queued')",
        )
        .bind(approved_before)
        .fetch_all(&mut *tx)
        .await?;
        for id in &stale {
            sqlx::query(
                "UPDATE batches SET status = 'awaiting_approval',
                        decision_note = 'approval expired unused'
                 WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO message_events (message_id, at, status, reason, actor, note)
                 SELECT id, $2, 'awaiting_approval', 'approval_expired', NULL,
                        'the approval expired unused'
                 FROM messages WHERE batch_id = $1 AND status = 'queued'",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE messages SET status = 'awaiting_approval', reason = 'approval_expired',
                        next_attempt_at = NULL, updated_at = $2
                 WHERE batch_id = $1 AND status = 'queued'",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(stale.into_iter().map(BatchId).collect())
    }

    async fn act_on_message(
        &self,
        id: MessageId,
        action: MessageAction,
        audit: &AuditEntry,
    ) -> Result<ActionResult> {
        let (actor, now) = (audit.actor.as_str(), audit.at);
        let mut tx = self.begin_write().await?;
        let status: Option<String> = sqlx::query_scalar(concat!(
            "SELECT status FROM messages WHERE id = $1",
            for_update!()
        ))
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(status) = status else {
            return Ok(ActionResult::NotFound);
        };
        let status: MessageStatus = parse_code("messages.status", &status)?;
        if !action.applies_to().contains(&status) {
            return Ok(ActionResult::NotApplicable(status));
        }
        let (new_status, note) = match action {
            MessageAction::Resend => (MessageStatus::Queued, "resent by an operator"),
            MessageAction::Cancel => (MessageStatus::Cancelled, "cancelled by an operator"),
        };
        // Points held for an `unknown` SMS go back; a resend reserves them again.
        settle(&mut tx, id.0, false, now).await?;
        // A failed message sent again is a new send to the gateways (a new key);
        // an `unknown` one is the same send tried again, which they deduplicate.
        sqlx::query(
            "UPDATE messages
             SET status = $2, reason = NULL, updated_at = $3,
                 next_attempt_at = CASE WHEN $2 = 'queued' THEN $3 END,
                 send_generation = send_generation
                     + CASE WHEN $4 = 'failed' AND $2 = 'queued' THEN 1 ELSE 0 END
             WHERE id = $1",
        )
        .bind(id.0)
        .bind(new_status.as_str())
        .bind(now)
        .bind(status.as_str())
        .execute(&mut *tx)
        .await?;
        super::reports::close_pending(&mut tx, id.0).await?;
        insert_event(&mut tx, id.0, now, new_status, None, Some(actor), note).await?;
        insert_audit(&mut tx, &audit.with_detail("status_before", status)).await?;
        tx.commit().await?;
        Ok(ActionResult::Done(status))
    }

    async fn release(
        &self,
        claims: &[(MessageId, i64)],
        owner: &str,
        now: DateTime<Utc>,
        repeats_recognised: &[Channel],
    ) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let mut released = 0;
        for (id, claim) in claims {
            let claimed: Option<Unfinished> = sqlx::query_as(concat!(
                unfinished_columns!(),
                " WHERE id = $1 AND status = 'sending' AND lease_owner = $2 AND claim = $3",
                for_update!()
            ))
            .bind(id.0)
            .bind(owner)
            .bind(claim)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(m) = claimed {
                let detail = "the dispatcher stopped before the send finished";
                abandon(
                    &mut tx,
                    &m,
                    detail,
                    None,
                    "released by a stopping dispatcher",
                    now,
                    repeats_recognised,
                )
                .await?;
                released += 1;
            }
        }
        tx.commit().await?;
        Ok(released)
    }

    async fn messages(&self, filter: &MessageFilter) -> Result<Vec<MessageView>> {
        let query = sqlx::query(concat!(
            "SELECT m.id, m.batch_id, m.kind, m.channel, m.recipient_id, m.recipient_external_id,
                    m.address, m.subject, m.status, m.reason, m.created_at, m.sent_at,
                    m.next_attempt_at, m.attempts, m.segments
             FROM messages m WHERE ",
            message_filter!(),
            " ORDER BY m.id DESC LIMIT $10"
        ));
        let rows = bind_filter(query, filter)
            .bind(filter.limit.unwrap_or(i64::MAX))
            .fetch_all(&self.reads)
            .await?;
        rows.into_iter()
            .map(|row| {
                Ok(MessageView {
                    id: MessageId(row.try_get("id")?),
                    batch_id: row.try_get::<Option<i64>, _>("batch_id")?.map(BatchId),
                    kind: parse_code("messages.kind", &row.try_get::<String, _>("kind")?)?,
                    channel: parse_code("messages.channel", &row.try_get::<String, _>("channel")?)?,
                    recipient_id: row
                        .try_get::<Option<i64>, _>("recipient_id")?
                        .map(RecipientId),
                    recipient: row.try_get("recipient_external_id")?,
                    address: row.try_get("address")?,
                    subject: row.try_get("subject")?,
                    status: parse_code("messages.status", &row.try_get::<String, _>("status")?)?,
                    reason: parse_reason(row.try_get("reason")?)?,
                    created_at: row.try_get("created_at")?,
                    sent_at: row.try_get("sent_at")?,
                    next_attempt_at: row.try_get("next_attempt_at")?,
                    attempts: row.try_get("attempts")?,
                    segments: row.try_get("segments")?,
                })
            })
            .collect()
    }

    async fn message_counts(&self, filter: &MessageFilter) -> Result<Vec<StatusCount>> {
        let query = sqlx::query(concat!(
            "SELECT m.status, m.reason, count(*) AS n FROM messages m WHERE ",
            message_filter!(),
            " GROUP BY m.status, m.reason ORDER BY count(*) DESC, m.status, m.reason"
        ));
        let rows = bind_filter(query, filter).fetch_all(&self.reads).await?;
        rows.into_iter()
            .map(|row| {
                Ok(StatusCount {
                    status: parse_code("messages.status", &row.try_get::<String, _>("status")?)?,
                    reason: parse_reason(row.try_get("reason")?)?,
                    count: row.try_get("n")?,
                })
            })
            .collect()
    }

    async fn attempts(&self, id: MessageId) -> Result<Vec<Attempt>> {
        let rows: Vec<(
            DateTime<Utc>,
            String,
            Option<i64>,
            Option<String>,
            Option<String>,
        )> = sqlx::query_as(
            "SELECT started_at, outcome, code, detail, provider_id FROM attempts
                 WHERE message_id = $1 ORDER BY number, id",
        )
        .bind(id.0)
        .fetch_all(&self.reads)
        .await?;
        rows.into_iter()
            .map(|(started_at, outcome, code, detail, provider_id)| {
                let outcome = match outcome.as_str() {
                    "sent" => AttemptOutcome::Sent,
                    "transient" => AttemptOutcome::Transient,
                    "permanent" => AttemptOutcome::Permanent,
                    "unknown" => AttemptOutcome::Unknown,
                    "abandoned" => AttemptOutcome::Abandoned,
                    other => {
                        return Err(StoreError::Corrupt {
                            column: "attempts.outcome",
                            value: other.to_owned(),
                        });
                    }
                };
                Ok(Attempt {
                    started_at,
                    outcome,
                    code,
                    detail: detail.unwrap_or_default(),
                    provider_id,
                })
            })
            .collect()
    }

    async fn record_pass(
        &self,
        worker: &str,
        counts: &PassCounts,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO dispatcher_passes
                (worker, finished_at, sent, retried, failed, held, blocked)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (worker) DO UPDATE SET
                finished_at = excluded.finished_at, sent = excluded.sent,
                retried = excluded.retried, failed = excluded.failed, held = excluded.held,
                blocked = excluded.blocked",
        )
        .bind(worker)
        .bind(now)
        .bind(counts.sent as i64)
        .bind(counts.retried as i64)
        .bind(counts.failed as i64)
        .bind(counts.held as i64)
        .bind(counts.blocked as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn last_pass(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(
            sqlx::query_scalar("SELECT max(finished_at) FROM dispatcher_passes")
                .fetch_one(&self.reads)
                .await?,
        )
    }

    async fn sample_messages(&self, batch: BatchId) -> Result<Vec<SampleMessage>> {
        let rows: Vec<(
            String,
            Option<String>,
            String,
            Option<String>,
            String,
            Option<String>,
        )> = sqlx::query_as(
            "SELECT m.channel, r.locale, m.recipient_external_id, m.subject, m.body, m.html
                 FROM messages m LEFT JOIN recipients r ON r.id = m.recipient_id
                 WHERE m.id IN (
                     SELECT coalesce(min(CASE WHEN m2.status <> 'blocked' THEN m2.id END),
                                     min(m2.id))
                     FROM messages m2
                     LEFT JOIN recipients r2 ON r2.id = m2.recipient_id
                     WHERE m2.batch_id = $1
                     GROUP BY m2.channel, r2.locale)
                 ORDER BY m.channel, r.locale",
        )
        .bind(batch.0)
        .fetch_all(&self.reads)
        .await?;
        rows.into_iter()
            .map(|(channel, locale, recipient, subject, body, html)| {
                Ok(SampleMessage {
                    channel: parse_code("messages.channel", &channel)?,
                    locale,
                    recipient,
                    subject,
                    body,
                    html,
                })
            })
            .collect()
    }

    async fn sent_since(
        &self,
        recipient: RecipientId,
        channel: Channel,
        kind: MessageKind,
        since: DateTime<Utc>,
        except: MessageId,
    ) -> Result<i64> {
        // Messages in flight count too, as a pass sends several at once; only the
        // older ones, so that of two in flight the older goes and the newer waits.
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages
             WHERE recipient_id = $1 AND channel = $2 AND kind = $3 AND id <> $5
               AND ((status IN ('sent', 'delivered') AND sent_at >= $4)
                    OR (status = 'sending' AND id < $5))",
        )
        .bind(recipient.0)
        .bind(channel.as_str())
        .bind(kind.as_str())
        .bind(since)
        .bind(except.0)
        .fetch_one(&self.reads)
        .await?;
        Ok(n)
    }
}

#[async_trait]
impl CoordinationStore for Backend {
    async fn try_lead(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        // One statement: take the lease if it is free, ours, or expired.
        let holder: Option<String> = sqlx::query_scalar(
            "INSERT INTO leader_leases (name, owner, until) VALUES ($1, $2, $4)
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
             WHERE leader_leases.owner = excluded.owner OR leader_leases.until < $3
             RETURNING owner",
        )
        .bind(name)
        .bind(owner)
        .bind(now)
        .bind(until)
        .fetch_optional(&self.pool)
        .await?;
        Ok(holder.as_deref() == Some(owner))
    }

    async fn resign(&self, name: &str, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM leader_leases WHERE name = $1 AND owner = $2")
            .bind(name)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn wakeups(&self) -> Result<Option<std::sync::Arc<tokio::sync::Notify>>> {
        self.listen_for_wakeups().await
    }
}

/// The columns a claim returns, for [`Claimed`].
macro_rules! claimed_columns {
    () => {
        "id, batch_id, kind, channel, recipient_id, subject, body, html, relevance, \
         expires_at, attempts, created_at, segments, send_generation, claim"
    };
}

/// Claims due system messages, oldest due first; one statement (SQLite runs it under
/// its single write lock, PostgreSQL skips the rows another instance is claiming
/// right now rather than waiting for them, so a row is never claimed twice). The
/// subquery walks the partial index `messages_due_system`, not the history.
const CLAIM_SYSTEM: &str = concat!(
    "UPDATE messages
     SET status = 'sending', lease_owner = $1, lease_until = $2, updated_at = $3,
         claim = claim + 1, handed_at = NULL
     WHERE id IN (
         SELECT id FROM messages
         WHERE status = 'queued' AND kind = 'system' AND next_attempt_at <= $3
         ORDER BY next_attempt_at, id
         LIMIT $4",
    skip_locked!(),
    ")
     RETURNING ",
    claimed_columns!()
);

/// The same for the other kinds named in `$5`, walking `messages_due`.
const CLAIM_OTHERS: &str = concat!(
    "UPDATE messages
     SET status = 'sending', lease_owner = $1, lease_until = $2, updated_at = $3,
         claim = claim + 1, handed_at = NULL
     WHERE id IN (
         SELECT id FROM messages
         WHERE status = 'queued' AND next_attempt_at <= $3
           AND kind",
    in_list!("$5"),
    "
         ORDER BY next_attempt_at, id
         LIMIT $4",
    skip_locked!(),
    ")
     RETURNING ",
    claimed_columns!()
);

impl Backend {
    /// Runs one of the claims above (`kinds` binds `$5` for [`CLAIM_OTHERS`]).
    async fn claim_in_order(
        &self,
        sql: &'static str,
        now: DateTime<Utc>,
        kinds: Option<TextList>,
        owner: &str,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Claimed>> {
        let mut query = sqlx::query(sql)
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .bind(i64::from(limit));
        if let Some(kinds) = kinds {
            query = query.bind(kinds);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut claimed = rows
            .into_iter()
            .map(|row| {
                Ok(Claimed {
                    id: MessageId(row.try_get("id")?),
                    batch_id: row.try_get::<Option<i64>, _>("batch_id")?.map(BatchId),
                    kind: parse_code("messages.kind", &row.try_get::<String, _>("kind")?)?,
                    channel: parse_code("messages.channel", &row.try_get::<String, _>("channel")?)?,
                    recipient_id: row
                        .try_get::<Option<i64>, _>("recipient_id")?
                        .map(RecipientId),
                    subject: row.try_get("subject")?,
                    body: row.try_get("body")?,
                    html: row.try_get("html")?,
                    relevance: row.try_get("relevance")?,
                    expires_at: row.try_get("expires_at")?,
                    attempts: row.try_get::<i64, _>("attempts")?.try_into().unwrap_or(0),
                    created_at: row.try_get("created_at")?,
                    segments: row.try_get("segments")?,
                    generation: row.try_get("send_generation")?,
                    claim: row.try_get("claim")?,
                    lease_until,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // RETURNING gives rows in no particular order.
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }
}
