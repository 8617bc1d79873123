//! Delivery reports: what an SMS gateway says became of a message after it accepted
//! it, reduced to the little Herald acts on.
//!
//! Gateways speak their own codes (SMSAPI's `404`, Twilio's `undelivered`); each
//! gateway module maps them to a [`ReportState`]. A report only moves a message
//! forward: `sent` (or `unknown`) becomes `delivered` or `failed`, and nothing after
//! that changes it, so duplicates, late and out-of-order reports are harmless.

use chrono::{DateTime, Utc};

use super::codes::stable_codes;
use super::message::MessageId;

stable_codes! {
    /// What a report says, in Herald's terms.
    pub enum ReportState("report state") {
        /// It reached the phone.
        Delivered = "delivered",
        /// It will not reach the phone: expired, refused by the network, failed.
        Undelivered = "undelivered",
        /// Still on its way (queued, accepted, sent to the network): nothing to do.
        InFlight = "in_flight",
        /// The gateway itself does not know.
        Unknown = "unknown",
    }
}

stable_codes! {
    /// What a report did to its message.
    pub enum ReportEffect("report effect") {
        /// It moved the message to `delivered` or `failed`.
        Applied = "applied",
        /// The message was already past it (a duplicate, a late or an in-flight report).
        NoChange = "no_change",
        /// It came before Herald recorded the gateway's acceptance; it is applied when
        /// the acceptance is recorded.
        Pending = "pending",
        /// No message of Herald's has this id: kept and logged, nothing changed.
        UnknownMessage = "unknown_message",
    }
}

/// One report from a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// The gateway that sent it (`smsapi`, `twilio`, `webhook`).
    pub gateway: &'static str,
    /// Herald's own key of the message, where the gateway echoes it (SMSAPI's `idx`,
    /// the webhook's `id`, the `ref` in Twilio's callback URL).
    pub key: Option<MessageKey>,
    /// The gateway's id of the message (SMSAPI `MsgId`, Twilio `MessageSid`).
    pub provider_id: Option<String>,
    /// What it says.
    pub state: ReportState,
    /// The gateway's own words, kept for diagnosis (`404 DELIVERED`, `undelivered 30003`).
    pub status: String,
    /// When the gateway says it happened, where it says.
    pub at: Option<DateTime<Utc>>,
}

/// Herald's identity of a message as a gateway sees it: `herald-<id>-<created unix
/// seconds>`, and `-<n>` after it once an operator has sent a failed message again
/// for the n-th time. The creation time makes a key from another Herald database (or
/// one recreated from scratch) fail to match instead of naming the wrong message; the
/// generation makes a gateway that deduplicates by key take a deliberate resend, and
/// tells reports about the earlier send apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageKey {
    /// The message's id.
    pub id: MessageId,
    /// When it was created, in Unix seconds.
    pub created: i64,
    /// How many times an operator has sent it again after it failed.
    pub generation: i64,
}

impl MessageKey {
    /// The key of a message's first send.
    pub fn of(id: MessageId, created_at: DateTime<Utc>) -> MessageKey {
        MessageKey::resent(id, created_at, 0)
    }

    /// The key of a message sent again `generation` times.
    pub fn resent(id: MessageId, created_at: DateTime<Utc>, generation: i64) -> MessageKey {
        MessageKey {
            id,
            created: created_at.timestamp(),
            generation,
        }
    }

    /// Reads a key back; `None` when `text` is not one of Herald's.
    pub fn parse(text: &str) -> Option<MessageKey> {
        let mut parts = text.trim().strip_prefix("herald-")?.split('-');
        let id = parts.next()?.parse().ok()?;
        let created = parts.next()?.parse().ok()?;
        let generation = match parts.next() {
            Some(g) => g.parse().ok().filter(|g: &i64| *g > 0)?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(MessageKey {
            id: MessageId(id),
            created,
            generation,
        })
    }
}

impl std::fmt::Display for MessageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "herald-{}-{}", self.id, self.created)?;
        // The first send keeps the key Herald has always used.
        if self.generation > 0 {
            write!(f, "-{}", self.generation)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_key_reads_back_and_anything_else_is_none() {
        let at = Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap();
        let key = MessageKey::of(MessageId(42), at);
        assert_eq!(key.to_string(), "herald-42-1795510800");
        assert_eq!(MessageKey::parse(&key.to_string()), Some(key));
        let again = MessageKey::resent(MessageId(42), at, 2);
        assert_eq!(again.to_string(), "herald-42-1795510800-2");
        assert_eq!(MessageKey::parse(&again.to_string()), Some(again));
        for bad in [
            "",
            "herald-",
            "herald-42",
            "herald-x-1",
            "42-1795510800",
            "herald-4-2-x",
            "herald-4-2-0",
            "herald-4-2-1-1",
        ] {
            assert_eq!(MessageKey::parse(bad), None, "{bad}");
        }
    }
}
