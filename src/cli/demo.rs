//! `herald demo`: the demo school's story, told step by step as `crate::demo` runs it.

use super::directory::explain;
use super::*;
use crate::demo::{DemoError, DemoSchool, Directory, Pass, RuleRun, Sends};

/// Create a demo school in a new SQLite database and show who can be reached.
pub(super) async fn demo_command(
    args: DemoArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let DemoArgs { dir, at, serve } = args;
    if serve && let Some(dir) = dir.as_deref().filter(|d| d.join("herald.db").exists()) {
        let demo = DemoSchool::open(settings, dir, now).await?;
        close_when_done(&demo.store());
        return serve_demo(demo).await;
    }
    // One clock for the whole demo: with `--at`, composing, approving, the
    // rules and the pass all happen at that school time, past or future, so
    // the story is the same on any date.
    let at = at.map(|t| school_time(&settings, &t)).transpose()?;
    let at = at.unwrap_or(now);
    let dir = match dir {
        Some(d) => d,
        None => crate::demo::fresh_dir()
            .context("every herald-demo-N folder up to 999 exists already; pass --dir")?,
    };
    let mut demo = match DemoSchool::create(settings, &dir, at).await {
        Err(DemoError::Import(report)) => {
            print_import_report(&dir.join("school.json"), &report);
            bail!("the demo school did not import cleanly");
        }
        Err(e @ DemoError::Exists(_)) => bail!("{e}; pass another --dir or remove it"),
        other => other?,
    };
    close_when_done(&demo.store());
    say!("Herald demo school \"{}\"", demo.settings.school.name);
    say!("  database:    {}", demo.database.display());
    say!(
        "  import file: {} (the JSON import format)",
        demo.school_file.display()
    );
    say!();
    let directory = demo.directory().await?;
    print_directory(&directory);
    say!();
    let tz = demo.settings.school.time_zone;
    print_timing(&demo.settings, &directory.calendar, at, tz);
    say!();
    let sends = demo.send().await?;
    print_sends(&sends)?;
    let runs = demo.run_rules().await?;
    say!(
        "Periodic rules run at {} (`herald rules run`):",
        at.with_timezone(&tz).format("%a %d %b %H:%M")
    );
    print_rules(&runs);
    say!();
    let pass = demo.dispatch().await?;
    print_pass(&demo, &sends, &pass, &directory.calendar);
    say!();
    if serve {
        say!();
        return serve_demo(demo).await;
    }
    say!("Look around (the demo database is selected by HERALD__DATABASE__URL):");
    let url = format!("HERALD__DATABASE__URL=sqlite://{}", demo.database.display());
    for command in [
        "status --summary",
        "status --recipient gd-07",
        "outbox --all",
        "recipients --ineligible",
        "operators list",
        "audit",
    ] {
        say!("  {url} herald {command}");
    }
    say!();
    say!("Open the web console on this demo school (sign-ins are printed when it starts):");
    say!("  herald demo --serve --dir {}", demo.dir.display());
    Ok(ExitCode::SUCCESS)
}

/// `herald run` on the demo's database, with the console, after printing how to
/// sign in to it.
async fn serve_demo(demo: DemoSchool) -> anyhow::Result<ExitCode> {
    let Some(listen) = demo.settings.http.listen else {
        bail!("http.listen is \"\": the console needs an address to serve on");
    };
    let sign_ins = demo.console_sign_ins().await?;
    let host = match listen.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        ip if ip.is_ipv6() => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    say!(
        "The console of the demo school: http://{host}:{}/console/",
        listen.port()
    );
    say!("Sign in as (these passwords are new each time and shown only now):");
    for (login, role, password) in &sign_ins {
        say!("  {login:<16} {role:<10} {password}");
    }
    say!(
        "Emails go to {} and SMS to {}. Stop with Ctrl-C.",
        demo.dir.join("outbox").display(),
        demo.dir.join("sms.jsonl").display()
    );
    let store = demo.store();
    let settings = demo.settings.clone();
    super::daemon::run_on(store, settings).await
}

/// Who is in the school, who can be reached by which channel, and why not.
fn print_directory(d: &Directory) {
    let counts = &d.counts;
    say!(
        "Directory: {} students, {} guardians, {} teachers, {} staff; {} groups; {} contracts ({} active).",
        counts.students,
        counts.guardians,
        counts.teachers,
        counts.staff,
        counts.groups,
        counts.contracts,
        counts.active_contracts
    );
    for g in &d.groups {
        say!(
            "  {:<18} {} students, {} teacher(s)",
            g.name,
            g.students,
            g.teachers
        );
    }
    say!();
    let judged = &d.everyone;
    say!("Who can be reached:");
    for channel in Channel::ALL {
        let reachable = judged
            .iter()
            .filter(|(_, v)| v[&channel].is_empty())
            .count();
        say!(
            "  by {:<6} {reachable:>3} of {} people",
            format!("{}:", channel_name(channel)),
            judged.len()
        );
    }
    let nowhere = judged
        .iter()
        .filter(|(_, v)| v.values().all(|r| !r.is_empty()))
        .count();
    say!("  by neither: {nowhere}");
    say!();
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
    for (_, v) in judged {
        for (c, reasons) in v {
            for r in reasons {
                *tally.entry((*r, *c)).or_default() += 1;
            }
        }
    }
    say!("Why the others cannot be reached (people per reason and channel):");
    for ((reason, channel), n) in &tally {
        say!(
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
    say!();
    say!(
        "{young} students have no email or phone of their own; messages for them go to their guardians."
    );
    say!("What to fix, person by person:");
    for (facts, v) in judged
        .iter()
        .filter(|(f, v)| v.values().any(|r| !r.is_empty()) && !through_guardians(f, v))
    {
        let r = &facts.recipient;
        say!("  {} ({}, {})", r.name, r.role, r.external_id);
        for (channel, reasons) in v.iter().filter(|(_, r)| !r.is_empty()) {
            let words: Vec<String> = reasons
                .iter()
                .map(|x| explain(*x, *channel, facts))
                .collect();
            say!(
                "    {:<6} {}",
                format!("{}:", channel_name(*channel)),
                words.join("; ")
            );
        }
    }
}

/// The dry run, the approver's view and what was sent.
fn print_sends(s: &Sends) -> anyhow::Result<()> {
    say!("A dry run of the email to all groups (`herald send --dry-run`):");
    print_send(&s.dry_run.send, None, false)?;
    print_summary(&s.dry_run.summary);
    say!();
    let sms_batch = s.sms_view.batch.id;
    say!(
        "The approver's view of the SMS batch {sms_batch} (`herald outbox show {sms_batch}`), version {}:",
        s.sms_view.version
    );
    print_summary(&s.sms_view.summary);
    say!();
    let sms = &s.sms.send;
    say!(
        "SMS: batch {sms_batch} \"{}\" ({} segment each, transliterated to GSM-7) to the \
         guardians ({} messages); the wallet holds {} points.",
        sms.batch.body,
        sms.messages.iter().find_map(|m| m.segments).unwrap_or(1),
        sms.messages.len(),
        crate::demo::CREDIT
    );
    let email = &s.email.send;
    say!(
        "Sending: a system message to gd-01, and batch {} \"{}\" to {} ({} messages), \
         approved by the demo owner.",
        s.email.batch.map(|b| b.to_string()).unwrap_or_default(),
        email.batch.subject.as_deref().unwrap_or_default(),
        email.batch.audience,
        email.messages.len()
    );
    Ok(())
}

/// What each rule wrote.
fn print_rules(runs: &[RuleRun]) {
    for run in runs {
        let how = if run.requires_approval {
            "waiting in the outbox for approval"
        } else {
            "going with the next pass"
        };
        say!(
            "  {}: {} occurrence(s), {} message(s), {how}",
            run.rule,
            run.report.occurrences,
            run.report.messages
        );
    }
}

/// The pass, where everything ended up, and what waits for the window.
fn print_pass(demo: &DemoSchool, sends: &Sends, pass: &Pass, calendar: &HolidayCalendar) {
    let (settings, at) = (&demo.settings, demo.at);
    let tz = settings.school.time_zone;
    let counts = &pass.counts;
    let blocked_at_creation = sends
        .email
        .send
        .messages
        .iter()
        .chain(&sends.sms.send.messages)
        .filter(|m| m.status == MessageStatus::Blocked)
        .count() as u64;
    say!(
        "One dispatch pass at {} ({}): {} sent, {} held, {} blocked, {} failed.",
        at.with_timezone(&tz).format("%a %d %b %H:%M"),
        tz.name(),
        counts.sent,
        counts.held,
        blocked_at_creation + counts.blocked,
        counts.failed
    );
    for c in &pass.statuses {
        say!("  {:>4}  {}", c.count, status_words(c.status, c.reason));
    }
    if let Some(reason) = settings.send_window.hold_reason(at, calendar) {
        let next = settings.send_window.next_opening(at, calendar);
        let opens = next
            .map(|t| t.format("%a %d %b %H:%M").to_string())
            .unwrap_or_else(|| "no opening within a year".into());
        say!(
            "It is {} at the school: {}. The batch waits until {opens}; the system message \
             did not wait. To see the batch go, run the demo as if in school hours: \
             `herald demo --at {}T10:00`.",
            at.with_timezone(&tz).format("%H:%M on %A"),
            reason.describe(),
            next.map(|t| t.date_naive())
                .unwrap_or_else(|| at.with_timezone(&tz).date_naive())
        );
    }
    let (outbox, files) = &pass.outbox;
    say!(
        "The sent email is in {} ({files} .eml file(s), one per message, named by Message-ID).",
        outbox.display()
    );
    let (sms_file, texts) = &pass.sms;
    say!(
        "The sent SMS are in {} ({texts} line(s)); the wallet has {} point(s) left. SMS \
         waiting for credit go on the first pass after `herald wallet top-up`.",
        sms_file.display(),
        pass.wallet.balance
    );
}

pub(super) fn print_timing(
    settings: &Settings,
    calendar: &HolidayCalendar,
    now: DateTime<Utc>,
    tz: Tz,
) {
    let w = &settings.send_window;
    say!("Send window ({}):", tz.name());
    for day in [
        chrono::Weekday::Mon,
        chrono::Weekday::Tue,
        chrono::Weekday::Wed,
        chrono::Weekday::Thu,
        chrono::Weekday::Fri,
        chrono::Weekday::Sat,
        chrono::Weekday::Sun,
    ] {
        say!("  {day}  {}", w.describe_day(day));
    }
    for h in calendar.holidays() {
        say!("  day off: {} ({} to {})", h.name, h.first_day, h.last_day);
    }
    let local = now.with_timezone(&tz);
    match w.hold_reason(now, calendar) {
        None => say!(
            "Now ({}) the window is open: informational messages would go on the next dispatch tick.",
            local.format("%a %d %b %H:%M")
        ),
        Some(reason) => {
            let next = w
                .next_opening(now, calendar)
                .map(|t| t.format("%a %d %b %H:%M").to_string())
                .unwrap_or_else(|| "no opening within a year".into());
            say!(
                "Now ({}) informational messages would be held ({}: {}) until {next}; system messages go at once.",
                local.format("%a %d %b %H:%M"),
                reason.as_str(),
                reason.describe()
            );
        }
    }
}
