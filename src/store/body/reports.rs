//! Delivery reports: kept as they came, applied to their message forward only.

use super::*;
use crate::domain::report::{DeliveryReport, ReportEffect, ReportState};
use crate::store::{ReportRecord, ReportStore};

/// The message a report is about, locked: by Herald's key where the gateway echoed it
/// (it names the message even before the gateway's id is recorded), otherwise by the
/// gateway's id on an attempt the gateway accepted.
async fn find_message(conn: &mut DbConn, r: &DeliveryReport) -> Result<Option<Found>> {
    if let Some(key) = r.key {
        let row: Option<(String, DateTime<Utc>, i64)> = sqlx::query_as(concat!(
            "SELECT status, created_at, send_generation FROM messages
             WHERE id = $1 AND channel = 'sms'",
            for_update!()
        ))
        .bind(key.id.0)
        .fetch_optional(&mut *conn)
        .await?;
        // A key whose time does not match is another database's message of that id.
        if let Some((status, created_at, generation)) = row
            && created_at.timestamp() == key.created
        {
            let stale = generation != key.generation || replaced(conn, key.id.0, r).await?;
            return Ok(Some(Found {
                id: key.id.0,
                status,
                stale,
            }));
        }
    }
    let Some(provider_id) = r.provider_id.as_deref() else {
        return Ok(None);
    };
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT message_id FROM attempts WHERE provider_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(provider_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(id) = id else { return Ok(None) };
    let status: Option<String> = sqlx::query_scalar(concat!(
        "SELECT status FROM messages WHERE id = $1",
        for_update!()
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    match status {
        Some(status) => Ok(Some(Found {
            id,
            stale: replaced(conn, id, r).await?,
            status,
        })),
        None => Ok(None),
    }
}

/// A message a report names.
struct Found {
    id: i64,
    status: String,
    /// The report is about an earlier send of the message than its latest.
    stale: bool,
}

/// Whether the message's latest attempt was accepted under another gateway id than
/// the report's: the report is about a send that was replaced since (a Twilio SMS sent
/// again after its outcome was unknown gets a new sid).
async fn replaced(conn: &mut DbConn, id: i64, r: &DeliveryReport) -> Result<bool> {
    let Some(reported) = r.provider_id.as_deref() else {
        return Ok(false);
    };
    let latest: Option<Option<String>> = sqlx::query_scalar(
        "SELECT provider_id FROM attempts WHERE message_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(matches!(latest, Some(Some(latest)) if latest != reported))
}

/// What a report in `state` does to a message in `status`.
fn effect_on(status: &str, state: ReportState) -> ReportEffect {
    if !matches!(state, ReportState::Delivered | ReportState::Undelivered) {
        return ReportEffect::NoChange;
    }
    match status.parse::<MessageStatus>() {
        Ok(MessageStatus::Sent | MessageStatus::Unknown) => ReportEffect::Applied,
        // The gateway answered faster than Herald recorded its answer, or the
        // acceptance was lost and a retry under the same key is due.
        Ok(MessageStatus::Sending | MessageStatus::Queued) => ReportEffect::Pending,
        _ => ReportEffect::NoChange,
    }
}

/// Moves message `id` to `delivered` or `failed` (reason `undelivered`) with its
/// event; the points of a message whose outcome was unknown are charged, since the
/// gateway took it.
async fn apply(
    conn: &mut DbConn,
    id: i64,
    state: ReportState,
    note: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let (status, reason) = match state {
        ReportState::Delivered => (MessageStatus::Delivered, None),
        _ => (MessageStatus::Failed, Some(Reason::Undelivered)),
    };
    sqlx::query("UPDATE messages SET status = $2, reason = $3, updated_at = $4 WHERE id = $1")
        .bind(id)
        .bind(status.as_str())
        .bind(reason.map(Reason::as_str))
        .bind(now)
        .execute(&mut *conn)
        .await?;
    super::outbox::settle(conn, id, true, now).await?;
    insert_event(conn, id, now, status, reason, None, note).await
}

/// The event's words for a report.
fn note_of(gateway: &str, status: &str, at: Option<DateTime<Utc>>) -> String {
    match at {
        Some(at) => format!(
            "delivery report from {gateway}: {status} (at {})",
            at.to_rfc3339()
        ),
        None => format!("delivery report from {gateway}: {status}"),
    }
}

/// A pending report: id, gateway, state, status, reported at.
type PendingReport = (i64, String, String, String, Option<DateTime<Utc>>);

/// Applies the first report kept pending for message `id`, now that the gateway's
/// acceptance (or an unknown outcome) is recorded; the others change nothing.
pub(super) async fn apply_pending(conn: &mut DbConn, id: i64, now: DateTime<Utc>) -> Result<()> {
    let first: Option<PendingReport> = sqlx::query_as(
        "SELECT id, gateway, state, status, reported_at FROM delivery_reports
         WHERE message_id = $1 AND effect = 'pending' ORDER BY id LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((first, gateway, state, status, at)) = first else {
        return Ok(());
    };
    let state: ReportState = parse_code("delivery_reports.state", &state)?;
    apply(conn, id, state, &note_of(&gateway, &status, at), now).await?;
    sqlx::query(
        "UPDATE delivery_reports
         SET effect = CASE WHEN id = $2 THEN 'applied' ELSE 'no_change' END
         WHERE message_id = $1 AND effect = 'pending'",
    )
    .bind(id)
    .bind(first)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Closes the reports kept pending for message `id`, which will now never be
/// accepted as it stands (it failed, was cancelled or is sent again): they change
/// nothing. A report that said "delivered" for a message Herald recorded as failed
/// is kept, with its effect, for diagnosis.
pub(super) async fn close_pending(conn: &mut DbConn, id: i64) -> Result<()> {
    sqlx::query(
        "UPDATE delivery_reports SET effect = 'no_change'
         WHERE message_id = $1 AND effect = 'pending'",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl ReportStore for Backend {
    async fn record_report(&self, r: &DeliveryReport, now: DateTime<Utc>) -> Result<ReportEffect> {
        let mut tx = self.begin_write().await?;
        let found = find_message(&mut tx, r).await?;
        let effect = match &found {
            None => ReportEffect::UnknownMessage,
            Some(f) if f.stale => ReportEffect::NoChange,
            Some(f) => effect_on(&f.status, r.state),
        };
        if let (Some(f), ReportEffect::Applied) = (&found, effect) {
            let note = note_of(r.gateway, &r.status, r.at);
            apply(&mut tx, f.id, r.state, &note, now).await?;
        }
        sqlx::query(
            "INSERT INTO delivery_reports
                (gateway, message_key, provider_id, message_id, state, status, reported_at,
                 received_at, effect)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(r.gateway)
        .bind(r.key.map(|k| k.to_string()))
        .bind(r.provider_id.as_deref())
        .bind(found.as_ref().map(|f| f.id))
        .bind(r.state.as_str())
        .bind(&r.status)
        .bind(r.at)
        .bind(now)
        .bind(effect.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(effect)
    }

    async fn reports(&self, id: MessageId) -> Result<Vec<ReportRecord>> {
        let rows: Vec<(
            String,
            String,
            String,
            Option<DateTime<Utc>>,
            DateTime<Utc>,
            String,
        )> = sqlx::query_as(
            "SELECT gateway, state, status, reported_at, received_at, effect
             FROM delivery_reports WHERE message_id = $1 ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(&self.reads)
        .await?;
        rows.into_iter()
            .map(
                |(gateway, state, status, reported_at, received_at, effect)| {
                    Ok(ReportRecord {
                        gateway,
                        state: parse_code("delivery_reports.state", &state)?,
                        status,
                        reported_at,
                        received_at,
                        effect: parse_code("delivery_reports.effect", &effect)?,
                    })
                },
            )
            .collect()
    }
}
