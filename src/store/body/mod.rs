//! The store's SQL, written once for both backends.
//!
//! `sqlite.rs` and `postgres.rs` each include this file as their module `body`, so
//! every statement, row mapping and transaction below exists once in the source and
//! is compiled once per backend against that backend's types (`Db`, `DbConn`,
//! `DbArgs`, `Backend`). What really differs between SQLite and PostgreSQL stays in
//! the backend file: opening and migrating, the write transaction (`BEGIN IMMEDIATE`
//! under SQLite's single writer), how a list is bound (`json_each` or `= ANY`) and
//! rows read as one JSON array, row locks and `SKIP LOCKED` (the `for_update!`,
//! `skip_locked!`, `in_list!`, `json_rows!` and `unpaid!` fragments), how many
//! parameters one statement may bind (`BIND_LIMIT`, which multi-row inserts split
//! their rows by), and `LISTEN`/`NOTIFY`.
//!
//! This file holds the writers every area uses (messages, an event, a ledger line,
//! an audit line); each area's store traits are in a file of their own.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;

use crate::domain::access::{Operator, Permission, RoleDef};
use crate::domain::directory::{
    Consent, ContractConsent, ContractRecord, DirectoryRecord, GroupSummary, InstalmentRecord,
    Recipient, RecipientId, RecipientRecord, Role,
};
use crate::domain::{
    Audience, BatchId, BatchStatus, Channel, EligibilityFacts, Holiday, MessageId, MessageKind,
    MessageStatus, Reach, Reason,
};
use crate::store::shared::{
    OperatorRow, Outcome, build_operators, build_roles, consent_at, failure_mark, parse_code,
    parse_reason, parse_role, parse_status,
};
use crate::store::{
    ActionResult, Applied, Attempt, AttemptOutcome, BatchEdit, BatchSummary, CalendarStore,
    Claimed, CoordinationStore, Decided, Decision, DirectoryCounts, DirectoryStore, Finish,
    LedgerEntry, LedgerTotals, MessageAction, MessageFilter, MessageView, NewBatch, NewMessage,
    OutboxStore, PassCounts, RecipientFilter, Refused, Reservation, Result, StatusCount,
    StoreError, WalletState, WalletStore, Write, Written,
};
use crate::store::{
    AddOperator, AdminStore, AuditEntry, AuditFilter, Hold, NewOperator, OperatorStore,
    SampleMessage, TemplateStore,
};
use crate::store::{
    ArrearsContract, DueInstalment, NewOccurrence, RuleRun, RuleStore, StudentPeople,
};
use crate::store::{ChannelHealth, DiagnosisStore, MessageEvent};
use crate::store::{IdempotencyKey, KeyUse, Once};
use crate::templates::Variant;

use super::{
    BIND_LIMIT, Backend, Db, DbArgs, DbConn, LIST_CLOSE, LIST_OPEN, MIGRATOR, TextList, id_list,
    lock_operators, push_parameter, text_list, wake_other_instances,
};

/// What dispatching a queue reads, for the planner's statistics once many messages
/// were queued (a large batch stored or approved, a rule's run): the queue it claims
/// from, and the recipients, wards and contracts it reads each chunk's facts from
/// (freshly imported, as often as not).
const ANALYZE_QUEUE: &str = "ANALYZE messages, recipients, guardianships, contracts";

mod admin;
mod bulk;
mod directory;
mod health;
mod outbox;
mod reports;
mod rules;
mod sessions;
mod tokens;

impl Backend {
    /// Applies pending migrations; returns the versions applied now.
    pub async fn migrate(&self) -> Result<Vec<i64>> {
        let before = self.schema_version().await?;
        MIGRATOR.run(&self.pool).await?;
        Ok(MIGRATOR
            .iter()
            .map(|m| m.version)
            .filter(|v| before.is_none_or(|b| *v > b))
            .collect())
    }

    /// Fails unless every migration of this build is applied.
    pub async fn check_migrated(&self) -> Result<()> {
        let needed = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let found = self.schema_version().await?;
        if found.unwrap_or(0) < needed {
            return Err(StoreError::NotMigrated { found, needed });
        }
        Ok(())
    }
    async fn schema_version(&self) -> Result<Option<i64>> {
        if !self.migrations_table_exists().await? {
            return Ok(None);
        }
        Ok(
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.reads)
                .await?,
        )
    }
}

async fn insert_message(
    conn: &mut DbConn,
    batch: Option<i64>,
    m: &NewMessage,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<i64> {
    let ids = bulk::insert_messages_returning(conn, batch, &[m], actor, now).await?;
    Ok(ids[0])
}

async fn insert_event(
    conn: &mut DbConn,
    message: i64,
    at: DateTime<Utc>,
    status: MessageStatus,
    reason: Option<Reason>,
    actor: Option<&str>,
    note: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO message_events (message_id, at, status, reason, actor, note)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(message)
    .bind(at)
    .bind(status.as_str())
    .bind(reason.map(Reason::as_str))
    .bind(actor)
    .bind(note)
    .execute(conn)
    .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn insert_ledger(
    conn: &mut DbConn,
    at: DateTime<Utc>,
    entry: &str,
    points: i64,
    message: Option<i64>,
    actor: Option<&str>,
    note: Option<&str>,
    (balance, reserved): (i64, i64),
) -> Result<()> {
    sqlx::query(
        "INSERT INTO wallet_ledger
            (at, entry, points, message_id, actor, note, balance_after, reserved_after)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(at)
    .bind(entry)
    .bind(points)
    .bind(message)
    .bind(actor)
    .bind(note)
    .bind(balance)
    .bind(reserved)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes an audit line inside the change's own transaction.
/// Ends a change of one row: when the statement touched nothing, the transaction is
/// dropped (rolled back) and the answer is `false`; otherwise the change's audit line
/// is written and both are committed together.
async fn commit_with_audit(
    mut tx: sqlx::Transaction<'static, Db>,
    touched: u64,
    audit: &AuditEntry,
) -> Result<bool> {
    if touched == 0 {
        return Ok(false);
    }
    insert_audit(&mut tx, audit).await?;
    tx.commit().await?;
    Ok(true)
}

async fn insert_audit(tx: &mut DbConn, entry: &AuditEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, subject, details)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(entry.at)
    .bind(&entry.actor)
    .bind(entry.action.as_str())
    .bind(&entry.subject)
    .bind(entry.details.to_string())
    .execute(tx)
    .await?;
    Ok(())
}
