//! The school's directory: recipients, their roles, contracts and consent.
//!
//! The platform owns this data and feeds it to Herald (import, later the API); each
//! record is keyed by the platform's `external_id`, so feeding the same data twice
//! changes nothing.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};

use super::codes::stable_codes;

/// Herald's own id of a recipient (the store's primary key).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct RecipientId(pub i64);

impl fmt::Display for RecipientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

stable_codes! {
    /// What a recipient is to the school.
    pub enum Role("role") {
        /// Has contracts; may have guardians.
        Student = "student",
        /// A parent or other carer of one or more students.
        Guardian = "guardian",
        /// Teaches groups.
        Teacher = "teacher",
        /// Anyone else on the school's side.
        Staff = "staff",
    }
}

stable_codes! {
    /// Where a contract stands. Only an `active` contract's consent counts.
    pub enum ContractStatus("contract status") {
        /// Signed but not started yet.
        Pending = "pending",
        /// In force.
        Active = "active",
        /// Paused (e.g. a break the family asked for).
        Suspended = "suspended",
        /// Ended or terminated.
        Ended = "ended",
    }
}

/// A consent for one channel: given or not, and when and where that was recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Consent {
    /// Whether the consent is in force.
    pub given: bool,
    /// When it was given or withdrawn, if known.
    pub changed_at: Option<DateTime<Utc>>,
}

/// What eligibility needs to know of one contract.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContractConsent {
    /// The platform's id of the contract.
    pub contract: String,
    /// The contract number people see, if the platform gave one.
    pub number: Option<String>,
    /// The platform's id of the student the contract is for.
    pub student: String,
    /// Where the contract stands.
    pub status: ContractStatus,
    /// Consent to email.
    pub email: Consent,
    /// Consent to SMS.
    pub sms: Consent,
    /// Where the consent was given (a form, the parents' portal, …), if known.
    pub source: Option<String>,
}

/// A recipient as the directory holds them, contact points as the platform gave them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Recipient {
    /// Herald's id.
    pub id: RecipientId,
    /// The platform's id.
    pub external_id: String,
    /// What they are to the school.
    pub role: Role,
    /// Full name as shown to people.
    pub name: String,
    /// Preferred locale (`pl`, `en`, …), if the platform knows it.
    pub locale: Option<String>,
    /// The email address as given; may be invalid.
    pub email: Option<String>,
    /// The phone number as given; may be invalid.
    pub phone: Option<String>,
    /// Whether the phone number is marked as receiving SMS.
    pub sms_enabled: bool,
    /// Why the email address is marked failing (a permanent refusal by the receiving
    /// server), if it is; cleared when the platform sends another address.
    pub email_failure: Option<String>,
    /// Why the phone number is marked failing (a gateway's "invalid or non-existent
    /// number"), if it is; cleared when the platform sends another number.
    pub phone_failure: Option<String>,
}

/// A recipient as the platform sends it: the input of an import or an API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientRecord {
    /// The platform's id (not empty).
    pub external_id: String,
    /// What they are to the school.
    pub role: Role,
    /// Full name (not empty).
    pub name: String,
    /// Preferred locale.
    pub locale: Option<String>,
    /// The email address as given.
    pub email: Option<String>,
    /// The phone number as given.
    pub phone: Option<String>,
    /// The phone in E.164 when it is a valid mobile number.
    pub phone_e164: Option<String>,
    /// Whether the phone receives SMS.
    pub sms_enabled: bool,
    /// The date of birth (students' birthday greetings).
    pub birth_date: Option<NaiveDate>,
}

/// A contract as the platform sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractRecord {
    /// The platform's id of the contract.
    pub external_id: String,
    /// The platform's id of the student.
    pub student: String,
    /// The contract number people see.
    pub number: Option<String>,
    /// Where it stands.
    pub status: ContractStatus,
    /// Consent to email.
    pub consent_email: bool,
    /// Consent to SMS.
    pub consent_sms: bool,
    /// When the consent was given or withdrawn; `None` lets Herald record the moment
    /// it learns of a change.
    pub consent_at: Option<DateTime<Utc>>,
    /// Where the consent was given.
    pub consent_source: Option<String>,
    /// What the holder owes now, in grosze (negative: paid in advance).
    pub balance_cents: Option<i64>,
    /// Since when the balance has been overdue.
    pub arrears_since: Option<NaiveDate>,
}

/// An instalment of a contract, as the platform sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalmentRecord {
    /// The platform's id of the instalment.
    pub external_id: String,
    /// The platform's id of its contract.
    pub contract: String,
    /// When it falls due.
    pub due_date: NaiveDate,
    /// How much, in grosze.
    pub amount_cents: i64,
    /// Whether it is paid.
    pub paid: bool,
    /// How much was paid, in grosze.
    pub paid_amount_cents: Option<i64>,
}

/// One record of the directory, as imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryRecord {
    /// A person.
    Recipient(RecipientRecord),
    /// An instalment of a contract.
    Instalment(InstalmentRecord),
    /// A guardian cares for a student (both by the platform's ids).
    Guardianship {
        /// The guardian's platform id.
        guardian: String,
        /// The student's platform id.
        student: String,
    },
    /// A group (class, course).
    Group {
        /// The platform's id.
        external_id: String,
        /// The name people see.
        name: String,
    },
    /// A student or teacher belongs to a group.
    Membership {
        /// The group's platform id.
        group: String,
        /// The member's platform id.
        member: String,
    },
    /// A contract.
    Contract(ContractRecord),
}

/// A group with how many students and teachers it has.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupSummary {
    /// The platform's id.
    pub external_id: String,
    /// The name people see.
    pub name: String,
    /// Students in it.
    pub students: i64,
    /// Teachers teaching it.
    pub teachers: i64,
}
