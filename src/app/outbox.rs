//! The outbox: what an approver sees of a batch, and the decisions on it.
//!
//! Approval binds what was shown (DESIGN §4). The approver's view carries a
//! *version* made of three parts, `CONTENT-AUDIENCE-COST`: a fingerprint of the text
//! as rendered, a fingerprint of who will get it and who is blocked (judged again
//! against the directory as it is now, since the dispatcher checks again before
//! sending), and the SMS cost in points of what still waits for a decision (messages
//! already decided move on as they are sent and are left out). A decision names the
//! version its approver saw; when the batch is no longer so, it is refused with what
//! changed. Inside the store, the decision also names the batch's stored state, so an
//! edit that lands between the check and the decision is refused too.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sha2::Digest;

use super::{Actor, App, AppError, Result};
use crate::compose::Content;
use crate::domain::access::Permission;
use crate::domain::audit::AuditAction;
use crate::domain::{BatchId, BatchStatus, MessageId, MessageKind, MessageStatus, Reason};
use crate::store::{
    BatchEdit, BatchSummary, Decided, Decision, Hold, MessageFilter, RecipientFilter, SampleMessage,
};

/// How many messages will go and what they cost, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Summary {
    /// Messages that will go once approved (or are going).
    pub will_go: i64,
    /// Messages already sent.
    pub sent: i64,
    /// Blocked, per reason code: at creation, or now (consent withdrawn since).
    pub blocked: BTreeMap<String, i64>,
    /// Other statuses (cancelled, failed, …), per status.
    pub other: BTreeMap<String, i64>,
    /// SMS segments of the messages that will go.
    pub sms_segments: i64,
    /// Points they cost.
    pub sms_cost: i64,
    /// The wallet's balance now.
    pub wallet_balance: i64,
    /// When it will go, in words.
    pub when: String,
}

/// One message as the summary counts it: its status, reason and SMS segments.
pub type SummaryLine = (MessageStatus, Option<Reason>, Option<i64>);

/// What an approver sees of a batch.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BatchView {
    /// The batch with its counts.
    pub batch: BatchSummary,
    /// A fingerprint of its text.
    pub content_sha256: String,
    /// Who will get it, who not and why, the cost, and when.
    pub summary: Summary,
    /// The message as rendered, one per channel and locale.
    pub samples: Vec<SampleMessage>,
    /// What approving or rejecting this view names (`CONTENT-AUDIENCE-COST`).
    pub version: String,
    /// The hold switch, when on.
    pub hold: Option<Hold>,
    /// The batch's stored state the view was made from.
    #[serde(skip)]
    state: String,
}

/// A batch's new text, as an operator gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchText {
    /// Which of the batch's channels (`None`: its only one).
    pub channel: Option<crate::domain::Channel>,
    /// The new subject (email; `None` keeps the old one).
    pub subject: Option<String>,
    /// The new text.
    pub body: String,
    /// A new HTML body (email).
    pub html: Option<String>,
    /// Transliterate an SMS to GSM-7.
    pub transliterate: bool,
}

/// A decision taken.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionTaken {
    /// How many messages moved.
    pub messages: u64,
    /// The view the decision was taken on.
    pub view: BatchView,
}

impl App {
    /// The approver's view of a batch.
    pub async fn batch_view(&self, actor: &Actor, id: BatchId) -> Result<BatchView> {
        self.authorize(actor, Permission::View, "see the outbox")
            .await?;
        self.view_of(id).await
    }

    async fn view_of(&self, id: BatchId) -> Result<BatchView> {
        let batch = self.find_batch(id).await?;
        // The stored state first: if the batch changes while the view is assembled,
        // the view's state is older than what it shows and a decision on it fails.
        let state = self
            .store
            .batch_state(id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let messages = self
            .store
            .messages(&MessageFilter {
                batch: Some(id),
                ..Default::default()
            })
            .await?;
        // Who would be blocked now: the directory may have changed since composing.
        let ids: Vec<_> = messages.iter().filter_map(|m| m.recipient_id).collect();
        let facts: HashMap<_, _> = self
            .store
            .recipients(&RecipientFilter {
                ids: Some(ids),
                ..Default::default()
            })
            .await?
            .into_iter()
            .map(|f| (f.recipient.id, f))
            .collect();
        let mut lines = Vec::with_capacity(messages.len());
        // The version covers what a decision concerns: the messages still waiting for
        // one (judged as they are now) and those blocked at creation. Messages already
        // decided move on as they are sent, and must not make the version stale.
        let mut audience = sha2::Sha256::new();
        let mut waiting_segments = 0;
        for m in &messages {
            let mut line = (m.status, m.reason, m.segments);
            if pending(m.status)
                && let Some(f) = m.recipient_id.and_then(|r| facts.get(&r))
                && let Some(reason) = f
                    .check(
                        m.channel,
                        self.settings.school.phone_region,
                        self.settings.eligibility,
                    )
                    .first()
            {
                line = (MessageStatus::Blocked, Some(*reason), m.segments);
            }
            if matches!(
                m.status,
                MessageStatus::AwaitingApproval | MessageStatus::Blocked
            ) {
                audience.update(
                    format!(
                        "{}\t{}\t{}\n",
                        m.id.0,
                        line.0,
                        line.1.map(|r| r.as_str()).unwrap_or_default()
                    )
                    .as_bytes(),
                );
                if line.0 == MessageStatus::AwaitingApproval {
                    waiting_segments += m.segments.unwrap_or(0);
                }
            }
            lines.push(line);
        }
        let summary = self
            .summarize(batch.kind, batch.status, &lines, self.now())
            .await?;
        let samples = self.store.sample_messages(id).await?;
        let content_sha256 = content_hash(batch.subject.as_deref(), &batch.body);
        let mut content = sha2::Sha256::new();
        content.update(content_sha256.as_bytes());
        for s in &samples {
            for part in [
                Some(s.channel.as_str()),
                s.locale.as_deref(),
                s.subject.as_deref(),
                Some(s.body.as_str()),
                s.html.as_deref(),
            ] {
                content.update(part.unwrap_or_default().as_bytes());
                content.update([0]);
            }
        }
        let version = format!(
            "{}-{}-{}",
            &hex::encode(content.finalize())[..8],
            &hex::encode(audience.finalize())[..8],
            waiting_segments * i64::from(self.settings.sms.price_per_segment)
        );
        Ok(BatchView {
            batch,
            content_sha256,
            summary,
            samples,
            version,
            hold: self.store.hold().await?,
            state,
        })
    }

    /// Approves or rejects a batch awaiting approval, or only `only` of its
    /// messages, as the batch was shown at version `seen` (the whole batch's version,
    /// as `batch_view` gives it); without `seen`, as it is now.
    pub async fn decide(
        &self,
        actor: &Actor,
        id: BatchId,
        only: &[MessageId],
        decision: Decision,
        seen: Option<&str>,
    ) -> Result<DecisionTaken> {
        self.authorize(actor, Permission::Approve, "approve or reject batches")
            .await?;
        let view = self.view_of(id).await?;
        if let Some(seen) = seen.map(str::trim)
            && seen != view.version
        {
            return Err(AppError::Conflict(format!(
                "batch {id} changed since version {seen} was shown: {}; it is now version {}",
                what_changed(seen, &view),
                view.version
            )));
        }
        let (action, reason) = match &decision {
            Decision::Approve => (AuditAction::Approve, None),
            Decision::Reject(why) if why.trim().is_empty() => {
                return Err(AppError::invalid(
                    "reason",
                    "empty: expected why the batch is rejected",
                ));
            }
            Decision::Reject(why) => (AuditAction::Reject, Some(why.clone())),
        };
        let b = &view.batch;
        let audit = self.audit_line(
            actor,
            action,
            format!("batch {id}"),
            json!({
                "only": (!only.is_empty()).then_some(only.iter().map(|m| m.0).collect::<Vec<_>>()),
                "reason": reason,
                "version": view.version,
                "seen": {
                    "audience": b.audience,
                    "subject": b.subject,
                    "content_sha256": view.content_sha256,
                    "counts": b.counts,
                    "will_go": view.summary.will_go,
                    "sms_segments": view.summary.sms_segments,
                    "sms_cost": view.summary.sms_cost,
                },
            }),
        );
        let decided = if only.is_empty() {
            self.store
                .decide_batch(id, &decision, &view.state, &audit)
                .await?
        } else {
            self.store
                .decide_messages(id, only, &decision, &view.state, &audit)
                .await?
        };
        match decided {
            Decided::Done(messages) => Ok(DecisionTaken { messages, view }),
            Decided::NotFound => Err(not_found(id)),
            Decided::AlreadyDecided(status) => Err(AppError::Conflict(format!(
                "batch {id} is {status} already"
            ))),
            Decided::Changed => Err(AppError::Conflict(format!(
                "batch {id} changed while it was being decided (edited, cancelled or decided by \
                 someone else); nothing was decided"
            ))),
        }
    }

    /// How many messages will go, what they cost and when, for lines of a batch of
    /// `kind` in `status` (also a dry run's lines, before anything is stored).
    pub async fn summarize(
        &self,
        kind: MessageKind,
        status: BatchStatus,
        lines: &[SummaryLine],
        now: DateTime<Utc>,
    ) -> Result<Summary> {
        let settings = &self.settings;
        let mut s = Summary {
            will_go: 0,
            sent: 0,
            blocked: BTreeMap::new(),
            other: BTreeMap::new(),
            sms_segments: 0,
            sms_cost: 0,
            wallet_balance: self.store.wallet().await?.balance,
            when: String::new(),
        };
        for (st, reason, segments) in lines {
            match st {
                MessageStatus::AwaitingApproval
                | MessageStatus::Queued
                | MessageStatus::Sending => {
                    s.will_go += 1;
                    s.sms_segments += segments.unwrap_or(0);
                }
                MessageStatus::Sent | MessageStatus::Delivered => s.sent += 1,
                MessageStatus::Blocked => {
                    *s.blocked
                        .entry(reason.map(|r| r.as_str()).unwrap_or("?").to_owned())
                        .or_default() += 1
                }
                other => *s.other.entry(other.to_string()).or_default() += 1,
            }
        }
        s.sms_cost = s.sms_segments * i64::from(settings.sms.price_per_segment);
        let tz = settings.school.time_zone;
        let calendar = self
            .store
            .calendar(now.with_timezone(&tz).date_naive())
            .await?;
        let tick = settings
            .dispatch
            .schedule
            .after(&now.with_timezone(&tz))
            .next()
            .map(|t| t.format("%a %d %b %H:%M").to_string())
            .unwrap_or_else(|| "never (the schedule does not fire)".into());
        let window = if settings.respects_window(kind) {
            match settings.send_window.hold_reason(now, &calendar) {
                None => format!("the window is open now: the next dispatch tick, {tick}"),
                Some(reason) => format!(
                    "{} now: at the next opening, {}",
                    reason.describe(),
                    settings
                        .send_window
                        .next_opening(now, &calendar)
                        .map(|t| t.format("%a %d %b %H:%M").to_string())
                        .unwrap_or_else(|| "not within a year".into())
                ),
            }
        } else {
            format!("at the next dispatch tick, {tick}")
        };
        let hold = if self.store.hold().await?.is_some() {
            " — but dispatch is ON HOLD"
        } else {
            ""
        };
        s.when = match status {
            BatchStatus::AwaitingApproval => format!("after approval; {window}{hold}"),
            BatchStatus::Approved => format!("approved; {window}{hold}"),
            BatchStatus::Rejected => "never: the batch was rejected".into(),
        };
        Ok(s)
    }

    /// Changes the text of a batch not yet sent on one of its channels (`None`: its
    /// only one). Its unsent messages take the new text and wait for approval again,
    /// an approved batch included. Returns how many messages took it.
    pub async fn edit_batch(&self, actor: &Actor, id: BatchId, text: &BatchText) -> Result<u64> {
        let b = self.find_batch(id).await?;
        self.may_change(actor, &b).await?;
        let channel = match text.channel {
            Some(c) if !b.channels.channels().contains(&c) => {
                return Err(AppError::invalid(
                    "channel",
                    format!("{c}: batch {id} sends by {} only", b.channels),
                ));
            }
            Some(c) => c,
            None if b.channels.channels().len() > 1 => {
                return Err(AppError::invalid(
                    "channel",
                    format!(
                        "batch {id} sends by email and SMS: expected which text changes (email or sms)"
                    ),
                ));
            }
            None => b.channel,
        };
        let old_subject = (channel == b.channel)
            .then_some(b.subject.as_deref())
            .flatten();
        let content = Content::for_channel(
            &self.settings,
            b.kind,
            channel,
            text.subject.as_deref().or(old_subject),
            &text.body,
            text.transliterate,
        )?
        .with_html(text.html.as_deref())?;
        let edit = BatchEdit {
            channel,
            segments: content.sms.map(|s| s.segments as i64),
            subject: content.subject.as_deref().map(str::to_owned),
            body: content.body.to_string(),
            html: content.html.as_deref().map(str::to_owned),
        };
        let audit = self.audit_line(
            actor,
            AuditAction::Edit,
            format!("batch {id}"),
            json!({
                "was_status": b.status,
                "old_sha256": content_hash(b.subject.as_deref(), &b.body),
                "new_sha256": content_hash(edit.subject.as_deref(), &edit.body),
            }),
        );
        self.store
            .edit_batch(id, &edit, &audit)
            .await?
            .ok_or_else(|| {
                AppError::Conflict(format!(
                    "batch {id} is {} and can no longer be edited",
                    b.status
                ))
            })
    }

    /// Cancels every message of a batch that has not been sent. Returns how many.
    pub async fn cancel_batch(&self, actor: &Actor, id: BatchId) -> Result<u64> {
        let b = self.find_batch(id).await?;
        self.may_change(actor, &b).await?;
        let audit = self.audit_line(actor, AuditAction::Cancel, format!("batch {id}"), json!({}));
        Ok(self.store.cancel_batch(id, &audit).await?)
    }

    /// Whoever composed a batch may still change it; others need `approve`.
    async fn may_change(&self, actor: &Actor, b: &BatchSummary) -> Result<()> {
        if actor.name() == b.created_by {
            self.authorize(actor, Permission::Send, "change their own batches")
                .await?;
        } else {
            self.authorize(
                actor,
                Permission::Approve,
                &format!("change batch {} (composed by {})", b.id, b.created_by),
            )
            .await?;
        }
        Ok(())
    }

    /// A batch by id.
    pub(super) async fn find_batch(&self, id: BatchId) -> Result<BatchSummary> {
        self.store
            .batches(None)
            .await?
            .into_iter()
            .find(|b| b.id == id)
            .ok_or_else(|| not_found(id))
    }
}

fn not_found(id: BatchId) -> AppError {
    AppError::NotFound {
        what: "batch",
        id: id.0.to_string(),
    }
}

/// Whether a message has not gone nor ended yet.
fn pending(status: MessageStatus) -> bool {
    matches!(
        status,
        MessageStatus::AwaitingApproval | MessageStatus::Queued
    )
}

/// What differs between the version `seen` and the view as it is now, in words.
fn what_changed(seen: &str, now: &BatchView) -> String {
    let parts: Vec<&str> = seen.split('-').collect();
    let current: Vec<&str> = now.version.split('-').collect();
    if parts.len() != 3 {
        return format!(
            "{seen:?} is not a version of this batch (expected CONTENT-AUDIENCE-COST, as `outbox show` prints it)"
        );
    }
    let mut changes = Vec::new();
    if parts[0] != current[0] {
        changes.push("the text was edited".to_owned());
    }
    if parts[1] != current[1] {
        let blocked: i64 = now.summary.blocked.values().sum();
        changes.push(format!(
            "who gets it changed (now {} will go, {blocked} blocked)",
            now.summary.will_go
        ));
    }
    if parts[2] != current[2] {
        changes.push(format!(
            "the SMS cost changed from {} to {} point(s)",
            parts[2], current[2]
        ));
    }
    if changes.is_empty() {
        "nothing that shows, but it is not the same version".to_owned()
    } else {
        changes.join("; ")
    }
}

/// A fingerprint of a message's text, so the audit log shows what exactly was seen.
pub fn content_hash(subject: Option<&str>, body: &str) -> String {
    let mut hash = sha2::Sha256::new();
    hash.update(subject.unwrap_or_default().as_bytes());
    hash.update([0]);
    hash.update(body.as_bytes());
    hex::encode(hash.finalize())
}

/// The lines of messages, as [`App::summarize`] takes them.
pub fn lines_of<'a>(
    messages: impl IntoIterator<Item = &'a crate::store::NewMessage>,
) -> Vec<SummaryLine> {
    messages
        .into_iter()
        .map(|m| (m.status, m.reason, m.segments))
        .collect()
}
