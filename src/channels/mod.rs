//! Channels: how a message leaves Herald. Only the dispatcher calls them.
//!
//! A channel answers every send with a [`SendOutcome`] that says what the dispatcher
//! must do next: record success, retry, fail, or hold as unknown. Deciding that is the
//! channel's job, because only it knows at which point a failure happened.

pub mod email;
pub mod sms;

/// The result of one send, classified for the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The server accepted the message.
    Sent {
        /// The server's reply code.
        code: Option<u16>,
        /// The server's reply text (or where the file went).
        detail: String,
        /// The provider's id of the message, where it gives one.
        provider_id: Option<String>,
    },
    /// Refused or failed for a passing reason before the server took the message
    /// (a 4xx reply, a refused connection): worth retrying.
    Transient {
        /// The server's reply code, if it replied.
        code: Option<u16>,
        /// The reply text or the error.
        detail: String,
    },
    /// The server asked Herald to wait before sending again (a 429 or 503 with
    /// `Retry-After`): the message is retried no sooner, and the channel sends
    /// nothing else until then.
    Throttled {
        /// The server's reply code.
        code: Option<u16>,
        /// The reply text.
        detail: String,
        /// How long the server asked to wait (capped at [`MAX_RETRY_AFTER`]).
        retry_after: std::time::Duration,
    },
    /// Refused for good (a 5xx reply): retrying would not help.
    Permanent {
        /// The server's reply code.
        code: Option<u16>,
        /// The reply text or the error.
        detail: String,
        /// The refusal is about the address itself (SMTP 5.1.x: no such user, bad
        /// domain; a gateway's "invalid number"): mark it failing so later messages
        /// are not sent to it.
        address_failing: bool,
    },
    /// The message was handed over and the answer was lost (a timeout or a dropped
    /// connection after DATA): it may or may not have arrived.
    Unknown {
        /// The error.
        detail: String,
    },
}

/// The longest wait a server's `Retry-After` may impose: a typo of a header must not
/// park the channel for a week.
pub const MAX_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// What a harmless call to a channel's server said (`herald doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// It answered as it should; what it said.
    Ok(String),
    /// There is no harmless call to make; what can be said instead.
    Unchecked(String),
    /// It failed; why.
    Failed(String),
}

/// Whether files can be created in `dir` (or, if it does not exist yet, in the
/// nearest folder above it that does), checked with a file that is removed again.
pub fn writable(dir: &std::path::Path) -> std::io::Result<()> {
    let mut at = dir;
    while !at.as_os_str().is_empty() && !at.exists() {
        at = at.parent().unwrap_or(std::path::Path::new(""));
    }
    let at = if at.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        at
    };
    let test = at.join(format!(".herald-doctor-{}", std::process::id()));
    std::fs::write(&test, b"herald doctor\n")?;
    std::fs::remove_file(&test)
}
