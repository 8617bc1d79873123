//! Faults at the exact moment, on both backends: a dispatcher that dies or stops
//! after handing a message to its channel, one whose lease ran out and whose message
//! was claimed again, one with too little lease left to send. Nothing is sent twice
//! where the channel cannot tell a repeat, no credit is lost or spent twice, and a
//! claim that is no longer the message's changes nothing; a database that goes away
//! between a server's acceptance and its record loses nothing.

use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as ChronoDuration;
use herald::clock::FixedClock;
use herald::config::{Settings, SmsGateway};
use herald::dispatcher::Outcome;
use herald::domain::audit::AuditAction;
use herald::domain::{Channel, MessageKind, MessageStatus, Reason};
use herald::store::{AttemptOutcome, Claimed, Finish, Reservation};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::conformance;
use crate::helpers::{OWNER, TestApp, audit_line, now, warsaw};

conformance!(
    a_handed_over_sms_the_gateway_cannot_recognise_becomes_unknown_not_sent_again,
    a_handed_over_sms_the_gateway_recognises_goes_again_under_the_same_key,
    a_claim_never_handed_over_goes_back_to_the_queue_with_its_credit,
    a_stopping_dispatcher_releases_by_the_same_rule,
    a_claim_that_is_no_longer_the_messages_changes_nothing,
    nothing_is_sent_when_less_of_the_lease_is_left_than_the_send_may_take,
    an_unknown_sms_left_undecided_is_charged_after_a_while,
    a_gateway_that_asks_to_wait_is_not_called_again_before_then,
    an_outcome_the_database_would_not_take_is_kept_and_written_when_it_answers,
    the_wait_for_an_smtp_connection_counts_against_the_lease,
    a_kept_outcome_settles_a_message_the_lease_rule_made_unknown,
);

/// A gateway on loopback that accepts every SMS, and settings that send through it:
/// Twilio-like (no idempotency key) or, when `recognises_repeats`, SMSAPI-like
/// (`idx`). The wallet holds ten points and an SMS to Anna Nowak is approved.
async fn gateway(app: &TestApp, recognises_repeats: bool) -> (MockServer, Settings) {
    let server = MockServer::start().await;
    let answer = if recognises_repeats {
        serde_json::json!({
            "count": 1, "list": [{"id": "smsapi-1", "points": 0.16, "status": "QUEUE", "parts": 1}]
        })
    } else {
        serde_json::json!({"sid": "SM1"})
    };
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(if recognises_repeats { 200 } else { 201 }).set_body_json(answer),
        )
        .mount(&server)
        .await;
    let mut settings = app.settings.clone();
    settings.sms.gateway = if recognises_repeats {
        SmsGateway::Smsapi {
            url: format!("{}/sms.do", server.uri()).parse().unwrap(),
            token: SecretString::from("t0ken"),
            report_secret: None,
        }
    } else {
        SmsGateway::Twilio {
            url: server.uri().parse().unwrap(),
            account_sid: "AC1".into(),
            auth_token: SecretString::from("t"),
            messaging_service_sid: None,
        }
    };
    settings.sms.timeout = Duration::from_secs(2);
    an_sms(app, &settings).await;
    (server, settings)
}

/// A Twilio-like gateway (no idempotency key) at `server`.
fn twilio_at(server: &MockServer) -> SmsGateway {
    SmsGateway::Twilio {
        url: server.uri().parse().unwrap(),
        account_sid: "AC1".into(),
        auth_token: SecretString::from("t"),
        messaging_service_sid: None,
    }
}

/// An approved SMS to Anna Nowak, ten points in the wallet.
async fn an_sms(app: &TestApp, settings: &Settings) {
    app.import_examples(now()).await;
    app.store
        .top_up(10, "invoice", &audit_line(OWNER, AuditAction::TopUp, now()))
        .await
        .unwrap();
    crate::sms::sms_batch(app, settings, "gd-2001", "Zebranie w czwartek").await;
}

/// What the message to Anna is now: its status, reason and attempts' outcomes.
async fn anna(app: &TestApp) -> (MessageStatus, Option<Reason>, Vec<AttemptOutcome>) {
    let m = app.only_message_to("gd-2001").await;
    let attempts = app.store.attempts(m.id).await.unwrap();
    (
        m.status,
        m.reason,
        attempts.iter().map(|a| a.outcome).collect(),
    )
}

/// The wallet's balance and reserved points, after checking that every point is
/// accounted for: what was topped up is spent (charged), held (reserved) or there.
async fn wallet(app: &TestApp) -> (i64, i64) {
    let w = app.store.wallet().await.unwrap();
    let t = app.store.ledger_totals().await.unwrap();
    assert_eq!(
        t.top_ups - t.charges,
        w.balance + w.reserved,
        "top-ups − charges = balance + reserved ({t:?}, {w:?})"
    );
    assert_eq!(
        t.reserves,
        t.charges + t.refunds + w.reserved,
        "{t:?} {w:?}"
    );
    (w.balance, w.reserved)
}

/// A dispatcher `worker` claims the message at 10:00 with a 15 s lease, reserves its
/// point, and (when `hand_over`) hands it to the channel; then it dies.
async fn claimed_and_dropped(app: &TestApp, worker: &str, hand_over: bool) -> Claimed {
    let t0 = warsaw("2026-11-24 10:00");
    let lease = t0 + ChronoDuration::seconds(15);
    let mut claimed = app
        .store
        .claim_due(t0, &MessageKind::ALL, worker, lease, 1)
        .await
        .unwrap();
    let m = claimed.remove(0);
    assert_eq!(
        app.store.reserve(m.id, m.claim, 1, t0).await.unwrap(),
        Reservation::Reserved
    );
    if hand_over {
        assert!(app.store.hand_over(m.id, m.claim, t0, t0).await.unwrap());
    }
    m
}

/// A dispatcher's pass after the lease ran out: it reclaims, then sends what is due.
async fn pass_after_the_lease(app: &TestApp, settings: Settings) {
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:01")));
    let d = app.dispatcher_with(settings, &clock);
    d.run_pass(&MessageKind::ALL, &CancellationToken::new())
        .await
        .unwrap();
}

async fn a_handed_over_sms_the_gateway_cannot_recognise_becomes_unknown_not_sent_again(
    app: TestApp,
) {
    let (server, settings) = gateway(&app, false).await;
    claimed_and_dropped(&app, "dead", true).await;
    pass_after_the_lease(&app, settings).await;
    // It may have reached Anna: not sent again by itself, and not paid for twice.
    assert!(server.received_requests().await.unwrap().is_empty());
    assert_eq!(
        anna(&app).await,
        (
            MessageStatus::Unknown,
            Some(Reason::OutcomeUnknown),
            vec![AttemptOutcome::Unknown]
        )
    );
    assert_eq!(wallet(&app).await, (9, 1), "its point stays held");
}

async fn a_handed_over_sms_the_gateway_recognises_goes_again_under_the_same_key(app: TestApp) {
    let (server, settings) = gateway(&app, true).await;
    let m = claimed_and_dropped(&app, "dead", true).await;
    pass_after_the_lease(&app, settings).await;
    // SMSAPI refuses a second message with the same idx: sending again is safe.
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let body = String::from_utf8_lossy(&requests[0].body).into_owned();
    let key = herald::domain::report::MessageKey::of(m.id, m.created_at).to_string();
    assert!(body.contains(&format!("idx={key}")), "{body}");
    assert_eq!(
        anna(&app).await,
        (
            MessageStatus::Sent,
            None,
            vec![AttemptOutcome::Abandoned, AttemptOutcome::Sent]
        )
    );
    assert_eq!(wallet(&app).await, (9, 0), "charged once");
}

async fn a_claim_never_handed_over_goes_back_to_the_queue_with_its_credit(app: TestApp) {
    let (server, settings) = gateway(&app, false).await;
    claimed_and_dropped(&app, "dead", false).await;
    // Not handed over: it never left, so even without an idempotency key it goes.
    pass_after_the_lease(&app, settings).await;
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    assert_eq!(
        anna(&app).await,
        (
            MessageStatus::Sent,
            None,
            vec![AttemptOutcome::Abandoned, AttemptOutcome::Sent]
        )
    );
    assert_eq!(wallet(&app).await, (9, 0));
}

async fn a_stopping_dispatcher_releases_by_the_same_rule(app: TestApp) {
    let (server, _) = gateway(&app, false).await;
    let m = claimed_and_dropped(&app, "stopping", true).await;
    let at = warsaw("2026-11-24 10:00") + ChronoDuration::seconds(5);
    let release = |claim: i64, owner: &'static str| {
        let store = Arc::clone(&app.store);
        async move {
            store
                .release(&[(m.id, claim)], owner, at, &[Channel::Email])
                .await
                .unwrap()
        }
    };
    // A claim of another number, or of another owner, is not released.
    assert_eq!(release(m.claim + 1, "stopping").await, 0);
    assert_eq!(release(m.claim, "someone-else").await, 0);
    assert_eq!(anna(&app).await.0, MessageStatus::Sending);
    // Email is recognised by its Message-ID, the SMS channel here is not.
    assert_eq!(release(m.claim, "stopping").await, 1);
    assert_eq!(anna(&app).await.0, MessageStatus::Unknown);
    assert!(server.received_requests().await.unwrap().is_empty());
    assert_eq!(wallet(&app).await, (9, 1));
}

async fn a_claim_that_is_no_longer_the_messages_changes_nothing(app: TestApp) {
    let (_gateway, _) = gateway(&app, true).await;
    // The first claim's lease runs out and the same worker claims the message again.
    let first = claimed_and_dropped(&app, "w1", false).await;
    let t1 = warsaw("2026-11-24 10:01");
    app.store
        .reclaim_expired(t1, 5, &[Channel::Email, Channel::Sms])
        .await
        .unwrap();
    let second = app
        .store
        .claim_due(
            t1,
            &MessageKind::ALL,
            "w1",
            t1 + ChronoDuration::seconds(15),
            1,
        )
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.id, first.id);
    assert!(second.claim > first.claim);
    // The first claim's late outcome, reservation and hand-over: all refused.
    let attempt = herald::store::Attempt {
        started_at: t1,
        outcome: AttemptOutcome::Sent,
        code: Some(200),
        detail: "late".into(),
        provider_id: None,
    };
    let late = app
        .store
        .finish(first.id, "w1", first.claim, &Finish::Sent(attempt), t1)
        .await
        .unwrap();
    assert!(!late);
    assert_eq!(
        app.store
            .reserve(first.id, first.claim, 1, t1)
            .await
            .unwrap(),
        Reservation::ClaimLost
    );
    assert!(
        !app.store
            .hand_over(first.id, first.claim, t1, t1)
            .await
            .unwrap()
    );
    assert_eq!(anna(&app).await.0, MessageStatus::Sending);
    assert_eq!(
        wallet(&app).await,
        (10, 0),
        "the first claim's point came back"
    );
    // The second claim reserves once, and adds to nothing left over.
    assert_eq!(
        app.store
            .reserve(second.id, second.claim, 1, t1)
            .await
            .unwrap(),
        Reservation::Reserved
    );
    assert_eq!(wallet(&app).await, (9, 1));
}

async fn nothing_is_sent_when_less_of_the_lease_is_left_than_the_send_may_take(app: TestApp) {
    let (server, mut settings) = gateway(&app, false).await;
    // A lease shorter than the gateway's timeout: the send could outlive the claim.
    settings.dispatch.lease = Duration::from_secs(1);
    settings.sms.timeout = Duration::from_secs(5);
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings, &clock);
    assert_eq!(
        d.try_dispatch_next().await.unwrap(),
        Some(Outcome::LeaseLost)
    );
    assert!(server.received_requests().await.unwrap().is_empty());
    let (status, reason, attempts) = anna(&app).await;
    assert_eq!(
        (status, reason),
        (MessageStatus::Queued, Some(Reason::RetryScheduled))
    );
    assert!(attempts.is_empty(), "no attempt was made");
    assert_eq!(wallet(&app).await, (10, 0), "its point came back");
}

async fn an_unknown_sms_left_undecided_is_charged_after_a_while(app: TestApp) {
    let (server, settings) = gateway(&app, false).await;
    claimed_and_dropped(&app, "dead", true).await;
    pass_after_the_lease(&app, settings.clone()).await;
    assert_eq!(anna(&app).await.0, MessageStatus::Unknown);
    assert_eq!(wallet(&app).await, (9, 1));
    // A day later nobody has decided: still held.
    let after = |hours: i64| warsaw("2026-11-24 10:01") + ChronoDuration::hours(hours);
    let pass_at = |at| {
        let d = app.dispatcher_with(settings.clone(), &Arc::new(FixedClock::new(at)));
        async move {
            d.run_pass(&MessageKind::ALL, &CancellationToken::new())
                .await
                .unwrap()
        }
    };
    pass_at(after(24)).await;
    assert_eq!(wallet(&app).await, (9, 1));
    // After `sms.unknown_charged_after` (72 h): charged once, with its ledger line,
    // and still unknown until someone decides.
    pass_at(after(73)).await;
    pass_at(after(74)).await;
    assert_eq!(wallet(&app).await, (9, 0));
    let totals = app.store.ledger_totals().await.unwrap();
    assert_eq!((totals.charges, totals.refunds), (1, 0));
    assert_eq!(anna(&app).await.0, MessageStatus::Unknown);
    assert!(server.received_requests().await.unwrap().is_empty());
}

/// A gateway answering 429 with `Retry-After: 120`: the message is retried no sooner,
/// and the next SMS due meanwhile is held without calling the gateway (and without
/// counting an attempt), its credit given back.
async fn a_gateway_that_asks_to_wait_is_not_called_again_before_then(app: TestApp) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "120")
                .set_body_json(serde_json::json!({"code": 20429, "message": "Too Many Requests"})),
        )
        .mount(&server)
        .await;
    let mut settings = app.settings.clone();
    settings.sms.gateway = twilio_at(&server);
    an_sms(&app, &settings).await;
    let t0 = warsaw("2026-11-24 10:00");
    let clock = Arc::new(FixedClock::new(t0));
    let d = app.dispatcher_with(settings.clone(), &clock);
    let running = CancellationToken::new();
    let pass = || d.run_pass(&MessageKind::ALL, &running);
    pass().await.unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    let (status, reason, attempts) = anna(&app).await;
    assert_eq!(
        (status, reason, attempts),
        (
            MessageStatus::Queued,
            Some(Reason::RetryScheduled),
            vec![AttemptOutcome::Transient]
        )
    );
    let anna_at = app
        .only_message_to("gd-2001")
        .await
        .next_attempt_at
        .unwrap();
    assert!(anna_at >= t0 + ChronoDuration::seconds(120), "{anna_at}");
    // Barbara's SMS comes due while the gateway is resting: held, not sent.
    crate::sms::sms_batch(&app, &settings, "t-3001", "Rada pedagogiczna").await;
    clock.set(t0 + ChronoDuration::seconds(5));
    pass().await.unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    let barbara = app.only_message_to("t-3001").await;
    assert_eq!(barbara.status, MessageStatus::Queued);
    assert!(app.store.attempts(barbara.id).await.unwrap().is_empty());
    let at = barbara.next_attempt_at.unwrap();
    assert!(
        at >= t0 + ChronoDuration::seconds(110) && at <= t0 + ChronoDuration::seconds(126),
        "held until the gateway's wait is over: {at}"
    );
    assert_eq!(wallet(&app).await, (10, 0), "both points given back");
}

/// The SMTP server takes Anna's email, and before Herald can record that, the
/// database goes away (the SQLite file locked; PostgreSQL refusing connections). The
/// outcome is kept, the instance is not ready while it is, and once the database
/// answers it is written: sent once, and not sent again after the lease.
async fn an_outcome_the_database_would_not_take_is_kept_and_written_when_it_answers(app: TestApp) {
    use crate::smtp::{Fault, Gate, SmtpServer};
    use herald::app::{App, ReadyCheck};
    use herald::domain::{Audience, Reach};
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let gate = Arc::new(Gate::default());
    smtp.fail_next(
        "anna.nowak@example.pl",
        Fault::AcceptThenWait(Arc::clone(&gate)),
    );
    let mut settings = app.smtp_settings(&smtp);
    settings.database.busy_timeout = Duration::from_millis(300);
    settings.database.acquire_timeout = Duration::from_secs(1);
    let t0 = warsaw("2026-11-24 10:00");
    app.approved_batch(
        &settings,
        Audience::Recipient("gd-2001".into()),
        Reach::Students,
        t0,
    )
    .await;
    // The dispatcher's own store, with the short timeouts above.
    let store = herald::store::open(&settings.database).await.unwrap();
    let clock = Arc::new(FixedClock::new(t0));
    let d = Arc::new(herald::dispatcher::Dispatcher::new(
        Arc::clone(&store),
        herald::dispatcher::Channels::build(&settings).unwrap(),
        Arc::new(settings.clone()),
        Arc::clone(&clock) as Arc<dyn herald::clock::Clock>,
        "outage".into(),
    ));
    let instance = App::new(
        Arc::clone(&store),
        Arc::new(settings.clone()),
        Arc::clone(&clock) as Arc<dyn herald::clock::Clock>,
    )
    .with_backlog(Arc::clone(d.backlog()));
    let running = CancellationToken::new();
    let pass = tokio::spawn({
        let (d, running) = (Arc::clone(&d), running.clone());
        async move { d.run_pass(&MessageKind::ALL, &running).await }
    });
    gate.arrived.notified().await;
    let outage = app.outage().await;
    gate.open.notify_one();
    let failed = pass.await.unwrap();
    assert!(failed.is_err(), "the pass reports the outage: {failed:?}");
    assert_eq!(d.backlog().len(), 1, "the outcome is kept");
    assert_eq!(instance.readiness().await.outcomes, ReadyCheck::Waiting);
    // Still away: the next pass fails before claiming anything, and keeps it.
    clock.set(t0 + ChronoDuration::seconds(2));
    assert!(d.run_pass(&MessageKind::ALL, &running).await.is_err());
    assert_eq!(d.backlog().len(), 1);
    outage.end().await;
    clock.set(t0 + ChronoDuration::seconds(5));
    d.run_pass(&MessageKind::ALL, &running).await.unwrap();
    assert!(d.backlog().is_empty());
    assert_eq!(instance.readiness().await.outcomes, ReadyCheck::Ok);
    let m = app.only_message_to("gd-2001").await;
    assert_eq!(m.status, MessageStatus::Sent);
    let attempts = app.store.attempts(m.id).await.unwrap();
    assert_eq!(
        attempts.iter().map(|a| a.outcome).collect::<Vec<_>>(),
        vec![AttemptOutcome::Sent]
    );
    assert_eq!(
        attempts[0].started_at, t0,
        "recorded as it happened, not when written"
    );
    // Long after the lease: nothing is reclaimed, nothing goes again.
    clock.set(t0 + ChronoDuration::minutes(5));
    d.run_pass(&MessageKind::ALL, &running).await.unwrap();
    assert_eq!(smtp.received_for("anna.nowak@example.pl").len(), 1);
}

/// The wait for an SMTP connection comes before the hand-over: with one connection
/// and a slow server, the second email waits its turn, and with too little of its
/// lease left after the wait it is not sent (back to the queue, no attempt) rather
/// than sent on a claim that may run out mid-send. On the system clock, because the
/// wait is real time.
async fn the_wait_for_an_smtp_connection_counts_against_the_lease(app: TestApp) {
    use crate::smtp::SmtpServer;
    use herald::config::EmailTransport;
    use herald::domain::{Audience, Reach};
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    smtp.slow_down(Duration::from_millis(1500));
    let mut settings = app.smtp_settings(&smtp);
    if let EmailTransport::Smtp(s) = &mut settings.email.transport {
        s.max_connections = 1;
        s.timeout = Duration::from_secs(2);
    }
    // Two seconds of timeout and one of margin: a send needs three of the four.
    settings.dispatch.lease = Duration::from_secs(4);
    settings.kinds.informational.respect_send_window = false;
    let at = chrono::Utc::now();
    for who in ["gd-2001", "t-3001"] {
        app.approved_batch(
            &settings,
            Audience::Recipient(who.into()),
            Reach::Students,
            at,
        )
        .await;
    }
    let d = Arc::new(herald::dispatcher::Dispatcher::new(
        Arc::clone(&app.store),
        herald::dispatcher::Channels::build(&settings).unwrap(),
        Arc::new(settings),
        Arc::new(herald::clock::SystemClock),
        "one-connection".into(),
    ));
    let counts = d
        .run_pass(&MessageKind::ALL, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(counts.sent, 1, "{counts:?}");
    assert_eq!(smtp.received().len(), 1);
    let mut waited = Vec::new();
    for who in ["gd-2001", "t-3001"] {
        let m = app.only_message_to(who).await;
        if m.status == MessageStatus::Queued {
            assert_eq!(m.reason, Some(Reason::RetryScheduled));
            assert!(app.store.attempts(m.id).await.unwrap().is_empty());
            waited.push(who);
        }
    }
    assert_eq!(waited.len(), 1, "one sent, one given back: {waited:?}");
}

/// The gateway takes Anna's SMS while the database is away, for longer than the
/// lease: another dispatcher's reclaim makes the message `unknown` (Twilio cannot
/// tell a repeat). When the first dispatcher's kept outcome is written, it settles
/// that: sent and charged once, not left for a person to resend (and pay twice).
async fn a_kept_outcome_settles_a_message_the_lease_rule_made_unknown(app: TestApp) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(serde_json::json!({"sid": "SM1"}))
                .set_delay(Duration::from_millis(800)),
        )
        .mount(&server)
        .await;
    let mut settings = app.settings.clone();
    settings.sms.gateway = twilio_at(&server);
    settings.sms.timeout = Duration::from_secs(2);
    settings.dispatch.lease = Duration::from_secs(15);
    settings.database.busy_timeout = Duration::from_millis(300);
    settings.database.acquire_timeout = Duration::from_secs(1);
    an_sms(&app, &settings).await;
    let t0 = warsaw("2026-11-24 10:00");
    let store = herald::store::open(&settings.database).await.unwrap();
    let clock = Arc::new(FixedClock::new(t0));
    let d = Arc::new(herald::dispatcher::Dispatcher::new(
        store,
        herald::dispatcher::Channels::build(&settings).unwrap(),
        Arc::new(settings.clone()),
        Arc::clone(&clock) as Arc<dyn herald::clock::Clock>,
        "cut-off".into(),
    ));
    let running = CancellationToken::new();
    let pass = tokio::spawn({
        let (d, running) = (Arc::clone(&d), running.clone());
        async move { d.run_pass(&MessageKind::ALL, &running).await }
    });
    // The request is at the gateway: the database goes away before the answer.
    while server.received_requests().await.unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let outage = app.outage().await;
    assert!(pass.await.unwrap().is_err());
    assert_eq!(d.backlog().len(), 1);
    outage.end().await;
    // Another dispatcher, a minute on: the claim's lease is over.
    let later = Arc::new(FixedClock::new(t0 + ChronoDuration::minutes(1)));
    app.dispatcher_with(settings, &later)
        .run_pass(&MessageKind::ALL, &running)
        .await
        .unwrap();
    assert_eq!(anna(&app).await.0, MessageStatus::Unknown);
    clock.set(t0 + ChronoDuration::minutes(1));
    d.run_pass(&MessageKind::ALL, &running).await.unwrap();
    let (status, _, attempts) = anna(&app).await;
    assert_eq!(status, MessageStatus::Sent);
    assert_eq!(attempts.last(), Some(&AttemptOutcome::Sent), "{attempts:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    assert_eq!(wallet(&app).await, (9, 0), "charged once");
}
