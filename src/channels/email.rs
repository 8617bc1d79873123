//! The email channel: SMTP through lettre, or `.eml` files in a folder.
//!
//! lettre's own transport is not used for SMTP, for three reasons measured or read
//! in its source (0.11.23): its pool's `max_size` caps only idle connections, so
//! concurrency must be bounded outside it anyway; it never sets `TCP_NODELAY`, and
//! with the message and its final dot written separately every message then waits
//! for the peer's delayed ACK (about 40 ms, so ~22 messages/s per connection); and
//! its `send` hides at which step a failure happened, which decides between "retry"
//! and "outcome unknown". So Herald keeps its own small pool of lettre
//! `AsyncSmtpConnection`s, opened on sockets it configured, behind a semaphore, and
//! walks MAIL, RCPT, DATA and the message itself.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, MailBodyParameter, MailParameter};
use lettre::{Address, message::dkim};
use secrecy::ExposeSecret;
use tokio::sync::{Mutex, Semaphore};

use super::SendOutcome;
use crate::config::{
    DkimAlgorithm, DkimSettings, EmailSettings, EmailTransport, SmtpSettings, SmtpTls,
};
use crate::domain::{EmailAddress, MessageId};

/// Why the channel cannot be built (at start-up).
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// The DKIM key file cannot be read or parsed.
    #[error("email.dkim.private_key_file = {path:?}: {why}")]
    DkimKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// TLS parameters could not be built for the host.
    #[error("email.smtp.host = {host:?}: cannot set up TLS: {why}")]
    Tls {
        /// The host.
        host: String,
        /// What is wrong.
        why: String,
    },
}

/// One email to send.
#[derive(Debug, Clone)]
pub struct OutgoingEmail<'a> {
    /// Herald's id of the message: with `created_at`, its stable identity.
    pub id: MessageId,
    /// When the message was created.
    pub created_at: DateTime<Utc>,
    /// The recipient's name, for the To header.
    pub to_name: &'a str,
    /// The recipient's address.
    pub to: &'a EmailAddress,
    /// The subject.
    pub subject: &'a str,
    /// The plain-text body.
    pub body: &'a str,
    /// An HTML body, sent as the alternative to the plain text.
    pub html: Option<&'a str>,
    /// The Date header.
    pub date: DateTime<Utc>,
}

/// A header's text on one line: control characters (a line break above all) become
/// spaces. Compose and import refuse them already; this keeps a header from ever
/// being split, whatever reaches the channel (and lettre from failing on one).
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The Message-ID of message `id` created at `created_at`, sent from `from`: the same
/// for every attempt (diagnosis prints it for a search in the receiving mailbox).
pub fn message_id(from: &Mailbox, id: MessageId, created_at: DateTime<Utc>) -> String {
    format!(
        "<herald.{id}.{}@{}>",
        created_at.timestamp(),
        from.email.domain()
    )
}

/// The email channel.
pub struct EmailChannel {
    from: Mailbox,
    dkim: Option<dkim::DkimConfig>,
    transport: Transport,
    budget: std::time::Duration,
}

enum Transport {
    File(PathBuf),
    Smtp(Box<SmtpPool>),
}

impl EmailChannel {
    /// Builds the channel, loading the DKIM key if signing is on.
    pub fn build(settings: &EmailSettings) -> Result<EmailChannel, EmailError> {
        let dkim = settings.dkim.as_ref().map(load_dkim).transpose()?;
        let transport = match &settings.transport {
            EmailTransport::File { dir } => Transport::File(dir.clone()),
            EmailTransport::Smtp(smtp) => Transport::Smtp(Box::new(SmtpPool::new(smtp)?)),
        };
        // The SMTP timeout bounds each exchange; `dispatch.lease` must exceed it by a
        // margin (checked at start-up), which covers the wait for a connection.
        let budget = match &settings.transport {
            EmailTransport::File { .. } => std::time::Duration::from_secs(5),
            EmailTransport::Smtp(smtp) => smtp.timeout,
        };
        Ok(EmailChannel {
            from: settings.from.clone(),
            dkim,
            transport,
            budget,
        })
    }

    /// How long one send may take: a claim whose lease lasts less than this is not
    /// sent.
    pub fn send_budget(&self) -> std::time::Duration {
        self.budget
    }

    /// How many messages may be in flight at once.
    pub fn concurrency(&self) -> usize {
        match &self.transport {
            // Writing files is quick; a few at once keep the disk busy.
            Transport::File(_) => 4,
            Transport::Smtp(pool) => pool.settings.max_connections as usize,
        }
    }

    /// Where `.eml` files go, for the file transport.
    pub fn file_dir(&self) -> Option<&Path> {
        match &self.transport {
            Transport::File(dir) => Some(dir),
            Transport::Smtp(_) => None,
        }
    }

    /// The transport's name (`file`, `smtp`), as the metrics label sends.
    pub fn transport_name(&self) -> &'static str {
        match &self.transport {
            Transport::File(_) => "file",
            Transport::Smtp(_) => "smtp",
        }
    }

    /// The Message-ID of a message: the same for every attempt, so a receiving
    /// system (and a person searching a mailbox) can tell a retry from a new message.
    pub fn message_id(&self, id: MessageId, created_at: DateTime<Utc>) -> String {
        message_id(&self.from, id, created_at)
    }

    /// Checks the transport without sending anything: the `.eml` folder can be
    /// written; the SMTP server takes a connection, EHLO, STARTTLS and AUTH as
    /// configured, and is left with QUIT.
    pub async fn probe(&self) -> crate::channels::Probe {
        use crate::channels::Probe;
        match &self.transport {
            Transport::File(dir) => match crate::channels::writable(dir) {
                Ok(()) => Probe::Ok(format!(
                    "email is written as .eml files to {}",
                    dir.display()
                )),
                Err(e) => Probe::Failed(format!("{} cannot be written: {e}", dir.display())),
            },
            Transport::Smtp(pool) => {
                let s = &pool.settings;
                let started = std::time::Instant::now();
                let connected = tokio::time::timeout(s.timeout, pool.connect()).await;
                match connected {
                    Err(_) => Probe::Failed(format!(
                        "{}:{} did not answer within {:?}",
                        s.host, s.port, s.timeout
                    )),
                    Ok(Err(Failure::Io(e))) => Probe::Failed(format!("{}:{}: {e}", s.host, s.port)),
                    Ok(Err(Failure::Smtp(e))) => {
                        Probe::Failed(format!("{}:{}: {e}", s.host, s.port))
                    }
                    Ok(Ok(mut conn)) => {
                        let server = conn.server_info().name().to_owned();
                        let _ = conn.quit().await;
                        Probe::Ok(format!(
                            "{}:{} ({server}) accepted the connection{}{} in {} ms",
                            s.host,
                            s.port,
                            match s.tls {
                                SmtpTls::None => ", without TLS",
                                SmtpTls::StartTls => ", STARTTLS",
                                SmtpTls::Tls => ", TLS",
                            },
                            if s.credentials.is_some() {
                                " and the login"
                            } else {
                                ""
                            },
                            started.elapsed().as_millis()
                        ))
                    }
                }
            }
        }
    }

    /// Waits for its turn, then sends one email and classifies the outcome.
    pub async fn send(&self, email: &OutgoingEmail<'_>) -> SendOutcome {
        match self.wait_turn().await {
            Ok(turn) => self.send_in_turn(&turn, email).await,
            Err(refused) => refused,
        }
    }

    /// Waits until a connection may be used (at most `email.smtp.max_connections` at
    /// once): the dispatcher waits here before it hands a message over, so that the
    /// lease left is judged against the send alone.
    pub async fn wait_turn(&self) -> Result<Turn<'_>, SendOutcome> {
        match &self.transport {
            Transport::File(_) => Ok(Turn { _permit: None }),
            Transport::Smtp(pool) => match pool.permits.acquire().await {
                Ok(permit) => Ok(Turn {
                    _permit: Some(permit),
                }),
                Err(_) => Err(SendOutcome::Transient {
                    code: None,
                    detail: "the SMTP channel is shutting down".into(),
                }),
            },
        }
    }

    /// Sends one email in a turn taken with [`Self::wait_turn`], and classifies the
    /// outcome.
    pub async fn send_in_turn(&self, _turn: &Turn<'_>, email: &OutgoingEmail<'_>) -> SendOutcome {
        let to: Address = match email.to.as_str().parse() {
            Ok(a) => a,
            Err(e) => {
                return SendOutcome::Permanent {
                    code: None,
                    detail: format!("the address {} cannot be used: {e}", email.to),
                    address_failing: false,
                };
            }
        };
        // The envelope given, so lettre does not parse it back out of the headers
        // it was just given (the SMTP transport takes its own addresses anyway).
        let envelope =
            match lettre::address::Envelope::new(Some(self.from.email.clone()), vec![to.clone()]) {
                Ok(envelope) => envelope,
                Err(e) => {
                    return SendOutcome::Permanent {
                        code: None,
                        detail: format!("the message cannot be addressed: {e}"),
                        address_failing: false,
                    };
                }
            };
        let builder = Message::builder()
            .envelope(envelope)
            .from(self.from.clone())
            .to(Mailbox::new(Some(one_line(email.to_name)), to.clone()))
            .subject(one_line(email.subject))
            .message_id(Some(self.message_id(email.id, email.created_at)))
            .date(SystemTime::from(email.date));
        // With an HTML body: multipart/alternative, plain text first (clients show
        // the last part they understand).
        let message = match email.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                email.body.to_owned(),
                html.to_owned(),
            )),
            None => builder
                .header(ContentType::TEXT_PLAIN)
                .body(email.body.to_owned()),
        };
        let mut message = match message {
            Ok(m) => m,
            Err(e) => {
                return SendOutcome::Permanent {
                    code: None,
                    detail: format!("the message cannot be built: {e}"),
                    address_failing: false,
                };
            }
        };
        if let Some(dkim) = &self.dkim {
            message.sign(dkim);
        }
        let bytes = message.formatted();
        match &self.transport {
            Transport::File(dir) => {
                write_eml(dir, &self.message_id(email.id, email.created_at), &bytes).await
            }
            Transport::Smtp(pool) => pool.send(&self.from.email, &to, &bytes).await,
        }
    }
}

fn load_dkim(settings: &DkimSettings) -> Result<dkim::DkimConfig, EmailError> {
    let err = |why: String| EmailError::DkimKey {
        path: settings.private_key_file.clone(),
        why,
    };
    let text = std::fs::read_to_string(&settings.private_key_file)
        .map_err(|e| err(format!("cannot read it: {e}")))?;
    let algorithm = match settings.algorithm {
        DkimAlgorithm::Rsa => dkim::DkimSigningAlgorithm::Rsa,
        DkimAlgorithm::Ed25519 => dkim::DkimSigningAlgorithm::Ed25519,
    };
    let key = dkim::DkimSigningKey::new(text.trim(), algorithm).map_err(|e| {
        err(match settings.algorithm {
            DkimAlgorithm::Rsa => format!(
                "not an RSA key in PKCS#1 PEM (\"BEGIN RSA PRIVATE KEY\"): {e}; convert a \
                 PKCS#8 key with `openssl rsa -in key.pem -traditional`"
            ),
            DkimAlgorithm::Ed25519 => {
                format!("not an Ed25519 key as base64 of its 32 raw bytes: {e}")
            }
        })
    })?;
    Ok(dkim::DkimConfig::default_config(
        settings.selector.clone(),
        settings.domain.clone(),
        key,
    ))
}

/// Writes a message as `<dir>/<message-id>.eml`, whole or not at all (a temporary
/// file renamed into place), so a reader never sees half a message and a retry
/// replaces the file instead of adding a second one.
async fn write_eml(dir: &Path, message_id: &str, bytes: &[u8]) -> SendOutcome {
    let name: String = message_id
        .trim_matches(|c| c == '<' || c == '>')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{name}.eml"));
    let tmp = dir.join(format!(".{name}.eml.tmp"));
    let result = async {
        tokio::fs::create_dir_all(dir).await?;
        tokio::fs::write(&tmp, bytes).await?;
        tokio::fs::rename(&tmp, &path).await
    }
    .await;
    match result {
        Ok(()) => SendOutcome::Sent {
            code: None,
            detail: format!("written to {}", path.display()),
            provider_id: None,
        },
        Err(e) => SendOutcome::Transient {
            code: None,
            detail: format!("cannot write {}: {e}", path.display()),
        },
    }
}

/// A turn to send: one of the SMTP connections the channel allows at once, held
/// until dropped (nothing to hold for the file transport).
pub struct Turn<'a> {
    _permit: Option<tokio::sync::SemaphorePermit<'a>>,
}

/// Where in an SMTP transaction a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connecting, TLS, EHLO, AUTH: nothing of the message has left.
    Connecting,
    /// MAIL, RCPT, DATA: the server may still refuse; nothing is handed over.
    Envelope,
    /// The message is being written or its final reply awaited: a failure here
    /// leaves the outcome unknown.
    HandedOver,
}

struct SmtpPool {
    settings: SmtpSettings,
    tls: Option<TlsParameters>,
    hello: ClientId,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    // lettre bounds only idle connections; this bounds the open ones.
    permits: Semaphore,
}

/// A parked connection idle for longer than this is checked with NOOP before use:
/// the server may have closed it, and a failed MAIL would cost the message a retry.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(2);

impl SmtpPool {
    fn new(settings: &SmtpSettings) -> Result<SmtpPool, EmailError> {
        let tls = match settings.tls {
            SmtpTls::None => None,
            SmtpTls::StartTls | SmtpTls::Tls => Some(
                TlsParameters::new(settings.host.clone()).map_err(|e| EmailError::Tls {
                    host: settings.host.clone(),
                    why: e.to_string(),
                })?,
            ),
        };
        let hello = match &settings.hello_name {
            Some(name) => ClientId::Domain(name.clone()),
            None => ClientId::default(),
        };
        Ok(SmtpPool {
            tls,
            hello,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(settings.max_connections as usize),
            settings: settings.clone(),
        })
    }

    /// Sends in a turn the caller holds (`EmailChannel::wait_turn`).
    async fn send(&self, from: &Address, to: &Address, bytes: &[u8]) -> SendOutcome {
        let mut phase = Phase::Connecting;
        let result = tokio::time::timeout(
            self.settings.timeout,
            self.transact(from, to, bytes, &mut phase),
        )
        .await;
        match result {
            Ok(Ok((conn, outcome))) => {
                self.idle.lock().await.push((conn, Instant::now()));
                outcome
            }
            Ok(Err(e)) => classify(&e, phase),
            Err(_) => {
                let detail = format!(
                    "no answer within {} ({})",
                    humantime::format_duration(self.settings.timeout),
                    match phase {
                        Phase::Connecting => "while connecting",
                        Phase::Envelope => "during the envelope",
                        Phase::HandedOver => "after the message was handed over",
                    }
                );
                if phase == Phase::HandedOver {
                    SendOutcome::Unknown { detail }
                } else {
                    SendOutcome::Transient { code: None, detail }
                }
            }
        }
    }

    async fn transact(
        &self,
        from: &Address,
        to: &Address,
        bytes: &[u8],
        phase: &mut Phase,
    ) -> Result<(AsyncSmtpConnection, SendOutcome), Failure> {
        let mut conn = self.checkout().await?;
        *phase = Phase::Envelope;
        let mut options = Vec::new();
        if !bytes.is_ascii() {
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let sent = async {
            conn.command(Mail::new(Some(from.clone()), options)).await?;
            conn.command(Rcpt::new(to.clone(), Vec::new())).await?;
            conn.command(Data).await?;
            *phase = Phase::HandedOver;
            conn.message(bytes).await
        }
        .await;
        match sent {
            Ok(reply) => {
                let outcome = SendOutcome::Sent {
                    code: Some(u16::from(reply.code())),
                    detail: reply.message().collect::<Vec<_>>().join(" "),
                    provider_id: None,
                };
                Ok((conn, outcome))
            }
            Err(e) => {
                conn.abort().await;
                Err(e.into())
            }
        }
    }

    /// A parked connection that still answers, or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, Failure> {
        loop {
            let parked = self.idle.lock().await.pop();
            let Some((mut conn, since)) = parked else {
                break;
            };
            let idle = since.elapsed();
            if idle > self.settings.idle_timeout {
                conn.abort().await;
                continue;
            }
            if idle < CHECK_IDLE_AFTER || conn.test_connected().await {
                return Ok(conn);
            }
        }
        self.connect().await
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, Failure> {
        let s = &self.settings;
        let mut conn = match (s.tls, &self.tls) {
            (SmtpTls::Tls, Some(tls)) => {
                // Implicit TLS: lettre opens this socket itself, without TCP_NODELAY.
                AsyncSmtpConnection::connect_tokio1(
                    (s.host.as_str(), s.port),
                    Some(s.timeout),
                    &self.hello,
                    Some(tls.clone()),
                    None,
                )
                .await?
            }
            _ => {
                let stream = tokio::net::TcpStream::connect((s.host.as_str(), s.port)).await?;
                // Without this every message waits for the peer's delayed ACK.
                stream.set_nodelay(true)?;
                let mut conn =
                    AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                        .await?;
                if let (SmtpTls::StartTls, Some(tls)) = (s.tls, &self.tls) {
                    conn.starttls(tls.clone(), &self.hello).await?;
                }
                conn
            }
        };
        if let Some((user, password)) = &s.credentials {
            let credentials = Credentials::new(user.clone(), password.expose_secret().to_owned());
            conn.auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                .await?;
        }
        Ok(conn)
    }
}

/// A failed SMTP step: lettre's error, or the socket's before lettre had it.
#[derive(Debug)]
enum Failure {
    Smtp(lettre::transport::smtp::Error),
    Io(std::io::Error),
}

impl From<lettre::transport::smtp::Error> for Failure {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        Failure::Smtp(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

/// Turns a failure into what the dispatcher must do, by where it happened.
fn classify(failure: &Failure, phase: Phase) -> SendOutcome {
    let e = match failure {
        Failure::Io(io) => {
            let detail = format!("network error: {io}");
            return if phase == Phase::HandedOver {
                SendOutcome::Unknown { detail }
            } else {
                SendOutcome::Transient { code: None, detail }
            };
        }
        Failure::Smtp(e) => e,
    };
    let code = e.status().map(u16::from);
    let detail = e.to_string();
    match phase {
        // Nothing of the message has left: a refused connection, a TLS or AUTH
        // failure is the server's or the configuration's problem, not the message's.
        Phase::Connecting => SendOutcome::Transient { code, detail },
        Phase::Envelope | Phase::HandedOver if e.is_permanent() => SendOutcome::Permanent {
            code,
            address_failing: phase == Phase::Envelope && is_address_failure(&detail),
            detail,
        },
        Phase::Envelope | Phase::HandedOver if e.is_transient() => {
            SendOutcome::Transient { code, detail }
        }
        // Before DATA was accepted the message has not been handed over: safe to retry.
        Phase::Envelope => SendOutcome::Transient { code, detail },
        Phase::HandedOver => SendOutcome::Unknown { detail },
    }
}

/// Whether a permanent reply is about the address itself: RFC 3463 class 5.1.x
/// (bad mailbox, bad domain, bad syntax, moved, null MX).
fn is_address_failure(detail: &str) -> bool {
    detail
        .split(|c: char| c.is_whitespace() || c == ':' || c == '(' || c == ')')
        .any(|word| {
            let mut parts = word.split('.');
            parts.next() == Some("5")
                && parts.next() == Some("1")
                && parts
                    .next()
                    .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
                && parts.next().is_none()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_failures_are_told_by_their_enhanced_status_code() {
        assert!(is_address_failure(
            "permanent error (550): 5.1.1 <x@example.pl>: no such user"
        ));
        assert!(is_address_failure("permanent error (556): 5.1.10 null MX"));
        assert!(!is_address_failure(
            "permanent error (554): 5.7.1 rejected as spam"
        ));
        assert!(!is_address_failure(
            "permanent error (552): 5.2.2 mailbox full"
        ));
        assert!(!is_address_failure("permanent error (550): 5.1"));
    }
}
