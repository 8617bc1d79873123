//! Writing messages many rows to a statement: a batch to all groups is tens of
//! thousands of messages, and a statement per message (and another per event) spends
//! its time on round trips to the database, not on writing rows. A value that every
//! row of a statement has alike (the batch, the time, the text of a batch that is not
//! rendered per person) is bound once, in the statement's `SELECT`, instead of being
//! copied into the statement once per row.

use super::*;

/// The columns a message row writes, in the order of [`cells`].
const COLUMNS: [&str; 18] = [
    "batch_id",
    "kind",
    "channel",
    "recipient_id",
    "recipient_external_id",
    "address",
    "subject",
    "body",
    "status",
    "reason",
    "next_attempt_at",
    "created_at",
    "updated_at",
    "segments",
    "html",
    "occurrence_key",
    "relevance",
    "expires_at",
];

/// Rows per `INSERT`: as many as fit under SQLite's limit of 32,766 bound parameters
/// when no value is shared (PostgreSQL's 65,535 is higher; one size serves both).
/// Fewer, larger statements stop paying off long before the limit, but the limit is
/// the one number that must hold, so the chunk is sized by it.
pub(super) const MESSAGES_PER_INSERT: usize = 32_766 / COLUMNS.len();

/// Whether a statement of `rows` rows is kept prepared on its connection. One row's
/// text is always the same, and a full chunk's comes in a few forms (which columns
/// are shared); other sizes vary with every batch and rule run, and a prepared
/// statement of a thousand rows holds megabytes of SQLite's memory, so those are
/// parsed each time and let go.
fn kept_prepared(rows: usize) -> bool {
    rows == 1 || rows == MESSAGES_PER_INSERT
}

/// One value of a message row, borrowed from the message.
#[derive(Clone, Copy, PartialEq)]
enum Cell<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
    Time(Option<DateTime<Utc>>),
}

/// A message's row: its values in the order of [`COLUMNS`].
fn cells<'a>(batch: Option<i64>, m: &'a NewMessage, now: DateTime<Utc>) -> [Cell<'a>; 18] {
    let due = (m.status == MessageStatus::Queued).then_some(now);
    [
        Cell::Int(batch),
        Cell::Text(Some(m.kind.as_str())),
        Cell::Text(Some(m.channel.as_str())),
        Cell::Int(m.recipient_id.map(|r| r.0)),
        Cell::Text(Some(&m.recipient_external_id)),
        Cell::Text(m.address.as_deref()),
        Cell::Text(m.subject.as_deref()),
        Cell::Text(Some(&m.body)),
        Cell::Text(Some(m.status.as_str())),
        Cell::Text(m.reason.map(Reason::as_str)),
        Cell::Time(due),
        Cell::Time(Some(now)),
        Cell::Time(Some(now)),
        Cell::Int(m.segments),
        Cell::Text(m.html.as_deref()),
        Cell::Text(m.occurrence_key.as_deref()),
        Cell::Text(m.relevance.as_deref()),
        Cell::Time(m.expires_at),
    ]
}

/// `INSERT INTO messages … SELECT … FROM (VALUES …)` writing `rows` (at most
/// [`MESSAGES_PER_INSERT`]), with its arguments. A column whose value is the same in
/// every row is bound once, in the `SELECT`; the others come from the rows of
/// `VALUES` (`column1`, `column2`, … on both backends). A batch's text is one `Arc`,
/// so rows that share it are found alike before any byte is compared.
fn insert_statement(
    batch: Option<i64>,
    rows: &[&NewMessage],
    now: DateTime<Utc>,
) -> Result<(String, DbArgs)> {
    use sqlx::Arguments;

    let cells: Vec<[Cell<'_>; 18]> = rows.iter().map(|m| cells(batch, m, now)).collect();
    let mut args = DbArgs::default();
    let mut bound = 0;
    let mut bind = |sql: &mut String, cell: Cell<'_>| {
        bound += 1;
        push_parameter(sql, bound);
        match cell {
            Cell::Int(v) => args.add(v),
            Cell::Text(v) => args.add(v.map(str::to_owned)),
            Cell::Time(v) => args.add(v),
        }
        .map_err(|e| StoreError::Database(sqlx::Error::Encode(e)))
    };
    // Which columns every row has alike. The recipient never is, so that each row of
    // `VALUES` keeps at least one column.
    let mut shared = [false; 18];
    if let [first, rest @ ..] = cells.as_slice()
        && !rest.is_empty()
    {
        for (c, value) in first.iter().enumerate() {
            shared[c] = COLUMNS[c] != "recipient_external_id"
                && rest.iter().all(|row| match (value, row[c]) {
                    (Cell::Text(Some(a)), Cell::Text(Some(b))) => std::ptr::eq(*a, b) || *a == b,
                    (a, b) => *a == b,
                });
        }
    }
    let mut sql = format!("INSERT INTO messages ({}) SELECT ", COLUMNS.join(", "));
    let mut from_rows = 0;
    for (c, shared) in shared.iter().enumerate() {
        if c > 0 {
            sql.push_str(", ");
        }
        if *shared {
            bind(&mut sql, cells[0][c])?;
        } else {
            from_rows += 1;
            sql.push_str(&format!("v.column{from_rows}"));
        }
    }
    sql.push_str(" FROM (VALUES ");
    for (r, row) in cells.iter().enumerate() {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        let mut first = true;
        for (c, value) in row.iter().enumerate() {
            if shared[c] {
                continue;
            }
            if !first {
                sql.push_str(", ");
            }
            first = false;
            bind(&mut sql, *value)?;
        }
        sql.push(')');
    }
    sql.push_str(") AS v");
    Ok((sql, args))
}

/// Inserts messages (into `batch`, if any), each with its "created" event by
/// `actor`; returns their ids, in no particular order. A rule's run writes hundreds
/// at once: one multi-row statement for the messages and one for their events,
/// however many, each binding at most `BIND_LIMIT` values.
pub(super) async fn insert_messages_returning(
    conn: &mut DbConn,
    batch: Option<i64>,
    messages: &[&NewMessage],
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Vec<i64>> {
    let mut all = Vec::with_capacity(messages.len());
    for rows in messages.chunks(MESSAGES_PER_INSERT) {
        let (mut sql, args) = insert_statement(batch, rows, now)?;
        sql.push_str(" RETURNING id");
        // Only column names and parameters are written into the text.
        let ids: Vec<i64> = sqlx::query_scalar_with(sqlx::AssertSqlSafe(sql), args)
            .persistent(kept_prepared(rows.len()))
            .fetch_all(&mut *conn)
            .await?;
        // Each event is read from its message's row, so it matches its message
        // whatever order RETURNING gave the ids in.
        sqlx::query(concat!(
            "INSERT INTO message_events (message_id, at, status, reason, actor, note)
             SELECT id, $1, status, reason, $2, 'created' FROM messages
             WHERE id",
            in_list!("$3"),
            " ORDER BY id"
        ))
        .bind(now)
        .bind(actor)
        .bind(id_list(ids.iter().copied()))
        .execute(&mut *conn)
        .await?;
        all.extend(ids);
    }
    Ok(all)
}

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
    let mut rows = Vec::with_capacity(MESSAGES_PER_INSERT);
    for chunk in messages.chunks(MESSAGES_PER_INSERT) {
        rows.clear();
        rows.extend(chunk);
        let (sql, args) = insert_statement(Some(batch), &rows, now)?;
        // Only column names and parameters are written into the text.
        sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
            .persistent(kept_prepared(rows.len()))
            .execute(&mut *conn)
            .await?;
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
