//! Reason codes: why a message did not go, or does not go yet.
//!
//! The codes are a contract with the platform and with ops (they appear in the
//! database, in `--json` output and in dashboards), so `as_str()` never changes once
//! a code is released. `describe()` gives the plain words shown to people.

use std::fmt;
use std::str::FromStr;

/// Why a message is blocked (eligibility) or held (timing), exactly as in the design.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    // Eligibility: the message cannot go to this recipient on this channel.
    /// Email channel, and the recipient has no email address.
    MissingEmail,
    /// The address does not parse as a deliverable address.
    InvalidEmail,
    /// SMS channel, and the recipient has no mobile number.
    MissingPhone,
    /// The number does not parse as a valid mobile number.
    InvalidPhone,
    /// The number is not marked as receiving SMS.
    PhoneNotSmsEnabled,
    /// No active contract with consent for this channel covers the recipient.
    NoConsent,
    /// The recipient does not exist.
    RecipientUnknown,
    // Timing: the message waits until it may go.
    /// Nobody with the right to approve has approved it yet.
    AwaitingApproval,
    /// Now is outside the weekly send window.
    OutsideSendWindow,
    /// Today is a day off in the school's calendar.
    Holiday,
    /// The SMS wallet cannot cover this message's segments.
    InsufficientSmsCredit,
    /// A transient failure; the next attempt time is set.
    RetryScheduled,
}

impl Reason {
    /// Every reason, in the order of the design's tables.
    pub const ALL: [Reason; 12] = [
        Reason::MissingEmail,
        Reason::InvalidEmail,
        Reason::MissingPhone,
        Reason::InvalidPhone,
        Reason::PhoneNotSmsEnabled,
        Reason::NoConsent,
        Reason::RecipientUnknown,
        Reason::AwaitingApproval,
        Reason::OutsideSendWindow,
        Reason::Holiday,
        Reason::InsufficientSmsCredit,
        Reason::RetryScheduled,
    ];

    /// The stable code kept on messages and printed by `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MissingEmail => "missing_email",
            Reason::InvalidEmail => "invalid_email",
            Reason::MissingPhone => "missing_phone",
            Reason::InvalidPhone => "invalid_phone",
            Reason::PhoneNotSmsEnabled => "phone_not_sms_enabled",
            Reason::NoConsent => "no_consent",
            Reason::RecipientUnknown => "recipient_unknown",
            Reason::AwaitingApproval => "awaiting_approval",
            Reason::OutsideSendWindow => "outside_send_window",
            Reason::Holiday => "holiday",
            Reason::InsufficientSmsCredit => "insufficient_sms_credit",
            Reason::RetryScheduled => "retry_scheduled",
        }
    }

    /// Plain words for a school secretary.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::MissingEmail => "no email address on record",
            Reason::InvalidEmail => "the email address on record is not a valid address",
            Reason::MissingPhone => "no mobile phone number on record",
            Reason::InvalidPhone => "the phone number on record is not a valid mobile number",
            Reason::PhoneNotSmsEnabled => "the phone number is not marked as receiving SMS",
            Reason::NoConsent => {
                "no active contract with consent for this channel covers this person"
            }
            Reason::RecipientUnknown => "this person is not in Herald's directory",
            Reason::AwaitingApproval => "waiting for someone to approve the batch",
            Reason::OutsideSendWindow => "waiting for the send window to open",
            Reason::Holiday => "waiting: today is a day off in the school calendar",
            Reason::InsufficientSmsCredit => "waiting for the SMS credit to be topped up",
            Reason::RetryScheduled => "the last attempt failed for a passing reason; retrying",
        }
    }

    /// Whether the reason blocks the message for good (an eligibility failure) rather
    /// than holding it until a time, an approval or a top-up.
    pub fn is_blocking(self) -> bool {
        matches!(
            self,
            Reason::MissingEmail
                | Reason::InvalidEmail
                | Reason::MissingPhone
                | Reason::InvalidPhone
                | Reason::PhoneNotSmsEnabled
                | Reason::NoConsent
                | Reason::RecipientUnknown
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A string that is not one of the stable reason codes.
#[derive(Debug, thiserror::Error)]
#[error("unknown reason code {0:?}")]
pub struct UnknownReason(pub String);

impl FromStr for Reason {
    type Err = UnknownReason;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownReason(s.to_owned()))
    }
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_string() {
        for reason in Reason::ALL {
            assert_eq!(reason.as_str().parse::<Reason>().unwrap(), reason);
            assert!(!reason.describe().is_empty());
        }
    }

    #[test]
    fn codes_are_the_ones_in_the_design() {
        let codes: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            codes,
            [
                "missing_email",
                "invalid_email",
                "missing_phone",
                "invalid_phone",
                "phone_not_sms_enabled",
                "no_consent",
                "recipient_unknown",
                "awaiting_approval",
                "outside_send_window",
                "holiday",
                "insufficient_sms_credit",
                "retry_scheduled",
            ]
        );
    }

    #[test]
    fn eligibility_reasons_block_and_timing_reasons_hold() {
        assert!(Reason::NoConsent.is_blocking());
        assert!(!Reason::Holiday.is_blocking());
        assert!(!Reason::InsufficientSmsCredit.is_blocking());
    }
}
