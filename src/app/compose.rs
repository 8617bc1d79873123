//! Writing to people: a system message to one person (a text, or a template rendered
//! for them; once per idempotency key when the caller gives one), and an
//! informational send to an audience (or its dry run, which shows the same and
//! stores nothing).

use std::collections::BTreeMap;

use serde_json::json;

use super::{Actor, App, AppError, Result, Summary, content_hash, lines_of};
use crate::compose::{self, Content, Contents, Send};
use crate::domain::access::Operator;
use crate::domain::access::Permission;
use crate::domain::audit::AuditAction;
use crate::domain::{Audience, BatchId, Channel, ChannelChoice, MessageId, MessageKind, Reach};
use crate::store::{AuditEntry, IdempotencyKey, MessageFilter, MessageView, NewMessage, Once};

/// What a send says: a text, or a template rendered per person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendContent {
    /// The same text for everyone (the subject for email; an HTML body optional).
    Text {
        /// The subject (email).
        subject: Option<String>,
        /// The text.
        body: String,
        /// An HTML body beside the text (email).
        html: Option<String>,
    },
    /// A named template, rendered for each person in their locale.
    Template {
        /// Its name.
        name: String,
        /// Values for its free variables.
        vars: BTreeMap<String, String>,
    },
}

/// An informational send, as a person asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    /// Who: one person, a list, groups, a group's teachers, all groups, every active
    /// contract.
    pub audience: Audience,
    /// Students, their guardians, or both.
    pub reach: Reach,
    /// Email, SMS, both, or SMS where there is no email.
    pub channel: ChannelChoice,
    /// What.
    pub content: SendContent,
    /// Transliterate SMS text to GSM-7 (cheaper; loses diacritics).
    pub transliterate: bool,
}

/// What a notification says: a text, or a named template rendered for its recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyContent {
    /// A text (a subject for email).
    Text {
        /// The subject (email).
        subject: Option<String>,
        /// The text.
        body: String,
    },
    /// A saved template, rendered for the recipient in their locale.
    Template {
        /// Its name.
        name: String,
        /// Values for its free variables.
        vars: BTreeMap<String, String>,
    },
}

/// A system message to one person, as the platform or a person asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyRequest {
    /// The person (the platform's id).
    pub recipient: String,
    /// Email or SMS.
    pub channel: Channel,
    /// What it says.
    pub content: NotifyContent,
    /// Transliterate an SMS to GSM-7 (cheaper; loses diacritics).
    pub transliterate: bool,
}

impl NotifyRequest {
    /// The SHA-256 of what the request asks for, defaults filled in: spacing, key order
    /// or a default spelt out do not make a retry "another request". The text form's
    /// fingerprint is the one keys were stored with before templates were taken, so a
    /// retry across an upgrade is still the same request.
    pub fn fingerprint(&self) -> String {
        let asked = match &self.content {
            NotifyContent::Text { subject, body } => json!({
                "recipient": self.recipient,
                "channel": self.channel.as_str(),
                "subject": subject,
                "body": body,
                "transliterate": self.transliterate,
            }),
            NotifyContent::Template { name, vars } => json!({
                "recipient": self.recipient,
                "channel": self.channel.as_str(),
                "template": name,
                "vars": vars,
                "transliterate": self.transliterate,
            }),
        };
        // serde_json's maps are sorted by key, so the text is the same for the same
        // request.
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            asked.to_string().as_bytes(),
        ))
    }
}

/// A send composed: stored as a batch, or only shown (a dry run).
#[derive(Debug, Clone)]
pub struct Composed {
    /// The batch and its messages, one per person and channel, each judged.
    pub send: Send,
    /// The batch's id; `None` for a dry run.
    pub batch: Option<BatchId>,
    /// How many will go, who is blocked and why, the cost and when.
    pub summary: Summary,
}

impl App {
    /// Composes an informational send; unless `dry_run`, stores it as a batch (in the
    /// outbox, or approved at once when the sender may send without approval) with
    /// its audit line.
    pub async fn send(&self, actor: &Actor, req: &SendRequest, dry_run: bool) -> Result<Composed> {
        let op = self
            .authorize(actor, Permission::Send, "compose messages")
            .await?;
        let store = &*self.store;
        let send = match &req.content {
            SendContent::Template { name, vars } => {
                compose::compose_templated_send(
                    store,
                    &self.settings,
                    &op,
                    &req.audience,
                    req.reach,
                    req.channel,
                    name,
                    vars,
                    req.transliterate,
                )
                .await?
            }
            SendContent::Text {
                subject,
                body,
                html,
            } => {
                let text = |c: Channel| -> Result<Option<Content>> {
                    if !req.channel.channels().contains(&c) {
                        return Ok(None);
                    }
                    let content = Content::for_channel(
                        &self.settings,
                        MessageKind::Informational,
                        c,
                        subject.as_deref(),
                        body,
                        req.transliterate,
                    )
                    .map_err(|e| AppError::from(e).on_channel(c))?;
                    let html = html.as_deref().filter(|_| c == Channel::Email);
                    Ok(Some(content.with_html(html)?))
                };
                let contents = Contents {
                    choice: req.channel,
                    email: text(Channel::Email)?,
                    sms: text(Channel::Sms)?,
                };
                compose::compose_send_to(
                    store,
                    &self.settings,
                    &op,
                    &req.audience,
                    req.reach,
                    &contents,
                )
                .await?
            }
        };
        let batch = if dry_run {
            None
        } else {
            let audit = self.audit_line(actor, AuditAction::Send, "batch {id}", snapshot(&send));
            Some(
                self.store
                    .create_batch(&send.batch, &send.messages, &audit)
                    .await?,
            )
        };
        let summary = self
            .summarize(
                send.batch.kind,
                send.batch.status,
                &lines_of(&send.messages),
                self.now(),
            )
            .await?;
        Ok(Composed {
            send,
            batch,
            summary,
        })
    }

    /// [`App::notify`] with a text checked for `channel` (an SMS transliterated to
    /// GSM-7 when asked).
    pub async fn notify_text(
        &self,
        actor: &Actor,
        recipient: &str,
        channel: Channel,
        subject: Option<&str>,
        body: &str,
        transliterate: bool,
    ) -> Result<(MessageId, NewMessage)> {
        let request = NotifyRequest {
            recipient: recipient.to_owned(),
            channel,
            content: NotifyContent::Text {
                subject: subject.map(str::to_owned),
                body: body.to_owned(),
            },
            transliterate,
        };
        self.notify_with(actor, &request).await
    }

    /// A system message as asked for: a text checked for its channel, or a template
    /// rendered for the recipient (see [`App::notify`]).
    pub async fn notify_with(
        &self,
        actor: &Actor,
        request: &NotifyRequest,
    ) -> Result<(MessageId, NewMessage)> {
        let op = self
            .authorize(actor, Permission::Send, "send notifications")
            .await?;
        let (message, audit) = self.requested_message(actor, &op, request).await?;
        let id = self.store.create_message(&message, &audit).await?;
        Ok((id, message))
    }

    /// A system message to one person (account created, a password reset): no
    /// approval, and it goes at once when the daemon runs. A person who cannot be
    /// reached gets a `blocked` message with the reason, so the platform can ask why.
    pub async fn notify(
        &self,
        actor: &Actor,
        recipient: &str,
        content: &Content,
    ) -> Result<(MessageId, NewMessage)> {
        let op = self
            .authorize(actor, Permission::Send, "send notifications")
            .await?;
        self.check_reach_of(&op, recipient).await?;
        let message =
            compose::system_message(&*self.store, &self.settings, recipient, content).await?;
        let audit = self.notify_audit(actor, &message);
        let id = self.store.create_message(&message, &audit).await?;
        Ok((id, message))
    }

    /// [`App::notify_with`] under the caller's idempotency key `key`: the first call
    /// creates the message, a repeat of the same request returns it (`replayed`) and
    /// creates nothing, also when the repeats race each other or arrive at another
    /// instance; the same key with another request is refused.
    pub async fn notify_once(
        &self,
        actor: &Actor,
        key: &str,
        request: &NotifyRequest,
    ) -> Result<Notified> {
        let key = key.trim();
        if key.is_empty() || key.len() > 255 || key.chars().any(char::is_control) {
            return Err(AppError::invalid(
                "idempotency_key",
                "expected 1 to 255 printable characters",
            ));
        }
        // Authorized first: a key does not let an operator who lost `send` read back
        // what they once sent.
        let op = self
            .authorize(actor, Permission::Send, "send notifications")
            .await?;
        let key = IdempotencyKey {
            actor: actor.name().to_owned(),
            key: key.to_owned(),
            request_sha256: request.fingerprint(),
        };
        // A repeat is answered before anything is composed: it does not render the
        // template or judge the person again, and answers what the first request made
        // even when the directory or the template changed since.
        let once = match self.store.idempotency_key(&key.actor, &key.key).await? {
            Some(used) if used.request_sha256 == key.request_sha256 => Once::Existing(used.message),
            Some(_) => Once::KeyReused,
            // Unused a moment ago: compose, and let the store decide a race with a
            // concurrent first request (the key's row is written first in the
            // message's transaction).
            None => {
                let (message, audit) = self.requested_message(actor, &op, request).await?;
                self.store
                    .create_message_once(&message, &key, &audit)
                    .await?
            }
        };
        let (id, replayed) = match once {
            Once::Created(id) => (id, false),
            Once::Existing(id) => (id, true),
            Once::KeyReused => {
                return Err(AppError::invalid(
                    "idempotency_key",
                    format!(
                        "{:?} was used for another request; a key names one request",
                        key.key
                    ),
                ));
            }
        };
        let view = self
            .message_view(id)
            .await?
            .ok_or_else(|| AppError::Conflict(format!("message {} is gone", id.0)))?;
        Ok(Notified { view, replayed })
    }

    /// The system message `request` asks for, as `op` (authorized by the caller):
    /// checked against their reach, composed, judged, with its audit line.
    async fn requested_message(
        &self,
        actor: &Actor,
        op: &Operator,
        request: &NotifyRequest,
    ) -> Result<(NewMessage, AuditEntry)> {
        let recipient = request.recipient.as_str();
        self.check_reach_of(op, recipient).await?;
        let message = match &request.content {
            NotifyContent::Text { subject, body } => {
                let content = Content::for_channel(
                    &self.settings,
                    MessageKind::System,
                    request.channel,
                    subject.as_deref(),
                    body,
                    request.transliterate,
                )?;
                compose::system_message(&*self.store, &self.settings, recipient, &content).await?
            }
            NotifyContent::Template { name, vars } => {
                compose::templated_system_message(
                    &*self.store,
                    &self.settings,
                    recipient,
                    request.channel,
                    name,
                    vars,
                    request.transliterate,
                )
                .await?
            }
        };
        let audit = self.notify_audit(actor, &message);
        Ok((message, audit))
    }

    /// Refuses a recipient outside what `op` may reach.
    async fn check_reach_of(&self, op: &Operator, recipient: &str) -> Result<()> {
        compose::check_reach(&*self.store, op, &Audience::Recipient(recipient.to_owned())).await?;
        Ok(())
    }

    /// The audit line of a system message.
    fn notify_audit(&self, actor: &Actor, message: &NewMessage) -> AuditEntry {
        self.audit_line(
            actor,
            AuditAction::Notify,
            "message {id}",
            json!({
                "recipient": message.recipient_external_id,
                "channel": message.channel,
                "status": message.status,
                "reason": message.reason,
            }),
        )
    }

    /// One message as listings show it.
    async fn message_view(&self, id: MessageId) -> Result<Option<MessageView>> {
        // The newest message below id + 1 is the message itself, when it exists.
        let filter = MessageFilter {
            before: Some(MessageId(id.0 + 1)),
            limit: Some(1),
            ..MessageFilter::default()
        };
        Ok(self
            .store
            .messages(&filter)
            .await?
            .into_iter()
            .find(|m| m.id == id))
    }
}

/// A system message created (or found) under an idempotency key.
#[derive(Debug, Clone)]
pub struct Notified {
    /// The message.
    pub view: MessageView,
    /// Whether an earlier request with the same key created it.
    pub replayed: bool,
}

/// What a sender composed, for the audit log.
fn snapshot(send: &Send) -> serde_json::Value {
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for m in &send.messages {
        let key = match m.reason {
            Some(r) => format!("{}/{}", m.status, r.as_str()),
            None => m.status.to_string(),
        };
        *counts.entry(key).or_default() += 1;
    }
    json!({
        "audience": send.batch.audience,
        "channel": send.batch.channel,
        "subject": send.batch.subject,
        "content_sha256": content_hash(send.batch.subject.as_deref(), &send.batch.body),
        "messages": send.messages.len(),
        "counts": counts,
        "status": send.batch.status,
    })
}
