//! The outbox's records: what a store takes to create messages and batches, and
//! what it gives back about them (listings, claims, attempts, outcomes, decisions).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::domain::directory::RecipientId;
use crate::domain::{
    BatchId, BatchStatus, Channel, ChannelChoice, MessageId, MessageKind, MessageStatus, Reason,
};

/// A message to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Its kind.
    pub kind: MessageKind,
    /// Its channel.
    pub channel: Channel,
    /// Herald's id of the recipient, `None` when the platform named someone unknown.
    pub recipient_id: Option<RecipientId>,
    /// The platform's id of the recipient, as given.
    pub recipient_external_id: String,
    /// The address it goes to, when there is a valid one.
    pub address: Option<String>,
    /// The subject (email).
    pub subject: Option<Arc<str>>,
    /// The text: shared by every message of a batch whose text is not rendered per
    /// person, so a send to a whole school holds it once.
    pub body: Arc<str>,
    /// The HTML body sent beside the text (email only), shared as the text is.
    pub html: Option<Arc<str>>,
    /// The rule occurrence that made it (periodic messages).
    pub occurrence_key: Option<String>,
    /// What must still hold when it is sent (`instalment:<id>`, `arrears:<id>`).
    pub relevance: Option<String>,
    /// After this it is too late to send (a birthday greeting).
    pub expires_at: Option<DateTime<Utc>>,
    /// Its first status: `queued`, `awaiting_approval` or `blocked`.
    pub status: MessageStatus,
    /// Why, when blocked or held.
    pub reason: Option<Reason>,
    /// SMS segments of the text (SMS only).
    pub segments: Option<i64>,
}

/// A batch to be stored, with its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBatch {
    /// The kind of its messages.
    pub kind: MessageKind,
    /// The channel of its recorded text.
    pub channel: Channel,
    /// The channels its messages use.
    pub channels: ChannelChoice,
    /// Its first status.
    pub status: BatchStatus,
    /// Whom it is for, in words.
    pub audience: String,
    /// The subject.
    pub subject: Option<String>,
    /// The text.
    pub body: String,
    /// The HTML body (email only).
    pub html: Option<String>,
    /// The operator who composed it.
    pub created_by: String,
}

/// A batch in the outbox with its counts per status and reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct BatchSummary {
    /// Its id.
    pub id: BatchId,
    /// The kind of its messages.
    pub kind: MessageKind,
    /// The channel of its messages.
    pub channel: Channel,
    /// The channels its messages use.
    pub channels: ChannelChoice,
    /// Where it stands.
    pub status: BatchStatus,
    /// Whom it is for.
    pub audience: String,
    /// The subject.
    pub subject: Option<String>,
    /// The text.
    pub body: String,
    /// The HTML body (email only).
    pub html: Option<String>,
    /// Who composed it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Who approved or rejected it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
    /// The reason given for a rejection.
    pub decision_note: Option<String>,
    /// How many of its messages are in each status, with each reason.
    pub counts: Vec<StatusCount>,
}

/// How many messages stand in one status with one reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct StatusCount {
    /// The status.
    pub status: MessageStatus,
    /// The reason, if any.
    pub reason: Option<Reason>,
    /// How many.
    pub count: i64,
}

/// How many messages there are of one kind, on one channel, in one status with one
/// reason: what the metrics show.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MessageTally {
    /// The kind.
    pub kind: MessageKind,
    /// The channel.
    pub channel: Channel,
    /// The status.
    pub status: MessageStatus,
    /// The reason, if any.
    pub reason: Option<Reason>,
    /// How many.
    pub count: i64,
}

/// An operator's decision on a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Its messages may go.
    Approve,
    /// Nothing goes, for this reason.
    Reject(String),
}

/// What deciding on a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    /// The decision was taken; this many messages moved.
    Done(u64),
    /// No such batch.
    NotFound,
    /// The batch was decided already.
    AlreadyDecided(BatchStatus),
    /// The batch changed since the approver saw it (its state is not the one given).
    Changed,
}

/// A message claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// Its id.
    pub id: MessageId,
    /// Its batch.
    pub batch_id: Option<BatchId>,
    /// Its kind.
    pub kind: MessageKind,
    /// Its channel.
    pub channel: Channel,
    /// Its recipient.
    pub recipient_id: Option<RecipientId>,
    /// The subject.
    pub subject: Option<String>,
    /// The text.
    pub body: String,
    /// The HTML body (email only).
    pub html: Option<String>,
    /// What must still hold when it is sent.
    pub relevance: Option<String>,
    /// After this it is too late to send.
    pub expires_at: Option<DateTime<Utc>>,
    /// Attempts made before this one.
    pub attempts: u32,
    /// When it was created (part of its stable identity, e.g. the Message-ID).
    pub created_at: DateTime<Utc>,
    /// SMS segments of the text (SMS only).
    pub segments: Option<i64>,
    /// How many times an operator has sent it again after it failed (part of the
    /// key SMS gateways know it by).
    pub generation: i64,
    /// The claim's number: each claim of the message takes the next, and whatever
    /// this claim records names it, so a dispatcher that lost its lease (and whose
    /// message was claimed again) changes nothing.
    pub claim: i64,
    /// Until when the claim is this dispatcher's: no other claims the message before
    /// then, so a send that ends in time cannot meet a second one.
    pub lease_until: DateTime<Utc>,
}

/// What a reservation of credit for a claimed SMS came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The points are held for this claim.
    Reserved,
    /// The balance cannot cover them: nothing changed.
    ShortOfCredit,
    /// The claim is no longer the message's (its lease ran out): nothing changed.
    ClaimLost,
}

/// The answer of a server to one attempt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attempt {
    /// When the attempt began.
    pub started_at: DateTime<Utc>,
    /// How it ended: `sent`, `transient`, `permanent`, `unknown`, `abandoned`.
    pub outcome: AttemptOutcome,
    /// The server's reply code (SMTP or HTTP), if there was one.
    pub code: Option<i64>,
    /// The server's text or the error.
    pub detail: String,
    /// The provider's id of the message (an SMS gateway's message id), if it gave one.
    pub provider_id: Option<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// Accepted.
    Sent,
    /// Refused for now; worth retrying.
    Transient,
    /// Refused for good.
    Permanent,
    /// Handed over, answer lost.
    Unknown,
    /// Never finished: the dispatcher stopped or died.
    Abandoned,
}

impl AttemptOutcome {
    /// The stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Sent => "sent",
            AttemptOutcome::Transient => "transient",
            AttemptOutcome::Permanent => "permanent",
            AttemptOutcome::Unknown => "unknown",
            AttemptOutcome::Abandoned => "abandoned",
        }
    }
}

/// How a claimed message leaves the dispatcher's hands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Accepted by the server.
    Sent(Attempt),
    /// A passing failure: queued again for `at`.
    Retry(Attempt, DateTime<Utc>),
    /// Failed for good.
    Failed(Attempt, Reason),
    /// Handed over, outcome unknown: held for an operator.
    Unknown(Attempt),
    /// No longer eligible (checked again before sending).
    Blocked(Reason),
    /// Not its time (window, holiday): queued again for `until`.
    Hold(Reason, DateTime<Utc>),
    /// A periodic message that will not go after all: `expired` (too late) or
    /// `cancelled` (no longer relevant).
    Withdrawn(MessageStatus, Reason),
    /// Not handed to its channel (too little of the lease was left to send within
    /// it): queued again in ten seconds, its credit given back, no attempt counted.
    Released,
}

/// One of a dispatcher's writes, recorded with others in one transaction
/// ([`super::Store::record`]): what a send needs before it goes, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// [`super::Store::hand_over`].
    HandOver {
        /// The message.
        id: MessageId,
        /// The claim.
        claim: i64,
        /// When.
        at: DateTime<Utc>,
        /// The lease must last until then.
        lease_needed_until: DateTime<Utc>,
    },
    /// [`super::Store::reserve`].
    Reserve {
        /// The message.
        id: MessageId,
        /// The claim.
        claim: i64,
        /// What it costs.
        points: i64,
        /// When.
        at: DateTime<Utc>,
    },
    /// [`super::Store::finish`].
    Finish {
        /// The message.
        id: MessageId,
        /// The claim.
        claim: i64,
        /// How it ended.
        finish: Finish,
        /// When.
        at: DateTime<Utc>,
    },
}

/// What a [`Write`] came to, as its single-write method answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// [`Write::HandOver`]: whether the send may go.
    HandedOver(bool),
    /// [`Write::Reserve`].
    Reserved(Reservation),
    /// [`Write::Finish`]: whether the claim was still the message's.
    Finished(bool),
}

/// What an operator does to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageAction {
    /// Send again: an `unknown` or `failed` message goes back in the queue.
    Resend,
    /// Withdraw: a message not sent yet (or `unknown`) will not go.
    Cancel,
}

impl MessageAction {
    /// The statuses the action applies to.
    pub fn applies_to(self) -> &'static [MessageStatus] {
        match self {
            MessageAction::Resend => &[MessageStatus::Unknown, MessageStatus::Failed],
            MessageAction::Cancel => &[
                MessageStatus::AwaitingApproval,
                MessageStatus::Queued,
                MessageStatus::Unknown,
            ],
        }
    }
}

/// What an operator's action did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionResult {
    /// Done; the message was in this status before.
    Done(MessageStatus),
    /// No such message.
    NotFound,
    /// The action does not apply to a message in this status.
    NotApplicable(MessageStatus),
}

/// Which messages a listing wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    /// Only this batch.
    pub batch: Option<BatchId>,
    /// Only this recipient (the platform's id).
    pub recipient: Option<String>,
    /// Only this status.
    pub status: Option<MessageStatus>,
    /// Only this kind.
    pub kind: Option<MessageKind>,
    /// Only this channel.
    pub channel: Option<Channel>,
    /// Only those created at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Only those created before this.
    pub until: Option<DateTime<Utc>>,
    /// Only this reason.
    pub reason: Option<Reason>,
    /// Only those older than this one (a page's cursor: the last id of the page
    /// before, since listings go newest first).
    pub before: Option<MessageId>,
    /// At most this many, newest first (`None`: all).
    pub limit: Option<i64>,
}

/// A message as listings show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct MessageView {
    /// Its id.
    pub id: MessageId,
    /// Its batch.
    pub batch_id: Option<BatchId>,
    /// Its kind.
    pub kind: MessageKind,
    /// Its channel.
    pub channel: Channel,
    /// Herald's id of the recipient.
    pub recipient_id: Option<RecipientId>,
    /// The platform's id of the recipient.
    pub recipient: String,
    /// The address it goes to.
    pub address: Option<String>,
    /// The subject.
    pub subject: Option<String>,
    /// Where it stands.
    pub status: MessageStatus,
    /// Why, when blocked, held or failed.
    pub reason: Option<Reason>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When the server accepted it.
    pub sent_at: Option<DateTime<Utc>>,
    /// When a queued message may go next.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Attempts made.
    pub attempts: i64,
    /// SMS segments (SMS only).
    pub segments: Option<i64>,
}

/// What one dispatch pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PassCounts {
    /// Accepted by the server.
    pub sent: u64,
    /// Queued again after a passing failure.
    pub retried: u64,
    /// Failed for good.
    pub failed: u64,
    /// Handed over with no answer to tell whether it went: held for a person (not
    /// kept in the pass record; their messages say it).
    pub unknown: u64,
    /// Held for the window or a holiday.
    pub held: u64,
    /// Blocked by the re-check.
    pub blocked: u64,
    /// Periodic messages that did not go: too late or no longer relevant (not
    /// kept in the pass record; their messages say it).
    pub withdrawn: u64,
}
