//! Who may do what: every command that changes something, run through the real
//! command-line entry point as each role, allowed or refused; a refusal changes
//! nothing and says which permission is missing.

use clap::Parser;
use herald::cli::{self, Cli};
use herald::compose::{self, Content};
use herald::domain::access::Permission;
use herald::domain::{Audience, Reach};
use herald::store::AuditFilter;

use crate::conformance;
use crate::helpers::{TestApp, audit_line, now};
use herald::domain::audit::AuditAction;

conformance!(
    the_permission_matrix_allows_and_refuses_each_command_per_role,
    permissions_are_granted_and_revoked_and_the_last_manager_is_kept,
);

/// The roles under test, in the order of each row's expectations.
const ROLES: [(&str, &str); 4] = [
    ("boss", "owner"),
    ("anna", "secretary"),
    ("tomek", "teacher"),
    ("kasia", "accountant"),
];

async fn setup(app: &TestApp) {
    app.import_examples(now()).await;
    app.operator_with("boss", "owner", &[]).await;
    // A role of the school's own, added through the CLI like a school would.
    run(
        app,
        &[
            "operators",
            "add-role",
            "accountant",
            "--description",
            "pays the SMS invoices",
            "--permission",
            "top_up",
            "--permission",
            "view",
            "--as",
            "boss",
        ],
    )
    .await
    .unwrap();
    for (login, role) in &ROLES[1..] {
        let mut args = vec!["operators", "add", login, "--role", role, "--as", "boss"];
        if *role == "teacher" {
            // Barbara Malinowska teaches g-1a and g-3c.
            args.extend(["--teacher", "t-3001"]);
        }
        run(app, &args).await.unwrap();
    }
}

/// Runs `herald ARGS` in-process against the test's database.
async fn run(app: &TestApp, args: &[&str]) -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::try_parse_from(std::iter::once("herald").chain(args.iter().copied()))?;
    let mut settings = app.settings.clone();
    settings.email.transport = herald::config::EmailTransport::File {
        dir: app.path("outbox"),
    };
    cli::run(cli, settings).await
}

/// A fresh batch awaiting approval, composed by the owner; its id and a message id.
async fn fresh_batch(app: &TestApp) -> (String, String) {
    let owner = app.store.operator("boss").await.unwrap().unwrap();
    let content = Content::email("Trip", "On Friday.").unwrap();
    let send = compose::compose_send(
        &*app.store,
        &app.settings,
        &owner,
        &Audience::Group("g-1a".into()),
        Reach::Both,
        &content,
    )
    .await
    .unwrap();
    let id = app.store_send(&send, now()).await;
    let messages = app
        .store
        .messages(&herald::store::MessageFilter {
            batch: Some(id),
            ..Default::default()
        })
        .await
        .unwrap();
    let waiting = messages
        .iter()
        .find(|m| m.status == herald::domain::MessageStatus::AwaitingApproval)
        .expect("Anna Nowak has an address");
    (id.0.to_string(), waiting.id.0.to_string())
}

async fn audit_lines(app: &TestApp) -> usize {
    app.store
        .audit_log(&AuditFilter::default())
        .await
        .unwrap()
        .len()
}

async fn the_permission_matrix_allows_and_refuses_each_command_per_role(app: TestApp) {
    setup(&app).await;
    let csv = app.write(
        "recipients.csv",
        "external_id,role,name\ns-9001,student,Nowa Uczennica\n",
    );
    let csv = csv.to_str().unwrap().to_owned();
    // Each row: the command (with {batch}, {message} and {n} filled in per attempt)
    // and whether owner, secretary, teacher and accountant may run it.
    let rows: Vec<(&str, Vec<&str>, [bool; 4])> = vec![
        (
            "send to a group the teacher teaches",
            vec!["send", "--group", "g-1a", "--subject", "S", "--body", "B"],
            [true, true, true, false],
        ),
        (
            "send to all groups",
            vec!["send", "--all-groups", "--subject", "S", "--body", "B"],
            [true, true, false, false],
        ),
        (
            "send to someone outside the teacher's groups",
            vec!["send", "--to", "st-4001", "--subject", "S", "--body", "B"],
            [true, true, false, false],
        ),
        (
            "dry run",
            vec![
                "send",
                "--group",
                "g-3c",
                "--body",
                "B",
                "--channel",
                "sms",
                "--dry-run",
            ],
            [true, true, true, false],
        ),
        (
            "notify a student of the teacher's group",
            vec!["notify", "s-1001", "--subject", "S", "--body", "B"],
            [true, true, true, false],
        ),
        (
            "approve",
            vec!["approve", "{batch}"],
            [true, true, false, false],
        ),
        (
            "reject",
            vec!["reject", "{batch}", "--reason", "no"],
            [true, true, false, false],
        ),
        (
            "cancel someone else's batch",
            vec!["outbox", "cancel", "{batch}"],
            [true, true, false, false],
        ),
        (
            "edit someone else's batch",
            vec!["outbox", "edit", "{batch}", "--body", "New text"],
            [true, true, false, false],
        ),
        (
            "cancel a message",
            vec!["cancel", "{message}"],
            [true, true, false, false],
        ),
        (
            "top up",
            vec!["wallet", "top-up", "10", "--note", "FV {n}"],
            [true, true, false, true],
        ),
        (
            "hold on",
            vec!["hold", "on", "--reason", "incident {n}"],
            [true, true, false, false],
        ),
        ("hold off", vec!["hold", "off"], [true, true, false, false]),
        (
            "add a holiday",
            vec!["holidays", "add", "Day {n}", "2099-05-02"],
            [true, true, false, false],
        ),
        (
            "save a template",
            vec![
                "templates",
                "add",
                "t{n}",
                "--subject",
                "S",
                "--body",
                "Hi {{ recipient.name }}",
            ],
            [true, true, false, false],
        ),
        ("import", vec!["import", &csv], [true, true, false, false]),
        (
            "add an operator",
            vec!["operators", "add", "new{n}", "--role", "teacher"],
            [true, false, false, false],
        ),
        (
            "grant a permission",
            vec!["operators", "grant", "tomek", "top_up"],
            [true, false, false, false],
        ),
        (
            "add a role",
            vec![
                "operators",
                "add-role",
                "r{n}",
                "--description",
                "x",
                "--permission",
                "view",
            ],
            [true, false, false, false],
        ),
    ];
    let mut n = 0;
    for (what, template, expected) in &rows {
        for ((login, role), allowed) in ROLES.iter().zip(expected) {
            n += 1;
            let (batch, message) = fresh_batch(&app).await;
            // The hold rows need the switch the other way round to change anything.
            let hold = herald::store::Hold {
                since: now(),
                reason: "test".into(),
                by: "boss".into(),
            };
            match *what {
                "hold on" => app
                    .store
                    .set_hold(None, &audit_line("owner", AuditAction::HoldOff, now()))
                    .await
                    .map(drop)
                    .unwrap(),
                "hold off" => app
                    .store
                    .set_hold(
                        Some(&hold),
                        &audit_line("owner", AuditAction::HoldOn, now()),
                    )
                    .await
                    .map(drop)
                    .unwrap(),
                _ => {}
            }
            let args: Vec<String> = template
                .iter()
                .map(|a| {
                    a.replace("{batch}", &batch)
                        .replace("{message}", &message)
                        .replace("{n}", &n.to_string())
                })
                .chain(["--as".to_owned(), (*login).to_owned()])
                .collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let before = audit_lines(&app).await;
            let result = run(&app, &args).await;
            let after = audit_lines(&app).await;
            if *allowed {
                let code = result.unwrap_or_else(|e| panic!("{what} as {role}: refused: {e:#}"));
                assert_eq!(code, std::process::ExitCode::SUCCESS, "{what} as {role}");
                // A dry run is the one allowed command that changes nothing.
                if !what.starts_with("dry run") {
                    assert!(after > before, "{what} as {role}: no audit line");
                }
            } else {
                let err = match result {
                    Ok(_) => panic!("{what} as {role}: allowed, expected a refusal"),
                    Err(e) => format!("{e:#}"),
                };
                assert!(
                    err.contains(&format!("{login} (role {role}) may not"))
                        || err.contains(&format!("{login} may send only to the groups")),
                    "{what} as {role}: {err}"
                );
                assert_eq!(after, before, "{what} as {role}: a refusal changed the log");
            }
        }
    }
    // The refused import wrote no recipient; the allowed ones wrote s-9001 once.
    assert!(app.store.recipient("s-9001").await.unwrap().is_some());
}

async fn permissions_are_granted_and_revoked_and_the_last_manager_is_kept(app: TestApp) {
    setup(&app).await;
    let tomek = || async { app.store.operator("tomek").await.unwrap().unwrap() };
    assert!(!tomek().await.may(Permission::SendWithoutApproval));
    run(
        &app,
        &[
            "operators",
            "grant",
            "tomek",
            "send_without_approval",
            "--as",
            "boss",
        ],
    )
    .await
    .unwrap();
    let t = tomek().await;
    assert!(t.may(Permission::SendWithoutApproval));
    assert!(t.granted.contains(&Permission::SendWithoutApproval));
    // His sends to his group now skip the outbox.
    run(
        &app,
        &[
            "send",
            "--group",
            "g-1a",
            "--subject",
            "S",
            "--body",
            "B",
            "--as",
            "tomek",
        ],
    )
    .await
    .unwrap();
    let batches = app.store.batches(None).await.unwrap();
    assert_eq!(
        batches[0].status,
        herald::domain::BatchStatus::Approved,
        "{batches:?}"
    );
    // Revoking a permission his role gives is an exception the other way.
    run(
        &app,
        &["operators", "revoke", "tomek", "send", "--as", "boss"],
    )
    .await
    .unwrap();
    let t = tomek().await;
    assert!(!t.may(Permission::Send));
    assert!(t.revoked.contains(&Permission::Send));
    // A new role changes his permissions, keeping the exceptions.
    run(
        &app,
        &[
            "operators",
            "set-role",
            "tomek",
            "secretary",
            "--as",
            "boss",
        ],
    )
    .await
    .unwrap();
    let t = tomek().await;
    assert_eq!(t.role, "secretary");
    assert!(t.may(Permission::Approve));
    assert!(!t.may(Permission::Send));
    // The only owner may not take away their own way back in.
    let err = run(
        &app,
        &[
            "operators",
            "revoke",
            "boss",
            "manage_operators",
            "--as",
            "boss",
        ],
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("last operator who may manage operators"));
    let err = run(
        &app,
        &["operators", "set-role", "boss", "teacher", "--as", "boss"],
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("last operator who may manage operators"));
    // A second first owner is refused; so is an unknown role and a bad login.
    let err = run(&app, &["operators", "add", "eve", "--role", "owner"])
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("--as is required"), "{err:#}");
    let err = run(
        &app,
        &[
            "operators",
            "add",
            "eve",
            "--role",
            "janitor",
            "--as",
            "boss",
        ],
    )
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("--role \"janitor\": no such role"),
        "{err:#}"
    );
    let err = run(
        &app,
        &[
            "operators",
            "add",
            "eve\nroot",
            "--role",
            "teacher",
            "--as",
            "boss",
        ],
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("login"), "{err:#}");
    let err = run(
        &app,
        &[
            "operators",
            "add-role",
            "owner",
            "--description",
            "x",
            "--as",
            "boss",
        ],
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("built-in role"), "{err:#}");
    // Every change is in the audit log, written with it.
    let log = app
        .store
        .audit_log(&AuditFilter {
            actor: Some("boss".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = log.iter().map(|l| l.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "operator_role",
            "revoke",
            "grant",
            "operator_add",
            "operator_add",
            "operator_add",
            "role_save"
        ]
    );
}
