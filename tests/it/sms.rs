//! SMS: each gateway's request shape, authentication and error mapping against an HTTP
//! server on loopback (wiremock), and the wallet on both backends: reserve, charge,
//! refund, hold for credit, and never overspend with several dispatchers at once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use herald::channels::SendOutcome;
use herald::channels::sms::{OutgoingSms, SmsChannel};
use herald::clock::FixedClock;
use herald::compose::{self, Content};
use herald::config::{Settings, SmsGateway};
use herald::dispatcher::Outcome;
use herald::domain::directory::{DirectoryRecord, RecipientRecord, Role};
use herald::domain::sms::measure;
use herald::domain::{
    Audience, BatchStatus, Channel, MessageId, MessageKind, MessageStatus, PhoneNumber, Reach,
    Reason,
};
use herald::store::{AttemptOutcome, MessageFilter, NewBatch, NewMessage};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{body_string_contains, header, header_exists, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::conformance;
use crate::helpers::{OWNER, TestApp, audit_line, default_settings, now, warsaw};
use herald::domain::audit::AuditAction;

fn sms_settings(gateway: SmsGateway) -> Settings {
    let mut settings = default_settings();
    settings.sms.gateway = gateway;
    settings.sms.sender = "SzkolaABC".into();
    settings.sms.timeout = Duration::from_millis(800);
    settings
}

fn outgoing<'a>(to: &'a PhoneNumber, text: &'a str) -> OutgoingSms<'a> {
    OutgoingSms {
        id: MessageId(42),
        created_at: Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap(),
        generation: 0,
        to,
        text,
        size: measure(text),
        sender: "SzkolaABC",
    }
}

fn form(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn smsapi_sends_the_documented_form_with_bearer_token_and_idx() {
    let server = MockServer::start().await;
    // The success body of SMSAPI's documentation (smsapi-go testdata).
    Mock::given(method("POST"))
        .and(path("/sms.do"))
        .and(query_param("format", "json"))
        .and(header("authorization", "Bearer t0ken"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "count": 1,
            "list": [{"id": "1460969715572091219", "points": 0.16, "number": "48600100200",
                      "date_sent": 1460969712, "submitted_number": "600100200",
                      "status": "QUEUE", "error": null, "idx": null, "parts": 1}]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let channel = SmsChannel::build(
        &sms_settings(SmsGateway::Smsapi {
            url: format!("{}/sms.do", server.uri()).parse().unwrap(),
            token: SecretString::from("t0ken"),
            report_secret: None,
        })
        .sms,
    )
    .unwrap();
    let to = PhoneNumber::parse("600 100 200", herald::domain::contact::PhoneRegion::PL).unwrap();
    let outcome = channel.send(&outgoing(&to, "Zebranie w czwartek")).await;
    match outcome {
        SendOutcome::Sent { provider_id, .. } => {
            assert_eq!(provider_id.as_deref(), Some("1460969715572091219"))
        }
        other => panic!("{other:?}"),
    }
    let requests = server.received_requests().await.unwrap();
    let fields = form(&requests[0]);
    assert_eq!(field(&fields, "to"), Some("48600100200"), "digits, no plus");
    assert_eq!(field(&fields, "message"), Some("Zebranie w czwartek"));
    assert_eq!(field(&fields, "from"), Some("SzkolaABC"));
    assert_eq!(field(&fields, "encoding"), Some("utf-8"));
    assert_eq!(field(&fields, "idx"), Some("herald-42-1795510800"));
    assert_eq!(field(&fields, "check_idx"), Some("1"));
}

#[tokio::test]
async fn smsapi_errors_with_http_200_are_mapped_and_a_retry_carries_the_same_idx() {
    let server = MockServer::start().await;
    let channel = SmsChannel::build(
        &sms_settings(SmsGateway::Smsapi {
            url: format!("{}/sms.do", server.uri()).parse().unwrap(),
            token: SecretString::from("t0ken"),
            report_secret: None,
        })
        .sms,
    )
    .unwrap();
    let to =
        PhoneNumber::parse("+48 600 100 200", herald::domain::contact::PhoneRegion::PL).unwrap();
    let sms = outgoing(&to, "Test");

    // Error 13 (no correct numbers) comes with HTTP 200: permanent, number failing.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "error": 13, "message": "No correct phone numbers",
            "invalid_numbers": [{"number": "48600100200", "submitted_number": "600100200",
                                 "message": "Invalid phone number"}]
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let outcome = channel.send(&sms).await;
    assert!(
        matches!(outcome, SendOutcome::Permanent { address_failing: true, ref detail, .. } if detail.contains("error 13")),
        "{outcome:?}"
    );
    // A 5xx is passing …
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert!(matches!(
        channel.send(&sms).await,
        SendOutcome::Transient {
            code: Some(503),
            ..
        }
    ));
    // … and the retry, under the same idx, is told the idx was used: it went before.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "error": 53, "message": "IDX already used"
        })))
        .mount(&server)
        .await;
    assert!(matches!(channel.send(&sms).await, SendOutcome::Sent { .. }));
    let idx: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| field(&form(r), "idx").unwrap().to_owned())
        .collect();
    assert_eq!(idx.len(), 3);
    assert!(idx.iter().all(|i| i == &idx[0]), "{idx:?}");
    // An authorisation failure (101) is the configuration's, not the message's.
    let server2 = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "error": 101, "message": "Authorization failed"
        })))
        .mount(&server2)
        .await;
    let channel2 = SmsChannel::build(
        &sms_settings(SmsGateway::Smsapi {
            url: format!("{}/sms.do", server2.uri()).parse().unwrap(),
            token: SecretString::from("bad"),
            report_secret: None,
        })
        .sms,
    )
    .unwrap();
    assert!(matches!(
        channel2.send(&sms).await,
        SendOutcome::Transient { .. }
    ));
}

#[tokio::test]
async fn twilio_posts_the_form_with_basic_auth_and_maps_its_error_codes() {
    let server = MockServer::start().await;
    let settings = sms_settings(SmsGateway::Twilio {
        url: server.uri().parse().unwrap(),
        account_sid: "AC0123456789abcdef".into(),
        auth_token: SecretString::from("secret"),
        messaging_service_sid: None,
    });
    let channel = SmsChannel::build(&settings.sms).unwrap();
    let to = PhoneNumber::parse("600 100 200", herald::domain::contact::PhoneRegion::PL).unwrap();
    let sms = outgoing(&to, "Zebranie");
    // The 201 body of Twilio's documentation (abridged).
    Mock::given(method("POST"))
        .and(path(
            "/2010-04-01/Accounts/AC0123456789abcdef/Messages.json",
        ))
        .and(header_exists("authorization"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({
            "sid": "SM1f0e8ae6ade43cb3c0ce4525424e404f", "status": "queued",
            "num_segments": "1", "error_code": null, "error_message": null
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    match channel.send(&sms).await {
        SendOutcome::Sent { provider_id, .. } => {
            assert_eq!(
                provider_id.as_deref(),
                Some("SM1f0e8ae6ade43cb3c0ce4525424e404f")
            )
        }
        other => panic!("{other:?}"),
    }
    let requests = server.received_requests().await.unwrap();
    let auth = requests[0]
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    use base64::Engine;
    assert_eq!(
        auth,
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("AC0123456789abcdef:secret")
        )
    );
    let fields = form(&requests[0]);
    assert_eq!(field(&fields, "To"), Some("+48600100200"));
    assert_eq!(field(&fields, "From"), Some("SzkolaABC"));
    assert_eq!(field(&fields, "Body"), Some("Zebranie"));

    // 21211 invalid 'To': permanent, and the number is marked failing.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "code": 21211, "message": "The 'To' number +48600100200 is not a valid phone number.",
            "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert!(matches!(
        channel.send(&sms).await,
        SendOutcome::Permanent {
            address_failing: true,
            code: Some(400),
            ..
        }
    ));
    // 20429 too many requests: passing.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(serde_json::json!({
            "code": 20429, "message": "Too Many Requests", "status": 429
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert!(matches!(
        channel.send(&sms).await,
        SendOutcome::Transient { .. }
    ));
    // No idempotency key: a lost answer is unknown, not retried.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    assert!(matches!(
        channel.send(&sms).await,
        SendOutcome::Unknown { .. }
    ));
}

#[tokio::test]
async fn the_webhook_is_signed_carries_an_idempotency_key_and_maps_refusals() {
    let server = MockServer::start().await;
    let settings = sms_settings(SmsGateway::Webhook {
        url: format!("{}/send", server.uri()).parse().unwrap(),
        secret: SecretString::from("s3cret"),
    });
    let channel = SmsChannel::build(&settings.sms).unwrap();
    let to = PhoneNumber::parse("600 100 200", herald::domain::contact::PhoneRegion::PL).unwrap();
    let sms = outgoing(&to, "Zebranie w czwartek");
    Mock::given(method("POST"))
        .and(path("/send"))
        .and(header("idempotency-key", "herald-42-1795510800"))
        .and(body_string_contains("\"to\":\"+48600100200\""))
        .respond_with(ResponseTemplate::new(202).set_body_json(serde_json::json!({"id": "gw-7"})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    match channel.send(&sms).await {
        SendOutcome::Sent { provider_id, .. } => assert_eq!(provider_id.as_deref(), Some("gw-7")),
        other => panic!("{other:?}"),
    }
    let request = &server.received_requests().await.unwrap()[0];
    let signature = request
        .headers
        .get("x-herald-signature")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(
        signature,
        herald::channels::sms::webhook::signature(b"s3cret", &request.body)
    );
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["encoding"], "gsm7");
    assert_eq!(body["segments"], 1);
    assert_eq!(body["sender"], "SzkolaABC");

    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(422)
                .set_body_json(serde_json::json!({"error": "invalid_number"})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert!(matches!(
        channel.send(&sms).await,
        SendOutcome::Permanent {
            address_failing: true,
            code: Some(422),
            ..
        }
    ));
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    assert!(matches!(
        channel.send(&sms).await,
        SendOutcome::Transient { .. }
    ));
}

conformance!(
    an_sms_is_sent_charged_and_its_provider_id_kept,
    a_message_held_for_credit_goes_after_a_top_up,
    a_permanent_failure_is_refunded_and_marks_the_number,
    several_dispatchers_never_spend_more_than_the_wallet_holds,
    an_unknown_sms_keeps_its_credit_until_an_operator_drops_it,
    a_low_balance_is_reported_once_per_crossing,
);

/// Settings with SMS through the SMSAPI gateway at `server`, email as `.eml` files in
/// the test's folder, and the owner operator.
fn smsapi(app: &TestApp, server: &MockServer) -> Settings {
    let mut settings = app.settings.clone();
    settings.sms.gateway = SmsGateway::Smsapi {
        url: format!("{}/sms.do", server.uri()).parse().unwrap(),
        token: SecretString::from("t0ken"),
        report_secret: None,
    };
    settings.email.transport = herald::config::EmailTransport::File {
        dir: app.path("outbox"),
    };
    settings
}

/// An SMS of `text` to `who`, composed and approved by the owner.
pub(crate) async fn sms_batch(app: &TestApp, settings: &Settings, who: &str, text: &str) {
    let content = Content::sms(text, false, 6).unwrap();
    let send = compose::compose_send(
        &*app.store,
        settings,
        &app.owner().await,
        &Audience::Recipient(who.into()),
        Reach::Students,
        &content,
    )
    .await
    .unwrap();
    let id = app.store_send(&send, now()).await;
    app.decide(id, &herald::store::Decision::Approve, OWNER, now())
        .await
        .unwrap();
}

async fn an_sms_is_sent_charged_and_its_provider_id_kept(app: TestApp) {
    app.import_examples(now()).await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "count": 1, "list": [{"id": "smsapi-1", "points": 0.16, "status": "QUEUE", "parts": 2}]
        })))
        .mount(&server)
        .await;
    let mut settings = smsapi(&app, &server);
    settings.sms.price_per_segment = 3;
    app.store
        .top_up(
            100,
            "invoice 1",
            &audit_line(OWNER, AuditAction::TopUp, now()),
        )
        .await
        .unwrap();
    // 200 GSM-7 characters: two segments, six points.
    sms_batch(&app, &settings, "gd-2001", &"a".repeat(200)).await;
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings, &clock);
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Sent));
    let m = app.only_message_to("gd-2001").await;
    assert_eq!((m.channel, m.status), (Channel::Sms, MessageStatus::Sent));
    let attempts = app.store.attempts(m.id).await.unwrap();
    assert_eq!(attempts[0].provider_id.as_deref(), Some("smsapi-1"));
    let wallet = app.store.wallet().await.unwrap();
    assert_eq!((wallet.balance, wallet.reserved), (94, 0));
    let totals = app.store.ledger_totals().await.unwrap();
    assert_eq!(
        (
            totals.top_ups,
            totals.reserves,
            totals.charges,
            totals.refunds
        ),
        (100, 6, 6, 0)
    );
    let ledger = app.store.ledger(10).await.unwrap();
    let entries: Vec<&str> = ledger.iter().map(|l| l.entry.as_str()).collect();
    assert_eq!(entries, ["charge", "reserve", "top_up"]);
}

async fn a_message_held_for_credit_goes_after_a_top_up(app: TestApp) {
    app.import_examples(now()).await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "count": 1, "list": [{"id": "x", "status": "QUEUE", "parts": 1}]
        })))
        .mount(&server)
        .await;
    let settings = smsapi(&app, &server);
    sms_batch(&app, &settings, "gd-2001", "Zebranie w czwartek o 18:00").await;
    // An email to the same person is not held by an empty wallet.
    app.approved_batch(
        &settings,
        Audience::Recipient("gd-2001".into()),
        Reach::Students,
        now(),
    )
    .await;
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings, &clock);
    let mut outcomes = d
        .run_pass(&MessageKind::ALL, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!((outcomes.sent, outcomes.held), (1, 1));
    let sms = app
        .store
        .messages(&MessageFilter {
            channel: Some(Channel::Sms),
            ..Default::default()
        })
        .await
        .unwrap()
        .remove(0);
    assert_eq!(sms.reason, Some(Reason::InsufficientSmsCredit));
    assert!(server.received_requests().await.unwrap().is_empty());
    // The next pass, without credit, sends nothing; after a top-up it goes.
    clock.set(warsaw("2026-11-24 10:05"));
    outcomes = d
        .run_pass(&MessageKind::ALL, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcomes.sent, 0);
    app.store
        .top_up(
            5,
            "invoice 2",
            &audit_line(OWNER, AuditAction::TopUp, warsaw("2026-11-24 10:06")),
        )
        .await
        .unwrap();
    clock.set(warsaw("2026-11-24 10:10"));
    outcomes = d
        .run_pass(&MessageKind::ALL, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcomes.sent, 1);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    assert_eq!(app.store.wallet().await.unwrap().balance, 4);
}

async fn a_permanent_failure_is_refunded_and_marks_the_number(app: TestApp) {
    app.import_examples(now()).await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "error": 13, "message": "No correct phone numbers"
        })))
        .mount(&server)
        .await;
    let settings = smsapi(&app, &server);
    app.store
        .top_up(10, "invoice", &audit_line(OWNER, AuditAction::TopUp, now()))
        .await
        .unwrap();
    sms_batch(&app, &settings, "gd-2001", "Zebranie").await;
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings.clone(), &clock);
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Failed));
    let m = app.only_message_to("gd-2001").await;
    assert_eq!(
        (m.status, m.reason),
        (MessageStatus::Failed, Some(Reason::RejectedByServer))
    );
    assert_eq!(
        app.store.attempts(m.id).await.unwrap()[0].outcome,
        AttemptOutcome::Permanent
    );
    let wallet = app.store.wallet().await.unwrap();
    assert_eq!((wallet.balance, wallet.reserved), (10, 0), "refunded");
    let totals = app.store.ledger_totals().await.unwrap();
    assert_eq!((totals.reserves, totals.refunds, totals.charges), (1, 1, 0));
    // The number is marked failing: the next SMS to it is blocked.
    let anna = app.store.recipient("gd-2001").await.unwrap().unwrap();
    assert!(
        anna.recipient
            .phone_failure
            .as_deref()
            .unwrap()
            .contains("error 13")
    );
    sms_batch(&app, &settings, "gd-2001", "Drugi").await;
    let newest = &app.messages_to("gd-2001").await[0];
    assert_eq!(
        (newest.status, newest.reason),
        (MessageStatus::Blocked, Some(Reason::InvalidPhone))
    );
}

async fn several_dispatchers_never_spend_more_than_the_wallet_holds(app: TestApp) {
    const PEOPLE: usize = 2000;
    let records: Vec<DirectoryRecord> = (0..PEOPLE)
        .map(|i| {
            DirectoryRecord::Recipient(RecipientRecord {
                external_id: format!("t-{i}"),
                role: Role::Teacher,
                name: format!("Teacher {i}"),
                locale: None,
                email: None,
                phone: Some(format!("+48 600 {:03} {:03}", i / 1000, i % 1000)),
                phone_e164: None,
                sms_enabled: true,
                birth_date: None,
            })
        })
        .collect();
    app.store
        .apply(&records, &audit_line(OWNER, AuditAction::Import, now()))
        .await
        .unwrap();
    let people = app.store.recipients(&Default::default()).await.unwrap();
    // Mixed lengths: 1, 2 and 3 segments, GSM-7 and UCS-2.
    let texts = ["Krótko.".to_owned(), "b".repeat(200), "ż".repeat(150)];
    let messages: Vec<NewMessage> = people
        .iter()
        .map(|f| {
            let n: usize = f
                .recipient
                .external_id
                .trim_start_matches("t-")
                .parse()
                .unwrap();
            let text = &texts[n % 3];
            NewMessage {
                kind: MessageKind::System,
                channel: Channel::Sms,
                recipient_id: Some(f.recipient.id),
                recipient_external_id: f.recipient.external_id.clone(),
                address: f.recipient.phone.clone(),
                subject: None,
                body: text.clone().into(),
                status: MessageStatus::Queued,
                reason: None,
                html: None,
                occurrence_key: None,
                relevance: None,
                expires_at: None,
                segments: Some(measure(text).segments as i64),
            }
        })
        .collect();
    let batch = NewBatch {
        kind: MessageKind::System,
        channel: Channel::Sms,
        channels: herald::domain::ChannelChoice::Sms,
        status: BatchStatus::Approved,
        audience: "all teachers".into(),
        subject: None,
        body: "mixed".into(),
        html: None,
        created_by: "test".into(),
    };
    app.store
        .create_batch(
            &batch,
            &messages,
            &audit_line(OWNER, AuditAction::Send, now()),
        )
        .await
        .unwrap();
    app.store
        .top_up(
            1000,
            "budget",
            &audit_line(OWNER, AuditAction::TopUp, now()),
        )
        .await
        .unwrap();

    let mut settings = app.settings.clone();
    settings.sms.gateway = SmsGateway::File {
        path: app.path("sms.jsonl"),
    };
    settings.sms.segments_per_second = 100_000;
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let dispatchers: Vec<_> = (0..3)
        .map(|_| app.dispatcher_with(settings.clone(), &clock))
        .collect();
    let passes: Vec<_> = dispatchers
        .iter()
        .map(|d| {
            let d = Arc::clone(d);
            tokio::spawn(async move {
                d.run_pass(&MessageKind::ALL, &CancellationToken::new())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut sent = 0;
    for p in passes {
        sent += p.await.unwrap().sent;
    }
    let wallet = app.store.wallet().await.unwrap();
    let totals = app.store.ledger_totals().await.unwrap();
    assert!(totals.charges <= 1000, "spent {}", totals.charges);
    assert_eq!(
        totals.top_ups - totals.charges - wallet.reserved,
        wallet.balance
    );
    assert_eq!(wallet.reserved, 0, "nothing left reserved after the passes");
    let lines = std::fs::read_to_string(app.path("sms.jsonl"))
        .unwrap()
        .lines()
        .count() as u64;
    assert_eq!(lines, sent);
    // What was charged is exactly the segments of what was sent.
    let sent_segments: i64 = app
        .store
        .messages(&MessageFilter {
            status: Some(MessageStatus::Sent),
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|m| segments_of(&texts, &m.recipient))
        .sum();
    assert_eq!(totals.charges, sent_segments);
    let held = app.count(MessageStatus::Queued).await;
    assert_eq!(sent as i64 + held, PEOPLE as i64);
    assert!(held > 0, "the budget did not cover everyone");
    assert!(
        wallet.balance < 3,
        "what is left cannot pay for the next message: {}",
        wallet.balance
    );
}

/// The segments of the text the test gave `recipient` (`t-N` got `texts[N % 3]`).
fn segments_of(texts: &[String; 3], recipient: &str) -> i64 {
    let n: usize = recipient.trim_start_matches("t-").parse().unwrap();
    measure(&texts[n % 3]).segments as i64
}

async fn an_unknown_sms_keeps_its_credit_until_an_operator_drops_it(app: TestApp) {
    app.import_examples(now()).await;
    let server = MockServer::start().await;
    // Twilio answers too late: without an idempotency key the outcome is unknown.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let mut settings = smsapi(&app, &server);
    settings.sms.gateway = SmsGateway::Twilio {
        url: server.uri().parse().unwrap(),
        account_sid: "AC1".into(),
        auth_token: SecretString::from("t"),
        messaging_service_sid: None,
    };
    settings.sms.timeout = Duration::from_millis(500);
    app.store
        .top_up(10, "invoice", &audit_line(OWNER, AuditAction::TopUp, now()))
        .await
        .unwrap();
    sms_batch(&app, &settings, "gd-2001", "Zebranie").await;
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings, &clock);
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Unknown));
    let m = app.only_message_to("gd-2001").await;
    assert_eq!(m.status, MessageStatus::Unknown);
    let wallet = app.store.wallet().await.unwrap();
    assert_eq!(
        (wallet.balance, wallet.reserved),
        (9, 1),
        "held, not charged, not refunded"
    );
    // Not retried by itself: it might have gone, and would be paid for twice.
    assert_eq!(d.try_dispatch_next().await.unwrap(), None);
    let dropped = app
        .store
        .act_on_message(
            m.id,
            herald::store::MessageAction::Cancel,
            &audit_line(OWNER, AuditAction::Resend, now()),
        )
        .await
        .unwrap();
    assert_eq!(
        dropped,
        herald::store::ActionResult::Done(MessageStatus::Unknown)
    );
    let wallet = app.store.wallet().await.unwrap();
    assert_eq!(
        (wallet.balance, wallet.reserved),
        (10, 0),
        "refunded when dropped"
    );
}

async fn a_low_balance_is_reported_once_per_crossing(app: TestApp) {
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let mut settings = app.settings.clone();
    settings.sms.low_balance_threshold = 100;
    let d = app.dispatcher_with(settings, &clock);
    app.store
        .top_up(5, "a little", &audit_line(OWNER, AuditAction::TopUp, now()))
        .await
        .unwrap();
    d.check_wallet().await.unwrap();
    let first = app.store.wallet().await.unwrap().low_since;
    assert_eq!(first, Some(warsaw("2026-11-24 10:00")));
    // Still low an hour later: the same crossing, not a new one.
    clock.set(warsaw("2026-11-24 11:00"));
    d.check_wallet().await.unwrap();
    assert_eq!(app.store.wallet().await.unwrap().low_since, first);
    assert!(
        !app.store
            .mark_low(true, warsaw("2026-11-24 11:00"))
            .await
            .unwrap()
    );
    // Topped up above the threshold: no longer low; a later fall is a new crossing.
    app.store
        .top_up(
            500,
            "invoice",
            &audit_line(OWNER, AuditAction::TopUp, now()),
        )
        .await
        .unwrap();
    d.check_wallet().await.unwrap();
    assert_eq!(app.store.wallet().await.unwrap().low_since, None);
}

#[tokio::test]
async fn twilio_and_webhook_probes_check_without_sending() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/2010-04-01/Accounts/AC0123456789abcdef.json"))
        .and(header(
            "authorization",
            "Basic QUMwMTIzNDU2Nzg5YWJjZGVmOnNlY3JldA==",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "sid": "AC0123456789abcdef", "status": "active"
        })))
        .mount(&server)
        .await;
    let twilio = |token: &str| {
        sms_settings(SmsGateway::Twilio {
            url: server.uri().parse().unwrap(),
            account_sid: "AC0123456789abcdef".into(),
            auth_token: SecretString::from(token.to_owned()),
            messaging_service_sid: None,
        })
    };
    let ok = SmsChannel::build(&twilio("secret").sms)
        .unwrap()
        .probe()
        .await;
    assert!(
        matches!(&ok, herald::channels::Probe::Ok(t) if t.contains("account active")),
        "{ok:?}"
    );
    let refused = SmsChannel::build(&twilio("wrong").sms)
        .unwrap()
        .probe()
        .await;
    assert!(
        matches!(&refused, herald::channels::Probe::Failed(t) if t.contains("refused the credentials")),
        "{refused:?}"
    );
    let webhook = sms_settings(SmsGateway::Webhook {
        url: format!("{}/hook", server.uri()).parse().unwrap(),
        secret: SecretString::from("s"),
    });
    let unchecked = SmsChannel::build(&webhook.sms).unwrap().probe().await;
    assert!(matches!(unchecked, herald::channels::Probe::Unchecked(_)));
    // Nothing was posted anywhere.
    let posted = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .count();
    assert_eq!(posted, 0);
}

/// A gateway that answers with a redirect: not followed (the credentials and the text
/// stay where they were sent), and the message is retried, not counted as sent.
#[tokio::test]
async fn a_redirect_from_the_gateway_is_not_followed() {
    let server = MockServer::start().await;
    let elsewhere = format!("{}/elsewhere", server.uri());
    Mock::given(method("POST"))
        .and(path("/2010-04-01/Accounts/AC1/Messages.json"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", elsewhere.as_str()))
        .mount(&server)
        .await;
    Mock::given(path("/elsewhere"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"sid": "SM9"})))
        .expect(0)
        .mount(&server)
        .await;
    let channel = SmsChannel::build(
        &sms_settings(SmsGateway::Twilio {
            url: server.uri().parse().unwrap(),
            account_sid: "AC1".into(),
            auth_token: SecretString::from("secret"),
            messaging_service_sid: None,
        })
        .sms,
    )
    .unwrap();
    let to = PhoneNumber::parse("600 100 200", herald::domain::contact::PhoneRegion::PL).unwrap();
    let outcome = channel.send(&outgoing(&to, "Zebranie")).await;
    match outcome {
        SendOutcome::Transient { code, detail } => {
            assert_eq!(code, Some(307));
            assert!(detail.contains("not followed"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    // `expect(0)` on /elsewhere is checked when the server drops.
}
