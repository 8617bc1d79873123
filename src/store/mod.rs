//! Storage: the only place with SQL.
//!
//! The rest of Herald sees traits sized by use: [`DirectoryStore`] (who exists and
//! how to reach them), [`CalendarStore`] (days off) and [`OutboxStore`] (batches,
//! messages, claims, attempts). Each backend implements them in its own file with runtime
//! queries (two backends rule out one set of compile-checked queries), and one
//! conformance suite in `tests/it` runs the same tests against each.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use crate::config::{Backend, DatabaseSettings};
use crate::domain::access::{Operator, Permission, RoleDef};
use crate::domain::audit::AuditAction;
use crate::domain::directory::{DirectoryRecord, GroupSummary, RecipientId, Role};
use crate::domain::{
    Audience, BatchId, BatchStatus, Channel, EligibilityFacts, Holiday, HolidayCalendar, MessageId,
    MessageKind, Reach,
};

/// The messages a [`MessageFilter`] selects, as SQL both backends run; shared by the
/// listing and the counts. Parameters `$1`…`$8`: batch, recipient, status, kind,
/// channel, since, reason, and the cursor (ids below it).
macro_rules! message_filter {
    () => {
        "($1 IS NULL OR m.batch_id = $1)
         AND ($2 IS NULL OR m.recipient_external_id = $2)
         AND ($3 IS NULL OR m.status = $3)
         AND ($4 IS NULL OR m.kind = $4)
         AND ($5 IS NULL OR m.channel = $5)
         AND ($6 IS NULL OR m.created_at >= $6)
         AND ($7 IS NULL OR m.reason = $7)
         AND ($8 IS NULL OR m.id < $8)
         AND ($9 IS NULL OR m.created_at < $9)"
    };
}

pub mod postgres;
mod records;
mod shared;
pub mod sqlite;

pub use records::*;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement, or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The schema is older than this build and migrations are not applied on start.
    #[error(
        "the database schema is at version {found:?} but this build needs {needed}, and \
         database.migrate_on_start is off: apply the migrations first"
    )]
    NotMigrated {
        /// The newest applied migration, if any.
        found: Option<i64>,
        /// The newest migration this build knows.
        needed: i64,
    },
    /// A stored value is not one this build understands.
    #[error("the database holds {value:?} in {column}, which this build does not understand")]
    Corrupt {
        /// Table and column.
        column: &'static str,
        /// The value found.
        value: String,
    },
    /// The failure of a group of writes made in one transaction, met by each of them
    /// (see [`Store::record`]).
    #[error(transparent)]
    Shared(Arc<StoreError>),
}

impl StoreError {
    /// Whether the database could not be reached or was busy (a restart, a dropped
    /// connection, a locked SQLite file): a passing state worth waiting out, unlike a
    /// statement it refuses every time (a constraint, a value it cannot store).
    pub fn is_outage(&self) -> bool {
        let e = match self {
            StoreError::Database(e) => e,
            StoreError::Shared(e) => return e.is_outage(),
            _ => return false,
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                // SQLite: BUSY (5) and LOCKED (6), with their extended codes.
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    return code.parse::<u32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6));
                }
                // PostgreSQL: connection exceptions, shutting down or not accepting
                // connections, out of connections or resources.
                code.starts_with("08")
                    || code.starts_with("57P0")
                    || code.starts_with("53")
                    || code == "55000"
            }
            _ => false,
        }
    }
}

/// `Result` with a [`StoreError`].
pub type Result<T> = std::result::Result<T, StoreError>;

/// What applying one directory record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    /// A new row.
    Created,
    /// An existing row whose values changed.
    Updated,
    /// An existing row already holding these values.
    Unchanged,
}

/// Why a directory record was refused by what the store already holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A reference to a record that does not exist.
    #[error("no {expected} with external id {value:?} exists (import it first)")]
    Unknown {
        /// The field holding the reference.
        field: &'static str,
        /// The id referred to.
        value: String,
        /// What kind of record was expected.
        expected: &'static str,
    },
    /// A reference to a recipient of the wrong role.
    #[error("{value:?} is a {found}, expected {expected}")]
    WrongRole {
        /// The field holding the reference.
        field: &'static str,
        /// The id referred to.
        value: String,
        /// The role it has.
        found: Role,
        /// The roles that fit.
        expected: &'static str,
    },
}

impl Refused {
    /// The field of the record that was at fault.
    pub fn field(&self) -> &'static str {
        match self {
            Refused::Unknown { field, .. } | Refused::WrongRole { field, .. } => field,
        }
    }

    /// The value of that field.
    pub fn value(&self) -> &str {
        match self {
            Refused::Unknown { value, .. } | Refused::WrongRole { value, .. } => value,
        }
    }
}

/// Which recipients a listing wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientFilter {
    /// Only the recipient with this platform id.
    pub external_id: Option<String>,
    /// Only these recipients (Herald's ids).
    pub ids: Option<Vec<RecipientId>>,
    /// Only this role.
    pub role: Option<Role>,
    /// Only members of the group with this platform id.
    pub group: Option<String>,
    /// Only those whose name, external id, email or phone contains this (any case).
    pub search: Option<String>,
}

/// How big the directory is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DirectoryCounts {
    /// Students.
    pub students: i64,
    /// Guardians.
    pub guardians: i64,
    /// Teachers.
    pub teachers: i64,
    /// Staff.
    pub staff: i64,
    /// Groups.
    pub groups: i64,
    /// Contracts.
    pub contracts: i64,
    /// Active contracts.
    pub active_contracts: i64,
}

/// The school's directory.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Applies records in order, each one whole or not at all: a refused record
    /// changes nothing and does not stop the others. Upserts by the platform's ids,
    /// so applying the same records twice reports them `Unchanged`. Records are
    /// applied a few hundred per transaction, at the audit line's time; each
    /// transaction that changes something commits the audit line with its counts.
    async fn apply(
        &self,
        records: &[DirectoryRecord],
        audit: &AuditEntry,
    ) -> Result<Vec<std::result::Result<Applied, Refused>>>;

    /// Recipients matching `filter`, with the contracts that speak for each, ordered
    /// by role then name.
    async fn recipients(&self, filter: &RecipientFilter) -> Result<Vec<EligibilityFacts>>;

    /// The recipients with these ids, with the contracts that speak for each, in no
    /// particular order (those not in the directory are left out): the dispatcher's
    /// read of a claimed chunk's people, which has no use for an order.
    async fn facts_of(&self, ids: &[RecipientId]) -> Result<Vec<EligibilityFacts>>;

    /// One recipient by the platform's id.
    async fn recipient(&self, external_id: &str) -> Result<Option<EligibilityFacts>>;

    /// Every group with its head counts.
    async fn groups(&self) -> Result<Vec<GroupSummary>>;

    /// How big the directory is.
    async fn counts(&self) -> Result<DirectoryCounts>;

    /// One recipient by Herald's id (the dispatcher's re-check before sending).
    async fn recipient_by_id(&self, id: RecipientId) -> Result<Option<EligibilityFacts>>;

    /// The names of the recipients with these platform ids, by platform id (those
    /// not in the directory are left out): what templates call the students a
    /// message is about, for a whole send in one query.
    async fn names(&self, external_ids: &[&str]) -> Result<HashMap<String, String>>;

    /// The people an audience names, each once: a guardian of two students in it is
    /// one person. Ordered by role then name.
    async fn audience(&self, audience: &Audience, reach: Reach) -> Result<Vec<EligibilityFacts>>;

    /// Marks a recipient's email address as failing (a permanent refusal such as
    /// SMTP 5.1.1), unless the address changed meanwhile.
    async fn mark_email_failing(
        &self,
        id: RecipientId,
        address: &str,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// Marks a recipient's phone number as failing (a gateway's "invalid or
    /// non-existent number"), unless the number changed meanwhile (compared in E.164).
    async fn mark_phone_failing(
        &self,
        id: RecipientId,
        e164: &str,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;
}

/// The outbox: batches, messages, claims and outcomes.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Stores one message (a system message has no batch), created by the audit
    /// line's actor at its time, with the line.
    async fn create_message(&self, message: &NewMessage, audit: &AuditEntry) -> Result<MessageId>;

    /// Stores one message under an idempotency key: the first request with the key
    /// creates it (with its audit line); a repeat with the same request returns the
    /// same message and creates nothing; a repeat with another request is refused.
    /// Concurrent requests with one key create one message on both backends (the
    /// key's row is inserted first, in the same transaction, and a second insert
    /// waits for the first to commit).
    async fn create_message_once(
        &self,
        message: &NewMessage,
        key: &IdempotencyKey,
        audit: &AuditEntry,
    ) -> Result<Once>;

    /// The message `actor`'s `key` was first used for, and that request's SHA-256;
    /// `None` while the key is unused. A look-up before composing, so that a repeat
    /// costs no composing; [`OutboxStore::create_message_once`] still decides races.
    async fn idempotency_key(&self, actor: &str, key: &str) -> Result<Option<KeyUse>>;

    /// Stores a batch and all its messages, and its audit line, in one transaction, at
    /// the audit line's time.
    async fn create_batch(
        &self,
        batch: &NewBatch,
        messages: &[NewMessage],
        audit: &AuditEntry,
    ) -> Result<BatchId>;

    /// Batches, newest first: only those in `status` when given.
    async fn batches(&self, status: Option<BatchStatus>) -> Result<Vec<BatchSummary>>;

    /// A fingerprint of the batch as stored (`None`: no such batch). A decision names
    /// the state its approver saw, and is refused when the batch changed since.
    async fn batch_state(&self, id: BatchId) -> Result<Option<String>>;

    /// Approves or rejects a batch awaiting approval, with every message in it, as the
    /// audit line's actor at its time, if it is still in the state `seen`; the audit
    /// line (with `messages`, how many moved) commits with the decision.
    async fn decide_batch(
        &self,
        id: BatchId,
        decision: &Decision,
        seen: &str,
        audit: &AuditEntry,
    ) -> Result<Decided>;

    /// Approves or rejects single messages of a batch awaiting approval (those still
    /// awaiting it); the batch and its other messages wait on. `Done(n)` counts the
    /// messages decided.
    async fn decide_messages(
        &self,
        batch: BatchId,
        ids: &[MessageId],
        decision: &Decision,
        seen: &str,
        audit: &AuditEntry,
    ) -> Result<Decided>;

    /// Claims up to `limit` queued messages due at `now` (of `kinds`), leasing them to
    /// `owner` until `lease_until`, in one statement.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        kinds: &[MessageKind],
        owner: &str,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Claimed>>;

    /// Whether any queued message of `kinds` is due at `now`.
    async fn has_due(&self, now: DateTime<Utc>, kinds: &[MessageKind]) -> Result<bool>;

    /// Puts messages whose lease ran out back in the queue (their dispatcher died),
    /// recording the unfinished attempt and giving back reserved credit; a message
    /// that reaches `max_attempts` this way fails (`attempts_exhausted`) rather than
    /// crash dispatchers for ever. Returns how many.
    ///
    /// A claim whose attempt was handed to its channel may have reached the server:
    /// it goes back to the queue only on a channel in `repeats_recognised` (one that
    /// knows a repeat by its key: email by its Message-ID, SMSAPI by `idx`, the
    /// webhook by `Idempotency-Key`); on any other its outcome is `unknown`, its
    /// credit stays reserved, and it waits for a person.
    async fn reclaim_expired(
        &self,
        now: DateTime<Utc>,
        max_attempts: u32,
        repeats_recognised: &[Channel],
    ) -> Result<u64>;

    /// Records that claim `claim` of message `id` is being handed to its channel,
    /// before the channel is called: `false` (and nothing recorded) unless the claim
    /// is still the message's and its lease lasts until `lease_needed_until` (the
    /// longest the send may take), in which case the send must not be made.
    async fn hand_over(
        &self,
        id: MessageId,
        claim: i64,
        now: DateTime<Utc>,
        lease_needed_until: DateTime<Utc>,
    ) -> Result<bool>;

    /// Records how claim `claim` of a message (by `owner`) ended. `false` when the
    /// claim is no longer the message's (its lease ran out and it was reclaimed):
    /// nothing is changed then but the attempt, which is kept.
    async fn finish(
        &self,
        id: MessageId,
        owner: &str,
        claim: i64,
        finish: &Finish,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Records `writes` of claims held by `owner` in one transaction, in order, each
    /// answered as its own method would answer it. One commit for many outcomes is
    /// what lets a dispatcher keep pace with its channels; a write refused for good
    /// fails them all, and the caller records them one by one to find it.
    async fn record(&self, owner: &str, writes: &[Write]) -> Result<Vec<Written>>;

    /// Cancels every message of a batch that has not been sent (awaiting approval or
    /// queued), as the audit line's actor at its time; the line (with `messages`)
    /// commits with it. Returns how many.
    async fn cancel_batch(&self, id: BatchId, audit: &AuditEntry) -> Result<u64>;

    /// Changes a batch's text on one channel. Its unsent messages on that channel take
    /// the new text and, if it was approved, the batch and all its unsent messages go
    /// back to `awaiting_approval`: an approval binds what was seen. `None` when the
    /// batch cannot be edited (no such batch, or decided for good); otherwise how many
    /// messages took the new text (the audit line's `messages`).
    async fn edit_batch(
        &self,
        id: BatchId,
        edit: &BatchEdit,
        audit: &AuditEntry,
    ) -> Result<Option<u64>>;

    /// Sends approved batches whose approval is older than `approved_before` and
    /// still has unsent messages back to the outbox (`approval_expired`). Returns the
    /// batches.
    async fn expire_approvals(
        &self,
        approved_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<BatchId>>;

    /// Resends or cancels one message, as the audit line's actor at its time; the
    /// line (with `status_before`) is written only when it was done.
    async fn act_on_message(
        &self,
        id: MessageId,
        action: MessageAction,
        audit: &AuditEntry,
    ) -> Result<ActionResult>;

    /// Gives back messages `owner` claimed but did not finish (a stopping daemon),
    /// recording the unfinished attempt and giving back reserved credit.
    /// Claims are `(message, claim)`; what was handed over follows the rule of
    /// [`OutboxStore::reclaim_expired`] for `repeats_recognised`.
    async fn release(
        &self,
        claims: &[(MessageId, i64)],
        owner: &str,
        now: DateTime<Utc>,
        repeats_recognised: &[Channel],
    ) -> Result<u64>;

    /// Messages matching `filter`, newest first.
    async fn messages(&self, filter: &MessageFilter) -> Result<Vec<MessageView>>;

    /// Counts per status and reason of the messages matching `filter`.
    async fn message_counts(&self, filter: &MessageFilter) -> Result<Vec<StatusCount>>;

    /// The attempts of one message, oldest first.
    async fn attempts(&self, id: MessageId) -> Result<Vec<Attempt>>;

    /// Records that `worker` finished a pass.
    async fn record_pass(
        &self,
        worker: &str,
        counts: &PassCounts,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// When the last pass of any dispatcher finished.
    async fn last_pass(&self) -> Result<Option<DateTime<Utc>>>;

    /// One message of the batch per channel and recipient locale, as rendered: what
    /// an approver reads before approving (one of someone who will get it, when
    /// anyone will).
    async fn sample_messages(&self, batch: BatchId) -> Result<Vec<SampleMessage>>;

    /// How many messages of `kind` on `channel` went to `recipient` since `since`
    /// (sent or delivered), or are being sent now by any dispatcher and are older than
    /// `except`, the one asking: what the daily cap counts.
    async fn sent_since(
        &self,
        recipient: RecipientId,
        channel: Channel,
        kind: MessageKind,
        since: DateTime<Utc>,
        except: MessageId,
    ) -> Result<i64>;
}

/// The school's calendar of days off.
#[async_trait]
pub trait CalendarStore: Send + Sync {
    /// Stores a holiday with its audit line and returns it with its id.
    async fn add_holiday(&self, holiday: &Holiday, audit: &AuditEntry) -> Result<Holiday>;

    /// Removes a holiday with its audit line; `false`, and no line, when there was
    /// none with that id.
    async fn remove_holiday(&self, id: i64, audit: &AuditEntry) -> Result<bool>;

    /// Holidays that end on or after `from` (all of them when `None`), earliest first.
    async fn holidays(&self, from: Option<NaiveDate>) -> Result<Vec<Holiday>>;

    /// Messages queued to go at or after `from` (any time before, when `None`) and
    /// before `until`: what a day off over that stretch would hold back.
    async fn queued_between(
        &self,
        from: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
    ) -> Result<i64>;

    /// The calendar the send window consults, from `from` on.
    async fn calendar(&self, from: NaiveDate) -> Result<HolidayCalendar> {
        Ok(HolidayCalendar::new(self.holidays(Some(from)).await?))
    }
}

/// How several Herald instances on one database coordinate.
#[async_trait]
pub trait CoordinationStore: Send + Sync {
    /// Takes or renews the leader lease `name` for `owner` until `until`. `true` when
    /// `owner` holds it now; `false` when another instance holds an unexpired one.
    async fn try_lead(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool>;

    /// Gives a leader lease up, so another instance need not wait for it to expire.
    async fn resign(&self, name: &str, owner: &str) -> Result<()>;

    /// A signal that fires when another process created a message that should go at
    /// once (PostgreSQL's LISTEN/NOTIFY); `None` where the backend has no such signal,
    /// and the daemon relies on polling.
    async fn wakeups(&self) -> Result<Option<Arc<tokio::sync::Notify>>>;
}

/// The channel of PostgreSQL notifications that wake dispatchers.
pub const WAKE_CHANNEL: &str = "herald_wake";

/// Messages queued (batches stored or approved, rules' runs) the store counts before
/// it refreshes the database planner's statistics of what dispatching them reads.
const REFRESH_STATISTICS_AFTER: u64 = 1000;

/// The SMS wallet: a balance, points reserved for messages being sent, a ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WalletState {
    /// Points free to spend.
    pub balance: i64,
    /// Points held for messages being sent.
    pub reserved: i64,
    /// Since when the balance is low, if it is.
    pub low_since: Option<DateTime<Utc>>,
}

/// The sums of the ledger, by entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct LedgerTotals {
    /// Points added.
    pub top_ups: i64,
    /// Points reserved (over all time).
    pub reserves: i64,
    /// Points spent.
    pub charges: i64,
    /// Points given back.
    pub refunds: i64,
}

/// One line of the wallet's ledger.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct LedgerEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// `top_up`, `reserve`, `charge` or `refund`.
    pub entry: String,
    /// How many points.
    pub points: i64,
    /// The message it is for.
    pub message_id: Option<MessageId>,
    /// Who (for top-ups).
    pub actor: Option<String>,
    /// Why.
    pub note: Option<String>,
    /// The balance after it.
    pub balance_after: i64,
    /// The reserved points after it.
    pub reserved_after: i64,
}

/// The prepaid SMS wallet. Every change is one conditional update, so the balance
/// never goes below zero, also with several dispatchers at once.
#[async_trait]
pub trait WalletStore: Send + Sync {
    /// The balance and reserved points.
    async fn wallet(&self) -> Result<WalletState>;

    /// The newest `limit` ledger lines, newest first.
    async fn ledger(&self, limit: i64) -> Result<Vec<LedgerEntry>>;

    /// The ledger's sums.
    async fn ledger_totals(&self) -> Result<LedgerTotals>;

    /// Adds points with the audit line's actor and time, and makes every message held
    /// for credit due at once. The audit line gets `balance_after`.
    async fn top_up(&self, points: i64, note: &str, audit: &AuditEntry) -> Result<WalletState>;

    /// Reserves `points` for claim `claim` of a message, adding to what it holds;
    /// nothing changes when the balance cannot cover them or the claim is no longer
    /// the message's.
    async fn reserve(
        &self,
        id: MessageId,
        claim: i64,
        points: i64,
        now: DateTime<Utc>,
    ) -> Result<Reservation>;

    /// Charges the points still reserved for `unknown` SMS that have waited for a
    /// person since before `before`, each with its ledger line; the messages stay
    /// `unknown`. Returns how many were charged.
    async fn charge_undecided(&self, before: DateTime<Utc>, now: DateTime<Utc>) -> Result<u64>;

    /// Segments of the SMS queued to go before `before` (the wallet's near-term need).
    async fn sms_segments_due(&self, before: DateTime<Utc>) -> Result<i64>;

    /// Records whether the balance is low; `true` when this call changed it (a
    /// crossing, worth one warning).
    async fn mark_low(&self, low: bool, now: DateTime<Utc>) -> Result<bool>;
}

/// The hold switch, when it is on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Hold {
    /// Since when dispatch is paused.
    pub since: DateTime<Utc>,
    /// Why.
    pub reason: String,
    /// Who switched it on.
    pub by: String,
}

/// A message as rendered for one recipient, shown to an approver.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SampleMessage {
    /// Its channel.
    pub channel: Channel,
    /// The recipient's locale (`None`: the school's default).
    pub locale: Option<String>,
    /// The recipient (the platform's id).
    pub recipient: String,
    /// The subject (email).
    pub subject: Option<String>,
    /// The text.
    pub body: String,
    /// The HTML body, if any.
    pub html: Option<String>,
}

/// A batch's new text on one of its channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEdit {
    /// The channel whose text changes.
    pub channel: Channel,
    /// The new subject (email).
    pub subject: Option<String>,
    /// The new text.
    pub body: String,
    /// The new HTML body (email), if any.
    pub html: Option<String>,
    /// The SMS segments of the new text.
    pub segments: Option<i64>,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// What kind of change.
    pub action: AuditAction,
    /// What it was done to (`batch 3`, `message 17`, `wallet`, `dispatch`). A store
    /// method that creates the row replaces `{id}` in it with the new row's id.
    pub subject: String,
    /// What the person saw and did; a store method adds what only its transaction
    /// knows (the balance after a top-up, the status a message had before).
    pub details: serde_json::Value,
}

impl AuditEntry {
    /// The line with `key` set to `value` in its details (an object).
    pub fn with_detail(&self, key: &str, value: impl serde::Serialize) -> AuditEntry {
        let mut entry = self.clone();
        if !entry.details.is_object() {
            entry.details = serde_json::json!({});
        }
        entry.details[key] = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        entry
    }

    /// The line about the row with this id (`{id}` in the subject replaced).
    pub fn for_id(&self, id: impl std::fmt::Display) -> AuditEntry {
        AuditEntry {
            subject: self.subject.replace("{id}", &id.to_string()),
            ..self.clone()
        }
    }
}

/// Which audit lines a listing wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this person.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<AuditAction>,
    /// Only since then.
    pub since: Option<DateTime<Utc>>,
    /// At most this many, newest first.
    pub limit: Option<i64>,
}

/// Settings of the whole installation, and the record of who changed what.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// The hold switch: `Some` while dispatch is paused.
    async fn hold(&self) -> Result<Option<Hold>>;

    /// Switches the hold on (with why and who) or off, with its audit line (which
    /// gets `was`, the hold lifted, when switching off). `false`, and no line, when it
    /// already was.
    async fn set_hold(&self, hold: Option<&Hold>, audit: &AuditEntry) -> Result<bool>;

    /// Appends a line on its own, for an action that changed nothing but is worth
    /// knowing about (an import that found everything as it was). A line about a
    /// change is written by the store method that makes the change, in its
    /// transaction.
    async fn audit(&self, entry: &AuditEntry) -> Result<()>;

    /// Audit lines matching `filter`, newest first.
    async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>>;
}

/// Named templates, one variant per locale and channel.
#[async_trait]
pub trait TemplateStore: Send + Sync {
    /// Saves a variant (checked by the caller), replacing the one of the same name,
    /// locale and channel, by the audit line's actor at its time, with the line.
    async fn save_template(
        &self,
        variant: &crate::templates::Variant,
        audit: &AuditEntry,
    ) -> Result<()>;

    /// The variants of `name`, or of every template.
    async fn templates(&self, name: Option<&str>) -> Result<Vec<crate::templates::Variant>>;
}

/// A new operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOperator {
    /// What they will type after `--as`.
    pub login: String,
    /// Their name in the audit trail.
    pub name: String,
    /// Their role (must exist).
    pub role: String,
    /// The platform id of the teacher they are, if any.
    pub teacher: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
    /// Who added them (their own login for the first owner).
    pub by: String,
}

/// What adding an operator came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOperator {
    /// Added.
    Added,
    /// The login is taken.
    LoginTaken,
    /// The role does not exist.
    UnknownRole,
    /// Asked to add the first operator, but there already is one.
    NotFirst,
}

/// Operators, roles and permissions. Every change writes its audit line in the same
/// transaction: there is no change without its record.
#[async_trait]
pub trait OperatorStore: Send + Sync {
    /// The operator `login`, with their effective permissions.
    async fn operator(&self, login: &str) -> Result<Option<Operator>>;

    /// Every operator, by login.
    async fn operators(&self) -> Result<Vec<Operator>>;

    /// Every role, built-in first.
    async fn roles(&self) -> Result<Vec<RoleDef>>;

    /// Adds an operator. With `first`, only when there is no operator yet (the
    /// installation's first owner, who has nobody to ask).
    async fn add_operator(
        &self,
        new: &NewOperator,
        first: bool,
        audit: &AuditEntry,
    ) -> Result<AddOperator>;

    /// Gives `login` the role `role`. `false` when either does not exist.
    async fn set_role(&self, login: &str, role: &str, audit: &AuditEntry) -> Result<bool>;

    /// Stores `login`'s password hash (a PHC string) with its audit line. `false`, and
    /// no line, when there is no such operator.
    async fn set_password(&self, login: &str, hash: &str, audit: &AuditEntry) -> Result<bool>;

    /// `login`'s password hash; `None` when there is no such operator or no password.
    async fn password_hash(&self, login: &str) -> Result<Option<String>>;

    /// Sets the language an operator reads the console in (`None`: their
    /// browser's), with its audit line; `false`, and no line, when it already was
    /// (or there is no such operator).
    async fn set_locale(
        &self,
        login: &str,
        locale: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<bool>;

    /// Grants (`Some(true)`) or revokes (`Some(false)`) a permission for `login`
    /// beyond their role, or drops the exception (`None`). `false` when there is no
    /// such operator.
    async fn set_permission(
        &self,
        login: &str,
        permission: Permission,
        granted: Option<bool>,
        audit: &AuditEntry,
    ) -> Result<bool>;

    /// Adds a role, or redefines one the school added. `false` for a built-in role.
    async fn save_role(&self, role: &RoleDef, audit: &AuditEntry) -> Result<bool>;
}

/// An unpaid instalment falling due, with its contract and student.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueInstalment {
    /// Herald's id.
    pub id: i64,
    /// The platform's id.
    pub external_id: String,
    /// The contract's number people see (else its platform id).
    pub contract: String,
    /// The student's platform id.
    pub student: String,
    /// When it falls due.
    pub due_date: NaiveDate,
    /// How much, in grosze.
    pub amount_cents: i64,
}

/// A contract with an overdue balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrearsContract {
    /// Herald's id.
    pub id: i64,
    /// The platform's id.
    pub external_id: String,
    /// The contract's number people see (else its platform id).
    pub number: String,
    /// The student's platform id.
    pub student: String,
    /// What is owed, in grosze.
    pub balance_cents: i64,
    /// Since when.
    pub arrears_since: NaiveDate,
}

/// A rule occurrence to create with its messages, in the batch of its rule and day.
#[derive(Debug, Clone)]
pub struct NewOccurrence {
    /// The unique key, e.g. `birthday/s-1001/2026`.
    pub key: String,
    /// The rule.
    pub rule: String,
    /// The batch's key, `rule/day`: one batch per rule and school day.
    pub periodic_key: String,
    /// The batch, if it is not there yet.
    pub batch: NewBatch,
    /// Its messages.
    pub messages: Vec<NewMessage>,
}

/// A student a rule writes about, and the people it writes to.
#[derive(Debug, Clone, Default)]
pub struct StudentPeople {
    /// The student, unless the platform's id names nobody.
    pub student: Option<EligibilityFacts>,
    /// The people the rule's reach names for the student: the student, their
    /// guardians, or both.
    pub people: Vec<EligibilityFacts>,
}

/// The last run of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RuleRun {
    /// When it ran.
    pub last_run_at: DateTime<Utc>,
    /// The last school day its occurrences were created for.
    pub covered_through: NaiveDate,
}

/// What periodic rules read and write.
#[async_trait]
pub trait RuleStore: Send + Sync {
    /// Unpaid instalments due between `from` and `to` (both included).
    async fn unpaid_instalments_due(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DueInstalment>>;

    /// Contracts owing something, with the date it became overdue.
    async fn contracts_in_arrears(&self) -> Result<Vec<ArrearsContract>>;

    /// Students with a birth date: (platform id, birth date).
    async fn birth_dates(&self) -> Result<Vec<(String, NaiveDate)>>;

    /// Which of `keys` exist already (so a run does not render what it would not
    /// write; `create_occurrences` still decides).
    async fn existing_occurrences(&self, keys: &[String]) -> Result<Vec<String>>;

    /// For each of `students` (platform ids), in their order: the student, and the
    /// people `audience(&Audience::Recipient(student), reach)` names, in its order.
    /// A few statements for the whole list, however long, where a look-up per
    /// student took a dozen round trips each.
    async fn students_with_people(
        &self,
        students: &[String],
        reach: Reach,
    ) -> Result<Vec<StudentPeople>>;

    /// Creates occurrences and their messages in one transaction: each one whose key
    /// does not exist yet, with its messages; one whose key exists writes nothing.
    /// Says, in their order, which ones this call created. All or nothing: a failure
    /// writes none of them.
    async fn create_occurrences(
        &self,
        occurrences: &[NewOccurrence],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>>;

    /// The last run of `rule`.
    async fn rule_run(&self, rule: &str) -> Result<Option<RuleRun>>;

    /// Records a run of `rule`.
    async fn record_rule_run(&self, rule: &str, run: &RuleRun) -> Result<()>;

    /// Whether what a message is about still holds (`instalment:<id>` unpaid,
    /// `arrears:<id>` still owing).
    async fn still_relevant(&self, relevance: &str) -> Result<bool>;

    /// Messages still waiting (for approval or their time) whose `expires_at` has
    /// passed become `expired` with `too_late`. Returns how many.
    async fn expire_overdue(&self, now: DateTime<Utc>) -> Result<u64>;
}

/// One transition of a message, as its timeline shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MessageEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// The status it moved to.
    pub status: String,
    /// Why, if a reason applies.
    pub reason: Option<String>,
    /// Who, when a person (or a rule) acted.
    pub actor: Option<String>,
    /// What happened, in words.
    pub note: Option<String>,
}

/// How a channel has been doing lately, as diagnosis reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ChannelHealth {
    /// The last message the channel's server accepted.
    pub last_sent: Option<DateTime<Utc>>,
    /// Passing failures since then (the current streak).
    pub failures: i64,
    /// When the streak began.
    pub failing_since: Option<DateTime<Utc>>,
    /// The last failure's answer.
    pub last_failure: Option<String>,
    /// Messages queued for a retry on this channel.
    pub waiting_retry: i64,
    /// When the next of them is due.
    pub next_retry: Option<DateTime<Utc>>,
}

/// What diagnosis reads beyond the other stores.
#[async_trait]
pub trait DiagnosisStore: Send + Sync {
    /// Recipients matching `query` exactly: Herald's id, the platform's id, an email
    /// address (any case) or a phone number in E.164 (`phone`, when it parses).
    async fn find_recipients(
        &self,
        query: &str,
        phone: Option<&str>,
    ) -> Result<Vec<EligibilityFacts>>;

    /// Every transition of a message, oldest first.
    async fn events(&self, id: MessageId) -> Result<Vec<MessageEvent>>;

    /// The platform id of a message's recipient, if the message exists.
    async fn message_recipient(&self, id: MessageId) -> Result<Option<String>>;

    /// How `channel` has been doing: last success, the current failure streak, what
    /// waits for a retry.
    async fn channel_health(&self, channel: Channel) -> Result<ChannelHealth>;
}

/// What the metrics and the readiness check read: the state of the whole outbox at a
/// glance, and whether the database is the one this build expects.
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Every message counted by kind, channel, status and reason.
    async fn message_tally(&self) -> Result<Vec<MessageTally>>;

    /// Fails with [`StoreError::NotMigrated`] when the schema is older than this
    /// build (a database restored from an old backup), or with the database's error
    /// when it does not answer.
    async fn check_schema(&self) -> Result<()>;

    /// The database server's clock, where it has one apart from this machine's
    /// (PostgreSQL); `None` for SQLite, which runs in this process.
    async fn database_now(&self) -> Result<Option<DateTime<Utc>>>;

    /// Closes the connections: every later call fails. For a process that is
    /// stopping, so SQLite folds its write-ahead log back into the file and
    /// PostgreSQL sees its sessions end rather than drop.
    async fn close(&self);
}

/// An API token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRecord {
    /// Its id (the middle of the token `hrd_<id>_<secret>`).
    pub id: i64,
    /// Its name, unique.
    pub name: String,
    /// The operator it acts as.
    pub operator: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
    /// When it was last used.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
}

/// A caller's idempotency key and the fingerprint of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// Whose key (keys of different callers never collide).
    pub actor: String,
    /// The key as the caller sent it.
    pub key: String,
    /// The SHA-256 of the request.
    pub request_sha256: String,
}

/// The request an idempotency key was first used for, and the message it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    /// The SHA-256 of that request.
    pub request_sha256: String,
    /// The message it made.
    pub message: MessageId,
}

/// What storing a message under an idempotency key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Once {
    /// Created now.
    Created(MessageId),
    /// Created by an earlier request with the same key and the same request.
    Existing(MessageId),
    /// The key was used for another request.
    KeyReused,
}

/// What creating a token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateToken {
    /// Created, with this id.
    Created(i64),
    /// A token of that name exists (revoked ones too: names are not reused).
    NameTaken,
    /// No operator with that login.
    UnknownOperator,
}

/// API tokens: stored as the SHA-256 of their secret, looked up by id.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a new token for `operator` with its audit line (`{id}` in its subject
    /// becomes the token's id), by the line's actor at its time.
    async fn create_token(
        &self,
        name: &str,
        operator: &str,
        secret_sha256: &str,
        audit: &AuditEntry,
    ) -> Result<CreateToken>;

    /// Every token, newest first.
    async fn tokens(&self) -> Result<Vec<TokenRecord>>;

    /// A token and the SHA-256 of its secret, by id.
    async fn token(&self, id: i64) -> Result<Option<(TokenRecord, String)>>;

    /// Revokes a token by name with its audit line; `false`, and no line, when there
    /// is no such token or it was revoked already.
    async fn revoke_token(&self, name: &str, audit: &AuditEntry) -> Result<bool>;

    /// Records that a token was used at `at`.
    async fn touch_token(&self, id: i64, at: DateTime<Utc>) -> Result<()>;
}

/// A delivery report as it was kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReportRecord {
    /// The gateway it came from.
    pub gateway: String,
    /// What it said, in Herald's terms.
    pub state: crate::domain::report::ReportState,
    /// The gateway's own words.
    pub status: String,
    /// When the gateway says it happened.
    pub reported_at: Option<DateTime<Utc>>,
    /// When Herald received it.
    pub received_at: DateTime<Utc>,
    /// What it did to the message.
    pub effect: crate::domain::report::ReportEffect,
}

/// Delivery reports from the SMS gateways.
#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Keeps a report and applies it to its message in one transaction: `sent` or
    /// `unknown` becomes `delivered` or `failed` (reason `undelivered`); a message
    /// still `sending` keeps it pending until its acceptance is recorded; anything
    /// else is left as it is. Says what it did.
    async fn record_report(
        &self,
        report: &crate::domain::report::DeliveryReport,
        now: DateTime<Utc>,
    ) -> Result<crate::domain::report::ReportEffect>;

    /// The reports about a message, oldest first.
    async fn reports(&self, id: MessageId) -> Result<Vec<ReportRecord>>;
}

/// Signed-in console sessions, kept by the SHA-256 of their id (the cookie's value).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session; `false` when one with that id exists (the caller picks
    /// another id).
    async fn create_session(
        &self,
        id_sha256: &str,
        data: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool>;

    /// Stores a session's data and expiry, creating it if need be.
    async fn save_session(
        &self,
        id_sha256: &str,
        data: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;

    /// A session's data and expiry, when it exists and has not expired by `now`.
    async fn load_session(
        &self,
        id_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(String, DateTime<Utc>)>>;

    /// Ends a session (sign-out, or a new id at sign-in).
    async fn delete_session(&self, id_sha256: &str) -> Result<()>;

    /// Removes the sessions expired by `now`; says how many.
    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64>;
}

/// Everything Herald stores, behind one handle: what `open` returns.
pub trait Store:
    DirectoryStore
    + CalendarStore
    + OutboxStore
    + CoordinationStore
    + WalletStore
    + AdminStore
    + TemplateStore
    + OperatorStore
    + RuleStore
    + DiagnosisStore
    + TokenStore
    + ReportStore
    + HealthStore
    + SessionStore
{
}

impl<T> Store for T where
    T: DirectoryStore
        + CalendarStore
        + OutboxStore
        + CoordinationStore
        + WalletStore
        + AdminStore
        + TemplateStore
        + OperatorStore
        + RuleStore
        + DiagnosisStore
        + TokenStore
        + ReportStore
        + HealthStore
        + SessionStore
{
}

/// Opens the database the settings name, applying or checking migrations.
pub async fn open(settings: &DatabaseSettings) -> Result<Arc<dyn Store>> {
    match &settings.backend {
        Backend::Sqlite(path) => {
            let store = sqlite::SqliteStore::open(path, settings).await?;
            if settings.migrate_on_start {
                store.migrate().await?;
            } else {
                store.check_migrated().await?;
            }
            Ok(Arc::new(store))
        }
        Backend::Postgres => {
            let store = postgres::PgStore::open(settings).await?;
            if settings.migrate_on_start {
                store.migrate().await?;
            } else {
                store.check_migrated().await?;
            }
            Ok(Arc::new(store))
        }
    }
}

/// Applies pending migrations to the database the settings name.
pub async fn migrate(settings: &DatabaseSettings) -> Result<Vec<i64>> {
    match &settings.backend {
        // Closed afterwards: on SQLite that writes the WAL back into the file.
        Backend::Sqlite(path) => {
            let store = sqlite::SqliteStore::open(path, settings).await?;
            let applied = store.migrate().await;
            store.close().await;
            applied
        }
        Backend::Postgres => {
            let store = postgres::PgStore::open(settings).await?;
            let applied = store.migrate().await;
            store.close().await;
            applied
        }
    }
}
