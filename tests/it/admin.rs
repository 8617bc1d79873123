//! The hold switch and the audit log, on both backends and through the binary.

use std::sync::Arc;

use herald::clock::FixedClock;
use herald::domain::{Audience, MessageKind, MessageStatus, Reach};
use herald::store::{AuditEntry, AuditFilter, Hold};
use tokio_util::sync::CancellationToken;

use crate::conformance;
use crate::helpers::{TestApp, audit_line, now, warsaw};
use crate::smtp::SmtpServer;
use herald::domain::audit::AuditAction;

conformance!(
    hold_on_stops_every_pass_and_hold_off_resumes_with_each_message_sent_once,
    the_audit_log_keeps_every_line_newest_first_and_filters_them,
);

async fn hold_on_stops_every_pass_and_hold_off_resumes_with_each_message_sent_once(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    app.approved_batch(&settings, Audience::AllGroups, Reach::Both, now())
        .await;
    for who in ["t-3001", "st-4001"] {
        app.approved_batch(
            &settings,
            Audience::Recipient(who.into()),
            Reach::Students,
            now(),
        )
        .await;
    }
    let hold = Hold {
        since: now(),
        reason: "wrong date in the batch".into(),
        by: "owner".into(),
    };
    assert!(
        app.store
            .set_hold(
                Some(&hold),
                &audit_line("owner", AuditAction::HoldOn, now())
            )
            .await
            .unwrap()
    );
    assert!(
        !app.store
            .set_hold(
                Some(&hold),
                &audit_line("owner", AuditAction::HoldOn, now())
            )
            .await
            .unwrap(),
        "already on"
    );
    assert_eq!(app.store.hold().await.unwrap(), Some(hold));

    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    // Two instances: the switch is in the database, so it holds both.
    let a = app.dispatcher_with(settings.clone(), &clock);
    let b = app.dispatcher_with(settings, &clock);
    for d in [&a, &b] {
        let counts = d
            .run_pass(&MessageKind::ALL, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(counts.sent, 0);
        assert_eq!(d.try_dispatch_next().await.unwrap(), None);
    }
    assert!(smtp.received().is_empty());
    assert_eq!(app.count(MessageStatus::Queued).await, 3, "nothing lost");

    assert!(
        app.store
            .set_hold(None, &audit_line("owner", AuditAction::HoldOff, now()))
            .await
            .unwrap()
    );
    assert!(
        !app.store
            .set_hold(None, &audit_line("owner", AuditAction::HoldOff, now()))
            .await
            .unwrap(),
        "already off"
    );
    let (ta, tb) = (CancellationToken::new(), CancellationToken::new());
    let (ra, rb) = tokio::join!(
        a.run_pass(&MessageKind::ALL, &ta),
        b.run_pass(&MessageKind::ALL, &tb)
    );
    assert_eq!(ra.unwrap().sent + rb.unwrap().sent, 3);
    let mut to: Vec<String> = smtp.received().iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        [
            "anna.nowak@example.pl",
            "b.malinowska@example.pl",
            "sekretariat@example.pl"
        ]
    );
}

async fn the_audit_log_keeps_every_line_newest_first_and_filters_them(app: TestApp) {
    let line = |minute: i64, actor: &str, action: &str| AuditEntry {
        at: now() + chrono::Duration::minutes(minute),
        actor: actor.into(),
        action: action.parse().unwrap(),
        subject: "batch 1".into(),
        details: serde_json::json!({"messages": minute, "note": "zażółć"}),
    };
    for (m, who, what) in [
        (0, "anna", "send"),
        (1, "owner", "approve"),
        (2, "anna", "top_up"),
    ] {
        app.store.audit(&line(m, who, what)).await.unwrap();
    }
    let all = app.store.audit_log(&AuditFilter::default()).await.unwrap();
    let actions: Vec<&str> = all.iter().map(|l| l.action.as_str()).collect();
    assert_eq!(actions, ["top_up", "approve", "send"]);
    assert_eq!(all[2], line(0, "anna", "send"));
    let anna = app
        .store
        .audit_log(&AuditFilter {
            actor: Some("anna".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(anna.len(), 2);
    let recent = app
        .store
        .audit_log(&AuditFilter {
            since: Some(now() + chrono::Duration::minutes(1)),
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].action, AuditAction::TopUp);
}
