//! Reason codes: why a message did not go, or does not go yet.
//!
//! The codes are a contract with the platform and with ops (they appear in the
//! database, in `--json` output and in dashboards), so `as_str()` never changes once
//! a code is released. `describe()` gives the plain words shown to people.

use super::codes::stable_codes;

stable_codes! {
    /// Why a message is blocked (eligibility) or held (timing), exactly as in the design.
    pub enum Reason("reason code") {
        // Eligibility: the message cannot go to this recipient on this channel.
        /// Email channel, and the recipient has no email address.
        MissingEmail = "missing_email",
        /// The address does not parse as a deliverable address.
        InvalidEmail = "invalid_email",
        /// SMS channel, and the recipient has no mobile number.
        MissingPhone = "missing_phone",
        /// The number does not parse as a valid mobile number.
        InvalidPhone = "invalid_phone",
        /// The number is not marked as receiving SMS.
        PhoneNotSmsEnabled = "phone_not_sms_enabled",
        /// No active contract with consent for this channel covers the recipient.
        NoConsent = "no_consent",
        /// The recipient does not exist.
        RecipientUnknown = "recipient_unknown",
        // Timing: the message waits until it may go.
        /// Nobody with the right to approve has approved it yet.
        AwaitingApproval = "awaiting_approval",
        /// An approval was not used in time; the batch is back in the outbox.
        ApprovalExpired = "approval_expired",
        /// Now is outside the weekly send window.
        OutsideSendWindow = "outside_send_window",
        /// Today is a day off in the school's calendar.
        Holiday = "holiday",
        /// The SMS wallet cannot cover this message's segments.
        InsufficientSmsCredit = "insufficient_sms_credit",
        /// A transient failure; the next attempt time is set.
        RetryScheduled = "retry_scheduled",
        /// The person had their informational messages for today
        /// (`dispatch.informational_daily_cap`); it goes the next day.
        DailyCapReached = "daily_cap_reached",
        // Outcomes: why a message that was tried ended as it did.
        /// The receiving server refused the message for good (e.g. SMTP 5xx).
        RejectedByServer = "rejected_by_server",
        /// Passing failures went on until no attempt was left.
        AttemptsExhausted = "attempts_exhausted",
        /// The connection broke after the message was handed over: it may or may not
        /// have arrived.
        OutcomeUnknown = "outcome_unknown",
        /// The gateway accepted the SMS, then reported that it never reached the
        /// phone (switched off too long, number gone, refused by the network).
        Undelivered = "undelivered",
        /// A periodic message could not go in time (a birthday greeting after the day).
        TooLate = "too_late",
        /// What a periodic message was about is settled (the instalment was paid).
        NoLongerRelevant = "no_longer_relevant",
    }
}

impl Reason {
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
            Reason::ApprovalExpired => {
                "the approval was not used in time; the batch waits to be approved again"
            }
            Reason::OutsideSendWindow => "waiting for the send window to open",
            Reason::Holiday => "waiting: today is a day off in the school calendar",
            Reason::InsufficientSmsCredit => "waiting for the SMS credit to be topped up",
            Reason::RetryScheduled => "the last attempt failed for a passing reason; retrying",
            Reason::DailyCapReached => {
                "this person had today's share of announcements; it goes tomorrow"
            }
            Reason::RejectedByServer => "the receiving server refused the message",
            Reason::AttemptsExhausted => {
                "every attempt failed for a passing reason; no attempt is left"
            }
            Reason::OutcomeUnknown => {
                "the connection broke after the message was handed over; it may have arrived"
            }
            Reason::Undelivered => {
                "the SMS gateway took it, then reported that it did not reach the phone"
            }
            Reason::TooLate => "it could not go out in time (outside the window or a holiday)",
            Reason::NoLongerRelevant => "what it was about is settled (for example, paid)",
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
                "approval_expired",
                "outside_send_window",
                "holiday",
                "insufficient_sms_credit",
                "retry_scheduled",
                "daily_cap_reached",
                "rejected_by_server",
                "attempts_exhausted",
                "outcome_unknown",
                "undelivered",
                "too_late",
                "no_longer_relevant",
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
