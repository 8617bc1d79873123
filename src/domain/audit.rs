//! What a person's change is called in the audit log.
//!
//! The codes are stored with every audit line and are what `herald audit --action`
//! and, later, the console's filter match, so they are a stable contract like the
//! reason codes.

use super::codes::stable_codes;

stable_codes! {
    /// A kind of change a person (or the platform acting as an operator) makes.
    pub enum AuditAction ("audit action") {
        /// An informational batch composed for an audience.
        Send = "send",
        /// A system message to one person.
        Notify = "notify",
        /// A batch, or some of its messages, approved.
        Approve = "approve",
        /// A batch, or some of its messages, rejected.
        Reject = "reject",
        /// A batch's text changed.
        Edit = "edit",
        /// A batch or a message withdrawn.
        Cancel = "cancel",
        /// A message sent again.
        Resend = "resend",
        /// Points added to the SMS wallet.
        TopUp = "top_up",
        /// Dispatch paused.
        HoldOn = "hold_on",
        /// Dispatch resumed.
        HoldOff = "hold_off",
        /// A day off added.
        HolidayAdd = "holiday_add",
        /// A day off removed.
        HolidayRemove = "holiday_remove",
        /// A template variant saved.
        TemplateSave = "template_save",
        /// An operator added.
        OperatorAdd = "operator_add",
        /// An operator's role changed.
        OperatorRole = "operator_role",
        /// A permission granted to one operator.
        Grant = "grant",
        /// A permission taken from one operator.
        Revoke = "revoke",
        /// A role defined or redefined.
        RoleSave = "role_save",
        /// Directory records imported.
        Import = "import",
        /// The periodic rules run by hand.
        RulesRun = "rules_run",
        /// An API token created.
        TokenCreate = "token_create",
        /// An API token revoked.
        TokenRevoke = "token_revoke",
        /// An operator's password was set (the password itself is never logged).
        PasswordSet = "password_set",
        /// An operator chose the language the console speaks to them.
        OperatorLocale = "operator_locale",
    }
}
