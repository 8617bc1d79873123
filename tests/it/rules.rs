//! Periodic rules with time as a parameter: reminders before a due date and none
//! after payment, arrears that repeat and stop, birthdays (29 February, a Sunday),
//! holidays, both DST days, runs repeated or raced, catch-up after downtime, and the
//! outbox when a person must approve.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use herald::clock::FixedClock;
use herald::config::Settings;
use herald::dispatcher::Outcome;
use herald::domain::{BatchStatus, Holiday, MessageKind, MessageStatus, Reason};
use herald::rules::{self, Rule};
use herald::store::{MessageFilter, MessageView};

use crate::conformance;
use crate::helpers::{OWNER, TestApp, audit_line, now, warsaw};
use crate::smtp::SmtpServer;
use herald::domain::audit::AuditAction;

conformance!(
    reminders_go_seven_and_one_day_before_and_a_paid_instalment_gets_none,
    arrears_notices_repeat_every_n_days_and_stop_when_paid,
    a_leap_day_birthday_is_greeted_on_28_february_in_other_years,
    a_birthday_on_a_sunday_is_skipped_as_too_late_unless_sunday_is_open,
    a_reminder_on_a_holiday_shifts_to_the_next_open_day,
    a_daily_rule_runs_once_on_both_dst_days,
    a_rule_run_twice_and_by_two_instances_creates_each_message_once,
    a_two_day_outage_is_caught_up_once,
    with_requires_approval_the_messages_wait_in_the_outbox_per_rule_and_day,
    a_long_catch_up_writes_the_latest_reminder_only_and_never_after_the_due_date,
    a_run_longer_than_one_write_creates_each_reminder_once_and_blocks_with_reasons_in_any_write,
    a_run_that_fails_half_way_is_completed_by_the_next_run_each_reminder_once,
);

/// The examples, a student born on a Sunday (29 November 2012) who can be written
/// to, one template per rule (and `named`, for runs of many reminders); every rule
/// enabled, sending without approval.
async fn school(app: &TestApp) -> Settings {
    app.import_examples(now()).await;
    let people = app.write(
        "recipients.csv",
        "external_id,role,name,email,birth_date\n\
         s-1009,student,Ola Kowalczyk,ola.k@example.pl,2012-11-29\n\
         s-1010,student,Igor Lis,igor.lis@example.pl,2011-11-23\n",
    );
    app.import(&people, now()).await;
    let contracts = app.write(
        "contracts.csv",
        "external_id,student_id,status,consent\n\
         c-1009,s-1009,active,yes\n\
         c-1010,s-1010,active,yes\n",
    );
    let report = app.import(&contracts, now()).await;
    assert!(!report.has_errors(), "{:?}", report.errors);
    for (name, subject, body) in [
        (
            "reminder",
            "Rata {{ instalment.due_date }}",
            "Przypominamy: {{ instalment.amount | money }} za {{ student.first_name }}, termin {{ instalment.due_date }}.",
        ),
        (
            "arrears",
            "Zaległość",
            "Zaległość {{ arrears.amount | money }} od {{ arrears.since }} ({{ arrears.days }} dni).",
        ),
        (
            "birthday",
            "Wszystkiego najlepszego",
            "Sto lat, {{ recipient.first_name }}!",
        ),
        // Names whom each reminder is for and about, for runs of many reminders.
        (
            "named",
            "Rata za {{ student.first_name }} dla {{ recipient.first_name }}",
            "Termin {{ instalment.due_date }}.",
        ),
    ] {
        let v = herald::templates::Variant {
            name: name.into(),
            locale: "pl".into(),
            channel: herald::domain::Channel::Email,
            subject: Some(subject.into()),
            body: body.into(),
            html: None,
        };
        herald::templates::check(&v).unwrap();
        app.store
            .save_template(&v, &audit_line(OWNER, AuditAction::TemplateSave, now()))
            .await
            .unwrap();
    }
    let mut settings = app.settings.clone();
    for (rule, template) in [
        (&mut settings.rules.instalment_due, "reminder"),
        (&mut settings.rules.arrears, "arrears"),
        (&mut settings.rules.birthday, "birthday"),
    ] {
        rule.enabled = true;
        rule.template = template.into();
        rule.requires_approval = false;
    }
    settings
}

async fn periodic(app: &TestApp) -> Vec<MessageView> {
    app.store
        .messages(&MessageFilter {
            kind: Some(MessageKind::Periodic),
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn run(app: &TestApp, settings: &Settings, rule: Rule, at: DateTime<Utc>) -> (u64, u64) {
    let r = rules::run_rule(&*app.store, settings, rule, at)
        .await
        .unwrap();
    (r.occurrences, r.existing)
}

async fn reminders_go_seven_and_one_day_before_and_a_paid_instalment_gets_none(app: TestApp) {
    let settings = school(&app).await;
    // Two unpaid instalments fall due on 1 December: Zofia's 300 zł and Jan's
    // 1 250 zł; Anna Nowak is the guardian of both.
    assert_eq!(
        run(
            &app,
            &settings,
            Rule::InstalmentDue,
            warsaw("2026-11-23 07:00")
        )
        .await,
        (0, 0),
        "eight days before: nothing"
    );
    assert_eq!(
        run(
            &app,
            &settings,
            Rule::InstalmentDue,
            warsaw("2026-11-24 07:00")
        )
        .await,
        (2, 0)
    );
    let to_anna: Vec<_> = periodic(&app)
        .await
        .into_iter()
        .filter(|m| m.recipient == "gd-2001")
        .collect();
    assert_eq!(to_anna.len(), 2);
    assert!(to_anna.iter().all(|m| m.status == MessageStatus::Queued));
    assert!(
        to_anna
            .iter()
            .all(|m| m.subject.as_deref() == Some("Rata 01.12.2026"))
    );
    // Zofia's instalment is paid before the reminder goes: it is cancelled.
    let paid = app.write(
        "instalments.csv",
        "external_id,contract_id,due_date,amount,paid,paid_amount\n\
         i-1001-12,c-1001,2026-12-01,300.00,yes,300.00\n",
    );
    app.import(&paid, now()).await;
    let smtp = SmtpServer::start().await;
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(
        Settings {
            email: app.smtp_settings(&smtp).email,
            ..settings.clone()
        },
        &clock,
    );
    let mut outcomes = Vec::new();
    while let Some(o) = d.try_dispatch_next().await.unwrap() {
        outcomes.push(o);
    }
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(outcomes, [Outcome::Sent, Outcome::Withdrawn]);
    let got = smtp.received_for("anna.nowak@example.pl");
    assert_eq!(got.len(), 1);
    assert!(got[0].data.contains("1 250,00 z"), "{}", got[0].data);
    assert!(got[0].data.contains("za Jan"), "{}", got[0].data);
    let cancelled: Vec<_> = periodic(&app)
        .await
        .into_iter()
        .filter(|m| m.status == MessageStatus::Cancelled)
        .collect();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].reason, Some(Reason::NoLongerRelevant));
    // One day before: only the unpaid one is reminded of.
    assert_eq!(
        run(
            &app,
            &settings,
            Rule::InstalmentDue,
            warsaw("2026-11-30 07:00")
        )
        .await,
        (1, 0)
    );
    assert_eq!(
        run(
            &app,
            &settings,
            Rule::InstalmentDue,
            warsaw("2026-12-01 07:00")
        )
        .await,
        (0, 0),
        "no reminder on or after the day"
    );
}

async fn arrears_notices_repeat_every_n_days_and_stop_when_paid(app: TestApp) {
    let settings = school(&app).await;
    // Jan's contract owes 450 zł since 10 October; notices after 14 days, every 14.
    let mut created = Vec::new();
    let mut day = warsaw("2026-11-15 07:00");
    while day <= warsaw("2026-12-08 07:00") {
        let (n, _) = run(&app, &settings, Rule::Arrears, day).await;
        if n > 0 {
            created.push(
                day.with_timezone(&chrono_tz::Europe::Warsaw)
                    .date_naive()
                    .to_string(),
            );
        }
        day += Duration::days(1);
    }
    // 42 days on 21 November, 56 on 5 December.
    assert_eq!(created, ["2026-11-21", "2026-12-05"]);
    let notice = periodic(&app).await;
    assert_eq!(notice.len(), 2);
    assert!(notice.iter().all(|m| m.recipient == "gd-2001"));
    // Paid: no more notices, and the one still waiting is cancelled.
    let paid = app.write(
        "contracts.csv",
        "external_id,student_id,number,status,consent_email,consent_sms,consent_date,consent_source,balance\n\
         c-1002,s-1002,UM/2026/1002,active,yes,no,2026-09-01,enrolment form,0\n",
    );
    app.import(&paid, now()).await;
    assert_eq!(
        run(&app, &settings, Rule::Arrears, warsaw("2026-12-19 07:00")).await,
        (0, 0)
    );
    let clock = Arc::new(FixedClock::new(warsaw("2026-12-07 10:00")));
    let d = app.dispatcher_with(settings, &clock);
    assert_eq!(
        d.try_dispatch_next().await.unwrap(),
        Some(Outcome::Withdrawn)
    );
    assert_eq!(
        d.try_dispatch_next().await.unwrap(),
        Some(Outcome::Withdrawn)
    );
    assert!(periodic(&app).await.iter().all(
        |m| m.status == MessageStatus::Cancelled && m.reason == Some(Reason::NoLongerRelevant)
    ));
}

async fn a_leap_day_birthday_is_greeted_on_28_february_in_other_years(app: TestApp) {
    let settings = school(&app).await;
    // Jan Nowak was born on 29 February 2016.
    assert_eq!(
        run(&app, &settings, Rule::Birthday, warsaw("2027-02-28 08:00")).await,
        (1, 0)
    );
    assert_eq!(
        run(&app, &settings, Rule::Birthday, warsaw("2027-03-01 08:00")).await,
        (0, 0)
    );
    assert_eq!(
        run(&app, &settings, Rule::Birthday, warsaw("2028-02-28 08:00")).await,
        (0, 0),
        "a leap year has the day itself"
    );
    assert_eq!(
        run(&app, &settings, Rule::Birthday, warsaw("2028-02-29 08:00")).await,
        (1, 0)
    );
    let greetings = periodic(&app).await;
    assert_eq!(greetings.len(), 2);
    assert!(greetings.iter().all(|m| m.recipient == "s-1002"));
    // Jan has no email address: kept, blocked, with the reason.
    assert!(
        greetings
            .iter()
            .all(|m| m.reason == Some(Reason::MissingEmail))
    );
}

async fn a_birthday_on_a_sunday_is_skipped_as_too_late_unless_sunday_is_open(app: TestApp) {
    let settings = school(&app).await;
    // Ola's birthday, 29 November 2026, is a Sunday; the window is Mon–Sat.
    run(&app, &settings, Rule::Birthday, warsaw("2026-11-29 08:00")).await;
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-29 10:00")));
    let d = app.dispatcher_with(settings.clone(), &clock);
    assert_eq!(
        d.try_dispatch_next().await.unwrap(),
        Some(Outcome::Withdrawn)
    );
    let ola = app.only_message_to("s-1009").await;
    assert_eq!(ola.status, MessageStatus::Expired);
    assert_eq!(ola.reason, Some(Reason::TooLate));

    // Next year it is a Monday; with Sunday open the year after that (a Wednesday)
    // it would go anyway. Open Sunday this year for a second school:
    let open_sunday = herald::config::Settings::load_from(
        None,
        [(
            "HERALD__SEND_WINDOW__SUNDAY".to_owned(),
            "10:00-14:00".to_owned(),
        )],
    )
    .unwrap()
    .send_window;
    let sunday_school = Settings {
        send_window: open_sunday,
        ..settings.clone()
    };
    let smtp = SmtpServer::start().await;
    let mut with_smtp = sunday_school.clone();
    with_smtp.email = app.smtp_settings(&smtp).email;
    // A new student with the same birthday, born a year later.
    let people = app.write(
        "recipients.csv",
        "external_id,role,name,email,birth_date\ns-1011,student,Ela Nowicka,ela.n@example.pl,2013-11-29\n",
    );
    app.import(&people, now()).await;
    let contracts = app.write(
        "contracts.csv",
        "external_id,student_id,status,consent\nc-1011,s-1011,active,yes\n",
    );
    app.import(&contracts, now()).await;
    run(
        &app,
        &sunday_school,
        Rule::Birthday,
        warsaw("2026-11-29 08:00"),
    )
    .await;
    let d = app.dispatcher_with(with_smtp, &clock);
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Sent));
    assert_eq!(smtp.received_for("ela.n@example.pl").len(), 1);
}

async fn a_reminder_on_a_holiday_shifts_to_the_next_open_day(app: TestApp) {
    let settings = school(&app).await;
    app.store
        .add_holiday(
            &Holiday::new(
                "Dzień dyrektora",
                "2026-11-24".parse().unwrap(),
                "2026-11-24".parse().unwrap(),
            )
            .unwrap(),
            &audit_line("owner", AuditAction::HolidayAdd, now()),
        )
        .await
        .unwrap();
    run(
        &app,
        &settings,
        Rule::InstalmentDue,
        warsaw("2026-11-24 07:00"),
    )
    .await;
    let smtp = SmtpServer::start().await;
    let mut with_smtp = settings.clone();
    with_smtp.email = app.smtp_settings(&smtp).email;
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(with_smtp, &clock);
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Held));
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Held));
    let held = periodic(&app).await;
    assert!(held.iter().all(|m| m.reason == Some(Reason::Holiday)
        && m.next_attempt_at == Some(warsaw("2026-11-25 08:00"))));
    clock.set(warsaw("2026-11-25 08:00"));
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Sent));
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Sent));
    assert_eq!(smtp.received_for("anna.nowak@example.pl").len(), 2);
}

async fn a_daily_rule_runs_once_on_both_dst_days(app: TestApp) {
    let mut settings = school(&app).await;
    // 02:30 is inside the spring gap and twice in the autumn overlap.
    settings.rules.birthday.schedule = "0 30 2 * * *".parse().unwrap();
    settings.rules.instalment_due.enabled = false;
    settings.rules.arrears.enabled = false;
    // From local midnight to local midnight of 29 March and of 25 October.
    for (from, to) in [
        ("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"),
        ("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"),
    ] {
        let (mut at, to): (DateTime<Utc>, DateTime<Utc>) =
            (from.parse().unwrap(), to.parse().unwrap());
        // It ran the day before, as a daemon that was running would have.
        app.store
            .record_rule_run(
                "birthday",
                &herald::store::RuleRun {
                    last_run_at: at - Duration::hours(21),
                    covered_through: (at - Duration::hours(1))
                        .with_timezone(&chrono_tz::Europe::Warsaw)
                        .date_naive(),
                },
            )
            .await
            .unwrap();
        let mut runs = 0;
        // The daemon's five-minute tick through the whole local day.
        while at < to {
            runs += rules::run_due(&*app.store, &settings, at).await.len();
            at += Duration::minutes(5);
        }
        assert_eq!(runs, 1, "runs on the local day starting {from}");
    }
}

async fn a_rule_run_twice_and_by_two_instances_creates_each_message_once(app: TestApp) {
    let settings = school(&app).await;
    let other = herald::store::open(&app.settings.database).await.unwrap();
    let at = warsaw("2026-11-24 07:00");
    let (a, b) = tokio::join!(
        rules::run_rule(&*app.store, &settings, Rule::InstalmentDue, at),
        rules::run_rule(&*other, &settings, Rule::InstalmentDue, at),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.occurrences + b.occurrences, 2);
    assert_eq!(a.existing + b.existing, 2);
    assert_eq!(
        run(&app, &settings, Rule::InstalmentDue, at).await,
        (0, 2),
        "a third run finds both"
    );
    assert_eq!(periodic(&app).await.len(), 2);
    let batches = app.store.batches(None).await.unwrap();
    assert_eq!(batches.len(), 1, "one batch for the rule and day");
}

async fn a_two_day_outage_is_caught_up_once(app: TestApp) {
    let settings = school(&app).await;
    // Runs on Sunday 22 November, then the daemon is down until Wednesday morning.
    assert_eq!(
        rules::run_due(&*app.store, &settings, warsaw("2026-11-22 08:05"))
            .await
            .len(),
        3
    );
    let after = rules::run_due(&*app.store, &settings, warsaw("2026-11-25 08:05")).await;
    assert_eq!(after.len(), 3, "each rule runs once after the outage");
    for r in &after {
        let r = r.as_ref().unwrap();
        assert_eq!(r.days.len(), 3, "{r:?}: the two missed days and today");
    }
    // Missed: the 7-day reminders (due 1 December, written on the 24th) and Igor's
    // birthday on the 23rd, which is recorded as too late rather than sent.
    let messages = periodic(&app).await;
    let reminders = messages
        .iter()
        .filter(|m| m.subject.as_deref() == Some("Rata 01.12.2026"))
        .count();
    assert_eq!(reminders, 2);
    let igor = app.only_message_to("s-1010").await;
    assert_eq!(igor.status, MessageStatus::Expired);
    assert_eq!(igor.reason, Some(Reason::TooLate));
    // Running again creates nothing.
    assert!(
        rules::run_due(&*app.store, &settings, warsaw("2026-11-25 08:10"))
            .await
            .is_empty()
    );
    for rule in Rule::ALL {
        let (n, _) = run(&app, &settings, rule, warsaw("2026-11-25 08:15")).await;
        assert_eq!(n, 0, "{rule}");
    }
    assert_eq!(periodic(&app).await.len(), messages.len());
}

async fn with_requires_approval_the_messages_wait_in_the_outbox_per_rule_and_day(app: TestApp) {
    let mut settings = school(&app).await;
    settings.rules.instalment_due.requires_approval = true;
    settings.rules.arrears.requires_approval = true;
    run(
        &app,
        &settings,
        Rule::InstalmentDue,
        warsaw("2026-11-24 07:00"),
    )
    .await;
    run(&app, &settings, Rule::Arrears, warsaw("2026-11-21 07:00")).await;
    let waiting = app
        .store
        .batches(Some(BatchStatus::AwaitingApproval))
        .await
        .unwrap();
    let mut audiences: Vec<&str> = waiting.iter().map(|b| b.audience.as_str()).collect();
    audiences.sort();
    assert_eq!(
        audiences,
        [
            "arrears notices for 2026-11-21",
            "instalment reminders for 2026-11-24"
        ]
    );
    assert!(waiting.iter().all(|b| b.kind == MessageKind::Periodic));
    assert!(
        periodic(&app)
            .await
            .iter()
            .all(|m| m.status == MessageStatus::AwaitingApproval)
    );
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings.clone(), &clock);
    assert_eq!(
        d.try_dispatch_next().await.unwrap(),
        None,
        "nothing goes unapproved"
    );
    // Approved, the day's reminders go; a later occurrence of the same day waits
    // in a batch of its own, since nobody has seen it.
    let reminders = waiting
        .iter()
        .find(|b| b.audience.starts_with("instalment"))
        .unwrap();
    app.decide(
        reminders.id,
        &herald::store::Decision::Approve,
        OWNER,
        now(),
    )
    .await
    .unwrap();
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Sent));
}

async fn a_long_catch_up_writes_the_latest_reminder_only_and_never_after_the_due_date(
    app: TestApp,
) {
    let settings = school(&app).await;
    // Last run on 20 November; back on 30 November: the 7-day reminders (24th) and
    // the 1-day ones (30th) were both due in the gap. Only the 1-day ones are written.
    run(
        &app,
        &settings,
        Rule::InstalmentDue,
        warsaw("2026-11-20 07:00"),
    )
    .await;
    assert_eq!(
        run(
            &app,
            &settings,
            Rule::InstalmentDue,
            warsaw("2026-11-30 07:00")
        )
        .await,
        (2, 0)
    );
    let keys: Vec<_> = periodic(&app).await;
    assert_eq!(keys.len(), 2);
    // Held past the due date (a holiday on 1 December), a reminder expires instead.
    app.store
        .add_holiday(
            &Holiday::new(
                "Dzień bez przypomnień",
                "2026-11-30".parse().unwrap(),
                "2026-12-01".parse().unwrap(),
            )
            .unwrap(),
            &audit_line("owner", AuditAction::HolidayAdd, now()),
        )
        .await
        .unwrap();
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-30 10:00")));
    let d = app.dispatcher_with(settings, &clock);
    assert_eq!(
        d.try_dispatch_next().await.unwrap(),
        Some(Outcome::Withdrawn)
    );
    assert_eq!(
        d.try_dispatch_next().await.unwrap(),
        Some(Outcome::Withdrawn)
    );
    assert!(
        periodic(&app)
            .await
            .iter()
            .all(|m| m.status == MessageStatus::Expired && m.reason == Some(Reason::TooLate))
    );
}

/// More reminders than one write takes (`rules::OCCURRENCES_PER_WRITE`): `n` students
/// `s-i` ("Si Lis"), each with a guardian `g-i` ("Gi Lis") and an instalment due on
/// 1 December, imported after the examples (whose two reminders come first). The
/// guardian `g-{no_email}` has no email address. The `named` template names both
/// people, so each message shows whom it was rendered for and about.
async fn many_reminders(app: &TestApp, n: usize, no_email: usize) -> Settings {
    let mut settings = school(app).await;
    let mut people = String::from("external_id,role,name,email\n");
    let mut links = String::from("guardian_id,student_id\n");
    let mut contracts = String::from("external_id,student_id,number,status,consent\n");
    let mut instalments = String::from("external_id,contract_id,due_date,amount\n");
    for i in 0..n {
        let email = if i == no_email {
            String::new()
        } else {
            format!("g{i}@example.pl")
        };
        people.push_str(&format!(
            "s-{i},student,S{i} Lis,\ng-{i},guardian,G{i} Lis,{email}\n"
        ));
        links.push_str(&format!("g-{i},s-{i}\n"));
        contracts.push_str(&format!("c-{i},s-{i},UM/{i},active,yes\n"));
        instalments.push_str(&format!("i-{i},c-{i},2026-12-01,320.00\n"));
    }
    for (name, contents) in [
        ("recipients.csv", people),
        ("guardianships.csv", links),
        ("contracts.csv", contracts),
        ("instalments.csv", instalments),
    ] {
        let report = app.import(&app.write(name, &contents), now()).await;
        assert!(!report.has_errors(), "{name}: {:?}", report.errors);
    }
    settings.rules.instalment_due.template = "named".into();
    settings
}

/// Every guardian `g-i` has exactly one reminder, about their own student, with
/// one "created" event by the rule that matches it.
async fn each_guardian_reminded_once(app: &TestApp, n: usize, no_email: usize) {
    let mut to: std::collections::HashMap<String, Vec<MessageView>> = Default::default();
    for m in periodic(app).await {
        to.entry(m.recipient.clone()).or_default().push(m);
    }
    for i in 0..n {
        let got = to.remove(&format!("g-{i}")).unwrap_or_default();
        assert_eq!(got.len(), 1, "g-{i}: {got:?}");
        let m = &got[0];
        assert_eq!(
            m.subject.as_deref(),
            Some(&*format!("Rata za S{i} dla G{i}"))
        );
        let (status, reason) = if i == no_email {
            (MessageStatus::Blocked, Some(Reason::MissingEmail))
        } else {
            (MessageStatus::Queued, None)
        };
        assert_eq!((m.status, m.reason), (status, reason), "g-{i}");
        let events = app.store.events(m.id).await.unwrap();
        assert_eq!(events.len(), 1, "g-{i}: {events:?}");
        assert_eq!(events[0].status, status.as_str());
        assert_eq!(events[0].reason.as_deref(), reason.map(Reason::as_str));
        assert_eq!(events[0].actor.as_deref(), Some("rule:instalment_due"));
        assert_eq!(events[0].note.as_deref(), Some("created"));
    }
}

async fn a_run_longer_than_one_write_creates_each_reminder_once_and_blocks_with_reasons_in_any_write(
    app: TestApp,
) {
    let n = rules::OCCURRENCES_PER_WRITE + 30;
    // After the examples' two reminders: in the second write.
    let no_email = rules::OCCURRENCES_PER_WRITE + 10;
    let settings = many_reminders(&app, n, no_email).await;
    let at = warsaw("2026-11-24 07:00");
    let report = rules::run_rule(&*app.store, &settings, Rule::InstalmentDue, at)
        .await
        .unwrap();
    assert_eq!((report.occurrences, report.existing), (n as u64 + 2, 0));
    assert_eq!(report.messages, n as u64 + 2);
    each_guardian_reminded_once(&app, n, no_email).await;
    let batches = app.store.batches(None).await.unwrap();
    assert_eq!(batches.len(), 1, "one batch for the rule and day");
    // Again: every occurrence exists, nothing is written.
    assert_eq!(
        run(&app, &settings, Rule::InstalmentDue, at).await,
        (0, n as u64 + 2)
    );
    assert_eq!(periodic(&app).await.len(), n + 2);
}

async fn a_run_that_fails_half_way_is_completed_by_the_next_run_each_reminder_once(app: TestApp) {
    let n = rules::OCCURRENCES_PER_WRITE + 30;
    let no_email = rules::OCCURRENCES_PER_WRITE + 10;
    let settings = many_reminders(&app, n, no_email).await;
    // The database refuses the message to a guardian in the second write, as a
    // run killed there would never commit it.
    let fails_at = rules::OCCURRENCES_PER_WRITE + 20;
    app.execute_raw(
        &format!(
            "CREATE TRIGGER half_way BEFORE INSERT ON messages \
             WHEN NEW.recipient_external_id = 'g-{fails_at}' \
             BEGIN SELECT RAISE(ABORT, 'the run died here'); END;"
        ),
        &format!(
            "CREATE FUNCTION half_way() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN IF NEW.recipient_external_id = 'g-{fails_at}' THEN \
             RAISE EXCEPTION 'the run died here'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER half_way BEFORE INSERT ON messages \
             FOR EACH ROW EXECUTE FUNCTION half_way();"
        ),
    )
    .await;
    let at = warsaw("2026-11-24 07:00");
    assert!(
        rules::run_rule(&*app.store, &settings, Rule::InstalmentDue, at)
            .await
            .is_err()
    );
    // The first write is whole; of the second, nothing: no occurrence without its
    // messages, no message without its occurrence.
    let written = periodic(&app).await;
    assert_eq!(written.len(), rules::OCCURRENCES_PER_WRITE);
    assert!(written.iter().all(|m| m.status == MessageStatus::Queued));
    assert!(app.messages_to(&format!("g-{no_email}")).await.is_empty());
    app.execute_raw(
        "DROP TRIGGER half_way;",
        "DROP TRIGGER half_way ON messages;",
    )
    .await;
    let report = rules::run_rule(&*app.store, &settings, Rule::InstalmentDue, at)
        .await
        .unwrap();
    assert_eq!(
        (report.occurrences, report.existing),
        (
            (n + 2 - rules::OCCURRENCES_PER_WRITE) as u64,
            rules::OCCURRENCES_PER_WRITE as u64
        )
    );
    each_guardian_reminded_once(&app, n, no_email).await;
    assert_eq!(app.store.batches(None).await.unwrap().len(), 1);
    assert_eq!(
        run(&app, &settings, Rule::InstalmentDue, at).await,
        (0, n as u64 + 2)
    );
}

/// On PostgreSQL, a run writing thousands of reminders (a few hundred to a write)
/// refreshes the planner's statistics once, when it ends, so the dispatch that
/// follows is planned for the queue it made; not once per thousand written, which
/// on a large school would cost the run a few hundred milliseconds each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_refreshes_the_planners_statistics_once_on_postgresql() {
    let Some(app) = crate::helpers::postgres().await else {
        return;
    };
    let analyzed = || async {
        let mut conn = app.postgres_connection().await.unwrap();
        sqlx::query_scalar::<_, i64>(
            "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'messages'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap()
    };
    let n = 4 * rules::OCCURRENCES_PER_WRITE + 100;
    let settings = many_reminders(&app, n, 0).await;
    assert_eq!(analyzed().await, 0, "nothing queued yet");
    let at = warsaw("2026-11-24 07:00");
    assert_eq!(
        run(&app, &settings, Rule::InstalmentDue, at).await,
        (n as u64 + 2, 0)
    );
    assert_eq!(
        analyzed().await,
        1,
        "{n} reminders: one ANALYZE, at the end"
    );
}
