//! Delivery reports through the real server, on both backends: SMS sent by the real
//! dispatcher to a gateway on loopback, then reported back the gateway's way
//! (SMSAPI's GET lists, Twilio's signed form, the webhook's signed JSON), with chaos:
//! every report several times, DELIVERED before SENT, failures after delivery, ids
//! nobody knows, wrong secrets and signatures. No state moves backwards and forged
//! requests change nothing.

use std::sync::Arc;

use herald::app::Actor;
use herald::clock::FixedClock;
use herald::config::{Settings, SmsGateway};
use herald::domain::report::{MessageKey, ReportEffect};
use herald::domain::{Channel, MessageId, MessageStatus, Reason};
use herald::store::{Attempt, AttemptOutcome, Finish, MessageFilter};
use reqwest::StatusCode;
use secrecy::SecretString;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::conformance;
use crate::helpers::{OWNER, TestApp, audit_line, now};
use crate::http::Server;
use herald::domain::audit::AuditAction;

conformance!(
    smsapi_reports_move_messages_forward_only_and_forged_ones_change_nothing,
    twilio_reports_are_checked_against_the_public_url_signature,
    webhook_reports_are_signed_like_herald_s_requests,
    a_report_that_beats_the_gateway_s_answer_waits_for_it,
);

const SECRET: &str = "r3port-secret-0123456789abcdef";
const PUBLIC: &str = "https://herald.school.example/messages";
const METRICS_TOKEN: &str = "metrics-token-for-the-hooks";

/// An SMSAPI stand-in that accepts every SMS under the id `mid-<idx>`.
struct AcceptEach;

impl Respond for AcceptEach {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let idx = form(request)
            .into_iter()
            .find(|(k, _)| k == "idx")
            .map(|(_, v)| v)
            .unwrap_or_default();
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "count": 1, "list": [{"id": format!("mid-{idx}"), "points": 0.16, "status": "QUEUE",
                                  "parts": 1}]
        }))
    }
}

fn form(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Settings with `gateway`, Herald's public URL, and the gateway's reports.
fn with_gateway(app: &TestApp, gateway: SmsGateway) -> Settings {
    let mut settings = app.settings.clone();
    settings.sms.gateway = gateway;
    settings.sms.public_url = Some(PUBLIC.parse().unwrap());
    settings.http.public_url = settings.sms.public_url.clone();
    settings.http.metrics_token = Some(SecretString::from(METRICS_TOKEN));
    settings
}

/// `n` system SMS to one parent, sent by the real dispatcher through `settings`'
/// gateway: each message's id and Herald's key.
async fn sent_sms(app: &TestApp, settings: &Settings, n: usize) -> Vec<(MessageId, String)> {
    app.import_examples(now()).await;
    app.owner().await;
    app.store
        .top_up(
            100,
            "invoice",
            &audit_line(OWNER, AuditAction::TopUp, now()),
        )
        .await
        .unwrap();
    let herald = app.app_at(now());
    for i in 0..n {
        herald
            .notify_text(
                &Actor::System("test"),
                "gd-2001",
                Channel::Sms,
                None,
                &format!("Wiadomość {i}"),
                false,
            )
            .await
            .unwrap();
    }
    let d = app.dispatcher_with(settings.clone(), &Arc::new(FixedClock::new(now())));
    while d.try_dispatch_next().await.unwrap().is_some() {}
    let mut sent: Vec<_> = app
        .store
        .messages(&MessageFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|m| {
            assert_eq!(m.status, MessageStatus::Sent, "{m:?}");
            (m.id, MessageKey::of(m.id, m.created_at).to_string())
        })
        .collect();
    sent.sort();
    assert_eq!(sent.len(), n);
    sent
}

/// A message's status and reason.
async fn state(app: &TestApp, id: MessageId) -> (MessageStatus, Option<Reason>) {
    let m = app
        .store
        .messages(&MessageFilter::default())
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.id == id)
        .unwrap();
    (m.status, m.reason)
}

/// Every message's status, in id order.
async fn statuses(app: &TestApp, ids: &[(MessageId, String)]) -> Vec<MessageStatus> {
    let mut out = Vec::new();
    for (id, _) in ids {
        out.push(state(app, *id).await.0);
    }
    out
}

async fn smsapi_reports_move_messages_forward_only_and_forged_ones_change_nothing(app: TestApp) {
    let gateway = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(AcceptEach)
        .mount(&gateway)
        .await;
    let settings = with_gateway(
        &app,
        SmsGateway::Smsapi {
            url: format!("{}/sms.do", gateway.uri()).parse().unwrap(),
            token: SecretString::from("t0ken"),
            report_secret: Some(SecretString::from(SECRET)),
        },
    );
    let sent = sent_sms(&app, &settings, 4).await;
    // Every SMS asked SMSAPI to report to Herald's public address.
    for request in gateway.received_requests().await.unwrap() {
        let notify = form(&request)
            .into_iter()
            .find(|(k, _)| k == "notify_url")
            .map(|(_, v)| v);
        assert_eq!(
            notify.as_deref(),
            Some(format!("{PUBLIC}/hooks/smsapi/{SECRET}").as_str())
        );
    }
    let server = Server::start_with(Arc::clone(&app.store), settings.clone()).await;
    let hook = format!("{}/hooks/smsapi/{SECRET}", server.base);
    let get = |query: String| {
        let client = server.client.clone();
        let url = format!("{hook}?{query}");
        async move {
            let res = client.get(url).send().await.unwrap();
            (res.status(), res.text().await.unwrap())
        }
    };
    let [(a, ka), (b, kb), (c, kc), (d, _)] = [&sent[0], &sent[1], &sent[2], &sent[3]];

    // A: DELIVERED three times; B: DELIVERED before SENT, then UNDELIVERED late;
    // C: UNDELIVERED, then DELIVERED; D by SMSAPI's id alone, in one batched request.
    for _ in 0..3 {
        let answer = get(format!(
            "MsgId=mid-{ka}&status=404&idx={ka}&donedate=1795510900"
        ))
        .await;
        assert_eq!(answer, (StatusCode::OK, "OK".to_owned()));
    }
    for code in ["404", "403", "405"] {
        assert_eq!(
            get(format!("MsgId=mid-{kb}&status={code}&idx={kb}"))
                .await
                .0,
            StatusCode::OK
        );
    }
    let (_, kd) = &sent[3];
    let batched = format!("MsgId=mid-{kc},mid-{kd},mid-{kc}&status=405,404,404&idx={kc},,");
    assert_eq!(get(batched).await.0, StatusCode::OK);
    assert_eq!(
        statuses(&app, &sent).await,
        [MessageStatus::Delivered; 2]
            .into_iter()
            .chain([MessageStatus::Failed, MessageStatus::Delivered])
            .collect::<Vec<_>>()
    );
    assert_eq!(state(&app, *c).await.1, Some(Reason::Undelivered));
    assert_eq!(state(&app, *a).await.1, None);
    // The diagnosis shows the reports and says what to do.
    let token = app
        .app_at(now())
        .create_token(&Actor::operator(OWNER), "reader", OWNER)
        .await
        .unwrap()
        .token;
    let diagnosis: serde_json::Value = server
        .client
        .get(format!("{}/api/v1/messages/{}/diagnosis", server.base, c.0))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let m = &diagnosis["message"];
    assert_eq!(m["message"]["status"], "failed");
    assert_eq!(m["delivery_reports"][0]["status"], "405 UNDELIVERED");
    assert_eq!(m["delivery_reports"][0]["effect"], "applied");
    assert_eq!(m["delivery_reports"][1]["effect"], "no_change");
    let advice = m["advice"].to_string();
    assert!(
        advice.contains("could not deliver it (405 UNDELIVERED)"),
        "{advice}"
    );

    // Each message got exactly one delivery event, whatever came after.
    for id in [a, b, c, d] {
        let events = app.store.events(*id).await.unwrap();
        let reported: Vec<_> = events
            .iter()
            .filter(|e| {
                e.note
                    .as_deref()
                    .is_some_and(|n| n.starts_with("delivery report"))
            })
            .collect();
        assert_eq!(reported.len(), 1, "{events:?}");
    }
    let reports = app.store.reports(*a).await.unwrap();
    let effects: Vec<_> = reports.iter().map(|r| r.effect).collect();
    assert_eq!(
        effects,
        [
            ReportEffect::Applied,
            ReportEffect::NoChange,
            ReportEffect::NoChange
        ]
    );
    assert_eq!(reports[0].status, "404 DELIVERED");
    assert_eq!(
        reports[0].reported_at.map(|t| t.timestamp()),
        Some(1_795_510_900)
    );

    // The metrics count what the reports did (the counters are the process's, shared
    // by the tests running beside this one, so at least what this test did).
    let page = server
        .client
        .get(format!("{}/metrics", server.base))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |labels: &str| -> f64 {
        page.lines()
            .find(|l| l.starts_with(&format!("herald_delivery_reports_total{{{labels}}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(
        count(r#"gateway="smsapi",state="delivered",effect="applied""#) >= 2.0,
        "{page}"
    );
    assert!(
        count(r#"gateway="smsapi",state="delivered",effect="no_change""#) >= 3.0,
        "{page}"
    );

    // Unknown ids are acknowledged (SMSAPI would retry otherwise) and kept.
    let unknown = get("MsgId=nobody-knows&status=404&idx=herald-999999-1".to_owned()).await;
    assert_eq!(unknown, (StatusCode::OK, "OK".to_owned()));
    // POST works as well as GET.
    let posted = server
        .client
        .post(&hook)
        .form(&[("MsgId", "also-unknown"), ("status", "405")])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::OK);

    // Forged and malformed: refused, nothing changes.
    let before = statuses(&app, &sent).await;
    let forged = server
        .client
        .get(format!(
            "{}/hooks/smsapi/not-the-secret?MsgId=mid-{kc}&status=404&idx={kc}",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = forged.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, text) = get("status=404".to_owned()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("MsgId"), "{text}");
    assert_eq!(statuses(&app, &sent).await, before);
    // C failed on the phone's side: sent again, it is a new send under a new key, so
    // SMSAPI's idx check takes it, and a late report about the first send is stale.
    app.app_at(now())
        .act_on_message(
            &Actor::operator(OWNER),
            *c,
            herald::store::MessageAction::Resend,
        )
        .await
        .unwrap();
    let late = get(format!("MsgId=mid-{kc}&status=404&idx={kc}")).await;
    assert_eq!(late.0, StatusCode::OK);
    assert_eq!(
        state(&app, *c).await.0,
        MessageStatus::Queued,
        "not pending, not applied"
    );
    let d2 = app.dispatcher_with(settings.clone(), &Arc::new(FixedClock::new(now())));
    while d2.try_dispatch_next().await.unwrap().is_some() {}
    let resent = gateway.received_requests().await.unwrap();
    let idx = form(resent.last().unwrap())
        .into_iter()
        .find(|(k, _)| k == "idx")
        .map(|(_, v)| v)
        .unwrap();
    assert_eq!(idx, format!("{kc}-1"));
    assert_eq!(state(&app, *c).await.0, MessageStatus::Sent);
    let fresh = get(format!("MsgId=mid-{idx}&status=404&idx={idx}")).await;
    assert_eq!(fresh.0, StatusCode::OK);
    assert_eq!(state(&app, *c).await, (MessageStatus::Delivered, None));

    // Twilio's and the webhook's hooks are closed while SMSAPI is the gateway.
    for path in ["/hooks/twilio", "/hooks/webhook"] {
        let res = server
            .client
            .post(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

async fn twilio_reports_are_checked_against_the_public_url_signature(app: TestApp) {
    let gateway = MockServer::start().await;
    let sids = std::sync::atomic::AtomicUsize::new(0);
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(move |_: &Request| {
            let n = sids.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            ResponseTemplate::new(201).set_body_json(serde_json::json!({
                "sid": format!("SM{n:032}"), "status": "queued", "num_segments": "1"
            }))
        })
        .mount(&gateway)
        .await;
    let settings = with_gateway(
        &app,
        SmsGateway::Twilio {
            url: gateway.uri().parse().unwrap(),
            account_sid: "AC0123".into(),
            auth_token: SecretString::from("tw-auth-token"),
            messaging_service_sid: None,
        },
    );
    let sent = sent_sms(&app, &settings, 2).await;
    // Each SMS asked for reports at the public URL, with Herald's key in it.
    let mut callbacks: Vec<String> = Vec::new();
    for request in gateway.received_requests().await.unwrap() {
        let callback = form(&request)
            .into_iter()
            .find(|(k, _)| k == "StatusCallback")
            .map(|(_, v)| v)
            .expect("a StatusCallback");
        callbacks.push(callback);
    }
    callbacks.sort();
    let expected: Vec<String> = sent
        .iter()
        .map(|(_, key)| format!("{PUBLIC}/hooks/twilio?ref={key}"))
        .collect();
    assert_eq!(callbacks, expected);

    let server = Server::start_with(Arc::clone(&app.store), settings).await;
    // What Twilio would send: signed over the URL it was given (the public one),
    // whatever address the request reaches Herald at.
    let post = |key: &str, sid: &str, status: &str, token: &str| {
        let fields = vec![
            ("AccountSid".to_owned(), "AC0123".to_owned()),
            ("ApiVersion".to_owned(), "2010-04-01".to_owned()),
            ("ErrorCode".to_owned(), "30003".to_owned()),
            ("MessageSid".to_owned(), sid.to_owned()),
            ("MessageStatus".to_owned(), status.to_owned()),
        ];
        let signed_url = format!("{PUBLIC}/hooks/twilio?ref={key}");
        let signature =
            herald::channels::sms::twilio::signature(token.as_bytes(), &signed_url, &fields);
        let req = server
            .client
            .post(format!("{}/hooks/twilio?ref={key}", server.base))
            .header("X-Twilio-Signature", signature)
            .form(&fields);
        async move { req.send().await.unwrap().status() }
    };
    let (a, ka) = &sent[0];
    let (b, kb) = &sent[1];
    let sid_a = format!("SM{:032}", 0);
    // Out of order and repeated: delivered, then sent, then undelivered.
    for status in ["delivered", "sent", "undelivered", "delivered"] {
        assert_eq!(
            post(ka, &sid_a, status, "tw-auth-token").await,
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(state(&app, *a).await, (MessageStatus::Delivered, None));
    // A forged signature, a missing one: refused, B stays sent.
    let sid_b = format!("SM{:032}", 1);
    assert_eq!(
        post(kb, &sid_b, "undelivered", "not-the-token").await,
        StatusCode::FORBIDDEN
    );
    let unsigned = server
        .client
        .post(format!("{}/hooks/twilio?ref={kb}", server.base))
        .form(&[
            ("MessageSid", sid_b.as_str()),
            ("MessageStatus", "undelivered"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(state(&app, *b).await.0, MessageStatus::Sent);
    // The real one fails it with its error code kept.
    assert_eq!(
        post(kb, &sid_b, "undelivered", "tw-auth-token").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        state(&app, *b).await,
        (MessageStatus::Failed, Some(Reason::Undelivered))
    );
    let reports = app.store.reports(*b).await.unwrap();
    assert_eq!(reports.last().unwrap().status, "undelivered (error 30003)");
    // An unknown sid with no key: acknowledged, kept, nothing else.
    assert_eq!(
        post("", "SMunknown", "delivered", "tw-auth-token").await,
        StatusCode::NO_CONTENT
    );
}

async fn webhook_reports_are_signed_like_herald_s_requests(app: TestApp) {
    let gateway = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ResponseTemplate::new(202).set_body_json(serde_json::json!({"id": "own-1"})))
        .mount(&gateway)
        .await;
    let secret = "webhook-shared-secret";
    let settings = with_gateway(
        &app,
        SmsGateway::Webhook {
            url: format!("{}/send", gateway.uri()).parse().unwrap(),
            secret: SecretString::from(secret),
        },
    );
    let sent = sent_sms(&app, &settings, 1).await;
    let request = &gateway.received_requests().await.unwrap()[0];
    let outgoing: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(outgoing["report_url"], format!("{PUBLIC}/hooks/webhook"));

    let server = Server::start_with(Arc::clone(&app.store), settings).await;
    let (id, key) = &sent[0];
    let post = |body: serde_json::Value, key: &str| {
        let body = body.to_string();
        let signature = herald::channels::sms::webhook::signature(key.as_bytes(), body.as_bytes());
        let req = server
            .client
            .post(format!("{}/hooks/webhook", server.base))
            .header("content-type", "application/json")
            .header("X-Herald-Signature", signature)
            .body(body);
        async move {
            let res = req.send().await.unwrap();
            (res.status(), res.json::<serde_json::Value>().await.unwrap())
        }
    };
    let forged = post(serde_json::json!({"id": key, "status": "failed"}), "guess").await;
    assert_eq!(forged.0, StatusCode::FORBIDDEN);
    assert_eq!(state(&app, *id).await.0, MessageStatus::Sent);
    let bad = post(serde_json::json!({"id": key, "status": "lost"}), secret).await;
    assert_eq!(bad.0, StatusCode::BAD_REQUEST);
    assert_eq!(bad.1["error"]["field"], "status");
    let first = post(
        serde_json::json!({"id": key, "status": "delivered", "at": "2026-11-24T09:01:00Z"}),
        secret,
    )
    .await;
    assert_eq!(
        first,
        (StatusCode::OK, serde_json::json!({"effect": "applied"}))
    );
    let again = post(serde_json::json!({"id": key, "status": "failed"}), secret).await;
    assert_eq!(
        again,
        (StatusCode::OK, serde_json::json!({"effect": "no_change"}))
    );
    assert_eq!(state(&app, *id).await, (MessageStatus::Delivered, None));
    let unknown = post(
        serde_json::json!({"id": "herald-424242-1", "status": "delivered"}),
        secret,
    )
    .await;
    assert_eq!(
        unknown,
        (
            StatusCode::OK,
            serde_json::json!({"effect": "unknown_message"})
        )
    );
}

async fn a_report_that_beats_the_gateway_s_answer_waits_for_it(app: TestApp) {
    app.import_examples(now()).await;
    let herald = app.app_at(now());
    let (id, _) = herald
        .notify_text(
            &Actor::System("test"),
            "gd-2001",
            Channel::Sms,
            None,
            "Hej",
            false,
        )
        .await
        .unwrap();
    let claimed = app
        .store
        .claim_due(
            now(),
            &[herald::domain::MessageKind::System],
            "w1",
            now() + chrono::Duration::minutes(5),
            10,
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let m = app
        .store
        .messages(&MessageFilter::default())
        .await
        .unwrap()
        .remove(0);
    assert_eq!(m.status, MessageStatus::Sending);
    // The gateway's report arrives while Herald still waits for its answer.
    let report = herald::domain::report::DeliveryReport {
        gateway: "smsapi",
        key: Some(MessageKey::of(id, m.created_at)),
        provider_id: Some("mid-1".into()),
        state: herald::domain::report::ReportState::Delivered,
        status: "404 DELIVERED".into(),
        at: None,
    };
    let effects = herald
        .delivery_reports(&[report.clone(), report])
        .await
        .unwrap();
    assert_eq!(effects, [ReportEffect::Pending, ReportEffect::Pending]);
    assert_eq!(state(&app, id).await.0, MessageStatus::Sending);
    let attempt = Attempt {
        started_at: now(),
        outcome: AttemptOutcome::Sent,
        code: Some(200),
        detail: "accepted".into(),
        provider_id: Some("mid-1".into()),
    };
    assert!(
        app.store
            .finish(id, "w1", claimed[0].claim, &Finish::Sent(attempt), now())
            .await
            .unwrap()
    );
    assert_eq!(state(&app, id).await, (MessageStatus::Delivered, None));
    let effects: Vec<_> = app
        .store
        .reports(id)
        .await
        .unwrap()
        .iter()
        .map(|r| r.effect)
        .collect();
    assert_eq!(effects, [ReportEffect::Applied, ReportEffect::NoChange]);
    // A key from another database (same id, another creation time) names nothing.
    let stranger = herald::domain::report::DeliveryReport {
        gateway: "webhook",
        key: Some(MessageKey {
            id,
            created: m.created_at.timestamp() + 1,
            generation: 0,
        }),
        provider_id: None,
        state: herald::domain::report::ReportState::Undelivered,
        status: "failed".into(),
        at: None,
    };
    let effects = herald.delivery_reports(&[stranger]).await.unwrap();
    assert_eq!(effects, [ReportEffect::UnknownMessage]);
    assert_eq!(state(&app, id).await.0, MessageStatus::Delivered);
}
