//! `herald demo`: a demo school in a folder of its own, told as a story.

use super::directory::explain;
use super::*;

/// Create a demo school in a new SQLite database and show who can be reached.
pub(super) async fn demo_command(
    args: DemoArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let DemoArgs { dir, at } = args;
    // One clock for the whole demo: with `--at`, composing, approving, the
    // rules and the pass all happen at that school time, past or future, so
    // the story is the same on any date.
    let at = at.map(|t| school_time(&settings, &t)).transpose()?;
    demo(settings, dir, at.unwrap_or(now)).await
}

/// The demo's second half: a system message, an informational batch to every group
/// (students and guardians) approved by the demo owner, and one dispatch pass at
/// `at`, with the outcome in plain words.
pub(super) async fn demo_send(
    settings: &mut Settings,
    store: Arc<dyn Store>,
    dir: &Path,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    const OWNER: &str = "demo-owner";
    let outbox = dir.join("outbox");
    settings.email.transport = crate::config::EmailTransport::File {
        dir: outbox.clone(),
    };
    let demo = app(&store, settings, at);
    demo.add_operator(
        None,
        &OperatorRequest {
            login: OWNER.to_owned(),
            name: Some("Demo owner".to_owned()),
            role: crate::domain::access::OWNER_ROLE.to_owned(),
            teacher: None,
        },
    )
    .await?;
    let welcome = Content::email(
        "Your parent account is ready",
        "Good morning,\n\nyour account in the school's parent portal has been created.\n",
    )?;
    demo.notify(&Actor::System("platform"), "gd-01", &welcome)
        .await?;
    let evening = SendRequest {
        audience: Audience::AllGroups,
        reach: Reach::Both,
        channel: ChannelChoice::Email,
        content: SendContent::Text {
            subject: Some("Parents' evening on Thursday".to_owned()),
            body: "Dear students and parents,\n\nthe parents' evening is on Thursday at 18:00 \
                   in the main hall.\n\nThe school office\n"
                .to_owned(),
            html: None,
        },
        transliterate: false,
    };
    let owner_actor = Actor::operator(OWNER);
    // What `herald send … --dry-run` shows before anything is stored.
    println!("A dry run of the email to all groups (`herald send --dry-run`):");
    let dry = demo.send(&owner_actor, &evening, true).await?;
    print_send(&dry.send, None, false)?;
    print_summary(&dry.summary);
    println!();
    let send = demo.send(&owner_actor, &evening, false).await?;
    let batch = send
        .batch
        .context("a send that is not a dry run has a batch")?;
    demo.decide(&owner_actor, batch, &[], Decision::Approve, None)
        .await?;

    // SMS to the guardians, with a wallet that covers only some of them.
    let sms_file = dir.join("sms.jsonl");
    settings.sms.gateway = crate::config::SmsGateway::File {
        path: sms_file.clone(),
    };
    const DEMO_CREDIT: i64 = 10;
    demo.top_up(&owner_actor, DEMO_CREDIT, "demo credit")
        .await?;
    let reminder = SendRequest {
        audience: Audience::AllGroups,
        reach: Reach::Guardians,
        channel: ChannelChoice::Sms,
        content: SendContent::Text {
            subject: None,
            body: "Przypomnienie: zebranie rodziców w czwartek o 18:00. Sekretariat.".to_owned(),
            html: None,
        },
        transliterate: true,
    };
    let sms_send = demo.send(&owner_actor, &reminder, false).await?;
    let sms_batch = sms_send
        .batch
        .context("a send that is not a dry run has a batch")?;
    // What the approver sees in `herald outbox show` before approving, and the
    // approval bound to that version.
    let view = demo.batch_view(sms_batch, &[]).await?;
    println!(
        "The approver's view of the SMS batch {sms_batch} (`herald outbox show {sms_batch}`), version {}:",
        view.version
    );
    print_summary(&view.summary);
    println!();
    demo.decide(
        &owner_actor,
        sms_batch,
        &[],
        Decision::Approve,
        Some(&view.version),
    )
    .await?;

    let tz = settings.school.time_zone;
    println!(
        "SMS: batch {sms_batch} \"{}\" ({} segment each, transliterated to GSM-7) to the \
         guardians ({} messages); the wallet holds {DEMO_CREDIT} points.",
        sms_send.send.batch.body,
        sms_send
            .send
            .messages
            .iter()
            .find_map(|m| m.segments)
            .unwrap_or(1),
        sms_send.send.messages.len()
    );
    println!(
        "Sending: a system message to gd-01, and batch {batch} \"{}\" to {} ({} messages), \
         approved by the demo owner.",
        send.send.batch.subject.as_deref().unwrap_or_default(),
        send.send.batch.audience,
        send.send.messages.len()
    );
    // Periodic rules: the school's templates, the rules switched on, one run each.
    for (name, subject, body) in [
        (
            "reminder",
            "Rata {{ instalment.amount | money }} do {{ instalment.due_date }}",
            "Dzień dobry,\n\nprzypominamy, że {{ instalment.due_date }} mija termin raty \
             {{ instalment.amount | money }} za {{ student.first_name }} (umowa \
             {{ contract.number }}).\n\nSekretariat\n",
        ),
        (
            "arrears",
            "Zaległa płatność: {{ arrears.amount | money }}",
            "Dzień dobry,\n\nod {{ arrears.since }} ({{ arrears.days }} dni) pozostaje do zapłaty \
             {{ arrears.amount | money }} (umowa {{ contract.number }}).\n\nSekretariat\n",
        ),
        (
            "birthday",
            "Wszystkiego najlepszego, {{ recipient.first_name }}!",
            "Sto lat! Cała szkoła życzy Ci wszystkiego najlepszego.\n",
        ),
    ] {
        let variant = crate::templates::Variant {
            name: name.to_owned(),
            locale: "pl".to_owned(),
            channel: Channel::Email,
            subject: Some(subject.to_owned()),
            body: body.to_owned(),
            html: None,
        };
        demo.save_template(&owner_actor, &variant).await?;
    }
    for (rule, template, approval) in [
        (&mut settings.rules.instalment_due, "reminder", false),
        (&mut settings.rules.arrears, "arrears", true),
        (&mut settings.rules.birthday, "birthday", false),
    ] {
        rule.enabled = true;
        rule.template = template.to_owned();
        rule.requires_approval = approval;
    }
    println!(
        "Periodic rules run at {} (`herald rules run`):",
        at.with_timezone(&settings.school.time_zone)
            .format("%a %d %b %H:%M")
    );
    for rule in crate::rules::Rule::ALL {
        let report = crate::rules::run_rule(&*store, settings, rule, at).await?;
        let how = if rule.settings(settings).requires_approval {
            "waiting in the outbox for approval"
        } else {
            "going with the next pass"
        };
        println!(
            "  {rule}: {} occurrence(s), {} message(s), {how}",
            report.occurrences, report.messages
        );
    }
    println!();
    let daemon = Daemon::build_with(
        settings.clone(),
        Arc::clone(&store),
        Arc::new(FixedClock::new(at)),
    )?;
    let counts = daemon.run_once().await?;
    println!(
        "One dispatch pass at {} ({}): {} sent, {} held, {} blocked, {} failed.",
        at.with_timezone(&tz).format("%a %d %b %H:%M"),
        tz.name(),
        counts.sent,
        counts.held,
        send.send
            .messages
            .iter()
            .chain(&sms_send.send.messages)
            .filter(|m| m.status == MessageStatus::Blocked)
            .count() as u64
            + counts.blocked,
        counts.failed
    );
    let all = store.message_counts(&MessageFilter::default()).await?;
    for c in &all {
        println!("  {:>4}  {}", c.count, status_words(c.status, c.reason));
    }
    let calendar = store.calendar(at.with_timezone(&tz).date_naive()).await?;
    if let Some(reason) = settings.send_window.hold_reason(at, &calendar) {
        let opens = settings
            .send_window
            .next_opening(at, &calendar)
            .map(|t| t.format("%a %d %b %H:%M").to_string())
            .unwrap_or_else(|| "no opening within a year".into());
        println!(
            "It is {} at the school: {}. The batch waits until {opens}; the system message \
             did not wait. To see the batch go, run the demo as if in school hours: \
             `herald demo --at {}T10:00`.",
            at.with_timezone(&tz).format("%H:%M on %A"),
            reason.describe(),
            settings
                .send_window
                .next_opening(at, &calendar)
                .map(|t| t.date_naive())
                .unwrap_or_else(|| at.with_timezone(&tz).date_naive())
        );
    }
    let files = std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0);
    println!(
        "The sent email is in {} ({files} .eml file(s), one per message, named by Message-ID).",
        outbox.display()
    );
    let wallet = store.wallet().await?;
    let texts = std::fs::read_to_string(&sms_file)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    println!(
        "The sent SMS are in {} ({texts} line(s)); the wallet has {} point(s) left. SMS \
         waiting for credit go on the first pass after `herald wallet top-up`.",
        sms_file.display(),
        wallet.balance
    );
    Ok(())
}

/// A folder under the current one that does not exist yet: `herald-demo`,
/// `herald-demo-2`, …
pub(super) fn fresh_demo_dir() -> anyhow::Result<PathBuf> {
    (1..1000)
        .map(|n| {
            PathBuf::from(if n == 1 {
                "herald-demo".to_owned()
            } else {
                format!("herald-demo-{n}")
            })
        })
        .find(|p| !p.exists())
        .context("every herald-demo-N folder up to 999 exists already; pass --dir")
}

pub(super) async fn demo(
    mut settings: Settings,
    dir: Option<PathBuf>,
    at: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let dir = match dir {
        Some(d) => d,
        None => fresh_demo_dir()?,
    };
    let database = dir.join("herald.db");
    if database.exists() {
        bail!(
            "{} already holds a demo database; pass another --dir or remove it",
            dir.display()
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    settings.database.use_sqlite_file(&database);
    let store = store::open(&settings.database).await?;

    let tz = settings.school.time_zone;
    // The school's dates (birthdays, due dates) are set around the demo's day, so
    // `--at` shows the same story on any date.
    let today = at.with_timezone(&tz).date_naive();
    let (document, (holiday_name, first, last)) = crate::demo::school(today);
    let school_file = dir.join("school.json");
    std::fs::write(&school_file, serde_json::to_string_pretty(&document)?)
        .with_context(|| format!("cannot write {}", school_file.display()))?;
    let report = app(&store, &settings, at)
        .import_file(&Actor::System("demo"), &school_file, None)
        .await?;
    if report.has_errors() {
        print_import_report(&school_file, &report);
        bail!("the demo school did not import cleanly");
    }
    app(&store, &settings, at)
        .add_holiday(&Actor::System("demo"), &holiday_name, first, last)
        .await?;

    let counts = store.counts().await?;
    let groups = store.groups().await?;
    let everyone = store.recipients(&RecipientFilter::default()).await?;
    let calendar = store.calendar(today).await?;

    println!("Herald demo school \"{}\"", settings.school.name);
    println!("  database:    {}", database.display());
    println!(
        "  import file: {} (the JSON import format)",
        school_file.display()
    );
    println!();
    println!(
        "Directory: {} students, {} guardians, {} teachers, {} staff; {} groups; {} contracts ({} active).",
        counts.students,
        counts.guardians,
        counts.teachers,
        counts.staff,
        counts.groups,
        counts.contracts,
        counts.active_contracts
    );
    for g in &groups {
        println!(
            "  {:<18} {} students, {} teacher(s)",
            g.name, g.students, g.teachers
        );
    }
    println!();

    let judge = app(&store, &settings, at);
    let judged: Vec<(&EligibilityFacts, BTreeMap<Channel, Vec<Reason>>)> =
        everyone.iter().map(|f| (f, judge.verdicts(f))).collect();
    println!("Who can be reached:");
    for channel in Channel::ALL {
        let reachable = judged
            .iter()
            .filter(|(_, v)| v[&channel].is_empty())
            .count();
        println!(
            "  by {:<6} {reachable:>3} of {} people",
            format!("{}:", channel_name(channel)),
            judged.len()
        );
    }
    let nowhere = judged
        .iter()
        .filter(|(_, v)| v.values().all(|r| !r.is_empty()))
        .count();
    println!("  by neither: {nowhere}");
    println!();
    // Younger students usually have no contact points of their own: the school
    // writes to their guardians. Listing each of them would bury the real faults.
    let through_guardians = |f: &EligibilityFacts, v: &BTreeMap<Channel, Vec<Reason>>| {
        f.recipient.role == Role::Student
            && f.recipient.email.is_none()
            && f.recipient.phone.is_none()
            && v.values()
                .flatten()
                .all(|r| matches!(r, Reason::MissingEmail | Reason::MissingPhone))
    };
    let mut tally: BTreeMap<(Reason, Channel), usize> = BTreeMap::new();
    for (_, v) in &judged {
        for (c, reasons) in v {
            for r in reasons {
                *tally.entry((*r, *c)).or_default() += 1;
            }
        }
    }
    println!("Why the others cannot be reached (people per reason and channel):");
    for ((reason, channel), n) in &tally {
        println!(
            "  {n:>3}  {:<6} {:<22} {}",
            channel_name(*channel),
            reason.as_str(),
            reason.describe()
        );
    }
    let young = judged
        .iter()
        .filter(|(f, v)| through_guardians(f, v))
        .count();
    println!();
    println!(
        "{young} students have no email or phone of their own; messages for them go to their guardians."
    );
    println!("What to fix, person by person:");
    for (facts, v) in judged
        .iter()
        .filter(|(f, v)| v.values().any(|r| !r.is_empty()) && !through_guardians(f, v))
    {
        let r = &facts.recipient;
        println!("  {} ({}, {})", r.name, r.role, r.external_id);
        for (channel, reasons) in v.iter().filter(|(_, r)| !r.is_empty()) {
            let words: Vec<String> = reasons
                .iter()
                .map(|x| explain(*x, *channel, facts))
                .collect();
            println!(
                "    {:<6} {}",
                format!("{}:", channel_name(*channel)),
                words.join("; ")
            );
        }
    }
    println!();
    print_timing(&settings, &calendar, at, tz);
    println!();
    demo_send(&mut settings, store, &dir, at).await?;
    println!();
    println!("Look around (the demo database is selected by HERALD__DATABASE__URL):");
    let url = format!("HERALD__DATABASE__URL=sqlite://{}", database.display());
    println!("  {url} herald status --summary");
    println!("  {url} herald status --recipient gd-07");
    println!("  {url} herald outbox --all");
    println!("  {url} herald recipients --ineligible");
    println!("  {url} herald operators list");
    println!("  {url} herald audit");
    Ok(ExitCode::SUCCESS)
}

pub(super) fn print_timing(
    settings: &Settings,
    calendar: &HolidayCalendar,
    now: DateTime<Utc>,
    tz: Tz,
) {
    let w = &settings.send_window;
    println!("Send window ({}):", tz.name());
    for day in [
        chrono::Weekday::Mon,
        chrono::Weekday::Tue,
        chrono::Weekday::Wed,
        chrono::Weekday::Thu,
        chrono::Weekday::Fri,
        chrono::Weekday::Sat,
        chrono::Weekday::Sun,
    ] {
        println!("  {day}  {}", w.describe_day(day));
    }
    for h in calendar.holidays() {
        println!("  day off: {} ({} to {})", h.name, h.first_day, h.last_day);
    }
    let local = now.with_timezone(&tz);
    match w.hold_reason(now, calendar) {
        None => println!(
            "Now ({}) the window is open: informational messages would go on the next dispatch tick.",
            local.format("%a %d %b %H:%M")
        ),
        Some(reason) => {
            let next = w
                .next_opening(now, calendar)
                .map(|t| t.format("%a %d %b %H:%M").to_string())
                .unwrap_or_else(|| "no opening within a year".into());
            println!(
                "Now ({}) informational messages would be held ({}: {}) until {next}; system messages go at once.",
                local.format("%a %d %b %H:%M"),
                reason.as_str(),
                reason.describe()
            );
        }
    }
}
