//! The `herald` binary as people run it: configuration errors at start-up, exit
//! codes, and the demo.

use std::path::Path;
use std::process::{Command, Output};

fn herald(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    herald_command(dir, args, env)
        .output()
        .expect("the herald binary runs")
}

/// `herald ARGS` in `dir` with only the environment `env` adds to the test's.
fn herald_command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.current_dir(dir).args(args);
    // The developer's own overrides must not leak into the test.
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("HERALD_")) {
        cmd.env_remove(key);
    }
    cmd.env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `cmd` with its standard output a pipe whose reader is gone before it writes.
fn with_reader_gone(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Adds the installation's first owner, `admin`, then each `(login, role, extra)` as
/// admin, panicking on a refusal.
fn add_operators(dir: &Path, env: &[(&str, &str)], others: &[(&str, &str, &[&str])]) {
    let out = herald(dir, &["operators", "add", "admin", "--role", "owner"], env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for (login, role, extra) in others {
        let mut args = vec!["operators", "add", login, "--role", role, "--as", "admin"];
        args.extend_from_slice(extra);
        let out = herald(dir, &args, env);
        assert!(out.status.success(), "{login}: {}", text(&out.stderr));
    }
}

#[test]
fn a_bad_config_value_stops_start_up_naming_the_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("herald.toml"),
        "[school]\ntime_zone = \"Mars/Olympus_Mons\"\n\n[send_window]\nmonday = \"8-20\"\n",
    )
    .unwrap();
    let out = herald(dir.path(), &["--config", "herald.toml", "recipients"], &[]);
    assert_eq!(out.status.code(), Some(78), "EX_CONFIG");
    let err = text(&out.stderr);
    assert!(
        err.contains("school.time_zone = \"Mars/Olympus_Mons\""),
        "{err}"
    );
    assert!(err.contains("IANA time zone"), "{err}");
    assert!(err.contains("send_window.monday = \"8-20\""), "{err}");
    assert!(
        !dir.path().join("herald.db").exists(),
        "nothing was created"
    );
}

#[test]
fn an_unknown_config_key_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("herald.toml"),
        "[school]\ntimezone = \"UTC\"\n",
    )
    .unwrap();
    let out = herald(dir.path(), &["--config", "herald.toml", "groups"], &[]);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stderr).contains("timezone"),
        "{}",
        text(&out.stderr)
    );

    let out = herald(
        dir.path(),
        &["groups"],
        &[("HERALD__DISPATCH__SCHEDULE", "every five minutes")],
    );
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stderr).contains("dispatch.schedule"),
        "{}",
        text(&out.stderr)
    );
}

/// A file over `import.max_file_mib` is refused before it is read, naming the limit,
/// and nothing is imported.
#[test]
fn an_import_over_the_size_limit_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("external_id,role,name\n");
    for i in 0..30_000 {
        csv.push_str(&format!(
            "s-{i},student,Uczeń numer {i} z dość długim nazwiskiem\n"
        ));
    }
    assert!(csv.len() > 1024 * 1024);
    std::fs::write(dir.path().join("recipients.csv"), csv).unwrap();
    let env = [
        ("HERALD__DATABASE__URL", "sqlite://school.db"),
        ("HERALD__IMPORT__MAX_FILE_MIB", "1"),
    ];
    add_operators(dir.path(), &env, &[]);
    let out = herald(
        dir.path(),
        &["import", "recipients.csv", "--as", "admin"],
        &env,
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "recipients.csv: the file is over the limit of 1 MiB (import.max_file_mib; it has \
             at least 2 MiB)"
        ),
        "{err}"
    );
    let out = herald(dir.path(), &["recipients", "--json"], &env);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 0, "nothing imported");
}

#[test]
fn import_exits_non_zero_when_a_row_failed_and_keeps_the_good_rows() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("recipients.csv"),
        "external_id,role,name\ns-1,student,Zofia Nowak\ns-2,parent,Jan Nowak\n",
    )
    .unwrap();
    let db = [("HERALD__DATABASE__URL", "sqlite://school.db")];
    add_operators(dir.path(), &db, &[]);
    let out = herald(
        dir.path(),
        &["import", "recipients.csv", "--as", "admin"],
        &db,
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("recipients.csv:3: recipients role = \"parent\""),
        "{stdout}"
    );
    let out = herald(dir.path(), &["recipients", "--json"], &db);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["external_id"], "s-1");
    assert_eq!(list[0]["channels"]["email"]["eligible"], false);
    assert_eq!(
        list[0]["channels"]["email"]["reasons"][0]["code"],
        "missing_email"
    );
    // In a JSON document the record is named by its section and index too.
    std::fs::write(
        dir.path().join("school.json"),
        "{\"recipients\": [\n  {\"external_id\": \"s-3\", \"role\": \"student\", \"name\": \"Ola\"},\n  \
         {\"external_id\": \"s-4\", \"role\": \"janitor\", \"name\": \"Ewa\"}\n]}\n",
    )
    .unwrap();
    let out = herald(dir.path(), &["import", "school.json", "--as", "admin"], &db);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("school.json:3: recipients[1] role = \"janitor\""),
        "{stdout}"
    );
}

#[test]
fn without_migrate_on_start_an_unmigrated_database_is_refused_until_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("HERALD__DATABASE__URL", "sqlite://state/herald.db"),
        ("HERALD__DATABASE__MIGRATE_ON_START", "false"),
    ];
    let out = herald(dir.path(), &["groups"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("herald migrate"),
        "{}",
        text(&out.stderr)
    );
    let out = herald(dir.path(), &["migrate"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .count();
    assert!(
        text(&out.stdout).contains(&format!("Applied {migrations} migration")),
        "{}",
        text(&out.stdout)
    );
    let out = herald(dir.path(), &["groups"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn holidays_can_be_added_listed_and_removed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = [("HERALD__DATABASE__URL", "sqlite://h.db")];
    add_operators(dir.path(), &db, &[("tomek", "teacher", &[])]);
    let add = |as_: &str| {
        herald(
            dir.path(),
            &[
                "holidays",
                "add",
                "Christmas break",
                "2099-12-23",
                "2099-12-31",
                "--as",
                as_,
            ],
            &db,
        )
    };
    let out = add("tomek");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("tomek (role teacher) may not change holidays"),
        "{}",
        text(&out.stderr)
    );
    let out = add("admin");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = herald(
        dir.path(),
        &[
            "holidays",
            "add",
            "Backwards",
            "2099-12-23",
            "2099-12-01",
            "--as",
            "admin",
        ],
        &db,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("before the first day"),
        "{}",
        text(&out.stderr)
    );
    let out = herald(dir.path(), &["holidays", "list", "--json"], &db);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let id = list[0]["id"].to_string();
    let remove = || {
        herald(
            dir.path(),
            &["holidays", "remove", &id, "--as", "admin"],
            &db,
        )
    };
    let out = remove();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = remove();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn the_demo_creates_a_school_and_prints_who_can_be_reached_and_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let out = herald(dir.path(), &["demo"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(dir.path().join("herald-demo/herald.db").exists());
    assert!(dir.path().join("herald-demo/school.json").exists());
    assert!(stdout.contains("30 students"), "{stdout}");
    assert!(stdout.contains("Who can be reached"), "{stdout}");
    for code in [
        "missing_email",
        "invalid_email",
        "missing_phone",
        "invalid_phone",
        "phone_not_sms_enabled",
        "no_consent",
    ] {
        assert!(stdout.contains(code), "the demo shows {code}:\n{stdout}");
    }
    assert!(stdout.contains("\"kowalczyk@gmail\""), "{stdout}");
    assert!(stdout.contains("Christmas break"), "{stdout}");
    // Closed when done, so the file alone holds everything.
    assert!(!dir.path().join("herald-demo/herald.db-wal").exists());

    // Read by a reader that goes away (`| head`): the command ends quietly.
    let out = with_reader_gone(herald_command(
        dir.path(),
        &["recipients", "--json"],
        &[("HERALD__DATABASE__URL", "sqlite://herald-demo/herald.db")],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "nothing said, no panic");
    // A command whose work follows its first lines does all of it all the same: the
    // demo prints its school before it sends, runs its rules and dispatches.
    let out = with_reader_gone(herald_command(
        dir.path(),
        &["demo", "--dir", "piped", "--at", "2026-11-24T10:00"],
        &[],
    ));
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let sent = std::fs::read_dir(dir.path().join("piped/outbox"))
        .unwrap()
        .count();
    assert!(sent > 0, "the demo's pass went on: {sent} emails");
    assert!(!dir.path().join("piped/herald.db-wal").exists(), "closed");
    // Nor does a standard error whose reader is gone (`2>&1 | head`) make it panic:
    // the import's complaint goes nowhere and its exit code stays its own.
    std::fs::write(dir.path().join("unnamed.csv"), "a,b\n1,2\n").unwrap();
    let mut child = herald_command(
        dir.path(),
        &["import", "unnamed.csv", "--as", "demo-owner"],
        &[("HERALD__DATABASE__URL", "sqlite://herald-demo/herald.db")],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    drop((child.stdout.take(), child.stderr.take()));
    assert_eq!(
        child.wait().unwrap().code(),
        Some(1),
        "a failure, not a panic"
    );
    // Output that cannot be written for another reason fails the command, saying so.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = herald_command(
        dir.path(),
        &["recipients"],
        &[("HERALD__DATABASE__URL", "sqlite://herald-demo/herald.db")],
    )
    .stdout(full)
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("cannot write the output"), "{err}");
    assert_eq!(err.matches("cannot write").count(), 1, "said once: {err}");

    // A second run makes a new folder instead of touching the first; run in school
    // hours, the approved batch goes and lands as .eml files.
    let out = herald(dir.path(), &["demo", "--at", "2026-11-24T10:00"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(dir.path().join("herald-demo-2/herald.db").exists());
    // The periodic rules: a week before the instalments fall due, one family in
    // arrears (waiting for approval), and two birthdays.
    assert!(
        stdout.contains("instalment_due: 27 occurrence(s), 31 message(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("arrears: 1 occurrence(s), 2 message(s), waiting in the outbox"),
        "{stdout}"
    );
    assert!(stdout.contains("birthday: 2 occurrence(s)"), "{stdout}");
    assert!(
        stdout.contains(
            "One dispatch pass at Tue 24 Nov 10:00 (Europe/Warsaw): 61 sent, 4 held, 32 blocked"
        ),
        "{stdout}"
    );
    let eml = std::fs::read_dir(dir.path().join("herald-demo-2/outbox"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "eml")
        })
        .count();
    // 25 announcements and welcome, 25 reminders and one birthday greeting.
    assert_eq!(eml, 51);
    // The demo shows a dry run and the approver's summary before sending.
    assert!(stdout.contains("Dry run, nothing created"), "{stdout}");
    assert!(
        stdout.contains("The approver's view of the SMS batch"),
        "{stdout}"
    );
    assert!(
        stdout.contains("SMS cost:  14 segment(s) = 14 point(s); the wallet holds 10 — 4 short"),
        "{stdout}"
    );
    // The wallet covered ten SMS; the others wait for credit.
    assert!(stdout.contains("insufficient_sms_credit"), "{stdout}");
    let sms = std::fs::read_to_string(dir.path().join("herald-demo-2/sms.jsonl")).unwrap();
    assert_eq!(sms.lines().count(), 10);
    assert!(sms.contains("rodzicow"), "transliterated: {sms}");
    // Outside the window the batch is held and the demo says until when.
    let out = herald(
        dir.path(),
        &["demo", "--dir", "night", "--at", "2026-11-28T22:00"],
        &[],
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("1 sent, 63 held"), "{stdout}");
    // The birthday greeting cannot go on its day any more: skipped, with the reason.
    assert!(stdout.contains("1  expired (too_late"), "{stdout}");
    assert!(
        stdout.contains("The batch waits until Mon 30 Nov 08:00"),
        "{stdout}"
    );
    let out = herald(dir.path(), &["demo", "--dir", "herald-demo"], &[]);
    assert!(
        !out.status.success(),
        "an existing demo database is not overwritten"
    );
}

#[test]
fn herald_run_sends_a_system_message_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("HERALD__DATABASE__URL", "sqlite://state/herald.db"),
        ("HERALD__EMAIL__FILE__DIR", "outbox"),
        ("HERALD__DISPATCH__WAKE_POLL", "100ms"),
        ("HERALD__HTTP__LISTEN", "127.0.0.1:0"),
    ];
    let example = |name: &str| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/import")
            .join(name)
            .display()
            .to_string()
    };
    add_operators(dir.path(), &env, &[("platform", "secretary", &[])]);
    let out = herald(
        dir.path(),
        &["import", &example("school.json"), "--as", "admin"],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.current_dir(dir.path()).arg("run");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut daemon = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = herald(
        dir.path(),
        &[
            "notify",
            "gd-2001",
            "--subject",
            "Password reset",
            "--body",
            "Code 1234",
            "--as",
            "platform",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let started = std::time::Instant::now();
    let outbox = dir.path().join("outbox");
    while std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0) == 0
        && started.elapsed() < std::time::Duration::from_secs(10)
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read_dir(&outbox).unwrap().count(),
        1,
        "the daemon sent it"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = daemon.wait().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(daemon.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(status.success(), "exit {status:?}: {log}");
    assert!(log.contains("herald stopped"), "{log}");
    let out = herald(dir.path(), &["status", "--json"], &env);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["status"], "sent");
    assert_eq!(list[0]["kind"], "system");
    for key in [
        "id",
        "batch_id",
        "channel",
        "recipient_id",
        "reason",
        "created_at",
        "sent_at",
        "attempts",
    ] {
        assert!(list[0].get(key).is_some(), "status --json has {key}");
    }
}

#[test]
fn sms_info_prints_encoding_units_segments_and_cost() {
    let dir = tempfile::tempdir().unwrap();
    let out = herald(
        dir.path(),
        &["sms-info", "Zażółć gęślą jaźń", "--json"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        info,
        serde_json::json!({"encoding": "ucs2", "units": 17, "segments": 1, "cost": 1})
    );
    let long = "Zażółć gęślą jaźń. ".repeat(8);
    let out = herald(
        dir.path(),
        &["sms-info", &long, "--transliterate", "--json"],
        &[("HERALD__SMS__PRICE_PER_SEGMENT", "2")],
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        info,
        serde_json::json!({"encoding": "gsm7", "units": 152, "segments": 1, "cost": 2})
    );
}

#[test]
fn the_wallet_is_topped_up_by_an_operator_and_shown_with_its_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("HERALD__DATABASE__URL", "sqlite://w.db")];
    add_operators(
        dir.path(),
        &env,
        &[("anna", "secretary", &[]), ("piotr", "teacher", &[])],
    );
    let out = herald(
        dir.path(),
        &[
            "wallet",
            "top-up",
            "250",
            "--as",
            "anna",
            "--note",
            "FV 2026/11/3",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("the balance is 250"));
    let out = herald(
        dir.path(),
        &["wallet", "top-up", "5", "--as", "piotr", "--note", "x"],
        &env,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("piotr (role teacher) may not top up the wallet"),
        "{}",
        text(&out.stderr)
    );
    let out = herald(dir.path(), &["wallet", "--json"], &env);
    let wallet: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(wallet["balance"], 250);
    assert_eq!(wallet["reserved"], 0);
    assert_eq!(wallet["low_balance_threshold"], 100);
    assert_eq!(wallet["low"], false);
    assert_eq!(wallet["ledger"][0]["entry"], "top_up");
    assert_eq!(wallet["ledger"][0]["note"], "FV 2026/11/3");
    let out = herald(dir.path(), &["wallet"], &env);
    assert!(
        text(&out.stdout).contains("balance:   250 point(s)"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn every_change_by_a_person_lands_in_the_audit_log_and_the_hold_shows_in_status() {
    let dir = tempfile::tempdir().unwrap();
    let example = |name: &str| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/import")
            .join(name)
            .display()
            .to_string()
    };
    let env = [("HERALD__DATABASE__URL", "sqlite://a.db")];
    add_operators(dir.path(), &env, &[("anna", "secretary", &[])]);
    for file in [
        "recipients.csv",
        "groups.csv",
        "guardianships.csv",
        "memberships.csv",
        "contracts.csv",
    ] {
        assert!(
            herald(
                dir.path(),
                &["import", &example(file), "--as", "anna"],
                &env
            )
            .status
            .success()
        );
    }
    // A teacher: may write to the groups Barbara Malinowska (t-3001) teaches.
    let out = herald(
        dir.path(),
        &[
            "operators",
            "add",
            "tomek",
            "--role",
            "teacher",
            "--teacher",
            "t-3001",
            "--as",
            "admin",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let run = |args: &[&str]| {
        let out = herald(dir.path(), args, &env);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    run(&[
        "send",
        "--as",
        "tomek",
        "--group",
        "g-1a",
        "--reach",
        "guardians",
        "--subject",
        "Trip",
        "--body",
        "Friday",
    ]);
    run(&[
        "send",
        "--as",
        "tomek",
        "--group",
        "g-3c",
        "--subject",
        "Exam",
        "--body",
        "Monday",
    ]);
    run(&["approve", "1", "--as", "anna"]);
    run(&["reject", "2", "--as", "anna", "--reason", "wrong day"]);
    run(&["wallet", "top-up", "50", "--as", "anna", "--note", "FV 1"]);
    run(&[
        "notify",
        "t-3001",
        "--subject",
        "Reset",
        "--body",
        "Code 1",
        "--as",
        "anna",
    ]);
    run(&[
        "hold",
        "on",
        "--as",
        "anna",
        "--reason",
        "mail server trouble",
    ]);
    let status = run(&["status"]);
    assert!(status.contains("DISPATCH IS ON HOLD"), "{status}");
    assert!(status.contains("mail server trouble"), "{status}");
    assert!(run(&["hold"]).contains("ON HOLD"));
    // Refused: Tomek may not approve or switch the hold; nothing is logged for him then.
    let out = herald(dir.path(), &["hold", "off", "--as", "tomek"], &env);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("tomek (role teacher) may not switch the hold"),
        "{}",
        text(&out.stderr)
    );
    run(&["hold", "off", "--as", "anna"]);

    let log: serde_json::Value = serde_json::from_str(&run(&["audit", "--json"])).unwrap();
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "hold_off",
            "hold_on",
            "notify",
            "top_up",
            "reject",
            "approve",
            "send",
            "send",
            "operator_add",
            "import",
            "import",
            "import",
            "import",
            "import",
            "operator_add",
            "operator_add",
        ]
    );
    let approve = &log[5];
    assert_eq!(approve["actor"], "anna");
    assert_eq!(approve["subject"], "batch 1");
    assert_eq!(approve["details"]["seen"]["subject"], "Trip");
    assert_eq!(
        approve["details"]["seen"]["content_sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert_eq!(log[4]["details"]["reason"], "wrong day");
    let tomek: serde_json::Value =
        serde_json::from_str(&run(&["audit", "--actor", "tomek", "--json"])).unwrap();
    assert_eq!(tomek.as_array().unwrap().len(), 2);
}

#[test]
fn a_dry_run_shows_the_summary_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let school =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/import/school.json");
    let env = [("HERALD__DATABASE__URL", "sqlite://d.db")];
    add_operators(dir.path(), &env, &[("anna", "secretary", &[])]);
    assert!(
        herald(
            dir.path(),
            &["import", school.to_str().unwrap(), "--as", "anna"],
            &env
        )
        .status
        .success()
    );
    let count = || {
        let out = herald(dir.path(), &["status", "--summary", "--json"], &env);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c["count"].as_i64().unwrap())
            .sum::<i64>()
    };
    let before = count();
    let out = herald(
        dir.path(),
        &[
            "send",
            "--as",
            "anna",
            "--group",
            "g-1a",
            "--reach",
            "both",
            "--channel",
            "sms",
            "--body",
            "Zebranie w czwartek",
            "--transliterate",
            "--dry-run",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Dry run, nothing created"), "{stdout}");
    assert!(stdout.contains("Will go:"), "{stdout}");
    assert!(
        stdout.contains("SMS cost:  1 segment(s) = 1 point(s); the wallet holds 0 — 1 short"),
        "{stdout}"
    );
    assert!(stdout.contains("When:      after approval"), "{stdout}");
    assert_eq!(count(), before, "nothing was written");
    let audit = herald(dir.path(), &["audit", "--action", "send", "--json"], &env);
    assert_eq!(text(&audit.stdout).trim(), "[]");

    // The same send for real, then the approver's view.
    let out = herald(
        dir.path(),
        &[
            "send",
            "--as",
            "anna",
            "--group",
            "g-1a",
            "--reach",
            "both",
            "--channel",
            "sms",
            "--body",
            "Zebranie w czwartek",
            "--transliterate",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = herald(dir.path(), &["outbox", "show", "1"], &env);
    let shown = text(&out.stdout);
    assert!(shown.contains("| Zebranie w czwartek"), "{shown}");
    assert!(shown.contains("Blocked:   1 — missing_phone"), "{shown}");
    let out = herald(dir.path(), &["outbox", "show", "1", "--json"], &env);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["will_go"], 1);
    assert_eq!(v["summary"]["sms_cost"], 1);
    assert_eq!(v["content_sha256"].as_str().unwrap().len(), 64);
    let out = herald(dir.path(), &["outbox", "cancel", "1", "--as", "anna"], &env);
    assert!(
        text(&out.stdout).contains("1 unsent message(s) cancelled"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_template_with_an_unknown_variable_is_refused_at_save_and_a_good_one_previews_and_notifies() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("HERALD__DATABASE__URL", "sqlite://t.db")];
    add_operators(dir.path(), &env, &[("anna", "secretary", &[])]);
    let out = herald(
        dir.path(),
        &[
            "templates",
            "add",
            "closed",
            "--subject",
            "Closed",
            "--body",
            "Dear {{ recipent.name }}",
            "--as",
            "anna",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("recipent.name"), "{err}");
    assert!(err.contains("not a template variable"), "{err}");
    let out = herald(
        dir.path(),
        &[
            "templates",
            "add",
            "closed",
            "--subject",
            "Zamknięte {{ vars.day }}",
            "--body",
            "Dzień dobry {{ recipient.first_name }}, kwota {{ 1234.5 | money }}.",
            "--as",
            "anna",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = herald(
        dir.path(),
        &["templates", "preview", "closed", "--var", "day=jutro"],
        &env,
    );
    let shown = text(&out.stdout);
    assert!(shown.contains("Subject: Zamknięte jutro"), "{shown}");
    assert!(
        shown.contains("Dzień dobry Anna, kwota 1 234,50 zł."),
        "{shown}"
    );
    let out = herald(dir.path(), &["templates", "list", "--json"], &env);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["name"], "closed");
    // A notification from the template, rendered for its recipient.
    let recipients = crate::helpers::example("recipients.csv");
    let out = herald(
        dir.path(),
        &["import", recipients.to_str().unwrap(), "--as", "anna"],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = herald(
        dir.path(),
        &[
            "notify",
            "gd-2001",
            "--template",
            "closed",
            "--var",
            "day=jutro",
            "--as",
            "anna",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = herald(
        dir.path(),
        &["status", "--recipient", "gd-2001", "--json"],
        &env,
    );
    let shown = text(&out.stdout);
    assert!(shown.contains("Zamknięte jutro"), "{shown}");
    // A text and a template at once: refused before anything is written.
    let out = herald(
        dir.path(),
        &[
            "notify",
            "gd-2001",
            "--template",
            "closed",
            "--body",
            "x",
            "--as",
            "anna",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn rules_are_listed_run_on_demand_and_checked_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("HERALD__DATABASE__URL", "sqlite://r.db"),
        ("HERALD__RULES__BIRTHDAY__ENABLED", "true"),
        ("HERALD__RULES__BIRTHDAY__TEMPLATE", "birthday"),
    ];
    add_operators(dir.path(), &env, &[]);
    let school =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/import/school.json");
    let out = herald(
        dir.path(),
        &["import", school.to_str().unwrap(), "--as", "admin"],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Without its template the rule says what is missing.
    let run = |at: &str| {
        herald(
            dir.path(),
            &[
                "rules", "run", "--rule", "birthday", "--at", at, "--as", "admin",
            ],
            &env,
        )
    };
    let out = run("2025-11-26T08:00");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("there is no template \"birthday\" for email"),
        "{}",
        text(&out.stderr)
    );
    let out = herald(
        dir.path(),
        &[
            "templates",
            "add",
            "birthday",
            "--subject",
            "Sto lat",
            "--body",
            "Sto lat, {{ recipient.first_name }}!",
            "--as",
            "admin",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Zofia Nowak was born on 26 November 2014 (a year ago: runs are never in the
    // future).
    let out = run("2025-11-26T08:00");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("birthday: 1 new occurrence(s)"),
        "{}",
        text(&out.stdout)
    );
    let out = run("2025-11-26T09:00");
    assert!(
        text(&out.stdout).contains("birthday: 0 new occurrence(s), 0 message(s); 1 existed"),
        "{}",
        text(&out.stdout)
    );
    let out = herald(dir.path(), &["rules", "--json"], &env);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let birthday = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "birthday")
        .unwrap();
    assert_eq!(birthday["enabled"], true);
    assert_eq!(birthday["last_run"]["covered_through"], "2025-11-26");
    // A run in the future would hold the schedule back: refused.
    let out = run("2099-01-01T08:00");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("in the future"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(list[0]["rule"], "instalment_due");
    assert_eq!(list[0]["enabled"], false);

    let out = herald(
        dir.path(),
        &["rules"],
        &[
            ("HERALD__DATABASE__URL", "sqlite://r.db"),
            ("HERALD__RULES__ARREARS__REPEAT_EVERY_DAYS", "0"),
            ("HERALD__RULES__INSTALMENT_DUE__ENABLED", "true"),
        ],
    );
    assert_eq!(out.status.code(), Some(78));
    let err = text(&out.stderr);
    assert!(err.contains("rules.arrears.repeat_every_days"), "{err}");
    assert!(err.contains("rules.instalment_due.template"), "{err}");
}

#[test]
fn diagnose_and_doctor_answer_in_words_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("HERALD__DATABASE__URL", "sqlite://d.db"),
        ("HERALD__EMAIL__FILE__DIR", "outbox"),
    ];
    add_operators(dir.path(), &env, &[]);
    let school =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/import/school.json");
    let out = herald(
        dir.path(),
        &["import", school.to_str().unwrap(), "--as", "admin"],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = herald(dir.path(), &["diagnose", "600 100 200"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("Anna Nowak (guardian, gd-2001"), "{shown}");
    assert!(shown.contains("student: Zofia Nowak (s-1001)"), "{shown}");
    assert!(shown.contains("email: can be reached"), "{shown}");
    assert!(shown.contains("Dispatcher:"), "{shown}");
    assert!(shown.contains("no dispatch pass has run yet"), "{shown}");
    let out = herald(dir.path(), &["diagnose", "gd-2001", "--json"], &env);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["found"], "one");
    assert_eq!(v["recipient"]["external_id"], "gd-2001");
    assert_eq!(v["channels"][0]["channel"], "email");
    assert_eq!(v["channels"][0]["checks"][0]["code"], "email.present");
    assert_eq!(v["channels"][0]["checks"][0]["verdict"], "ok");
    let out = herald(dir.path(), &["diagnose", "nobody@example.pl"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("nobody matches"),
        "{}",
        text(&out.stderr)
    );
    let out = herald(dir.path(), &["diagnose", "--message", "42"], &env);
    assert_eq!(out.status.code(), Some(1));

    let out = herald(dir.path(), &["doctor", "--json"], &env);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let codes: Vec<&str> = checks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    for code in [
        "config.valid",
        "database.reachable",
        "email.transport",
        "sms.gateway",
        "window",
        "calendar.upcoming",
        "wallet",
        "dispatcher.last_pass",
    ] {
        assert!(codes.contains(&code), "{code}: {codes:?}");
    }
    assert!(
        !dir.path().join("outbox").exists(),
        "doctor writes nothing it does not remove"
    );
    // An SMTP server that is not there: an error and a failing exit.
    let out = herald(
        dir.path(),
        &["doctor"],
        &[
            ("HERALD__DATABASE__URL", "sqlite://d.db"),
            ("HERALD__EMAIL__TRANSPORT", "smtp"),
            ("HERALD__EMAIL__SMTP__HOST", "127.0.0.1"),
            ("HERALD__EMAIL__SMTP__PORT", "1"),
            ("HERALD__EMAIL__SMTP__TLS", "none"),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("ERROR"), "{}", text(&out.stdout));
}

#[test]
fn an_api_token_is_printed_once_listed_without_its_secret_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("HERALD__DATABASE__URL", "sqlite://t.db")];
    add_operators(dir.path(), &env, &[("platform", "secretary", &[])]);
    let out = herald(
        dir.path(),
        &[
            "tokens",
            "create",
            "eduSky",
            "--operator",
            "platform",
            "--as",
            "admin",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let token = stdout
        .lines()
        .find(|l| l.starts_with("hrd_"))
        .unwrap_or_else(|| panic!("the token is printed: {stdout}"))
        .to_owned();
    let out = herald(dir.path(), &["tokens", "--json"], &env);
    let listed = text(&out.stdout);
    let list: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(list[0]["name"], "eduSky");
    assert_eq!(list[0]["operator"], "platform");
    let secret = token.splitn(3, '_').nth(2).unwrap();
    assert!(!listed.contains(secret), "never listed: {listed}");
    // A secretary may not hand out tokens; the CLI says how to get the permission.
    let out = herald(
        dir.path(),
        &[
            "tokens",
            "create",
            "x",
            "--operator",
            "platform",
            "--as",
            "platform",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("herald operators grant platform manage_operators"),
        "{}",
        text(&out.stderr)
    );
    let out = herald(
        dir.path(),
        &["tokens", "revoke", "eduSky", "--as", "admin"],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = herald(dir.path(), &["tokens"], &env);
    assert!(
        text(&out.stdout).contains("revoked"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn bad_http_settings_stop_start_up_naming_each_key() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("HERALD__HTTP__LISTEN", "localhost"),
        ("HERALD__HTTP__PUBLIC_URL", "ftp://herald.example"),
        ("HERALD__HTTP__BODY_LIMIT_KIB", "0"),
        ("HERALD__HTTP__REQUEST_TIMEOUT", "soon"),
    ];
    let out = herald(dir.path(), &["run"], &env);
    assert_eq!(out.status.code(), Some(78), "EX_CONFIG");
    let err = text(&out.stderr);
    for key in [
        "http.listen = \"localhost\"",
        "http.public_url = \"ftp://herald.example\"",
        "http.body_limit_kib = \"0\"",
        "http.request_timeout = \"soon\"",
    ] {
        assert!(err.contains(key), "{key}: {err}");
    }
}

/// A gateway's token and the texts never cross a network in plain http: its URL must
/// be https, plain http only to this machine and only when a setting says so; the
/// reports' public URL likewise.
#[test]
fn gateway_urls_must_be_https_and_plain_http_only_to_loopback_by_a_setting() {
    let dir = tempfile::tempdir().unwrap();
    let twilio = |url: &'static str, extra: &[(&'static str, &'static str)]| {
        let mut env = vec![
            ("HERALD__DATABASE__URL", "sqlite://t.db"),
            ("HERALD__SMS__GATEWAY", "twilio"),
            ("HERALD__SMS__TWILIO__ACCOUNT_SID", "AC0123"),
            ("HERALD__SMS__TWILIO__AUTH_TOKEN", "secret"),
            ("HERALD__SMS__TWILIO__URL", url),
        ];
        env.extend_from_slice(extra);
        herald(dir.path(), &["wallet"], &env)
    };
    let out = twilio("http://api.twilio.example", &[]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("sms.twilio.url = \"http://api.twilio.example\"") && err.contains("https://"),
        "{err}"
    );
    // Loopback, but nobody said plain http is wanted: the refusal names the setting.
    let out = twilio("http://127.0.0.1:9/", &[]);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stderr).contains("sms.allow_loopback_http"),
        "{}",
        text(&out.stderr)
    );
    // The setting opens loopback only.
    let allow = [("HERALD__SMS__ALLOW_LOOPBACK_HTTP", "true")];
    let out = twilio("http://127.0.0.1:9/", &allow);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = twilio("http://[::1]:9/", &allow);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = twilio("http://10.0.0.7/", &allow);
    assert_eq!(out.status.code(), Some(78), "a LAN address is a network");
    let out = twilio(
        "https://api.twilio.example",
        &[("HERALD__HTTP__PUBLIC_URL", "http://herald.school.example")],
    );
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stderr).contains("http.public_url = \"http://herald.school.example\""),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_password_is_set_from_standard_input_and_never_printed() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let env = [("HERALD__DATABASE__URL", "sqlite://t.db")];
    add_operators(dir.path(), &env, &[("anna", "secretary", &[])]);
    let set = |login: &str, by: &str, input: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.current_dir(dir.path())
            .args(["operators", "set-password", login, "--as", by])
            .env("HERALD__DATABASE__URL", "sqlite://t.db")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = set("anna", "anna", "zebranie w czwartek\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("anna's password is set"));
    assert!(!text(&out.stdout).contains("zebranie"));
    // Too short: refused naming the field, exit code 1 or 2, nothing printed of it.
    let out = set("anna", "anna", "krótkie\n");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("password") && err.contains("expected 10 to 256"),
        "{err}"
    );
    assert!(!err.contains("krótkie"), "{err}");
    // Nothing on standard input.
    let out = set("anna", "anna", "");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("first line of standard input"));
    // The audit log names who set it.
    let out = herald(dir.path(), &["audit", "--json"], &env);
    let log = text(&out.stdout);
    assert!(
        log.contains("password_set") && !log.contains("zebranie"),
        "{log}"
    );
}
