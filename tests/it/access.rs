//! Who may do what, through the real command-line entry point: a few commands as
//! each kind of operator, allowed or refused in the CLI's words, and operators'
//! permissions granted, revoked and kept manageable. The full matrix of every
//! operation and role runs against the application itself (`app.rs`).

use clap::Parser;
use herald::cli::{self, Cli};
use herald::compose::{self, Content};
use herald::domain::access::Permission;
use herald::domain::{Audience, Reach};
use herald::store::AuditFilter;

use crate::conformance;
use crate::helpers::{TestApp, now};

conformance!(
    the_command_line_allows_what_a_role_may_and_says_how_to_get_the_rest,
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

/// The whole matrix runs against the application (`app.rs`); here, a few rows through
/// the command line: what it allows, and a refusal in its own words, with how to get
/// the permission, and nothing changed.
async fn the_command_line_allows_what_a_role_may_and_says_how_to_get_the_rest(app: TestApp) {
    setup(&app).await;
    let (batch, _) = fresh_batch(&app).await;
    let before = audit_lines(&app).await;
    let code = run(
        &app,
        &["wallet", "top-up", "10", "--note", "FV 1", "--as", "kasia"],
    )
    .await
    .unwrap();
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    assert_eq!(audit_lines(&app).await, before + 1, "the top-up is audited");

    let before = audit_lines(&app).await;
    let err = run(&app, &["approve", &batch, "--as", "tomek"])
        .await
        .unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("tomek (role teacher) may not"), "{err}");
    assert!(
        err.contains("herald operators grant tomek approve --as LOGIN"),
        "the CLI says how: {err}"
    );
    let err = run(
        &app,
        &[
            "send",
            "--to",
            "st-4001",
            "--subject",
            "S",
            "--body",
            "B",
            "--as",
            "tomek",
        ],
    )
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("tomek may send only to the groups"),
        "{err:#}"
    );
    assert_eq!(audit_lines(&app).await, before, "refusals change nothing");
    let batches = app.store.batches(None).await.unwrap();
    assert!(
        batches
            .iter()
            .all(|b| b.status == herald::domain::BatchStatus::AwaitingApproval)
    );
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
