//! Import: good rows in, bad rows reported with their line, nothing half-written,
//! and importing the same file twice changes nothing.

use chrono::Duration;
use herald::domain::Channel;
use herald::import::{ImportError, ImportKind, KindCounts};
use herald::store::RecipientFilter;

use crate::conformance;
use crate::helpers::{TestApp, example, now};

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
