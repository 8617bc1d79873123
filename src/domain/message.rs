//! Message kinds and channels: the two axes every message is filed under.

use std::fmt;
use std::str::FromStr;

/// What a message is for; decides approval and whether the send window applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Automatic and immediate: account created, contract status changed, …
    System,
    /// Written by staff to a group or everyone; approved before it goes.
    Informational,
    /// Produced by a rule on a schedule: reminders, arrears, birthdays.
    Periodic,
}

impl MessageKind {
    /// Every kind.
    pub const ALL: [MessageKind; 3] = [
        MessageKind::System,
        MessageKind::Informational,
        MessageKind::Periodic,
    ];

    /// The stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::System => "system",
            MessageKind::Informational => "informational",
            MessageKind::Periodic => "periodic",
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The way a message travels.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// SMTP.
    Email,
    /// An HTTP SMS gateway.
    Sms,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 2] = [Channel::Email, Channel::Sms];

    /// The stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A string that names no channel.
#[derive(Debug, thiserror::Error)]
#[error("unknown channel {0:?}: expected \"email\" or \"sms\"")]
pub struct UnknownChannel(pub String);

impl FromStr for Channel {
    type Err = UnknownChannel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "email" => Ok(Channel::Email),
            "sms" => Ok(Channel::Sms),
            _ => Err(UnknownChannel(s.to_owned())),
        }
    }
}
