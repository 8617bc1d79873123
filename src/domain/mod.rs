//! Pure types and rules of Herald: who the recipients are, how they can be reached,
//! when a message may go, and why one may not.
//!
//! Nothing here does IO or reads the clock: every rule that depends on time takes
//! `now` as an argument, so the send window, holidays and DST are tested with plain
//! values. The store loads these types; the CLI, dispatcher and rules use them.

pub mod access;
pub mod audit;
pub mod calendar;
pub mod codes;
pub mod contact;
pub mod directory;
pub mod eligibility;
pub mod message;
pub mod reason;
pub mod report;
pub mod retry;
pub mod schedule;
pub mod sms;
pub mod window;

pub use calendar::{Holiday, HolidayCalendar};
pub use contact::{EmailAddress, PhoneNumber};
pub use directory::{ContractStatus, RecipientId, Role};
pub use eligibility::{ConsentRules, EligibilityFacts};
pub use message::{
    Audience, BatchId, BatchStatus, Channel, ChannelChoice, MessageId, MessageKind, MessageStatus,
    Reach,
};
pub use reason::Reason;
pub use window::SendWindow;
