//! Diagnosis on both backends: every check for a person, found by any id, address or
//! number; their messages with the servers' answers and advice; a failure streak; a
//! message's timeline; and `herald doctor` against real servers on loopback.

use std::sync::Arc;

use herald::clock::FixedClock;
use herald::diagnose::{self, Lookup, RecipientDiagnosis, Verdict};
use herald::dispatcher::Outcome;
use herald::doctor;
use herald::domain::{Audience, Channel, MessageId, Reach, Reason};
use herald::store::{Decision, Hold};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::conformance;
use crate::helpers::{OWNER, TestApp, audit_line, now, warsaw};
use crate::smtp::{Fault, SmtpServer};
use herald::domain::audit::AuditAction;

conformance!(
    a_person_is_found_by_any_id_address_or_number_and_ambiguity_is_listed,
    every_check_of_each_channel_is_shown_with_where_consent_comes_from,
    messages_show_attempts_the_servers_answers_the_message_id_and_advice,
    a_failing_smtp_server_shows_as_a_streak_with_what_waits,
    a_message_timeline_names_who_did_what,
    doctor_checks_the_servers_without_sending_anything,
);

async fn one(app: &TestApp, query: &str) -> RecipientDiagnosis {
    match diagnose::diagnose_recipient(&*app.store, &app.settings, query, now())
        .await
        .unwrap()
    {
        Lookup::One(d) => *d,
        other => panic!("{query}: {other:?}"),
    }
}

async fn a_person_is_found_by_any_id_address_or_number_and_ambiguity_is_listed(app: TestApp) {
    app.import_examples(now()).await;
    for query in [
        "gd-2001",
        "ANNA.NOWAK@example.pl",
        "600 100 200",
        "+48600100200",
    ] {
        assert_eq!(
            one(&app, query).await.recipient.external_id,
            "gd-2001",
            "{query}"
        );
    }
    let id = one(&app, "gd-2001").await.recipient.id.0.to_string();
    assert_eq!(one(&app, &id).await.recipient.external_id, "gd-2001");
    // A second person with the same address: both are listed.
    let twin = app.write(
        "recipients.csv",
        "external_id,role,name,email\nst-4002,staff,Anna Nowak (office),anna.nowak@example.pl\n",
    );
    app.import(&twin, now()).await;
    match diagnose::diagnose_recipient(&*app.store, &app.settings, "anna.nowak@example.pl", now())
        .await
        .unwrap()
    {
        Lookup::Ambiguous { matches, .. } => {
            let ids: Vec<&str> = matches.iter().map(|r| r.external_id.as_str()).collect();
            assert_eq!(ids, ["gd-2001", "st-4002"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        diagnose::diagnose_recipient(&*app.store, &app.settings, "nobody@example.pl", now())
            .await
            .unwrap(),
        Lookup::None { .. }
    ));
}

async fn every_check_of_each_channel_is_shown_with_where_consent_comes_from(app: TestApp) {
    app.import_examples(now()).await;
    let anna = one(&app, "gd-2001").await;
    let related: Vec<(&str, &str)> = anna
        .related
        .iter()
        .map(|r| (r.external_id.as_str(), r.relation.as_str()))
        .collect();
    assert_eq!(related, [("s-1001", "student"), ("s-1002", "student")]);
    let email = &anna.channels[0];
    assert_eq!(email.channel, Channel::Email);
    assert!(email.eligible);
    let codes: Vec<&str> = email.checks.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(
        codes,
        [
            "email.present",
            "email.valid",
            "email.not_failing",
            "email.consent"
        ]
    );
    assert!(
        email.checks[3]
            .text
            .contains("consent from contract UM/2026/1001 (student s-1001), given on 2026-09-01 (enrolment form)"),
        "{}",
        email.checks[3].text
    );
    // Piotr: an address without a domain ending, and his daughter's contract is
    // suspended.
    let piotr = one(&app, "gd-2002").await;
    let failed: Vec<(&str, Option<Reason>)> = piotr.channels[0]
        .checks
        .iter()
        .filter(|c| c.verdict == Verdict::Error)
        .map(|c| (c.code.as_str(), c.reason))
        .collect();
    assert_eq!(
        failed,
        [
            ("email.valid", Some(Reason::InvalidEmail)),
            ("email.consent", Some(Reason::NoConsent))
        ]
    );
    let consent = &piotr.channels[1].checks.last().unwrap();
    assert!(consent.text.contains("is suspended"), "{}", consent.text);
    assert!(consent.fix.is_some());
    // The staff office's landline: not a mobile, not marked for SMS, no consent needed.
    let office = one(&app, "st-4001").await;
    let sms: Vec<(&str, Verdict)> = office.channels[1]
        .checks
        .iter()
        .map(|c| (c.code.as_str(), c.verdict))
        .collect();
    assert_eq!(
        sms,
        [
            ("sms.present", Verdict::Ok),
            ("sms.valid_mobile", Verdict::Error),
            ("sms.not_failing", Verdict::Ok),
            ("sms.enabled", Verdict::Error),
            ("sms.consent", Verdict::Ok)
        ]
    );
    assert!(
        office.channels[1].checks[3]
            .text
            .contains("is stored but 'receives SMS' is off")
    );
    // Timing, the hold switch and the wallet are said when they matter.
    app.store
        .set_hold(
            Some(&Hold {
                since: now(),
                reason: "mail server trouble".into(),
                by: OWNER.into(),
            }),
            &audit_line(OWNER, AuditAction::HoldOn, now()),
        )
        .await
        .unwrap();
    let held = one(&app, "gd-2001").await;
    let hold = held.timing.iter().find(|c| c.code == "hold").unwrap();
    assert_eq!(hold.verdict, Verdict::Error);
    assert!(hold.text.contains("mail server trouble"));
    let wallet = held.timing.iter().find(|c| c.code == "wallet").unwrap();
    assert!(wallet.text.contains("empty"), "{}", wallet.text);
    // 07:00 UTC is 08:00 in Warsaw on a Tuesday: the window is open.
    let window = held
        .timing
        .iter()
        .find(|c| c.code == "window.open")
        .unwrap();
    assert_eq!(window.verdict, Verdict::Ok, "{}", window.text);
}

async fn messages_show_attempts_the_servers_answers_the_message_id_and_advice(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    smtp.fail_next(
        "anna.nowak@example.pl",
        Fault::RcptReply(552, "5.2.2 mailbox full"),
    );
    app.approved_batch(
        &settings,
        Audience::Recipient("gd-2001".into()),
        Reach::Students,
        now(),
    )
    .await;
    app.approved_batch(
        &settings,
        Audience::Recipient("gd-2001".into()),
        Reach::Students,
        now(),
    )
    .await;
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings.clone(), &clock);
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Failed));
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Sent));
    let anna = one(&app, "anna.nowak@example.pl").await;
    assert_eq!(anna.messages.len(), 2);
    let (sent, refused) = (&anna.messages[0], &anna.messages[1]);
    assert_eq!(refused.attempts.len(), 1);
    assert_eq!(refused.attempts[0].code, Some(552));
    assert!(
        refused.advice.iter().any(|a| a.contains("mailbox is full")),
        "{:?}",
        refused.advice
    );
    // The Message-ID is the one the receiving server got.
    let id = sent.message_id.as_deref().unwrap();
    let got = smtp.received_for("anna.nowak@example.pl");
    assert_eq!(got.len(), 1);
    assert!(
        got[0].data.contains(&format!("Message-ID: {id}")),
        "{id}\n{}",
        got[0].data
    );
    assert!(
        sent.advice
            .iter()
            .any(|a| a.contains("spam folder") && a.contains("SPF, DKIM and DMARC")),
        "{:?}",
        sent.advice
    );
}

async fn a_failing_smtp_server_shows_as_a_streak_with_what_waits(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    // One message goes; then the server answers 421 three times.
    app.approved_batch(
        &settings,
        Audience::Recipient("t-3001".into()),
        Reach::Students,
        now(),
    )
    .await;
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings.clone(), &clock);
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Sent));
    for _ in 0..3 {
        smtp.fail_next(
            "anna.nowak@example.pl",
            Fault::RcptReply(421, "4.7.0 try again later"),
        );
    }
    app.approved_batch(
        &settings,
        Audience::Recipient("gd-2001".into()),
        Reach::Students,
        now(),
    )
    .await;
    clock.set(warsaw("2026-11-24 10:05"));
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Retried));
    let health = app.store.channel_health(Channel::Email).await.unwrap();
    assert_eq!(health.failures, 1);
    assert_eq!(health.waiting_retry, 1);
    assert!(health.next_retry.unwrap() > warsaw("2026-11-24 10:05"));
    assert_eq!(health.last_sent, Some(warsaw("2026-11-24 10:00")));
    assert!(health.last_failure.unwrap().contains("421"));
    let anna = one(&app, "gd-2001").await;
    let email = anna
        .dispatcher
        .iter()
        .find(|c| c.code == "email.health")
        .unwrap();
    assert_eq!(email.verdict, Verdict::Warning);
    assert!(
        email
            .text
            .contains("has been failing since Tue 24 Nov 10:05")
            && email.text.contains("1 message(s) waiting, next retry"),
        "{}",
        email.text
    );
}

async fn a_message_timeline_names_who_did_what(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    let content = herald::compose::Content::email("Trip", "On Friday.").unwrap();
    let send = herald::compose::compose_send(
        &*app.store,
        &settings,
        &app.owner().await,
        &Audience::Recipient("gd-2001".into()),
        Reach::Students,
        &content,
    )
    .await
    .unwrap();
    let batch = app.store_send(&send, now()).await;
    app.decide(batch, &Decision::Approve, OWNER, now())
        .await
        .unwrap();
    // Approved at 07:00 UTC, tried at 06:00 local on Wednesday: held, then sent.
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-25 06:00")));
    let d = app.dispatcher_with(settings.clone(), &clock);
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Held));
    clock.set(warsaw("2026-11-25 08:00"));
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Sent));
    let id = app.only_message_to("gd-2001").await.id;
    let t = diagnose::message_timeline(&*app.store, &settings, id)
        .await
        .unwrap()
        .unwrap();
    let story: Vec<(&str, Option<&str>, Option<&str>)> = t
        .events
        .iter()
        .map(|e| (e.status.as_str(), e.reason.as_deref(), e.actor.as_deref()))
        .collect();
    assert_eq!(
        story,
        [
            ("awaiting_approval", Some("awaiting_approval"), Some(OWNER)),
            ("queued", None, Some(OWNER)),
            ("queued", Some("outside_send_window"), None),
            ("sent", None, None),
        ]
    );
    assert_eq!(t.batch.unwrap().decided_by.as_deref(), Some(OWNER));
    assert_eq!(t.message.attempts.len(), 1);
    assert!(
        diagnose::message_timeline(&*app.store, &settings, MessageId(999_999))
            .await
            .unwrap()
            .is_none()
    );
}

async fn doctor_checks_the_servers_without_sending_anything(app: TestApp) {
    let smtp = SmtpServer::start().await;
    let sms = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/profile"))
        .and(header("authorization", "Bearer t0ken"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "name": "Herald School", "username": "szkola", "points": 123.5
        })))
        .mount(&sms)
        .await;
    let mut settings = app.smtp_settings(&smtp);
    settings.sms.gateway = herald::config::SmsGateway::Smsapi {
        url: format!("{}/sms.do", sms.uri()).parse().unwrap(),
        token: secrecy::SecretString::from("t0ken"),
        report_secret: None,
    };
    settings.rules.birthday.enabled = true;
    settings.rules.birthday.template = "birthday".into();
    let checks = doctor::doctor(&settings, now()).await;
    let verdict = |code: &str| {
        checks
            .iter()
            .find(|c| c.code == code)
            .unwrap_or_else(|| panic!("{code}: {checks:?}"))
    };
    assert_eq!(verdict("database.reachable").verdict, Verdict::Ok);
    let smtp_check = verdict("email.transport");
    assert_eq!(smtp_check.verdict, Verdict::Ok, "{}", smtp_check.text);
    assert!(smtp_check.text.contains("accepted the connection"));
    let gateway = verdict("sms.gateway");
    assert_eq!(gateway.verdict, Verdict::Ok, "{}", gateway.text);
    assert!(gateway.text.contains("123.5 points"), "{}", gateway.text);
    // The rule's template does not exist.
    assert_eq!(verdict("rules.birthday").verdict, Verdict::Error);
    assert!(smtp.received().is_empty(), "nothing was sent");

    // A closed port and a refused token are errors, each with its fix.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    if let herald::config::EmailTransport::Smtp(s) = &mut settings.email.transport {
        s.port = port;
    }
    settings.sms.gateway = herald::config::SmsGateway::Smsapi {
        url: format!("{}/sms.do", sms.uri()).parse().unwrap(),
        token: secrecy::SecretString::from("wrong"),
        report_secret: None,
    };
    let checks = doctor::doctor(&settings, now()).await;
    let smtp_check = checks.iter().find(|c| c.code == "email.transport").unwrap();
    assert_eq!(smtp_check.verdict, Verdict::Error);
    assert!(smtp_check.fix.is_some());
    let gateway = checks.iter().find(|c| c.code == "sms.gateway").unwrap();
    assert_eq!(gateway.verdict, Verdict::Error, "{}", gateway.text);
    assert!(
        gateway.text.contains("refused the token"),
        "{}",
        gateway.text
    );
}
