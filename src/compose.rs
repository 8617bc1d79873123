//! Composing: turning "write this to these people" into stored messages, one per
//! person and channel, each already judged by eligibility (ineligible ones are kept
//! as `blocked` with their reason, so "why didn't they get it" always has an answer).

use chrono::{DateTime, Utc};

use crate::config::{OperatorSettings, Settings};
use crate::domain::{
    Audience, BatchId, BatchStatus, Channel, EligibilityFacts, MessageId, MessageKind,
    MessageStatus, Reach, Reason,
};
use crate::store::{NewBatch, NewMessage, Store, StoreError};

/// Why a message or batch cannot be composed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// `--as` names no configured operator.
    #[error(
        "unknown operator {0:?}: operators are defined as [operators.LOGIN] in the configuration"
    )]
    UnknownOperator(String),
    /// A text field is unusable.
    #[error("{field} {problem}")]
    BadText {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// The audience names a group that does not exist.
    #[error("no group with id {0:?} (`herald groups` lists them)")]
    UnknownGroup(String),
    /// The audience is empty.
    #[error("the audience {0} has nobody in it")]
    EmptyAudience(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The text of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// The subject (email).
    pub subject: String,
    /// The plain-text body.
    pub body: String,
}

impl Content {
    /// Checks the text: a subject on one line (a CR or LF in a header would let the
    /// text add headers of its own), and a body that is not empty.
    pub fn new(subject: &str, body: &str) -> Result<Content, ComposeError> {
        let subject = subject.trim();
        if subject.is_empty() {
            return Err(ComposeError::BadText {
                field: "the subject",
                problem: "is empty",
            });
        }
        if subject.contains(['\r', '\n']) {
            return Err(ComposeError::BadText {
                field: "the subject",
                problem: "must be one line (no CR or LF)",
            });
        }
        if body.trim().is_empty() {
            return Err(ComposeError::BadText {
                field: "the body",
                problem: "is empty",
            });
        }
        Ok(Content {
            subject: subject.to_owned(),
            body: body.to_owned(),
        })
    }
}

/// A message to `facts` (or to an unknown platform id), judged by eligibility: blocked
/// with the first failed check, or in `status` (with `awaiting_approval` as reason
/// while it waits for approval).
pub fn judge(
    settings: &Settings,
    external_id: &str,
    facts: Option<&EligibilityFacts>,
    kind: MessageKind,
    channel: Channel,
    content: &Content,
    status: MessageStatus,
) -> NewMessage {
    let failed = match facts {
        Some(f) => f.check(channel, settings.school.phone_region, settings.eligibility),
        None => vec![Reason::RecipientUnknown],
    };
    let address = facts.and_then(|f| match channel {
        Channel::Email => f.recipient.email.as_ref().map(|e| e.trim().to_owned()),
        Channel::Sms => f.recipient.phone.as_ref().map(|p| p.trim().to_owned()),
    });
    let (status, reason) = match failed.first() {
        Some(reason) => (MessageStatus::Blocked, Some(*reason)),
        None if status == MessageStatus::AwaitingApproval => {
            (status, Some(Reason::AwaitingApproval))
        }
        None => (status, None),
    };
    NewMessage {
        kind,
        channel,
        recipient_id: facts.map(|f| f.recipient.id),
        recipient_external_id: external_id.to_owned(),
        address,
        subject: Some(content.subject.clone()),
        body: content.body.clone(),
        status,
        reason,
    }
}

/// Creates a system message to one recipient: no approval, sent on the next pass (at
/// once when the daemon watches for system messages).
pub async fn notify(
    store: &dyn Store,
    settings: &Settings,
    recipient: &str,
    content: &Content,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(MessageId, NewMessage), ComposeError> {
    let facts = store.recipient(recipient).await?;
    let message = judge(
        settings,
        recipient,
        facts.as_ref(),
        MessageKind::System,
        Channel::Email,
        content,
        MessageStatus::Queued,
    );
    let id = store.create_message(&message, actor, now).await?;
    Ok((id, message))
}

/// An informational send, composed but not stored: what `--dry-run` shows and what
/// [`store_send`] keeps.
#[derive(Debug, Clone)]
pub struct Send {
    /// The batch.
    pub batch: NewBatch,
    /// One message per person.
    pub messages: Vec<NewMessage>,
}

/// The operator named `login`, as configured.
pub fn operator<'a>(
    settings: &'a Settings,
    login: &str,
) -> Result<&'a OperatorSettings, ComposeError> {
    settings
        .operators
        .get(login)
        .ok_or_else(|| ComposeError::UnknownOperator(login.to_owned()))
}

/// Composes an informational email to an audience: one message per person, each
/// judged; awaiting approval unless the operator may send without it.
pub async fn compose_send(
    store: &dyn Store,
    settings: &Settings,
    login: &str,
    audience: &Audience,
    reach: Reach,
    content: &Content,
) -> Result<Send, ComposeError> {
    let op = operator(settings, login)?;
    if let Audience::Group(g) = audience
        && !store.groups().await?.iter().any(|x| &x.external_id == g)
    {
        return Err(ComposeError::UnknownGroup(g.clone()));
    }
    let described = audience.describe(reach);
    let people = store.audience(audience, reach).await?;
    let (batch_status, status) = if op.send_without_approval {
        (BatchStatus::Approved, MessageStatus::Queued)
    } else {
        (
            BatchStatus::AwaitingApproval,
            MessageStatus::AwaitingApproval,
        )
    };
    let mut messages: Vec<NewMessage> = people
        .iter()
        .map(|f| {
            judge(
                settings,
                &f.recipient.external_id,
                Some(f),
                MessageKind::Informational,
                Channel::Email,
                content,
                status,
            )
        })
        .collect();
    if let Audience::Recipient(id) = audience
        && people.is_empty()
    {
        // The platform named someone Herald does not know: keep the message, blocked.
        messages.push(judge(
            settings,
            id,
            None,
            MessageKind::Informational,
            Channel::Email,
            content,
            status,
        ));
    }
    if messages.is_empty() {
        return Err(ComposeError::EmptyAudience(described));
    }
    Ok(Send {
        batch: NewBatch {
            kind: MessageKind::Informational,
            channel: Channel::Email,
            status: batch_status,
            audience: described,
            subject: Some(content.subject.clone()),
            body: content.body.clone(),
            created_by: login.to_owned(),
        },
        messages,
    })
}

/// Stores a composed send. A batch from an operator who may send without approval
/// is stored approved, by them.
pub async fn store_send(
    store: &dyn Store,
    send: &Send,
    now: DateTime<Utc>,
) -> Result<BatchId, ComposeError> {
    Ok(store.create_batch(&send.batch, &send.messages, now).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_one_line_and_bodies_are_not_empty() {
        assert!(Content::new("Closed tomorrow", "The school is closed.").is_ok());
        assert!(Content::new("Closed\r\nBcc: everyone@example.pl", "x").is_err());
        assert!(Content::new("  ", "x").is_err());
        assert!(Content::new("Subject", " \n ").is_err());
    }
}
