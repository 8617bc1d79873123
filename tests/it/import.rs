//! Import: good rows in, bad rows reported with their line, nothing half-written,
//! and importing the same file twice changes nothing.

use chrono::Duration;
use herald::domain::Channel;
use herald::domain::audit::AuditAction;
use herald::domain::directory::{
    ContractRecord, ContractStatus, DirectoryRecord, InstalmentRecord, RecipientRecord, Role,
};
use herald::import::{ImportError, ImportKind, KindCounts};
use herald::store::{Applied, AuditFilter, RecipientFilter};

use crate::conformance;
use crate::helpers::{TestApp, audit_line, example, now};

conformance!(
    csv_with_bad_rows_imports_the_good_ones_and_reports_each_bad_line,
    importing_the_same_files_twice_changes_nothing,
    references_to_missing_or_wrong_records_are_refused_with_their_line,
    a_file_missing_a_required_column_imports_nothing,
    json_records_are_reported_with_their_line,
    a_consent_change_records_when_it_happened,
    a_json_document_imports_every_section_in_dependency_order,
    names_and_addresses_with_line_breaks_are_refused,
    instalments_balances_and_birth_dates_are_checked_row_by_row,
    files_of_several_chunks_report_bad_rows_in_later_chunks_and_import_again_unchanged,
    records_repeated_within_one_chunk_are_judged_in_order,
);

fn counts(report: &herald::import::ImportReport, kind: ImportKind) -> KindCounts {
    report
        .counts
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, c)| *c)
        .unwrap_or_default()
}

async fn csv_with_bad_rows_imports_the_good_ones_and_reports_each_bad_line(app: TestApp) {
    let file = app.write(
        "recipients.csv",
        "external_id,role,name,email,phone,sms_enabled\n\
         s-1,student,Zofia Nowak,,,\n\
         s-2,pupil,Jan Nowak,,,\n\
         s-3,student,,,,\n\
         gd-1,guardian,Anna Nowak,anna@example.pl,600 100 200,yes\n\
         gd-2,guardian,Piotr Nowak,piotr@example.pl,600 100 201,maybe\n\
         s-1,student,Zofia Nowak Again,,,\n\
         t-1,teacher,Ewa Sikora,ewa@example.pl,600 100 202,yes,extra\n\
         \"t-2\",\"teacher\",\"Robert \"\"Bob\"\" Pawlak\",bob@example.pl,,no\n",
    );
    let report = app.import(&file, now()).await;

    let lines: Vec<(u64, &str)> = report
        .errors
        .iter()
        .map(|e| (e.line, e.field.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            (3, "role"),
            (4, "name"),
            (6, "sms_enabled"),
            (7, "external_id"),
            (8, "row"),
        ]
    );
    let bad_role = &report.errors[0];
    assert_eq!(bad_role.value, "pupil");
    assert!(
        bad_role
            .expected
            .contains("student, guardian, teacher, staff")
    );
    assert!(bad_role.file.ends_with("recipients.csv"));
    assert_eq!(bad_role.index, None, "a CSV row is found by its line");
    assert!(
        report.errors[3].expected.contains("line 2"),
        "a repeated id names the line that has it first: {}",
        report.errors[3]
    );
    assert_eq!(
        counts(&report, ImportKind::Recipients),
        KindCounts {
            created: 3,
            updated: 0,
            unchanged: 0,
            failed: 5
        }
    );
    // Only the good rows are in, and none of the bad ones in part.
    let mut ids = app.recipient_ids().await;
    ids.sort();
    assert_eq!(ids, ["gd-1", "s-1", "t-2"]);
    let zofia = app.store.recipient("s-1").await.unwrap().unwrap();
    assert_eq!(zofia.recipient.name, "Zofia Nowak");
    let bob = app.store.recipient("t-2").await.unwrap().unwrap();
    assert_eq!(bob.recipient.name, "Robert \"Bob\" Pawlak");
}

async fn importing_the_same_files_twice_changes_nothing(app: TestApp) {
    app.import_examples(now()).await;
    let before = app
        .store
        .recipients(&RecipientFilter::default())
        .await
        .unwrap();
    let later = now() + Duration::days(3);
    for name in [
        "recipients",
        "groups",
        "guardianships",
        "memberships",
        "contracts",
    ] {
        let report = app.import(&example(&format!("{name}.csv")), later).await;
        for (kind, c) in &report.counts {
            assert_eq!(
                (c.created, c.updated, c.failed),
                (0, 0, 0),
                "{kind} changed on re-import"
            );
            assert!(c.unchanged > 0, "{kind}");
        }
    }
    let after = app
        .store
        .recipients(&RecipientFilter::default())
        .await
        .unwrap();
    assert_eq!(before, after);
    assert_eq!(app.store.counts().await.unwrap().contracts, 3);
}

async fn references_to_missing_or_wrong_records_are_refused_with_their_line(app: TestApp) {
    app.import_examples(now()).await;
    let file = app.write(
        "guardianships.csv",
        "guardian_id,student_id\n\
         gd-9999,s-1001\n\
         s-1002,s-1001\n\
         gd-2002,s-1001\n",
    );
    let report = app.import(&file, now()).await;
    assert_eq!(report.errors.len(), 2, "{:?}", report.errors);
    assert_eq!(
        (report.errors[0].line, report.errors[0].field.as_str()),
        (2, "guardian_id")
    );
    assert!(
        report.errors[0]
            .expected
            .contains("no guardian with external id \"gd-9999\"")
    );
    assert_eq!(report.errors[1].line, 3);
    assert!(
        report.errors[1]
            .expected
            .contains("is a student, expected guardian")
    );
    assert_eq!(counts(&report, ImportKind::Guardianships).created, 1);

    let file = app.write(
        "memberships.csv",
        "group_id,member_id\ng-zz,s-1001\ng-1a,gd-2001\n",
    );
    let report = app.import(&file, now()).await;
    let faults: Vec<(u64, &str)> = report
        .errors
        .iter()
        .map(|e| (e.line, e.field.as_str()))
        .collect();
    assert_eq!(faults, [(2, "group_id"), (3, "member_id")]);
}

async fn a_file_missing_a_required_column_imports_nothing(app: TestApp) {
    let file = app.write(
        "recipients.csv",
        "external_id,name,email\ns-1,Zofia Nowak,zofia@example.pl\n",
    );
    let err = app.try_import(&file, None, now()).await.unwrap_err();
    match &err {
        ImportError::Structure { line, message, .. } => {
            assert_eq!(*line, 1);
            assert!(message.contains("\"role\" is missing"), "{message}");
        }
        other => panic!("expected a structure error, got {other}"),
    }
    assert!(app.recipient_ids().await.is_empty());

    let file = app.write("people.csv", "external_id,role,name\ns-1,student,Zofia\n");
    let err = app.try_import(&file, None, now()).await.unwrap_err();
    assert!(matches!(err, ImportError::UnknownKind { .. }), "{err}");
    let report = app
        .try_import(&file, Some(ImportKind::Recipients), now())
        .await
        .unwrap();
    assert_eq!(counts(&report, ImportKind::Recipients).created, 1);
}

async fn json_records_are_reported_with_their_line(app: TestApp) {
    let file = app.write(
        "recipients.json",
        r#"[
  {"external_id": "s-1", "role": "student", "name": "Zofia Nowak"},
  {"external_id": "s-2", "role": "student",
   "name": "Jan Nowak", "sms_enabled": "perhaps"},
  {"external_id": "s-3", "role": "student", "name": "Ola", "nickname": "Olka"},
  {"external_id": 4, "role": "teacher", "name": "Ewa Sikora", "sms_enabled": true}
]
"#,
    );
    let report = app.import(&file, now()).await;
    let faults: Vec<(u64, Option<u64>, &str, &str)> = report
        .errors
        .iter()
        .map(|e| (e.line, e.index, e.field.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(
        faults,
        [
            (3, Some(1), "sms_enabled", "perhaps"),
            (5, Some(2), "key", "nickname")
        ],
        "each record by its line and its index in the array"
    );
    let mut ids = app.recipient_ids().await;
    ids.sort();
    assert_eq!(ids, ["4", "s-1"]);

    let broken = app.write(
        "groups.json",
        "[{\"external_id\": \"g\", \"name\": \"G\"},\n oops]",
    );
    let err = app.try_import(&broken, None, now()).await.unwrap_err();
    assert!(
        matches!(err, ImportError::Structure { line: 2, .. }),
        "{err}"
    );
}

async fn a_consent_change_records_when_it_happened(app: TestApp) {
    let recipients = app.write(
        "recipients.csv",
        "external_id,role,name,email\ns-1,student,Zofia Nowak,zofia@example.pl\n",
    );
    app.import(&recipients, now()).await;
    let contracts = app.write(
        "contracts.csv",
        "external_id,student_id,status,consent\nc-1,s-1,active,yes\n",
    );
    app.import(&contracts, now()).await;
    let first = app.store.recipient("s-1").await.unwrap().unwrap();
    assert_eq!(first.contracts[0].sms.changed_at, Some(now()));
    assert!(
        first
            .check(
                Channel::Email,
                herald::domain::contact::PhoneRegion::PL,
                Default::default()
            )
            .is_empty()
    );

    // The parent withdraws SMS consent three days later.
    let later = now() + Duration::days(3);
    let withdrawn = app.write(
        "contracts.csv",
        "external_id,student_id,status,consent_email,consent_sms\nc-1,s-1,active,yes,no\n",
    );
    let report = app.import(&withdrawn, later).await;
    assert_eq!(counts(&report, ImportKind::Contracts).updated, 1);
    let second = app.store.recipient("s-1").await.unwrap().unwrap();
    let c = &second.contracts[0];
    assert!(!c.sms.given);
    assert_eq!(c.sms.changed_at, Some(later));
    assert_eq!(
        c.email.changed_at,
        Some(now()),
        "email consent did not change"
    );
}

async fn a_json_document_imports_every_section_in_dependency_order(app: TestApp) {
    let report = app.import(&example("school.json"), now()).await;
    assert!(!report.has_errors(), "{:?}", report.errors);
    let kinds: Vec<ImportKind> = report.counts.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, ImportKind::ALL);
    let anna = app.store.recipient("gd-2001").await.unwrap().unwrap();
    assert_eq!(
        anna.contracts.len(),
        1,
        "a guardian sees their student's contract"
    );
    assert_eq!(anna.contracts[0].student, "s-1001");
}

async fn names_and_addresses_with_line_breaks_are_refused(app: TestApp) {
    let file = app.write(
        "recipients.json",
        r#"[
  {"external_id": "gd-1", "role": "guardian", "name": "Anna\r\nBcc: all@example.pl"},
  {"external_id": "gd-2", "role": "guardian", "name": "Piotr", "email": "p@example.pl\nBcc: x@example.pl"},
  {"external_id": "gd-3", "role": "guardian", "name": "Ola", "email": "ola@example.pl"}
]"#,
    );
    let report = app.import(&file, now()).await;
    let faults: Vec<(u64, &str)> = report
        .errors
        .iter()
        .map(|e| (e.line, e.field.as_str()))
        .collect();
    assert_eq!(faults, [(2, "name"), (3, "email")]);
    assert!(report.errors[0].expected.contains("without line breaks"));
    assert_eq!(app.recipient_ids().await, ["gd-3"]);
}

async fn instalments_balances_and_birth_dates_are_checked_row_by_row(app: TestApp) {
    app.import_examples(now()).await;
    let file = app.write(
        "instalments.csv",
        "external_id,contract_id,due_date,amount,paid,paid_amount\n\
         i-1,c-1001,2027-01-01,300,no,\n\
         i-2,c-9999,2027-01-01,300,no,\n\
         i-3,c-1001,1.01.2027,300,no,\n\
         i-4,c-1001,2027-01-01,-5,no,\n\
         i-5,c-1001,2027-01-01,12.345,no,\n\
         i-6,c-1002,2027-02-01,\"1 250,50\",yes,\"1 250,50\"\n",
    );
    let report = app.import(&file, now()).await;
    let lines: Vec<(u64, &str)> = report
        .errors
        .iter()
        .map(|e| (e.line, e.field.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            (3, "contract_id"),
            (4, "due_date"),
            (5, "amount"),
            (6, "amount")
        ]
    );
    assert!(report.errors[1].expected.contains("YYYY-MM-DD"));
    assert_eq!(
        counts(&report, ImportKind::Instalments),
        KindCounts {
            created: 2,
            updated: 0,
            unchanged: 0,
            failed: 4
        }
    );
    // The amounts arrive in grosze; the paid one is not due for a reminder.
    let due = app
        .store
        .unpaid_instalments_due("2027-01-01".parse().unwrap(), "2027-02-28".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].external_id, "i-1");
    assert_eq!(due[0].amount_cents, 30_000);
    assert_eq!(due[0].contract, "UM/2026/1001");
    // Balances and birth dates from the examples.
    let arrears = app.store.contracts_in_arrears().await.unwrap();
    assert_eq!(arrears.len(), 1);
    assert_eq!(arrears[0].balance_cents, 45_000);
    assert_eq!(arrears[0].arrears_since.to_string(), "2026-10-10");
    let born = app.store.birth_dates().await.unwrap();
    assert!(born.contains(&("s-1002".to_owned(), "2016-02-29".parse().unwrap())));
    // Re-importing changes nothing; a bad date in a recipient row names the field.
    let again = app
        .import(&crate::helpers::example("instalments.csv"), now())
        .await;
    assert_eq!(counts(&again, ImportKind::Instalments).unchanged, 3);
    let bad = app.write(
        "recipients.csv",
        "external_id,role,name,birth_date\ns-77,student,Ala Kot,2014-02-30\n",
    );
    let report = app.import(&bad, now()).await;
    assert_eq!(report.errors[0].field, "birth_date");
    assert_eq!(report.errors[0].line, 2);
}

/// More rows than one transaction (500 records) and one slice of the import (1000
/// rows), so every kind crosses both boundaries.
const MANY: usize = 1_200;

/// What a file of many rows reports: the lines and fields of its errors, and its counts.
fn outcome(
    report: &herald::import::ImportReport,
    kind: ImportKind,
) -> (Vec<(u64, String, String)>, KindCounts) {
    let errors = report
        .errors
        .iter()
        .map(|e| (e.line, e.field.clone(), e.expected.clone()))
        .collect();
    (errors, counts(report, kind))
}

async fn files_of_several_chunks_report_bad_rows_in_later_chunks_and_import_again_unchanged(
    app: TestApp,
) {
    // Student i is on line 2 + 2i, guardian i on line 3 + 2i.
    let mut people = String::from("external_id,role,name,email\n");
    let mut groups = String::from("external_id,name\n");
    // Row i of the other files is on line i + 2.
    let mut guardianships = String::from("guardian_id,student_id\n");
    let mut memberships = String::from("group_id,member_id\n");
    let mut contracts = String::from("external_id,student_id,status,consent\n");
    for i in 0..MANY {
        people +=
            &format!("s-{i},student,Student {i},\ng-{i},guardian,Guardian {i},g{i}@example.pl\n");
        let guardian = match i {
            700 => "g-none".to_owned(),
            1100 => format!("s-{i}"),
            _ => format!("g-{i}"),
        };
        guardianships += &format!("{guardian},s-{i}\n");
        let (group, member) = match i {
            999 => ("grp-none".to_owned(), format!("s-{i}")),
            1000 => (format!("grp-{}", i % 10), format!("g-{i}")),
            _ => (format!("grp-{}", i % 10), format!("s-{i}")),
        };
        memberships += &format!("{group},{member}\n");
        let student = match i {
            650 => "s-none".to_owned(),
            1150 => format!("g-{i}"),
            _ => format!("s-{i}"),
        };
        contracts += &format!("c-{i},{student},active,yes\n");
    }
    for k in 0..10 {
        groups += &format!("grp-{k},Group {k}\n");
    }
    let files = [
        (ImportKind::Recipients, app.write("recipients.csv", &people)),
        (ImportKind::Groups, app.write("groups.csv", &groups)),
        (
            ImportKind::Guardianships,
            app.write("guardianships.csv", &guardianships),
        ),
        (
            ImportKind::Memberships,
            app.write("memberships.csv", &memberships),
        ),
        (
            ImportKind::Contracts,
            app.write("contracts.csv", &contracts),
        ),
    ];
    let unknown = |what: &str, id: &str| {
        format!("no {what} with external id \"{id}\" exists (import it first)")
    };
    let wrong = |id: &str, found: &str, expected: &str| {
        format!("\"{id}\" is a {found}, expected {expected}")
    };
    let want_errors = |kind: ImportKind| -> Vec<(u64, String, String)> {
        match kind {
            ImportKind::Guardianships => vec![
                (702, "guardian_id".into(), unknown("guardian", "g-none")),
                (
                    1102,
                    "guardian_id".into(),
                    wrong("s-1100", "student", "guardian"),
                ),
            ],
            ImportKind::Memberships => vec![
                (1001, "group_id".into(), unknown("group", "grp-none")),
                (
                    1002,
                    "member_id".into(),
                    wrong("g-1000", "guardian", "student or teacher"),
                ),
            ],
            ImportKind::Contracts => vec![
                (652, "student_id".into(), unknown("student", "s-none")),
                (
                    1152,
                    "student_id".into(),
                    wrong("g-1150", "guardian", "student"),
                ),
            ],
            _ => Vec::new(),
        }
    };
    let rows = |kind: ImportKind| match kind {
        ImportKind::Recipients => 2 * MANY as u64,
        ImportKind::Groups => 10,
        _ => MANY as u64,
    };
    for (kind, file) in &files {
        let report = app.import(file, now()).await;
        let failed = want_errors(*kind).len() as u64;
        assert_eq!(
            outcome(&report, *kind),
            (
                want_errors(*kind),
                KindCounts {
                    created: rows(*kind) - failed,
                    updated: 0,
                    unchanged: 0,
                    failed
                }
            ),
            "{kind}"
        );
    }
    let anna = app.store.recipient("g-1199").await.unwrap().unwrap();
    assert_eq!(
        anna.contracts.len(),
        1,
        "the last guardian sees her student's contract"
    );
    assert!(
        app.store
            .recipient("g-700")
            .await
            .unwrap()
            .unwrap()
            .contracts
            .is_empty()
    );

    // The same files again, days later: every row as it was, the same errors, and no
    // audit line, since nothing changed.
    let imports = || async {
        app.store
            .audit_log(&AuditFilter {
                action: Some(AuditAction::Import),
                ..AuditFilter::default()
            })
            .await
            .unwrap()
            .len()
    };
    let lines_before = imports().await;
    let before = app
        .store
        .recipients(&RecipientFilter::default())
        .await
        .unwrap();
    let later = now() + Duration::days(3);
    for (kind, file) in &files {
        let report = app.try_import(file, Some(*kind), later).await.unwrap();
        let failed = want_errors(*kind).len() as u64;
        assert_eq!(
            outcome(&report, *kind),
            (
                want_errors(*kind),
                KindCounts {
                    created: 0,
                    updated: 0,
                    unchanged: rows(*kind) - failed,
                    failed
                }
            ),
            "{kind} again"
        );
    }
    assert_eq!(imports().await, lines_before);
    assert_eq!(
        app.store
            .recipients(&RecipientFilter::default())
            .await
            .unwrap(),
        before
    );

    // One change in a later chunk is found among the unchanged rows.
    let renamed = people.replace(
        "s-1150,student,Student 1150,",
        "s-1150,student,Student Renamed,",
    );
    let report = app
        .import(&app.write("recipients.csv", &renamed), later)
        .await;
    assert_eq!(
        counts(&report, ImportKind::Recipients),
        KindCounts {
            created: 0,
            updated: 1,
            unchanged: 2 * MANY as u64 - 1,
            failed: 0
        }
    );
    let renamed = app.store.recipient("s-1150").await.unwrap().unwrap();
    assert_eq!(renamed.recipient.name, "Student Renamed");
    assert_eq!(imports().await, lines_before + 1, "one chunk changed");
}

async fn records_repeated_within_one_chunk_are_judged_in_order(app: TestApp) {
    let person = |id: &str, role: Role, name: &str| {
        DirectoryRecord::Recipient(RecipientRecord {
            external_id: id.into(),
            role,
            name: name.into(),
            locale: None,
            email: None,
            phone: None,
            phone_e164: None,
            sms_enabled: false,
            birth_date: None,
        })
    };
    let contract = DirectoryRecord::Contract(ContractRecord {
        external_id: "c-1".into(),
        student: "s-1".into(),
        number: None,
        status: ContractStatus::Active,
        consent_email: true,
        consent_sms: false,
        consent_at: None,
        consent_source: None,
        balance_cents: None,
        arrears_since: None,
    });
    let guardianship = DirectoryRecord::Guardianship {
        guardian: "g-1".into(),
        student: "s-1".into(),
    };
    // One chunk of every kind, each record referring to those before it.
    let records = [
        person("s-1", Role::Student, "Ala"),
        person("s-1", Role::Student, "Ala Kot"),
        person("s-1", Role::Student, "Ala Kot"),
        person("g-1", Role::Guardian, "Ewa Kot"),
        guardianship.clone(),
        guardianship,
        DirectoryRecord::Group {
            external_id: "grp-1".into(),
            name: "1A".into(),
        },
        DirectoryRecord::Membership {
            group: "grp-1".into(),
            member: "g-1".into(),
        },
        DirectoryRecord::Membership {
            group: "grp-1".into(),
            member: "s-1".into(),
        },
        contract.clone(),
        contract,
        DirectoryRecord::Instalment(InstalmentRecord {
            external_id: "i-1".into(),
            contract: "c-1".into(),
            due_date: "2026-10-01".parse().unwrap(),
            amount_cents: 30_000,
            paid: false,
            paid_amount_cents: None,
        }),
    ];
    let outcomes = app
        .store
        .apply(&records, &audit_line("test", AuditAction::Import, now()))
        .await
        .unwrap();
    let applied: Vec<Option<Applied>> = outcomes.iter().map(|o| o.as_ref().ok().copied()).collect();
    use Applied::{Created, Unchanged, Updated};
    assert_eq!(
        applied,
        [
            Some(Created),
            Some(Updated),
            Some(Unchanged),
            Some(Created),
            Some(Created),
            Some(Unchanged),
            Some(Created),
            None,
            Some(Created),
            Some(Created),
            Some(Unchanged),
            Some(Created),
        ]
    );
    assert_eq!(outcomes[7].as_ref().unwrap_err().field(), "member_id");
    let ala = app.store.recipient("s-1").await.unwrap().unwrap();
    assert_eq!(ala.recipient.name, "Ala Kot");
    let ewa = app.store.recipient("g-1").await.unwrap().unwrap();
    assert_eq!(
        ewa.contracts.len(),
        1,
        "the guardianship and contract were written"
    );
    let groups = app.store.groups().await.unwrap();
    assert_eq!((groups[0].students, groups[0].teachers), (1, 0));
    let due = app
        .store
        .unpaid_instalments_due("2026-10-01".parse().unwrap(), "2026-10-31".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
}
