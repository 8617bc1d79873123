//! Dispatch throughput to an SMTP server on loopback.
//!
//!     cargo bench --bench dispatch -- [MESSAGES] [CONNECTIONS]
//!
//! Stores MESSAGES approved messages (default 2000) in a fresh SQLite database and
//! times one dispatch pass with CONNECTIONS SMTP connections (default 4) to the test
//! suite's SMTP server. For comparison it then sends the same number of messages over
//! the same number of connections opened by lettre itself (which leaves Nagle's
//! algorithm on), without Herald's store in the way.

#[path = "../tests/it/smtp.rs"]
#[allow(dead_code)]
mod smtp;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use herald::clock::SystemClock;
use herald::config::{EmailTransport, Settings, SmtpSettings, SmtpTls};
use herald::dispatcher::{Channels, Dispatcher};
use herald::domain::directory::{DirectoryRecord, RecipientRecord, Role};
use herald::domain::{Channel, MessageKind, MessageStatus, RecipientId};
use herald::store::{self, NewBatch, NewMessage};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use tokio_util::sync::CancellationToken;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let messages = args.first().copied().unwrap_or(2000);
    let connections = args.get(1).copied().unwrap_or(4);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(run(messages, connections));
}

async fn run(messages: usize, connections: usize) {
    let server = smtp::SmtpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::load_from(None, Vec::new()).unwrap();
    settings
        .database
        .use_sqlite_file(&dir.path().join("bench.db"));
    settings.email.transport = EmailTransport::Smtp(SmtpSettings {
        host: "127.0.0.1".into(),
        port: server.addr.port(),
        tls: SmtpTls::None,
        credentials: None,
        timeout: Duration::from_secs(10),
        max_connections: connections as u32,
        idle_timeout: Duration::from_secs(30),
        hello_name: Some("bench.herald".into()),
    });
    let store = store::open(&settings.database).await.unwrap();
    let now = Utc::now();

    let records: Vec<DirectoryRecord> = (0..messages)
        .map(|i| {
            DirectoryRecord::Recipient(RecipientRecord {
                external_id: format!("t-{i}"),
                role: Role::Teacher,
                name: format!("Teacher {i}"),
                locale: None,
                email: Some(format!("teacher{i}@example.pl")),
                phone: None,
                phone_e164: None,
                sms_enabled: false,
                birth_date: None,
            })
        })
        .collect();
    let audit = |action| herald::store::AuditEntry {
        at: now,
        actor: "bench".into(),
        action,
        subject: "batch {id}".into(),
        details: serde_json::json!({}),
    };
    use herald::domain::audit::AuditAction;
    store
        .apply(&records, &audit(AuditAction::Import))
        .await
        .unwrap();
    let body: std::sync::Arc<str> = "Dear teacher,\n\nthe staff meeting moves to Thursday 15:00.\n"
        .repeat(10)
        .into();
    let batch: Vec<NewMessage> = (0..messages)
        .map(|i| NewMessage {
            kind: MessageKind::System,
            channel: Channel::Email,
            recipient_id: Some(RecipientId(i as i64 + 1)),
            recipient_external_id: format!("t-{i}"),
            address: Some(format!("teacher{i}@example.pl")),
            subject: Some("Staff meeting".into()),
            body: body.clone(),
            status: MessageStatus::Queued,
            reason: None,
            segments: None,
            html: None,
            occurrence_key: None,
            relevance: None,
            expires_at: None,
        })
        .collect();
    let new_batch = NewBatch {
        kind: MessageKind::System,
        channel: Channel::Email,
        channels: herald::domain::ChannelChoice::Email,
        status: herald::domain::BatchStatus::Approved,
        audience: "bench".into(),
        subject: Some("Staff meeting".into()),
        body: body.to_string(),
        html: None,
        created_by: "bench".into(),
    };
    let audit = herald::store::AuditEntry {
        at: now,
        actor: "bench".into(),
        action: herald::domain::audit::AuditAction::Send,
        subject: "batch {id}".into(),
        details: serde_json::json!({}),
    };
    store
        .create_batch(&new_batch, &batch, &audit)
        .await
        .unwrap();

    let channels = Channels::build(&settings).unwrap();
    let dispatcher = Arc::new(Dispatcher::new(
        Arc::clone(&store),
        channels,
        Arc::new(settings),
        Arc::new(SystemClock),
        "bench".into(),
    ));
    let started = Instant::now();
    let counts = dispatcher
        .run_pass(&MessageKind::ALL, &CancellationToken::new())
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(counts.sent as usize, messages, "{counts:?}");
    assert_eq!(server.received().len(), messages);
    println!(
        "herald dispatch pass: {messages} messages over {connections} connections in {:.2} s = {:.0} messages/s (claim, re-check, send, record)",
        took.as_secs_f64(),
        messages as f64 / took.as_secs_f64()
    );

    // The same traffic over lettre's own connections (Nagle on), no store.
    let bytes = format!(
        "From: bench@example.pl\r\nTo: x@example.pl\r\nSubject: Staff meeting\r\n\r\n{}",
        body.replace('\n', "\r\n")
    );
    let per_connection = messages.div_ceil(connections);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let addr = server.addr;
        let bytes = bytes.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = AsyncSmtpConnection::connect_tokio1(
                addr,
                Some(Duration::from_secs(10)),
                &ClientId::Domain("bench.lettre".into()),
                None,
                None,
            )
            .await
            .unwrap();
            let envelope = lettre::address::Envelope::new(
                Some("bench@example.pl".parse().unwrap()),
                vec!["x@example.pl".parse().unwrap()],
            )
            .unwrap();
            for _ in 0..per_connection {
                conn.send(&envelope, bytes.as_bytes()).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = started.elapsed();
    let sent = per_connection * connections;
    println!(
        "lettre connections (no TCP_NODELAY): {sent} messages over {connections} connections in {:.2} s = {:.0} messages/s",
        took.as_secs_f64(),
        sent as f64 / took.as_secs_f64()
    );
}
