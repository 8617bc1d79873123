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
