//! Several Herald instances on one database: the leader lease on both backends, and
//! on PostgreSQL several dispatchers (each with its own pool) draining one queue,
//! one of them killed mid-send, and a system message crossing instances at once.
//!
//! The PostgreSQL tests print their figures; see them with
//! `HERALD_TEST_POSTGRES=postgres://postgres@127.0.0.1/postgres cargo test --test it multi -- --nocapture`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Duration as Span;
use herald::clock::{FixedClock, SystemClock};
use herald::compose::Content;
use herald::config::Settings;
use herald::daemon::Daemon;
use herald::dispatcher::Dispatcher;
use herald::domain::directory::{DirectoryRecord, RecipientRecord, Role};
use herald::domain::{BatchStatus, Channel, MessageKind, MessageStatus, RecipientId};
use herald::store::{self, NewBatch, NewMessage, Store};
use tokio_util::sync::CancellationToken;

use crate::conformance;
use crate::helpers::{TestApp, now, postgres, warsaw};
use crate::smtp::SmtpServer;

conformance!(only_one_instance_holds_a_leader_lease_until_it_expires_or_resigns);

async fn only_one_instance_holds_a_leader_lease_until_it_expires_or_resigns(app: TestApp) {
    let s = &app.store;
    let t0 = now();
    let until = t0 + Span::seconds(30);
    assert!(s.try_lead("reclaim", "a", t0, until).await.unwrap());
    assert!(
        !s.try_lead("reclaim", "b", t0 + Span::seconds(1), until)
            .await
            .unwrap()
    );
    // The holder renews.
    let later = t0 + Span::seconds(20);
    assert!(
        s.try_lead("reclaim", "a", later, later + Span::seconds(30))
            .await
            .unwrap()
    );
    assert!(
        !s.try_lead(
            "reclaim",
            "b",
            t0 + Span::seconds(40),
            t0 + Span::seconds(70)
        )
        .await
        .unwrap()
    );
    // Once it has expired, another instance takes it.
    let expired = later + Span::seconds(31);
    assert!(
        s.try_lead("reclaim", "b", expired, expired + Span::seconds(30))
            .await
            .unwrap()
    );
    assert!(
        !s.try_lead("reclaim", "a", expired, expired + Span::seconds(30))
            .await
            .unwrap()
    );
    // Other leases are independent.
    assert!(
        s.try_lead("planner", "a", expired, expired + Span::seconds(30))
            .await
            .unwrap()
    );
    // A holder that resigns lets the next one in at once.
    s.resign("reclaim", "b").await.unwrap();
    assert!(
        s.try_lead("reclaim", "a", expired, expired + Span::seconds(30))
            .await
            .unwrap()
    );
}

/// `count` teachers with addresses, and one approved system batch to all of them,
/// due from `at`.
async fn queue_messages(store: &Arc<dyn Store>, count: usize, at: chrono::DateTime<chrono::Utc>) {
    let records: Vec<DirectoryRecord> = (0..count)
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
    store
        .apply(
            &records,
            &crate::helpers::audit_line("test", herald::domain::audit::AuditAction::Import, at),
        )
        .await
        .unwrap();
    let people = store
        .recipients(&herald::store::RecipientFilter::default())
        .await
        .unwrap();
    let ids: HashMap<String, RecipientId> = people
        .iter()
        .map(|f| (f.recipient.external_id.clone(), f.recipient.id))
        .collect();
    let messages: Vec<NewMessage> = (0..count)
        .map(|i| NewMessage {
            kind: MessageKind::System,
            channel: Channel::Email,
            recipient_id: Some(ids[&format!("t-{i}")]),
            recipient_external_id: format!("t-{i}"),
            address: Some(format!("teacher{i}@example.pl")),
            subject: Some("Staff meeting".into()),
            body: "The staff meeting moves to Thursday 15:00.".into(),
            status: MessageStatus::Queued,
            reason: None,
            segments: None,
            html: None,
            occurrence_key: None,
            relevance: None,
            expires_at: None,
        })
        .collect();
    let batch = NewBatch {
        kind: MessageKind::System,
        channel: Channel::Email,
        channels: herald::domain::ChannelChoice::Email,
        status: BatchStatus::Approved,
        audience: "all teachers".into(),
        subject: Some("Staff meeting".into()),
        body: "The staff meeting moves to Thursday 15:00.".into(),
        html: None,
        created_by: "test".into(),
    };
    store
        .create_batch(
            &batch,
            &messages,
            &crate::helpers::audit_line("test", herald::domain::audit::AuditAction::Send, at),
        )
        .await
        .unwrap();
}

/// An instance: its own pool on the same database, its own dispatcher.
async fn instance(
    settings: &Settings,
    name: &str,
    clock: Arc<dyn herald::clock::Clock>,
) -> Arc<Dispatcher> {
    let store = store::open(&settings.database).await.unwrap();
    let channels = herald::dispatcher::Channels::build(settings).unwrap();
    Arc::new(Dispatcher::new(
        store,
        channels,
        Arc::new(settings.clone()),
        clock,
        name.to_owned(),
    ))
}

/// How many messages the server received per recipient address.
fn deliveries(smtp: &SmtpServer) -> HashMap<String, usize> {
    let mut per: HashMap<String, usize> = HashMap::new();
    for m in smtp.received() {
        for to in m.to {
            *per.entry(to).or_default() += 1;
        }
    }
    per
}

/// When `messages` was last analyzed by a statement, Herald's (`None`: never);
/// autovacuum's own analyses are not counted, so they cannot pass for Herald's.
async fn messages_analyzed_at(app: &TestApp) -> Option<chrono::DateTime<chrono::Utc>> {
    let mut conn = app.postgres_connection().await?;
    sqlx::query_scalar("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'messages'")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// A large batch refreshes the planner's statistics as it is stored, so its first
/// claims are planned for the queue it makes, not for an empty table; a small one
/// leaves that to autovacuum, until small ones (a rule's run writes a few hundred at
/// a time) add up to a large one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_refreshes_the_planners_statistics_on_postgresql() {
    let Some(app) = postgres().await else { return };
    queue_messages(&app.store, 10, now()).await;
    assert_eq!(
        messages_analyzed_at(&app).await,
        None,
        "10 messages: no ANALYZE"
    );
    queue_messages(&app.store, 1000, now()).await;
    let first = messages_analyzed_at(&app).await;
    assert!(first.is_some(), "1010 messages: messages analyzed");
    queue_messages(&app.store, 600, now()).await;
    assert_eq!(
        messages_analyzed_at(&app).await,
        first,
        "600 more: not yet analyzed again"
    );
    queue_messages(&app.store, 600, now()).await;
    assert!(
        messages_analyzed_at(&app).await > first,
        "1200 more in two batches: analyzed again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_drain_5000_messages_each_received_exactly_once() {
    let Some(app) = postgres().await else { return };
    const MESSAGES: usize = 5000;
    queue_messages(&app.store, MESSAGES, now()).await;
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    let clock: Arc<dyn herald::clock::Clock> =
        Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let mut instances = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        instances.push(instance(&settings, name, Arc::clone(&clock)).await);
    }
    let started = Instant::now();
    let passes = instances.iter().map(|d| {
        let d = Arc::clone(d);
        tokio::spawn(async move {
            d.run_pass(&MessageKind::ALL, &CancellationToken::new())
                .await
                .unwrap()
        })
    });
    let mut per_instance = Vec::new();
    for pass in passes.collect::<Vec<_>>() {
        per_instance.push(pass.await.unwrap().sent);
    }
    let took = started.elapsed();

    let per = deliveries(&smtp);
    let duplicates: usize = per.values().map(|n| n - 1).sum();
    eprintln!(
        "multi-instance drain: {MESSAGES} messages, 3 instances (sent {per_instance:?}), {} received, \
         {duplicates} duplicates, drained in {:.2} s ({:.0} messages/s)",
        smtp.received().len(),
        took.as_secs_f64(),
        MESSAGES as f64 / took.as_secs_f64()
    );
    assert_eq!(per.len(), MESSAGES, "every message arrived");
    assert_eq!(duplicates, 0, "none arrived twice");
    assert_eq!(per_instance.iter().sum::<u64>(), MESSAGES as u64);
    assert!(
        per_instance.iter().all(|n| *n > 0),
        "every instance took a share: {per_instance:?}"
    );
    assert_eq!(app.count(MessageStatus::Sent).await, MESSAGES as i64);
    assert_eq!(
        app.count(MessageStatus::Queued).await + app.count(MessageStatus::Sending).await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_leaves_its_claims_to_the_others_after_the_lease() {
    let Some(app) = postgres().await else { return };
    const MESSAGES: usize = 200;
    // Due already on the real clock this test runs on.
    queue_messages(&app.store, MESSAGES, chrono::Utc::now() - Span::hours(1)).await;
    let smtp = SmtpServer::start().await;
    smtp.slow_down(Duration::from_millis(100));
    let mut settings = app.smtp_settings(&smtp);
    // Short leases so the test does not wait long (start-up validation is bypassed).
    settings.email.transport = match settings.email.transport {
        herald::config::EmailTransport::Smtp(mut s) => {
            s.timeout = Duration::from_secs(1);
            herald::config::EmailTransport::Smtp(s)
        }
        other => other,
    };
    // Long enough for a send's timeout and the hand-over's margin.
    settings.dispatch.lease = Duration::from_secs(3);
    let clock: Arc<dyn herald::clock::Clock> = Arc::new(SystemClock);
    let doomed = instance(&settings, "doomed", Arc::clone(&clock)).await;
    let survivor = instance(&settings, "survivor", Arc::clone(&clock)).await;

    // The doomed instance dies mid-pass: its task is aborted, nothing is cleaned up.
    let pass = tokio::spawn(async move {
        doomed
            .run_pass(&MessageKind::ALL, &CancellationToken::new())
            .await
    });
    tokio::time::sleep(Duration::from_millis(550)).await;
    pass.abort();
    let _ = pass.await;
    // Aborting drops the pass's sends at their next await, but an outcome whose
    // COMMIT already left for the server still lands: let those settle, so that what
    // is counted as the dead instance's claims is what it really left behind.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received_before = smtp.received().len();
    let stuck = app.count(MessageStatus::Sending).await;
    // The addresses of the messages the dead instance still held.
    let held: std::collections::HashSet<String> = app
        .store
        .messages(&herald::store::MessageFilter {
            status: Some(MessageStatus::Sending),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| m.address)
        .collect();
    assert!(stuck > 0, "the dead instance held claims");

    // Within the lease its claims are left alone …
    survivor
        .run_pass(&MessageKind::ALL, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        app.count(MessageStatus::Sending).await,
        stuck,
        "live leases are respected"
    );
    // … after it, the survivor reclaims and sends them.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    smtp.slow_down(Duration::ZERO);
    survivor
        .run_pass(&MessageKind::ALL, &CancellationToken::new())
        .await
        .unwrap();

    let per = deliveries(&smtp);
    let duplicates: usize = per.values().map(|n| n - 1).sum();
    eprintln!(
        "killed instance: {MESSAGES} messages, 2 instances; the dead one held {stuck} claims \
         ({received_before} messages reached the server before it died); \
         {duplicates} duplicates after the survivor reclaimed them"
    );
    assert_eq!(per.len(), MESSAGES, "every message arrived");
    assert_eq!(app.count(MessageStatus::Sent).await, MESSAGES as i64);
    assert_eq!(app.count(MessageStatus::Sending).await, 0);
    // Only messages the dead instance still held can arrive twice: those it had
    // handed to the server (or whose acceptance it had not recorded yet) when it died.
    for (address, n) in &per {
        if *n > 1 {
            assert_eq!(*n, 2, "{address} arrived {n} times");
            assert!(
                held.contains(address),
                "{address} arrived twice but was not held"
            );
        }
    }
    assert!(
        duplicates as i64 <= stuck,
        "{duplicates} duplicates, {stuck} claims held"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_message_created_on_one_instance_is_sent_by_another_within_a_second() {
    let Some(app) = postgres().await else { return };
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let mut settings = app.smtp_settings(&smtp);
    // Neither the tick nor the poll can send it within the test: only NOTIFY can.
    settings.dispatch.schedule = "0 0 0 1 1 *".parse().unwrap();
    settings.dispatch.wake_poll = Duration::from_secs(60);
    let b_store = store::open(&settings.database).await.unwrap();
    let b = Daemon::build_with(settings.clone(), b_store, Arc::new(SystemClock)).unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(b.run_until_stopped(shutdown.clone()));
    // Let B reach its LISTEN before A writes.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let a_store = store::open(&settings.database).await.unwrap();
    let content = Content::email("Password reset", "Your code is 1234.").unwrap();
    let created = Instant::now();
    herald::app::App::new(
        std::sync::Arc::clone(&a_store),
        std::sync::Arc::new(settings.clone()),
        std::sync::Arc::new(herald::clock::FixedClock::new(chrono::Utc::now())),
    )
    .notify(&herald::app::Actor::System("platform"), "t-3001", &content)
    .await
    .unwrap();
    while smtp.received().is_empty() && created.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let waited = created.elapsed();
    eprintln!(
        "system message from instance A sent by instance B after {} ms",
        waited.as_millis()
    );
    assert_eq!(smtp.received_for("b.malinowska@example.pl").len(), 1);
    assert!(waited < Duration::from_secs(1), "took {waited:?}");
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_herald_binary_migrates_imports_and_lists_on_postgresql() {
    let Some(app) = postgres().await else { return };
    let url = app.settings.database.url.clone();
    let url = secrecy::ExposeSecret::expose_secret(&url).to_owned();
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_herald"));
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("HERALD_")) {
            cmd.env_remove(key);
        }
        cmd.current_dir(dir.path())
            .args(args)
            .env("HERALD__DATABASE__URL", &url)
            .output()
            .unwrap()
    };
    let out = run(&["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("is up to date"));
    let out = run(&["operators", "add", "admin", "--role", "owner"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let school = crate::helpers::example("school.json");
    let out = run(&["import", school.to_str().unwrap(), "--as", "admin"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["recipients", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert_eq!(app.store.counts().await.unwrap().guardians, 1);
}
