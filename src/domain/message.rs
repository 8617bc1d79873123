//! Message kinds and channels: the two axes every message is filed under.

use super::codes::stable_codes;

stable_codes! {
    /// What a message is for; decides approval and whether the send window applies.
    pub enum MessageKind("message kind") {
        /// Automatic and immediate: account created, contract status changed, …
        System = "system",
        /// Written by staff to a group or everyone; approved before it goes.
        Informational = "informational",
        /// Produced by a rule on a schedule: reminders, arrears, birthdays.
        Periodic = "periodic",
    }
}

stable_codes! {
    /// The way a message travels.
    pub enum Channel("channel") {
        /// SMTP.
        Email = "email",
        /// An HTTP SMS gateway.
        Sms = "sms",
    }
}

stable_codes! {
    /// The channels a send uses: one, both, or SMS only where email cannot reach.
    pub enum ChannelChoice("channel") {
        /// Email only.
        Email = "email",
        /// SMS only.
        Sms = "sms",
        /// An email and an SMS to each person (each judged on its own).
        Both = "both",
        /// Email, and an SMS instead to those without a usable email address.
        SmsIfNoEmail = "sms_if_no_email",
    }
}

impl ChannelChoice {
    /// The channel whose text the batch records: email unless SMS only.
    pub fn primary(self) -> Channel {
        match self {
            ChannelChoice::Sms => Channel::Sms,
            _ => Channel::Email,
        }
    }

    /// The channels it may use.
    pub fn channels(self) -> &'static [Channel] {
        match self {
            ChannelChoice::Email => &[Channel::Email],
            ChannelChoice::Sms => &[Channel::Sms],
            ChannelChoice::Both | ChannelChoice::SmsIfNoEmail => &[Channel::Email, Channel::Sms],
        }
    }
}

impl From<Channel> for ChannelChoice {
    fn from(c: Channel) -> Self {
        match c {
            Channel::Email => ChannelChoice::Email,
            Channel::Sms => ChannelChoice::Sms,
        }
    }
}

stable_codes! {
    /// Where a message stands in its lifecycle (design §3).
    pub enum MessageStatus("message status") {
        /// Ineligible: will never go (terminal; the reason says why).
        Blocked = "blocked",
        /// In a batch nobody has approved yet.
        AwaitingApproval = "awaiting_approval",
        /// Its batch was rejected (terminal).
        Rejected = "rejected",
        /// Waiting for its time: the next tick, a window opening, a retry.
        Queued = "queued",
        /// Claimed by a dispatcher, being sent.
        Sending = "sending",
        /// Accepted by the server.
        Sent = "sent",
        /// Reported delivered by the channel.
        Delivered = "delivered",
        /// Failed for good (terminal; the reason says why).
        Failed = "failed",
        /// Handed over, but whether the server took it is not known.
        Unknown = "unknown",
        /// Withdrawn by an operator, or no longer relevant (terminal).
        Cancelled = "cancelled",
        /// Could no longer go in time, e.g. a birthday greeting (terminal).
        Expired = "expired",
    }
}

impl MessageStatus {
    /// Whether nothing more will happen to the message by itself.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            MessageStatus::Blocked
                | MessageStatus::Rejected
                | MessageStatus::Sent
                | MessageStatus::Delivered
                | MessageStatus::Failed
                | MessageStatus::Unknown
                | MessageStatus::Cancelled
                | MessageStatus::Expired
        )
    }
}

stable_codes! {
    /// Where a batch stands.
    pub enum BatchStatus("batch status") {
        /// In the outbox, waiting for a decision.
        AwaitingApproval = "awaiting_approval",
        /// Approved: its messages go on the dispatch tick.
        Approved = "approved",
        /// Rejected: nothing goes.
        Rejected = "rejected",
    }
}

/// Herald's id of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct MessageId(pub i64);

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Herald's id of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct BatchId(pub i64);

impl std::fmt::Display for BatchId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Whom an informational send is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// One person, by the platform's id.
    Recipient(String),
    /// The students of one group, by the platform's id.
    Group(String),
    /// Several people, by the platform's ids.
    List(Vec<String>),
    /// The students of several groups (each student once).
    Groups(Vec<String>),
    /// The teachers of one group.
    TeachersOf(String),
    /// The students of every group.
    AllGroups,
    /// Every student with an active contract.
    ActiveContracts,
}

/// For an audience of students: the students, their guardians, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// The students themselves.
    Students,
    /// Only their guardians.
    Guardians,
    /// The students and their guardians.
    Both,
}

impl Audience {
    /// The audience in words, as the outbox shows it.
    pub fn describe(&self, reach: Reach) -> String {
        let who = match self {
            Audience::Recipient(id) => return format!("recipient {id}"),
            Audience::Group(g) => format!("group {g}"),
            Audience::List(ids) => return format!("{} people: {}", ids.len(), ids.join(", ")),
            Audience::Groups(gs) => format!("groups {}", gs.join(", ")),
            Audience::TeachersOf(g) => return format!("teachers of group {g}"),
            Audience::AllGroups => "all groups".to_owned(),
            Audience::ActiveContracts => "everyone with an active contract".to_owned(),
        };
        match reach {
            Reach::Students => format!("{who}: students"),
            Reach::Guardians => format!("{who}: guardians of the students"),
            Reach::Both => format!("{who}: students and their guardians"),
        }
    }
}
