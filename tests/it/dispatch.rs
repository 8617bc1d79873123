//! Dispatch by email, end to end against a real SMTP server on loopback: approval,
//! eligibility, the send window and holidays, retries, permanent failures, unknown
//! outcomes, leases, clean stops, and system messages that do not wait for the tick.

use std::sync::Arc;
use std::time::Duration;

use herald::clock::FixedClock;
use herald::compose::{self, Content};
use herald::daemon::Daemon;
use herald::dispatcher::Outcome;
use herald::domain::{Audience, BatchStatus, Holiday, MessageKind, MessageStatus, Reach, Reason};
use herald::store::{
    ActionResult, AttemptOutcome, Decided, Decision, MessageAction, MessageFilter,
};
use tokio_util::sync::CancellationToken;

use crate::conformance;
use crate::helpers::{OWNER, TestApp, audit_line, now, warsaw};
use crate::smtp::{Fault, SmtpServer};
use herald::domain::audit::AuditAction;

conformance!(
    an_approved_batch_reaches_the_server_once_per_eligible_recipient,
    a_rejected_batch_sends_nothing,
    each_ineligible_recipient_is_blocked_with_its_reason,
    a_message_outside_the_window_is_held_and_goes_when_it_opens,
    a_holiday_holds_informational_but_not_system_messages,
    a_4xx_reply_is_retried_inside_the_window_and_then_succeeds,
    a_5xx_reply_fails_the_message_keeps_the_reply_and_marks_the_address,
    a_connection_dropped_after_data_leaves_the_outcome_unknown,
    attempts_run_out_after_max_attempts_passing_failures,
    an_expired_lease_is_reclaimed_and_the_message_sent,
    consent_withdrawn_after_approval_blocks_the_message_before_sending,
    a_clean_stop_during_a_burst_leaves_nothing_in_sending,
    a_system_message_goes_without_waiting_for_the_tick,
    an_operator_who_may_send_without_approval_skips_the_outbox,
    the_daily_cap_holds_the_excess_until_the_next_days_window,
);

/// Drains the queue by stepping the dispatcher until nothing is due.
async fn drain(d: &Arc<herald::dispatcher::Dispatcher>) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    while let Some(o) = d.try_dispatch_next().await.unwrap() {
        outcomes.push(o);
    }
    outcomes
}

const ELIGIBLE: [&str; 3] = [
    "anna.nowak@example.pl",
    "b.malinowska@example.pl",
    "sekretariat@example.pl",
];

async fn an_approved_batch_reaches_the_server_once_per_eligible_recipient(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    // Everyone in the directory: students of both groups, their guardians, and the
    // teacher and secretary added one by one.
    let batch = app
        .approved_batch(&settings, Audience::AllGroups, Reach::Both, now())
        .await;
    for person in ["t-3001", "st-4001"] {
        app.approved_batch(
            &settings,
            Audience::Recipient(person.into()),
            Reach::Both,
            now(),
        )
        .await;
    }
    let d = app.dispatcher_with(settings, &clock);
    let counts = d
        .run_pass(&MessageKind::ALL, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(counts.sent, 3);

    // Anna Nowak has two children in the batch and gets one message.
    let received = smtp.received();
    let mut to: Vec<String> = received.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(to, ELIGIBLE);
    let anna = &smtp.received_for("anna.nowak@example.pl")[0];
    let message = app.only_message_to("gd-2001").await;
    assert_eq!(message.batch_id, Some(batch));
    assert_eq!(message.status, MessageStatus::Sent);
    assert_eq!(message.sent_at, Some(warsaw("2026-11-24 10:00")));
    let id = anna.header("Message-ID").unwrap();
    assert_eq!(
        id,
        format!(
            "<herald.{}.{}@herald-school.example>",
            message.id,
            message.created_at.timestamp()
        )
    );
    assert_eq!(anna.header("Subject").unwrap(), "School closed tomorrow");
    assert!(
        anna.header("From")
            .unwrap()
            .contains("<no-reply@herald-school.example>")
    );
    assert!(
        anna.header("To")
            .unwrap()
            .contains("<anna.nowak@example.pl>")
    );
    assert_eq!(
        anna.header("Date").unwrap(),
        "Tue, 24 Nov 2026 09:00:00 +0000"
    );
    assert_eq!(anna.from, "no-reply@herald-school.example");
    assert!(anna.data.contains("The school is closed tomorrow."));

    let attempts = app.store.attempts(message.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, AttemptOutcome::Sent);
    assert_eq!(attempts[0].code, Some(250));
    assert!(
        attempts[0].detail.contains("queued as"),
        "{:?}",
        attempts[0]
    );

    // A second pass sends nothing again.
    let counts = d
        .run_pass(&MessageKind::ALL, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(counts.sent, 0);
    assert_eq!(smtp.received().len(), 3);
}

async fn a_rejected_batch_sends_nothing(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    let content = Content::email("Trip", "A trip on Friday.").unwrap();
    let send = compose::compose_send(
        &*app.store,
        &settings,
        &app.owner().await,
        &Audience::Group("g-1a".into()),
        Reach::Guardians,
        &content,
    )
    .await
    .unwrap();
    let batch = app.store_send(&send, now()).await;
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings, &clock);
    assert!(drain(&d).await.is_empty(), "nothing goes before approval");
    let anna = app.only_message_to("gd-2001").await;
    assert_eq!(
        (anna.status, anna.reason),
        (
            MessageStatus::AwaitingApproval,
            Some(Reason::AwaitingApproval)
        )
    );

    let decided = app
        .decide(batch, &Decision::Reject("wrong date".into()), OWNER, now())
        .await
        .unwrap();
    assert_eq!(decided, Decided::Done(1));
    assert!(drain(&d).await.is_empty());
    assert!(smtp.received().is_empty());
    assert_eq!(
        app.only_message_to("gd-2001").await.status,
        MessageStatus::Rejected
    );
    let batches = app.store.batches(None).await.unwrap();
    assert_eq!(batches[0].status, BatchStatus::Rejected);
    assert_eq!(batches[0].decision_note.as_deref(), Some("wrong date"));
    assert_eq!(batches[0].decided_by.as_deref(), Some(OWNER));
    // A decided batch cannot be decided again.
    let again = app
        .decide(batch, &Decision::Approve, OWNER, now())
        .await
        .unwrap();
    assert_eq!(again, Decided::AlreadyDecided(BatchStatus::Rejected));
}

async fn each_ineligible_recipient_is_blocked_with_its_reason(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    app.approved_batch(&settings, Audience::AllGroups, Reach::Both, now())
        .await;
    app.approved_batch(
        &settings,
        Audience::Recipient("nobody-42".into()),
        Reach::Students,
        now(),
    )
    .await;
    let expect = [
        ("s-1001", Reason::MissingEmail),
        ("s-1002", Reason::MissingEmail),
        ("gd-2002", Reason::InvalidEmail),
        ("s-1003", Reason::NoConsent),
        ("nobody-42", Reason::RecipientUnknown),
    ];
    for (who, reason) in expect {
        let m = app.only_message_to(who).await;
        assert_eq!(
            (m.status, m.reason),
            (MessageStatus::Blocked, Some(reason)),
            "{who}"
        );
    }
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings, &clock);
    drain(&d).await;
    assert_eq!(
        smtp.received().len(),
        1,
        "only Anna Nowak is reachable in the groups"
    );
    assert_eq!(app.count(MessageStatus::Blocked).await, 5);
}

async fn a_message_outside_the_window_is_held_and_goes_when_it_opens(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    app.approved_batch(
        &settings,
        Audience::Recipient("gd-2001".into()),
        Reach::Students,
        now(),
    )
    .await;
    // Saturday 20:00: closed until Monday 08:00 (Sunday is closed).
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-28 20:00")));
    let d = app.dispatcher_with(settings, &clock);
    assert_eq!(drain(&d).await, [Outcome::Held]);
    let held = app.only_message_to("gd-2001").await;
    assert_eq!(
        (held.status, held.reason),
        (MessageStatus::Queued, Some(Reason::OutsideSendWindow))
    );
    assert_eq!(held.next_attempt_at, Some(warsaw("2026-11-30 08:00")));
    assert_eq!(held.attempts, 0, "a hold is not an attempt");

    clock.set(warsaw("2026-11-30 07:59"));
    assert!(
        drain(&d).await.is_empty(),
        "not due before the window opens"
    );
    clock.set(warsaw("2026-11-30 08:00"));
    assert_eq!(drain(&d).await, [Outcome::Sent]);
    assert_eq!(smtp.received().len(), 1);
}

async fn a_holiday_holds_informational_but_not_system_messages(app: TestApp) {
    app.import_examples(now()).await;
    let day = |s: &str| s.parse().unwrap();
    let holiday = Holiday::new("Teachers' day off", day("2026-11-25"), day("2026-11-25")).unwrap();
    app.store
        .add_holiday(
            &holiday,
            &audit_line("owner", AuditAction::HolidayAdd, now()),
        )
        .await
        .unwrap();
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    app.approved_batch(
        &settings,
        Audience::Recipient("gd-2001".into()),
        Reach::Students,
        now(),
    )
    .await;
    let content = Content::email("Password reset", "Your code is 1234.").unwrap();
    herald::app::App::new(
        std::sync::Arc::clone(&app.store),
        std::sync::Arc::new(settings.clone()),
        std::sync::Arc::new(herald::clock::FixedClock::new(now())),
    )
    .notify(&herald::app::Actor::System("platform"), "t-3001", &content)
    .await
    .unwrap();

    let clock = Arc::new(FixedClock::new(warsaw("2026-11-25 11:00")));
    let d = app.dispatcher_with(settings, &clock);
    let mut outcomes = drain(&d).await;
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(outcomes, [Outcome::Held, Outcome::Sent]);
    let received = smtp.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, ["b.malinowska@example.pl"]);
    let held = app.only_message_to("gd-2001").await;
    assert_eq!(held.reason, Some(Reason::Holiday));
    assert_eq!(held.next_attempt_at, Some(warsaw("2026-11-26 08:00")));
}

async fn a_4xx_reply_is_retried_inside_the_window_and_then_succeeds(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    smtp.fail_next(
        "anna.nowak@example.pl",
        Fault::RcptReply(451, "4.3.0 mailbox busy, try later"),
    );
    let settings = app.smtp_settings(&smtp);
    app.approved_batch(
        &settings,
        Audience::Recipient("gd-2001".into()),
        Reach::Students,
        now(),
    )
    .await;
    // 19:59 on a Tuesday: the retry (about two minutes later) would fall after 20:00,
    // so it moves to Wednesday's opening, spread over its first ten minutes.
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 19:59")));
    let d = app.dispatcher_with(settings, &clock);
    assert_eq!(drain(&d).await, [Outcome::Retried]);
    let m = app.only_message_to("gd-2001").await;
    assert_eq!(
        (m.status, m.reason),
        (MessageStatus::Queued, Some(Reason::RetryScheduled))
    );
    let at = m.next_attempt_at.unwrap();
    let opening = warsaw("2026-11-25 08:00");
    assert!(
        at >= opening && at < opening + chrono::Duration::minutes(10),
        "{at}"
    );
    assert_eq!(m.attempts, 1);

    clock.set(warsaw("2026-11-25 08:10"));
    assert_eq!(drain(&d).await, [Outcome::Sent]);
    let attempts = app.store.attempts(m.id).await.unwrap();
    let summary: Vec<(AttemptOutcome, Option<i64>)> =
        attempts.iter().map(|a| (a.outcome, a.code)).collect();
    assert_eq!(
        summary,
        [
            (AttemptOutcome::Transient, Some(451)),
            (AttemptOutcome::Sent, Some(250))
        ]
    );
    assert!(
        attempts[0].detail.contains("mailbox busy"),
        "{:?}",
        attempts[0]
    );
    assert_eq!(smtp.received_for("anna.nowak@example.pl").len(), 1);
}

async fn a_5xx_reply_fails_the_message_keeps_the_reply_and_marks_the_address(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    smtp.fail_next(
        "anna.nowak@example.pl",
        Fault::RcptReply(550, "5.1.1 <anna.nowak@example.pl>: no such user"),
    );
    let settings = app.smtp_settings(&smtp);
    app.approved_batch(
        &settings,
        Audience::Recipient("gd-2001".into()),
        Reach::Students,
        now(),
    )
    .await;
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings.clone(), &clock);
    assert_eq!(drain(&d).await, [Outcome::Failed]);
    let m = app.only_message_to("gd-2001").await;
    assert_eq!(
        (m.status, m.reason),
        (MessageStatus::Failed, Some(Reason::RejectedByServer))
    );
    let attempts = app.store.attempts(m.id).await.unwrap();
    assert_eq!(attempts[0].outcome, AttemptOutcome::Permanent);
    assert_eq!(attempts[0].code, Some(550));
    assert!(attempts[0].detail.contains("5.1.1"), "{:?}", attempts[0]);

    // The address is marked failing: the next message to it is blocked at once …
    let anna = app.store.recipient("gd-2001").await.unwrap().unwrap();
    assert!(
        anna.recipient
            .email_failure
            .as_deref()
            .unwrap()
            .contains("5.1.1")
    );
    app.approved_batch(
        &settings,
        Audience::Recipient("gd-2001".into()),
        Reach::Students,
        now(),
    )
    .await;
    let newest = &app.messages_to("gd-2001").await[0];
    assert_eq!(
        (newest.status, newest.reason),
        (MessageStatus::Blocked, Some(Reason::InvalidEmail))
    );
    // … until the platform sends a new address.
    let fixed = app.write(
        "recipients.csv",
        "external_id,role,name,email,phone,sms_enabled,locale\n\
         gd-2001,guardian,Anna Nowak,anna.nowak@example.com,600 100 200,yes,pl\n",
    );
    app.import(&fixed, now()).await;
    let anna = app.store.recipient("gd-2001").await.unwrap().unwrap();
    assert_eq!(anna.recipient.email_failure, None);
    assert_eq!(smtp.received().len(), 0);
}

async fn a_connection_dropped_after_data_leaves_the_outcome_unknown(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    smtp.fail_next("anna.nowak@example.pl", Fault::DropAfterData);
    smtp.fail_next(
        "b.malinowska@example.pl",
        Fault::StallAfterData(Duration::from_secs(5)),
    );
    let settings = app.smtp_settings(&smtp);
    for who in ["gd-2001", "t-3001"] {
        app.approved_batch(
            &settings,
            Audience::Recipient(who.into()),
            Reach::Students,
            now(),
        )
        .await;
    }
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings, &clock);
    assert_eq!(drain(&d).await, [Outcome::Unknown, Outcome::Unknown]);
    for who in ["gd-2001", "t-3001"] {
        let m = app.only_message_to(who).await;
        assert_eq!(
            (m.status, m.reason),
            (MessageStatus::Unknown, Some(Reason::OutcomeUnknown)),
            "{who}"
        );
        let attempts = app.store.attempts(m.id).await.unwrap();
        assert_eq!(attempts[0].outcome, AttemptOutcome::Unknown, "{who}");
    }
    let stalled = app.only_message_to("t-3001").await;
    let detail = &app.store.attempts(stalled.id).await.unwrap()[0].detail;
    assert!(
        detail.contains("after the message was handed over"),
        "{detail}"
    );
    // Not retried: an operator decides whether to send again …
    assert!(drain(&d).await.is_empty());
    let anna = app.only_message_to("gd-2001").await;
    let resent = app
        .store
        .act_on_message(
            anna.id,
            MessageAction::Resend,
            &audit_line(OWNER, AuditAction::Resend, now()),
        )
        .await
        .unwrap();
    assert_eq!(resent, ActionResult::Done(MessageStatus::Unknown));
    // … or to drop it.
    let dropped = app
        .store
        .act_on_message(
            stalled.id,
            MessageAction::Cancel,
            &audit_line(OWNER, AuditAction::Resend, now()),
        )
        .await
        .unwrap();
    assert_eq!(dropped, ActionResult::Done(MessageStatus::Unknown));
    assert_eq!(drain(&d).await, [Outcome::Sent]);
    // The resent message keeps its Message-ID, so the receiving side can tell.
    let received = smtp.received_for("anna.nowak@example.pl");
    assert_eq!(received.len(), 1);
    assert!(
        received[0]
            .header("Message-ID")
            .unwrap()
            .starts_with(&format!("<herald.{}.", anna.id))
    );
    assert_eq!(
        app.only_message_to("t-3001").await.status,
        MessageStatus::Cancelled
    );
    let again = app
        .store
        .act_on_message(
            anna.id,
            MessageAction::Cancel,
            &audit_line(OWNER, AuditAction::Resend, now()),
        )
        .await
        .unwrap();
    assert_eq!(again, ActionResult::NotApplicable(MessageStatus::Sent));
}

async fn attempts_run_out_after_max_attempts_passing_failures(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let mut settings = app.smtp_settings(&smtp);
    settings.dispatch.max_attempts = 2;
    for _ in 0..2 {
        smtp.fail_next(
            "anna.nowak@example.pl",
            Fault::RcptReply(421, "4.7.0 try again"),
        );
    }
    app.approved_batch(
        &settings,
        Audience::Recipient("gd-2001".into()),
        Reach::Students,
        now(),
    )
    .await;
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings, &clock);
    assert_eq!(drain(&d).await, [Outcome::Retried]);
    clock.set(warsaw("2026-11-24 12:00"));
    assert_eq!(drain(&d).await, [Outcome::Failed]);
    let m = app.only_message_to("gd-2001").await;
    assert_eq!(
        (m.status, m.reason, m.attempts),
        (MessageStatus::Failed, Some(Reason::AttemptsExhausted), 2)
    );
}

async fn an_expired_lease_is_reclaimed_and_the_message_sent(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    app.approved_batch(
        &settings,
        Audience::Recipient("gd-2001".into()),
        Reach::Students,
        now(),
    )
    .await;
    // A dispatcher claims the message and dies.
    let t0 = warsaw("2026-11-24 10:00");
    let lease_until = t0 + chrono::Duration::seconds(15);
    let claimed = app
        .store
        .claim_due(t0, &MessageKind::ALL, "dead-worker", lease_until, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let clock = Arc::new(FixedClock::new(t0 + chrono::Duration::seconds(5)));
    let d = app.dispatcher_with(settings, &clock);
    let counts = d
        .run_pass(&MessageKind::ALL, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(counts.sent, 0, "a live lease is respected");
    assert_eq!(app.count(MessageStatus::Sending).await, 1);

    // The dead worker's late report does not overwrite anything once it lost the lease.
    clock.set(lease_until + chrono::Duration::seconds(1));
    let counts = d
        .run_pass(&MessageKind::ALL, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(counts.sent, 1);
    let m = app.only_message_to("gd-2001").await;
    assert_eq!(m.status, MessageStatus::Sent);
    let outcomes: Vec<AttemptOutcome> = app
        .store
        .attempts(m.id)
        .await
        .unwrap()
        .iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(outcomes, [AttemptOutcome::Abandoned, AttemptOutcome::Sent]);
    let late = app
        .store
        .finish(
            m.id,
            "dead-worker",
            claimed[0].claim,
            &herald::store::Finish::Blocked(Reason::NoConsent),
            herald::clock::Clock::now(&*clock),
        )
        .await
        .unwrap();
    assert!(!late, "the dead worker's claim is no longer the message's");
    assert_eq!(
        app.only_message_to("gd-2001").await.status,
        MessageStatus::Sent
    );
}

async fn consent_withdrawn_after_approval_blocks_the_message_before_sending(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    app.approved_batch(
        &settings,
        Audience::Recipient("gd-2001".into()),
        Reach::Students,
        now(),
    )
    .await;
    // Both of Anna's children's contracts lose their email consent.
    let withdrawn = app.write(
        "contracts.csv",
        "external_id,student_id,status,consent_email,consent_sms\n\
         c-1001,s-1001,active,no,yes\nc-1002,s-1002,active,no,no\n",
    );
    app.import(&withdrawn, now()).await;
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings, &clock);
    assert_eq!(drain(&d).await, [Outcome::Blocked]);
    let m = app.only_message_to("gd-2001").await;
    assert_eq!(
        (m.status, m.reason),
        (MessageStatus::Blocked, Some(Reason::NoConsent))
    );
    assert!(smtp.received().is_empty());
}

async fn a_clean_stop_during_a_burst_leaves_nothing_in_sending(app: TestApp) {
    // 120 teachers, each reachable; the server takes 100 ms per message.
    let mut csv = String::from("external_id,role,name,email\n");
    for i in 0..120 {
        csv.push_str(&format!(
            "t-{i},teacher,Teacher {i},teacher{i}@example.pl\n"
        ));
    }
    let file = app.write("recipients.csv", &csv);
    app.import(&file, now()).await;
    let smtp = SmtpServer::start().await;
    smtp.slow_down(Duration::from_millis(100));
    let mut settings = app.smtp_settings(&smtp);
    // Long enough for every send in flight to finish: a send cut off after the
    // hand-over would be released and could arrive twice.
    settings.dispatch.shutdown_grace = Duration::from_secs(3);
    for i in 0..120 {
        app.approved_batch(
            &settings,
            Audience::Recipient(format!("t-{i}")),
            Reach::Students,
            now(),
        )
        .await;
    }
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings, &clock);
    let shutdown = CancellationToken::new();
    let stopper = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        stopper.cancel();
    });
    let counts = d.run_pass(&MessageKind::ALL, &shutdown).await.unwrap();
    assert!(
        counts.sent > 0 && counts.sent < 120,
        "stopped mid-burst: {counts:?}"
    );
    assert_eq!(app.count(MessageStatus::Sending).await, 0);
    let sent = app.count(MessageStatus::Sent).await;
    let queued = app.count(MessageStatus::Queued).await;
    let unknown = app.count(MessageStatus::Unknown).await;
    assert_eq!(
        sent + queued + unknown,
        120,
        "sent {sent}, queued {queued}, unknown {unknown}"
    );
    assert_eq!(sent as usize, smtp.received().len());

    // The next run sends the rest, each message once.
    smtp.slow_down(Duration::ZERO);
    d.run_pass(&MessageKind::ALL, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(app.count(MessageStatus::Sent).await + unknown, 120);
    let mut to: Vec<String> = smtp.received().iter().flat_map(|m| m.to.clone()).collect();
    let total = to.len();
    to.dedup();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), total, "no message was sent twice");
}

async fn a_system_message_goes_without_waiting_for_the_tick(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let mut settings = app.smtp_settings(&smtp);
    // A tick once a year: only the wake-up can send the message.
    settings.dispatch.schedule = "0 0 0 1 1 *".parse().unwrap();
    settings.dispatch.wake_poll = Duration::from_millis(100);
    let daemon = Daemon::build_with(
        settings.clone(),
        Arc::clone(&app.store),
        Arc::new(herald::clock::SystemClock),
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(daemon.run_until_stopped(shutdown.clone()));

    let content = Content::email("Password reset", "Your code is 1234.").unwrap();
    let created = std::time::Instant::now();
    herald::app::App::new(
        std::sync::Arc::clone(&app.store),
        std::sync::Arc::new(settings.clone()),
        std::sync::Arc::new(herald::clock::FixedClock::new(chrono::Utc::now())),
    )
    .notify(&herald::app::Actor::System("platform"), "t-3001", &content)
    .await
    .unwrap();
    while smtp.received().is_empty() && created.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waited = created.elapsed();
    assert_eq!(smtp.received_for("b.malinowska@example.pl").len(), 1);
    assert!(waited < Duration::from_secs(2), "took {waited:?}");
    shutdown.cancel();
    running.await.unwrap().unwrap();
    let m = app.only_message_to("t-3001").await;
    assert_eq!(
        (m.kind, m.status),
        (MessageKind::System, MessageStatus::Sent)
    );
    let filter = MessageFilter {
        status: Some(MessageStatus::Sending),
        ..Default::default()
    };
    assert!(app.store.messages(&filter).await.unwrap().is_empty());
}

async fn an_operator_who_may_send_without_approval_skips_the_outbox(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    let trusted = app
        .operator_with(
            "trusted",
            "secretary",
            &[herald::domain::access::Permission::SendWithoutApproval],
        )
        .await;
    let content = Content::email("Homework", "Chapter 3, exercises 1-5.").unwrap();
    let send = compose::compose_send(
        &*app.store,
        &settings,
        &trusted,
        &Audience::Group("g-1a".into()),
        Reach::Guardians,
        &content,
    )
    .await
    .unwrap();
    app.store_send(&send, now()).await;
    let batch = &app.store.batches(None).await.unwrap()[0];
    assert_eq!(batch.status, BatchStatus::Approved);
    assert_eq!(batch.decided_by.as_deref(), Some("trusted"));
    assert!(
        app.store
            .batches(Some(BatchStatus::AwaitingApproval))
            .await
            .unwrap()
            .is_empty()
    );
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings, &clock);
    assert_eq!(drain(&d).await, [Outcome::Sent]);
    assert_eq!(smtp.received_for("anna.nowak@example.pl").len(), 1);
}

async fn the_daily_cap_holds_the_excess_until_the_next_days_window(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let mut settings = app.smtp_settings(&smtp);
    settings.dispatch.informational_daily_cap = Some(1);
    for _ in 0..2 {
        app.approved_batch(
            &settings,
            Audience::Recipient("gd-2001".into()),
            Reach::Students,
            now(),
        )
        .await;
    }
    // A system message to the same person is neither counted nor held.
    let notice = Content::email("Password reset", "Code 1234").unwrap();
    herald::app::App::new(
        std::sync::Arc::clone(&app.store),
        std::sync::Arc::new(settings.clone()),
        std::sync::Arc::new(herald::clock::FixedClock::new(now())),
    )
    .notify(&herald::app::Actor::System("platform"), "gd-2001", &notice)
    .await
    .unwrap();
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings.clone(), &clock);
    let mut outcomes = Vec::new();
    while let Some(o) = d.try_dispatch_next().await.unwrap() {
        outcomes.push(o);
    }
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(outcomes, [Outcome::Held, Outcome::Sent, Outcome::Sent]);
    assert_eq!(smtp.received_for("anna.nowak@example.pl").len(), 2);
    let held: Vec<_> = app
        .messages_to("gd-2001")
        .await
        .into_iter()
        .filter(|m| m.status == MessageStatus::Queued)
        .collect();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].reason, Some(Reason::DailyCapReached));
    // Wednesday's window opens at 08:00 school time.
    assert_eq!(held[0].next_attempt_at, Some(warsaw("2026-11-25 08:00")));
    // Later the same day: still held. The next morning: sent.
    clock.set(warsaw("2026-11-24 19:00"));
    assert_eq!(d.try_dispatch_next().await.unwrap(), None);
    clock.set(warsaw("2026-11-25 08:00"));
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Sent));
    assert_eq!(smtp.received_for("anna.nowak@example.pl").len(), 3);
    // The default is no cap.
    assert_eq!(default_cap(), None);

    // A whole pass sends several messages at once: still one a day per person.
    for _ in 0..3 {
        app.approved_batch(
            &settings,
            Audience::Recipient("t-3001".into()),
            Reach::Students,
            now(),
        )
        .await;
    }
    let counts = d
        .run_pass(&MessageKind::ALL, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!((counts.sent, counts.held), (1, 2), "{counts:?}");
    assert_eq!(smtp.received_for("b.malinowska@example.pl").len(), 1);
}

fn default_cap() -> Option<u32> {
    crate::helpers::default_settings()
        .dispatch
        .informational_daily_cap
}
