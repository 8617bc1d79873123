//! Writing a batch's messages many rows to a statement: a batch to all groups is tens
//! of thousands of messages, and a statement per message (and another per event)
//! spends its time on round trips to the database, not on writing rows.

use super::*;

/// Parameters each message row binds (the columns of [`insert_messages`]).
const BINDS_PER_MESSAGE: usize = 18;

/// Rows per `INSERT`: as many as fit under SQLite's limit of 32,766 bound parameters
/// (PostgreSQL's 65,535 is higher; one size serves both). Fewer, larger statements
/// stop paying off long before the limit, but the limit is the one number that must
/// hold, so the chunk is sized by it.
pub(super) const MESSAGES_PER_INSERT: usize = 32_766 / BINDS_PER_MESSAGE;

/// Inserts `messages` into batch `batch`, in order (their ids ascend as the slice
/// does), each with its `created` event naming `actor`: what [`insert_message`] does
/// for one message, for all of them in a few statements. Runs inside the caller's
/// transaction, which makes the whole batch land or none of it.
pub(super) async fn insert_messages(
    conn: &mut DbConn,
    batch: i64,
    messages: &[NewMessage],
    actor: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    for chunk in messages.chunks(MESSAGES_PER_INSERT) {
        let mut q = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO messages
                (batch_id, kind, channel, recipient_id, recipient_external_id, address, subject,
                 body, status, reason, next_attempt_at, created_at, updated_at, segments, html,
                 occurrence_key, relevance, expires_at) ",
        );
        q.push_values(chunk, |mut row, m| {
            let due = (m.status == MessageStatus::Queued).then_some(now);
            row.push_bind(batch)
                .push_bind(m.kind.as_str())
                .push_bind(m.channel.as_str())
                .push_bind(m.recipient_id.map(|r| r.0))
                .push_bind(m.recipient_external_id.as_str())
                .push_bind(m.address.as_deref())
                .push_bind(m.subject.as_deref())
                .push_bind(m.body.as_str())
                .push_bind(m.status.as_str())
                .push_bind(m.reason.map(Reason::as_str))
                .push_bind(due)
                .push_bind(now)
                .push_bind(now)
                .push_bind(m.segments)
                .push_bind(m.html.as_deref())
                .push_bind(m.occurrence_key.as_deref())
                .push_bind(m.relevance.as_deref())
                .push_bind(m.expires_at);
        });
        q.build().execute(&mut *conn).await?;
    }
    // The batch is new in this transaction, so its messages are exactly these: one
    // statement writes every `created` event, as `insert_event` would one by one.
    sqlx::query(
        "INSERT INTO message_events (message_id, at, status, reason, actor, note)
         SELECT id, $2, status, reason, $3, 'created' FROM messages
         WHERE batch_id = $1 ORDER BY id",
    )
    .bind(batch)
    .bind(now)
    .bind(actor)
    .execute(conn)
    .await?;
    Ok(())
}
