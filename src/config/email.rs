//! `[email.*]`: how email leaves Herald — the sender, the transport (a folder of
//! `.eml` files or an SMTP server) and DKIM signing. Owns the rule that a password
//! never crosses the network in plain text.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::Problems;
use crate::domain::contact::EmailAddress;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEmail {
    pub(super) transport: String,
    pub(super) from: String,
    pub(super) file: RawEmailFile,
    pub(super) smtp: RawSmtp,
    pub(super) dkim: RawDkim,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEmailFile {
    pub(super) dir: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmtp {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) tls: String,
    pub(super) username: String,
    pub(super) password: SecretString,
    pub(super) timeout: String,
    pub(super) max_connections: u32,
    pub(super) idle_timeout: String,
    pub(super) hello_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDkim {
    pub(super) enabled: bool,
    pub(super) selector: String,
    pub(super) domain: String,
    pub(super) algorithm: String,
    pub(super) private_key_file: String,
}

/// `[email]`: how email leaves Herald.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// Where messages go.
    pub transport: EmailTransport,
    /// The sender, e.g. `Herald School <no-reply@school.example>`.
    pub from: lettre::message::Mailbox,
    /// DKIM signing, when enabled.
    pub dkim: Option<DkimSettings>,
}

/// The email transport.
#[derive(Debug, Clone)]
pub enum EmailTransport {
    /// Each message becomes an `.eml` file in this folder.
    File {
        /// The folder.
        dir: PathBuf,
    },
    /// An SMTP server.
    Smtp(SmtpSettings),
}

/// `[email.smtp]`
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// The server's host name or address.
    pub host: String,
    /// The port.
    pub port: u16,
    /// How the connection is secured.
    pub tls: SmtpTls,
    /// User name and password, when the server wants them.
    pub credentials: Option<(String, SecretString)>,
    /// The longest one message may take, connect to final reply.
    pub timeout: Duration,
    /// Connections open at once, at most.
    pub max_connections: u32,
    /// An idle connection older than this is closed instead of reused.
    pub idle_timeout: Duration,
    /// The name Herald gives in EHLO; `None` for the machine's host name.
    pub hello_name: Option<String>,
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text: for a relay on the same machine only.
    None,
    /// Plain connect, then STARTTLS, required.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

/// `[email.dkim]`
#[derive(Debug, Clone)]
pub struct DkimSettings {
    /// The selector of the DNS record.
    pub selector: String,
    /// The signing domain.
    pub domain: String,
    /// `rsa` (PKCS#1 PEM) or `ed25519` (base64 of the raw key).
    pub algorithm: DkimAlgorithm,
    /// The private key's file.
    pub private_key_file: PathBuf,
}

/// A DKIM key's algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimAlgorithm {
    /// RSA, key as PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`).
    Rsa,
    /// Ed25519, key as base64 of the 32 raw bytes.
    Ed25519,
}

/// Checks `[email.*]` with its timeouts already parsed (they are checked with the
/// dispatcher's durations); `None` when something is bad (already reported).
pub(super) fn check(
    raw: &RawEmail,
    timeout: Duration,
    idle_timeout: Duration,
    bad: &mut Problems,
) -> Option<EmailSettings> {
    let from = check_from(&raw.from, bad);
    let s = &raw.smtp;
    let tls = check_tls(&s.tls, bad);
    if s.max_connections == 0 {
        bad.add(
            "email.smtp.max_connections",
            "0",
            "a number of connections of at least 1",
        );
    }
    let transport = match raw.transport.trim().to_ascii_lowercase().as_str() {
        "file" => {
            if raw.file.dir.trim().is_empty() {
                bad.add(
                    "email.file.dir",
                    &raw.file.dir,
                    "a folder for the .eml files",
                );
            }
            Some(EmailTransport::File {
                dir: PathBuf::from(raw.file.dir.trim()),
            })
        }
        "smtp" => check_smtp(s, tls, timeout, idle_timeout, bad).map(EmailTransport::Smtp),
        _ => {
            bad.add("email.transport", &raw.transport, "\"file\" or \"smtp\"");
            None
        }
    };
    let dkim = if raw.dkim.enabled {
        check_dkim(&raw.dkim, bad)
    } else {
        None
    };
    Some(EmailSettings {
        transport: transport?,
        from: from?,
        dkim,
    })
}

/// Checks `email.from`: a mailbox whose address could be delivered to.
fn check_from(text: &str, bad: &mut Problems) -> Option<lettre::message::Mailbox> {
    match text.parse::<lettre::message::Mailbox>() {
        Ok(m) if EmailAddress::parse(m.email.as_ref()).is_ok() => Some(m),
        _ => {
            bad.add(
                "email.from",
                text,
                "a sender such as \"Herald School <no-reply@school.example>\" with a \
                 deliverable address",
            );
            None
        }
    }
}

/// Checks `email.smtp.tls`. It is read whatever the transport, so a bad value is
/// reported even while the file transport is in use.
fn check_tls(text: &str, bad: &mut Problems) -> Option<SmtpTls> {
    match text.trim().to_ascii_lowercase().as_str() {
        "none" => Some(SmtpTls::None),
        "starttls" => Some(SmtpTls::StartTls),
        "tls" => Some(SmtpTls::Tls),
        _ => {
            bad.add("email.smtp.tls", text, "\"none\", \"starttls\" or \"tls\"");
            None
        }
    }
}

/// Checks `[email.smtp]` when it is the transport; `tls` is `None` when it was bad.
fn check_smtp(
    s: &RawSmtp,
    tls: Option<SmtpTls>,
    timeout: Duration,
    idle_timeout: Duration,
    bad: &mut Problems,
) -> Option<SmtpSettings> {
    if s.host.trim().is_empty() {
        bad.add(
            "email.smtp.host",
            &s.host,
            "the SMTP server's host name or address",
        );
    }
    if s.port == 0 {
        bad.add("email.smtp.port", "0", "a TCP port such as 25, 587 or 465");
    }
    let credentials =
        (!s.username.trim().is_empty()).then(|| (s.username.trim().to_owned(), s.password.clone()));
    if credentials.is_some() && tls == Some(SmtpTls::None) && !super::is_loopback(&s.host) {
        bad.add(
            "email.smtp.tls",
            &s.tls,
            "\"starttls\" or \"tls\" when a password is sent to a server that is \
             not on this machine",
        );
    }
    tls.map(|tls| SmtpSettings {
        host: s.host.trim().to_owned(),
        port: s.port,
        tls,
        credentials,
        timeout,
        max_connections: s.max_connections.max(1),
        idle_timeout,
        hello_name: Some(s.hello_name.trim().to_owned()).filter(|h| !h.is_empty()),
    })
}

/// Checks `[email.dkim]` when signing is enabled: the algorithm, then that nothing
/// the signature needs is left empty.
fn check_dkim(k: &RawDkim, bad: &mut Problems) -> Option<DkimSettings> {
    let algorithm = match k.algorithm.trim().to_ascii_lowercase().as_str() {
        "rsa" => Some(DkimAlgorithm::Rsa),
        "ed25519" => Some(DkimAlgorithm::Ed25519),
        _ => {
            bad.add(
                "email.dkim.algorithm",
                &k.algorithm,
                "\"rsa\" or \"ed25519\"",
            );
            None
        }
    };
    for (key, value, what) in [
        (
            "email.dkim.selector",
            &k.selector,
            "the selector of the DKIM DNS record",
        ),
        ("email.dkim.domain", &k.domain, "the signing domain"),
        (
            "email.dkim.private_key_file",
            &k.private_key_file,
            "the private key's file",
        ),
    ] {
        if value.trim().is_empty() {
            bad.add(key, value, what);
        }
    }
    algorithm.map(|algorithm| DkimSettings {
        selector: k.selector.trim().to_owned(),
        domain: k.domain.trim().to_owned(),
        algorithm,
        private_key_file: PathBuf::from(k.private_key_file.trim()),
    })
}
