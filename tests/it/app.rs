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
    approving_some_messages_names_the_whole_batch_and_sending_them_changes_nothing,
    an_audit_line_never_commits_without_its_change_nor_a_change_without_its_line,
    the_permission_matrix_allows_and_refuses_each_operation_per_role,
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
    let shown = herald.batch_view(&owner, batch).await.unwrap();
    assert_eq!(
        shown.version,
        herald.batch_view(&owner, batch).await.unwrap().version
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
    let edited = herald.batch_view(&owner, batch).await.unwrap();
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
    let cancelled = herald.batch_view(&owner, batch).await.unwrap();
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
    let judged = herald.batch_view(&owner, batch).await.unwrap();
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
    let judged = herald.batch_view(&owner, batch).await.unwrap();

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

async fn approving_some_messages_names_the_whole_batch_and_sending_them_changes_nothing(
    app: TestApp,
) {
    let (school, _) = herald::demo::school(now().date_naive());
    let path = app.write("school.json", &school.to_string());
    assert!(!app.import(&path, now()).await.has_errors());
    let batch = awaiting_batch(&app).await;
    let herald = app.app_at(now());
    let owner = Actor::operator(OWNER);
    let waiting = awaiting(&app, batch).await;
    let (first, second) = (waiting[0].id, waiting[1].id);
    // `outbox show` shows the whole batch; approving one message names that version.
    let shown = herald.batch_view(&owner, batch).await.unwrap();
    let taken = herald
        .decide(
            &owner,
            batch,
            &[first],
            Decision::Approve,
            Some(&shown.version),
        )
        .await
        .unwrap();
    assert_eq!(taken.messages, 1);
    // That decision changed what the rest of the batch is: the old version is stale.
    let err = herald
        .decide(
            &owner,
            batch,
            &[second],
            Decision::Approve,
            Some(&shown.version),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Conflict(_)), "{err:?}");
    // A decided message going out makes neither the version nor the stored state
    // stale: a decision no longer concerns it.
    let now_shown = herald.batch_view(&owner, batch).await.unwrap();
    let state = app.store.batch_state(batch).await.unwrap().unwrap();
    let sent = format!(
        "UPDATE messages SET status = 'sent', sent_at = created_at, \
         updated_at = created_at WHERE id = {}",
        first.0
    );
    app.execute_raw(&sent, &sent).await;
    assert_eq!(
        herald.batch_view(&owner, batch).await.unwrap().version,
        now_shown.version
    );
    assert_eq!(app.store.batch_state(batch).await.unwrap().unwrap(), state);
    let taken = herald
        .decide(
            &owner,
            batch,
            &[second],
            Decision::Approve,
            Some(&now_shown.version),
        )
        .await
        .unwrap();
    assert_eq!(taken.messages, 1);
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
    let view = herald.batch_view(&owner, batch).await.unwrap();
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

/// Every operation a person can do, as each role: allowed with one audit line (or,
/// for a dry run, with none), or refused naming what it needs, with nothing changed.
async fn the_permission_matrix_allows_and_refuses_each_operation_per_role(app: TestApp) {
    app.import_examples(now()).await;
    app.operator_with("boss", "owner", &[]).await;
    let accountant = herald::domain::access::RoleDef {
        name: "accountant".into(),
        description: "pays the SMS invoices".into(),
        builtin: false,
        permissions: [Permission::TopUp, Permission::View].into_iter().collect(),
    };
    // The birthday rule on, so that running it by hand writes something.
    let mut settings = app.settings.clone();
    settings.rules.birthday.enabled = true;
    settings.rules.birthday.template = "birthday".into();
    let herald = herald::app::App::new(
        std::sync::Arc::clone(&app.store),
        std::sync::Arc::new(settings),
        std::sync::Arc::new(herald::clock::FixedClock::new(now())),
    );
    let boss = Actor::operator("boss");
    herald.save_role(&boss, &accountant).await.unwrap();
    let birthday = herald::templates::Variant {
        name: "birthday".into(),
        locale: "pl".into(),
        channel: herald::domain::Channel::Email,
        subject: Some("Sto lat".into()),
        body: "Sto lat, {{ recipient.first_name }}!".into(),
        html: None,
    };
    herald.save_template(&boss, &birthday).await.unwrap();
    for (login, role) in &ROLES[1..] {
        let teacher = (*role == "teacher").then(|| "t-3001".to_owned());
        let request = herald::app::OperatorRequest {
            login: (*login).into(),
            name: None,
            role: (*role).into(),
            teacher,
        };
        herald.add_operator(Some(&boss), &request).await.unwrap();
    }
    let csv = app.write(
        "recipients.csv",
        "external_id,role,name\ns-9001,student,Nowa Uczennica\n",
    );
    let day = |s: &str| s.parse().unwrap();
    let text =
        |audience: Audience, channel: herald::domain::ChannelChoice| herald::app::SendRequest {
            audience,
            reach: Reach::Both,
            channel,
            content: herald::app::SendContent::Text {
                subject: Some("S".into()),
                body: "B".into(),
                html: None,
            },
            transliterate: false,
        };
    use herald::domain::ChannelChoice::{Email, Sms};
    // (what, allowed for owner, secretary, teacher, accountant)
    let rows: Vec<(&str, [bool; 4])> = vec![
        (
            "send to a group the teacher teaches",
            [true, true, true, false],
        ),
        ("send to all groups", [true, true, false, false]),
        (
            "send to someone outside the teacher's groups",
            [true, true, false, false],
        ),
        ("dry run", [true, true, true, false]),
        (
            "notify a student of the teacher's group",
            [true, true, true, false],
        ),
        ("approve", [true, true, false, false]),
        ("reject", [true, true, false, false]),
        ("cancel someone else's batch", [true, true, false, false]),
        ("edit someone else's batch", [true, true, false, false]),
        ("cancel a message", [true, true, false, false]),
        ("resend a failed message", [true, true, false, false]),
        ("top up", [true, true, false, true]),
        ("hold on", [true, true, false, false]),
        ("hold off", [true, true, false, false]),
        ("add a holiday", [true, true, false, false]),
        ("remove a holiday", [true, true, false, false]),
        ("save a template", [true, true, false, false]),
        ("import", [true, true, false, false]),
        ("run the rules", [true, true, false, false]),
        ("add an operator", [true, false, false, false]),
        ("set a role", [true, false, false, false]),
        ("grant a permission", [true, false, false, false]),
        ("revoke a permission", [true, false, false, false]),
        ("add a role", [true, false, false, false]),
        ("create an API token", [true, false, false, false]),
        ("revoke an API token", [true, false, false, false]),
    ];
    let mut n = 0;
    for (what, expected) in &rows {
        for ((login, role), allowed) in ROLES.iter().zip(expected) {
            n += 1;
            let actor = Actor::operator(*login);
            let batch = awaiting_batch(&app).await;
            let message = awaiting(&app, batch).await[0].id;
            let holiday = herald
                .add_holiday(&boss, "Day", day("2099-05-02"), day("2099-05-02"))
                .await
                .unwrap();
            // The hold rows need the switch the other way round to change anything.
            if *what == "resend a failed message" {
                let failed = format!(
                    "UPDATE messages SET status = 'failed' WHERE id = {}",
                    message.0
                );
                app.execute_raw(&failed, &failed).await;
            }
            if *what == "revoke an API token" {
                herald
                    .create_token(&boss, &format!("token{n}"), "anna")
                    .await
                    .unwrap();
            }
            let hold = (*what == "hold off").then_some("test");
            herald.set_hold(&boss, hold).await.unwrap();
            let before = app
                .store
                .audit_log(&AuditFilter::default())
                .await
                .unwrap()
                .len();
            let result: Result<(), AppError> = match *what {
                "send to a group the teacher teaches" => herald
                    .send(&actor, &text(Audience::Group("g-1a".into()), Email), false)
                    .await
                    .map(drop),
                "send to all groups" => herald
                    .send(&actor, &text(Audience::AllGroups, Email), false)
                    .await
                    .map(drop),
                "send to someone outside the teacher's groups" => herald
                    .send(
                        &actor,
                        &text(Audience::Recipient("st-4001".into()), Email),
                        false,
                    )
                    .await
                    .map(drop),
                "dry run" => herald
                    .send(&actor, &text(Audience::Group("g-3c".into()), Sms), true)
                    .await
                    .map(drop),
                "notify a student of the teacher's group" => herald
                    .notify_text(
                        &actor,
                        "s-1001",
                        herald::domain::Channel::Email,
                        Some("S"),
                        "B",
                        false,
                    )
                    .await
                    .map(drop),
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
                "resend a failed message" => herald
                    .act_on_message(&actor, MessageId(message.0), MessageAction::Resend)
                    .await
                    .map(drop),
                "top up" => herald
                    .top_up(&actor, 10, &format!("FV {n}"))
                    .await
                    .map(drop),
                "hold on" => herald
                    .set_hold(&actor, Some(&format!("incident {n}")))
                    .await
                    .map(drop),
                "hold off" => herald.set_hold(&actor, None).await.map(drop),
                "add a holiday" => herald
                    .add_holiday(
                        &actor,
                        &format!("Day {n}"),
                        day("2099-05-03"),
                        day("2099-05-03"),
                    )
                    .await
                    .map(drop),
                "remove a holiday" => herald.remove_holiday(&actor, holiday.id.unwrap()).await,
                "save a template" => herald
                    .save_template(
                        &actor,
                        &herald::templates::Variant {
                            name: format!("t{n}"),
                            locale: "pl".into(),
                            channel: herald::domain::Channel::Email,
                            subject: Some("S".into()),
                            body: "Hi {{ recipient.name }}".into(),
                            html: None,
                        },
                    )
                    .await
                    .map(drop),
                "import" => herald.import_file(&actor, &csv, None).await.map(drop),
                "run the rules" => herald
                    .run_rules(&actor, Some(herald::rules::Rule::Birthday), None)
                    .await
                    .map(drop),
                "add an operator" => herald
                    .add_operator(
                        Some(&actor),
                        &herald::app::OperatorRequest {
                            login: format!("new{n}"),
                            name: None,
                            role: "teacher".into(),
                            teacher: None,
                        },
                    )
                    .await
                    .map(drop),
                "set a role" => {
                    let new_role = if n % 2 == 0 { "secretary" } else { "teacher" };
                    herald.set_role(&actor, "kasia", new_role).await.map(drop)
                }
                "grant a permission" => herald
                    .change_permissions(&actor, "tomek", &[Permission::TopUp], true)
                    .await
                    .map(drop),
                "revoke a permission" => herald
                    .change_permissions(&actor, "anna", &[Permission::TopUp], false)
                    .await
                    .map(drop),
                "add a role" => {
                    herald
                        .save_role(
                            &actor,
                            &herald::domain::access::RoleDef {
                                name: format!("r{n}"),
                                description: "x".into(),
                                builtin: false,
                                permissions: [Permission::View].into_iter().collect(),
                            },
                        )
                        .await
                }
                "create an API token" => herald
                    .create_token(&actor, &format!("new-token{n}"), "anna")
                    .await
                    .map(drop),
                "revoke an API token" => herald.revoke_token(&actor, &format!("token{n}")).await,
                other => unreachable!("{other}"),
            };
            let after = app
                .store
                .audit_log(&AuditFilter::default())
                .await
                .unwrap()
                .len();
            match result {
                Ok(()) if *allowed => {
                    if *what == "dry run" {
                        assert_eq!(after, before, "a dry run changes nothing");
                    } else {
                        assert!(after > before, "{what} as {role}: no audit line");
                    }
                }
                Err(AppError::Forbidden { login: who, .. }) if !allowed => {
                    assert_eq!(who, *login, "{what}");
                    assert_eq!(after, before, "{what} as {role}: a refusal changed the log");
                }
                Err(AppError::OutsideGroups { login: who, .. }) if !allowed => {
                    assert_eq!(who, *login, "{what}");
                    assert_eq!(after, before, "{what} as {role}: a refusal changed the log");
                }
                other => panic!("{what} as {role}: allowed {allowed}, got {other:?}"),
            }
            if !allowed {
                assert_eq!(
                    batch_status(&app, batch).await,
                    BatchStatus::AwaitingApproval
                );
            }
        }
    }
    // The refused imports wrote no recipient; the allowed ones wrote s-9001 once.
    assert!(app.store.recipient("s-9001").await.unwrap().is_some());
}
