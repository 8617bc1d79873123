//! The application layer on its own, on both backends: approval bound to the version
//! that was shown, every change committed with its audit line or not at all, and who
//! may do what, asked of `App` directly rather than through an interface.

use herald::app::{Actor, AppError};
use herald::compose::{self, Content};
use herald::domain::access::Permission;
use herald::domain::audit::AuditAction;
use herald::domain::{Audience, BatchId, BatchStatus, MessageId, MessageStatus, Reach};
use herald::store::{AuditFilter, Decision, MessageAction, MessageFilter};

use crate::conformance;
use crate::helpers::{OWNER, TestApp, now};

conformance!(
    a_stale_approval_is_refused_and_the_version_shown_is_accepted,
    an_audit_line_never_commits_without_its_change_nor_a_change_without_its_line,
    each_app_operation_is_allowed_or_refused_per_role,
);

/// A batch to all groups, students and guardians, awaiting approval.
async fn awaiting_batch(app: &TestApp) -> BatchId {
    let owner = app.owner().await;
    let content = Content::email("Trip", "The trip is on Friday.").unwrap();
    let send = compose::compose_send(
        &*app.store,
        &app.settings,
        &owner,
        &Audience::AllGroups,
        Reach::Both,
        &content,
    )
    .await
    .unwrap();
    app.store_send(&send, now()).await
}

/// The messages of a batch that wait for approval.
async fn awaiting(app: &TestApp, batch: BatchId) -> Vec<herald::store::MessageView> {
    app.store
        .messages(&MessageFilter {
            batch: Some(batch),
            status: Some(MessageStatus::AwaitingApproval),
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn audit_count(app: &TestApp, action: AuditAction) -> usize {
    app.store
        .audit_log(&AuditFilter {
            action: Some(action),
            ..Default::default()
        })
        .await
        .unwrap()
        .len()
}

async fn batch_status(app: &TestApp, id: BatchId) -> BatchStatus {
    let batches = app.store.batches(None).await.unwrap();
    batches.iter().find(|b| b.id == id).unwrap().status
}

async fn a_stale_approval_is_refused_and_the_version_shown_is_accepted(app: TestApp) {
    // The demo school: thirty students and their guardians, so a batch has many.
    let (school, _) = herald::demo::school(now().date_naive());
    let path = app.write("school.json", &school.to_string());
    assert!(!app.import(&path, now()).await.has_errors());
    let batch = awaiting_batch(&app).await;
    let herald = app.app_at(now());
    let owner = Actor::operator(OWNER);
    let shown = herald.batch_view(batch, &[]).await.unwrap();
    assert_eq!(
        shown.version,
        herald.batch_view(batch, &[]).await.unwrap().version
    );

    // An edit between show and approve: refused, with what changed, nothing decided.
    let text = herald::app::BatchText {
        body: "The trip is on Saturday.".into(),
        ..Default::default()
    };
    herald.edit_batch(&owner, batch, &text).await.unwrap();
    let err = herald
        .decide(&owner, batch, &[], Decision::Approve, Some(&shown.version))
        .await
        .unwrap_err();
    let AppError::Conflict(why) = &err else {
        panic!("a stale approval is a conflict: {err:?}")
    };
    assert!(why.contains("the text was edited"), "{why}");
    assert!(
        !why.contains("who gets it"),
        "an edit does not change the audience: {why}"
    );
    assert_eq!(
        batch_status(&app, batch).await,
        BatchStatus::AwaitingApproval
    );
    assert_eq!(audit_count(&app, AuditAction::Approve).await, 0);

    // A message cancelled changes who gets it.
    let edited = herald.batch_view(batch, &[]).await.unwrap();
    let messages = awaiting(&app, batch).await;
    herald
        .act_on_message(&owner, messages[0].id, MessageAction::Cancel)
        .await
        .unwrap();
    let err = herald
        .decide(&owner, batch, &[], Decision::Approve, Some(&edited.version))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("who gets it changed"), "{err}");

    // A directory change that blocks someone who was going: the view judges again.
    let cancelled = herald.batch_view(batch, &[]).await.unwrap();
    let still = awaiting(&app, batch).await;
    let going = still
        .first()
        .expect("someone is still going")
        .recipient
        .clone();
    app.execute_raw(
        &format!(
            "UPDATE contracts SET consent_email = 0 WHERE student_id IN \
             (SELECT id FROM recipients WHERE external_id = '{going}') OR student_id IN \
             (SELECT g.student_id FROM guardianships g JOIN recipients r ON r.id = g.guardian_id \
              WHERE r.external_id = '{going}')"
        ),
        &format!(
            "UPDATE contracts SET consent_email = false WHERE student_id IN \
             (SELECT id FROM recipients WHERE external_id = '{going}') OR student_id IN \
             (SELECT g.student_id FROM guardianships g JOIN recipients r ON r.id = g.guardian_id \
              WHERE r.external_id = '{going}')"
        ),
    )
    .await;
    let judged = herald.batch_view(batch, &[]).await.unwrap();
    assert_ne!(judged.version, cancelled.version, "{going} is blocked now");
    assert!(
        judged.summary.blocked.contains_key("no_consent"),
        "{:?}",
        judged.summary
    );
    let err = herald
        .decide(
            &owner,
            batch,
            &[],
            Decision::Approve,
            Some(&cancelled.version),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("who gets it changed"), "{err}");

    // Underneath, the store refuses a decision on a state that is no longer the
    // batch's, so an edit landing between the check and the decision is caught too.
    let state = app.store.batch_state(batch).await.unwrap().unwrap();
    herald
        .edit_batch(
            &owner,
            batch,
            &herald::app::BatchText {
                body: "The trip is on Sunday.".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let line = crate::helpers::audit_line(OWNER, AuditAction::Approve, now());
    assert_eq!(
        app.store
            .decide_batch(batch, &Decision::Approve, &state, &line)
            .await
            .unwrap(),
        herald::store::Decided::Changed
    );
    assert_eq!(audit_count(&app, AuditAction::Approve).await, 0);
    let judged = herald.batch_view(batch, &[]).await.unwrap();

    // The version shown now is accepted, and the audit line names it.
    let taken = herald
        .decide(&owner, batch, &[], Decision::Approve, Some(&judged.version))
        .await
        .unwrap();
    assert_eq!(batch_status(&app, batch).await, BatchStatus::Approved);
    assert!(taken.messages > 0);
    let lines = app
        .store
        .audit_log(&AuditFilter {
            action: Some(AuditAction::Approve),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].details["version"], judged.version.as_str());
    assert_eq!(lines[0].details["messages"], taken.messages);
}

async fn an_audit_line_never_commits_without_its_change_nor_a_change_without_its_line(
    app: TestApp,
) {
    app.import_examples(now()).await;
    app.owner().await;
    let herald = app.app_at(now());
    let owner = Actor::operator(OWNER);
    let day = |s: &str| s.parse().unwrap();
    let batch = awaiting_batch(&app).await;
    let batches = app.store.batches(None).await.unwrap().len();
    // The audit log refuses every line: no change goes in without its line.
    app.execute_raw(
        "CREATE TRIGGER no_audit BEFORE INSERT ON audit_log \
         BEGIN SELECT RAISE(ABORT, 'audit log refused'); END;",
        "CREATE FUNCTION no_audit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'audit log refused'; END $$; \
         CREATE TRIGGER no_audit BEFORE INSERT ON audit_log \
         FOR EACH ROW EXECUTE FUNCTION no_audit();",
    )
    .await;
    let before = app.store.wallet().await.unwrap();
    assert!(herald.top_up(&owner, 100, "invoice 7").await.is_err());
    assert!(
        herald
            .add_holiday(&owner, "Snow day", day("2026-12-07"), day("2026-12-07"))
            .await
            .is_err()
    );
    assert!(herald.set_hold(&owner, Some("incident")).await.is_err());
    let trip = herald::app::SendRequest {
        audience: Audience::AllGroups,
        reach: Reach::Both,
        channel: herald::domain::ChannelChoice::Email,
        content: herald::app::SendContent::Text {
            subject: Some("Trip".into()),
            body: "On Friday.".into(),
            html: None,
        },
        transliterate: false,
    };
    assert!(herald.send(&owner, &trip, false).await.is_err());
    let notice = Content::email("Password reset", "Your code is 1234.").unwrap();
    assert!(herald.notify(&owner, "t-3001", &notice).await.is_err());
    assert!(herald.cancel_batch(&owner, batch).await.is_err());
    let view = herald.batch_view(batch, &[]).await.unwrap();
    assert!(
        herald
            .decide(&owner, batch, &[], Decision::Approve, Some(&view.version))
            .await
            .is_err()
    );
    assert_eq!(app.store.wallet().await.unwrap(), before, "no top-up");
    assert_eq!(
        app.store.ledger(10).await.unwrap().len(),
        0,
        "no ledger line"
    );
    assert!(
        app.store.holidays(None).await.unwrap().is_empty(),
        "no holiday"
    );
    assert_eq!(app.store.hold().await.unwrap(), None, "no hold");
    assert_eq!(
        batch_status(&app, batch).await,
        BatchStatus::AwaitingApproval
    );
    assert_eq!(
        app.store.batches(None).await.unwrap().len(),
        batches,
        "no batch"
    );
    assert!(app.messages_to("t-3001").await.is_empty(), "no message");
    assert_eq!(
        app.count(MessageStatus::Cancelled).await,
        0,
        "nothing cancelled"
    );

    // The other way round: a change that fails leaves no line behind.
    app.execute_raw(
        "DROP TRIGGER no_audit; CREATE TRIGGER no_holidays BEFORE INSERT ON holidays \
         BEGIN SELECT RAISE(ABORT, 'holidays refused'); END;",
        "DROP TRIGGER no_audit ON audit_log; \
         CREATE FUNCTION no_holidays() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'holidays refused'; END $$; \
         CREATE TRIGGER no_holidays BEFORE INSERT ON holidays \
         FOR EACH ROW EXECUTE FUNCTION no_holidays();",
    )
    .await;
    assert!(
        herald
            .add_holiday(&owner, "Snow day", day("2026-12-07"), day("2026-12-07"))
            .await
            .is_err()
    );
    assert_eq!(audit_count(&app, AuditAction::HolidayAdd).await, 0);
    // With the database whole again, each change has exactly its line.
    herald.top_up(&owner, 100, "invoice 7").await.unwrap();
    let lines = app
        .store
        .audit_log(&AuditFilter {
            action: Some(AuditAction::TopUp),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].details["balance_after"], 100);
}

/// The roles under test: owner, secretary, teacher, and a role of the school's own.
const ROLES: [(&str, &str); 4] = [
    ("boss", "owner"),
    ("anna", "secretary"),
    ("tomek", "teacher"),
    ("kasia", "accountant"),
];

async fn each_app_operation_is_allowed_or_refused_per_role(app: TestApp) {
    app.import_examples(now()).await;
    app.owner().await;
    let accountant = herald::domain::access::RoleDef {
        name: "accountant".into(),
        description: "pays the SMS invoices".into(),
        builtin: false,
        permissions: [Permission::TopUp, Permission::View].into_iter().collect(),
    };
    let entry = crate::helpers::audit_line("test", AuditAction::RoleSave, now());
    assert!(app.store.save_role(&accountant, &entry).await.unwrap());
    for (login, role) in ROLES {
        app.operator_with(login, role, &[]).await;
    }
    let herald = app.app_at(now());
    let day = |s: &str| s.parse().unwrap();
    // (what, allowed for owner, secretary, teacher, accountant)
    let rows: [(&str, [bool; 4]); 9] = [
        ("add a holiday", [true, true, false, false]),
        ("remove a holiday", [true, true, false, false]),
        ("top up", [true, true, false, true]),
        ("hold on", [true, true, false, false]),
        ("approve", [true, true, false, false]),
        ("reject", [true, true, false, false]),
        ("cancel someone else's batch", [true, true, false, false]),
        ("edit someone else's batch", [true, true, false, false]),
        ("cancel a message", [true, true, false, false]),
    ];
    for (what, expected) in rows {
        for ((login, role), allowed) in ROLES.into_iter().zip(expected) {
            let actor = Actor::operator(login);
            let batch = awaiting_batch(&app).await;
            let message = awaiting(&app, batch).await[0].id;
            let holiday = herald
                .add_holiday(
                    &Actor::operator(OWNER),
                    "Day",
                    day("2099-05-02"),
                    day("2099-05-02"),
                )
                .await
                .unwrap();
            herald
                .set_hold(&Actor::operator(OWNER), None)
                .await
                .unwrap();
            let lines_before = app
                .store
                .audit_log(&AuditFilter::default())
                .await
                .unwrap()
                .len();
            let result: Result<(), AppError> = match what {
                "add a holiday" => herald
                    .add_holiday(&actor, "Day", day("2099-05-03"), day("2099-05-03"))
                    .await
                    .map(drop),
                "remove a holiday" => herald.remove_holiday(&actor, holiday.id.unwrap()).await,
                "top up" => herald.top_up(&actor, 10, "FV").await.map(drop),
                "hold on" => herald.set_hold(&actor, Some("incident")).await.map(drop),
                "approve" => herald
                    .decide(&actor, batch, &[], Decision::Approve, None)
                    .await
                    .map(drop),
                "reject" => herald
                    .decide(&actor, batch, &[], Decision::Reject("no".into()), None)
                    .await
                    .map(drop),
                "cancel someone else's batch" => herald.cancel_batch(&actor, batch).await.map(drop),
                "edit someone else's batch" => herald
                    .edit_batch(
                        &actor,
                        batch,
                        &herald::app::BatchText {
                            body: "New text".into(),
                            ..Default::default()
                        },
                    )
                    .await
                    .map(drop),
                "cancel a message" => herald
                    .act_on_message(&actor, MessageId(message.0), MessageAction::Cancel)
                    .await
                    .map(drop),
                other => unreachable!("{other}"),
            };
            let lines_after = app
                .store
                .audit_log(&AuditFilter::default())
                .await
                .unwrap()
                .len();
            match (allowed, result) {
                (true, Ok(())) => assert_eq!(
                    lines_after,
                    lines_before + 1,
                    "{what} as {role}: one audit line"
                ),
                (
                    false,
                    Err(AppError::Forbidden {
                        login: who,
                        permission,
                        ..
                    }),
                ) => {
                    assert_eq!(who, login, "{what}");
                    assert_ne!(permission, Permission::View, "{what} names what it needs");
                    assert_eq!(
                        lines_after, lines_before,
                        "{what} as {role}: refused, no line"
                    );
                }
                (allowed, result) => panic!("{what} as {role}: allowed {allowed}, got {result:?}"),
            }
            // A refusal changed nothing.
            if !allowed {
                assert_eq!(
                    batch_status(&app, batch).await,
                    BatchStatus::AwaitingApproval
                );
                assert_eq!(app.store.hold().await.unwrap(), None, "{what}");
            }
        }
    }
}
