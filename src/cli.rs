//! The command line: clap commands turned into library calls. The only place that
//! prints for people, and the one place (with the daemon, later) that reads the clock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::config::Settings;
use crate::domain::codes::UnknownCode;
use crate::domain::directory::{ContractConsent, Role};
use crate::domain::{Channel, EligibilityFacts, Holiday, HolidayCalendar, Reason};
use crate::import::{ImportKind, ImportOptions, ImportReport, import_file};
use crate::store::{self, RecipientFilter, Store};

/// Herald: email and SMS for schools, with approval, send windows, holidays, consent
/// and an SMS wallet.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about, long_about = None)]
pub struct Cli {
    /// A TOML file of settings layered over the defaults (see config/default.toml).
    #[arg(long, global = true, env = "HERALD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the database schema.
    Migrate,
    /// Import recipients, groups, guardianships, memberships or contracts from CSV or
    /// JSON files (upserted by the platform's ids; a bad row is reported and skipped).
    Import {
        /// The files, applied in the order given.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// What a CSV file (or a JSON list) holds, when its name does not say.
        #[arg(long, value_enum)]
        kind: Option<ImportKind>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List recipients with who can be reached by which channel, and why not.
    Recipients {
        /// Only this role.
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        /// Only members of this group (the platform's group id).
        #[arg(long, value_name = "GROUP_ID")]
        group: Option<String>,
        /// Only those whose name, id, email or phone contains this text.
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
        /// Only those who cannot be reached (on `--channel`, or on any channel).
        #[arg(long)]
        ineligible: bool,
        /// Only judge this channel.
        #[arg(long, value_parser = parse_channel)]
        channel: Option<Channel>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List groups with how many students and teachers they have.
    Groups {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The school's days off: nothing that respects the send window goes on them.
    Holidays {
        /// What to do with the calendar.
        #[command(subcommand)]
        action: HolidaysCommand,
    },
    /// Create a demo school in a new SQLite database and show who can be reached.
    Demo {
        /// The folder for the demo's database and import file [default: a new
        /// folder herald-demo… under the current one].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// `herald holidays …`
#[derive(Debug, Subcommand)]
pub enum HolidaysCommand {
    /// List holidays from today on (or all with --all).
    List {
        /// Include holidays that are over.
        #[arg(long)]
        all: bool,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a day off, or a run of days (both ends included).
    Add {
        /// What people call it, e.g. "Christmas break".
        name: String,
        /// The first day off, YYYY-MM-DD.
        first_day: NaiveDate,
        /// The last day off, YYYY-MM-DD [default: the first day].
        last_day: Option<NaiveDate>,
    },
    /// Remove a holiday by the id `holidays list` shows.
    Remove {
        /// The holiday's id.
        id: i64,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse().map_err(|e: UnknownCode| e.to_string())
}

fn parse_channel(s: &str) -> Result<Channel, String> {
    s.parse().map_err(|e: UnknownCode| e.to_string())
}

/// Runs a command with the loaded settings.
pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<ExitCode> {
    // The one reading of the clock for a command: everything below takes `now`.
    let now = Utc::now();
    match cli.command {
        Command::Migrate => {
            let applied = store::migrate(&settings.database).await?;
            if applied.is_empty() {
                println!(
                    "The database {} is up to date.",
                    settings.database.redacted_url()
                );
            } else {
                println!(
                    "Applied {} migration(s) to {}.",
                    applied.len(),
                    settings.database.redacted_url()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { files, kind, json } => {
            let store = store::open(&settings.database).await?;
            import(&*store, &settings, &files, kind, json, now).await
        }
        Command::Recipients {
            role,
            group,
            search,
            ineligible,
            channel,
            json,
        } => {
            let store = store::open(&settings.database).await?;
            let filter = RecipientFilter {
                role,
                group,
                search,
                ..RecipientFilter::default()
            };
            recipients(&*store, &settings, &filter, ineligible, channel, json).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Groups { json } => {
            let store = store::open(&settings.database).await?;
            let groups = store.groups().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&groups)?);
            } else if groups.is_empty() {
                println!("No groups. Import some with `herald import groups.csv`.");
            } else {
                let rows = groups
                    .iter()
                    .map(|g| {
                        vec![
                            g.external_id.clone(),
                            g.name.clone(),
                            g.students.to_string(),
                            g.teachers.to_string(),
                        ]
                    })
                    .collect();
                print_table(&["ID", "NAME", "STUDENTS", "TEACHERS"], rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Holidays { action } => {
            let store = store::open(&settings.database).await?;
            holidays(&*store, &settings, action, now).await
        }
        Command::Demo { dir } => demo(settings, dir, now).await,
    }
}

async fn import(
    store: &dyn Store,
    settings: &Settings,
    files: &[PathBuf],
    kind: Option<ImportKind>,
    json: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let options = ImportOptions {
        phone_region: settings.school.phone_region,
        progress_threshold: settings.import.progress_threshold,
    };
    let mut failed = false;
    let mut reports = Vec::new();
    for file in files {
        let report = import_file(store, file, kind, options, now).await;
        match report {
            Ok(report) => {
                failed |= report.has_errors();
                if !json {
                    print_import_report(file, &report);
                }
                reports.push(serde_json::json!({"file": file, "report": report}));
            }
            Err(e) => {
                failed = true;
                if json {
                    reports.push(serde_json::json!({"file": file, "error": e.to_string()}));
                } else {
                    eprintln!("herald: {e}");
                    eprintln!("  nothing was imported from {}", file.display());
                }
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_import_report(file: &Path, report: &ImportReport) {
    println!("{}:", file.display());
    for (kind, c) in &report.counts {
        println!(
            "  {kind:<14} {} created, {} updated, {} unchanged, {} failed",
            c.created, c.updated, c.unchanged, c.failed
        );
    }
    for w in &report.warnings {
        println!("  warning: {w}");
    }
    for e in &report.errors {
        println!("  error: {e}");
    }
    if report.has_errors() {
        println!(
            "  {} row(s) were not imported; fix them and import the file again (the \
             rows already in are left as they are).",
            report.errors.len()
        );
    }
}

/// A recipient's verdict per channel, as `--json` prints it.
#[derive(Serialize)]
struct RecipientView<'a> {
    id: i64,
    external_id: &'a str,
    role: Role,
    name: &'a str,
    locale: Option<&'a str>,
    email: Option<&'a str>,
    phone: Option<&'a str>,
    sms_enabled: bool,
    channels: BTreeMap<Channel, ChannelView>,
    contracts: &'a [ContractConsent],
}

#[derive(Serialize)]
struct ChannelView {
    eligible: bool,
    reasons: Vec<ReasonView>,
}

#[derive(Serialize)]
struct ReasonView {
    code: Reason,
    description: &'static str,
}

fn verdicts(facts: &EligibilityFacts, settings: &Settings) -> BTreeMap<Channel, Vec<Reason>> {
    Channel::ALL
        .into_iter()
        .map(|c| {
            (
                c,
                facts.check(c, settings.school.phone_region, settings.eligibility),
            )
        })
        .collect()
}

async fn recipients(
    store: &dyn Store,
    settings: &Settings,
    filter: &RecipientFilter,
    only_ineligible: bool,
    channel: Option<Channel>,
    json: bool,
) -> anyhow::Result<()> {
    let all = store.recipients(filter).await?;
    let judged: Vec<(&EligibilityFacts, BTreeMap<Channel, Vec<Reason>>)> = all
        .iter()
        .map(|f| {
            let mut v = verdicts(f, settings);
            if let Some(only) = channel {
                v.retain(|c, _| *c == only);
            }
            (f, v)
        })
        .filter(|(_, v)| !only_ineligible || v.values().any(|r| !r.is_empty()))
        .collect();
    if json {
        let views: Vec<RecipientView> = judged
            .iter()
            .map(|(f, v)| {
                let r = &f.recipient;
                RecipientView {
                    id: r.id.0,
                    external_id: &r.external_id,
                    role: r.role,
                    name: &r.name,
                    locale: r.locale.as_deref(),
                    email: r.email.as_deref(),
                    phone: r.phone.as_deref(),
                    sms_enabled: r.sms_enabled,
                    channels: v
                        .iter()
                        .map(|(c, reasons)| {
                            (
                                *c,
                                ChannelView {
                                    eligible: reasons.is_empty(),
                                    reasons: reasons
                                        .iter()
                                        .map(|r| ReasonView {
                                            code: *r,
                                            description: r.describe(),
                                        })
                                        .collect(),
                                },
                            )
                        })
                        .collect(),
                    contracts: &f.contracts,
                }
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(());
    }
    if judged.is_empty() {
        println!("No recipients match.");
        return Ok(());
    }
    let channels: Vec<Channel> = judged[0].1.keys().copied().collect();
    let mut headers = vec!["ID", "ROLE", "NAME"];
    headers.extend(channels.iter().map(|c| match c {
        Channel::Email => "EMAIL",
        Channel::Sms => "SMS",
    }));
    let rows = judged
        .iter()
        .map(|(f, v)| {
            let r = &f.recipient;
            let mut row = vec![r.external_id.clone(), r.role.to_string(), r.name.clone()];
            row.extend(v.values().map(|reasons| {
                if reasons.is_empty() {
                    "ok".to_owned()
                } else {
                    reasons
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                }
            }));
            row
        })
        .collect();
    print_table(&headers, rows);
    let mut tally: BTreeMap<(Channel, Reason), usize> = BTreeMap::new();
    for (_, v) in &judged {
        for (c, reasons) in v {
            for r in reasons {
                *tally.entry((*c, *r)).or_default() += 1;
            }
        }
    }
    if !tally.is_empty() {
        println!();
        for ((c, r), n) in tally {
            println!("{n:>5} {c:<5} {:<22} {}", r.as_str(), r.describe());
        }
    }
    Ok(())
}

async fn holidays(
    store: &dyn Store,
    settings: &Settings,
    action: HolidaysCommand,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let today = now.with_timezone(&settings.school.time_zone).date_naive();
    match action {
        HolidaysCommand::List { all, json } => {
            let list = store.holidays((!all).then_some(today)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!(
                    "No holidays. Add one with `herald holidays add NAME FIRST_DAY [LAST_DAY]`."
                );
            } else {
                let rows = list
                    .iter()
                    .map(|h| {
                        vec![
                            h.id.map(|i| i.to_string()).unwrap_or_default(),
                            h.first_day.format("%a %Y-%m-%d").to_string(),
                            h.last_day.format("%a %Y-%m-%d").to_string(),
                            ((h.last_day - h.first_day).num_days() + 1).to_string(),
                            h.name.clone(),
                        ]
                    })
                    .collect();
                print_table(&["ID", "FIRST DAY", "LAST DAY", "DAYS", "NAME"], rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        HolidaysCommand::Add {
            name,
            first_day,
            last_day,
        } => {
            let holiday = Holiday::new(&name, first_day, last_day.unwrap_or(first_day))
                .with_context(|| format!("cannot add the holiday {name:?}"))?;
            let stored = store.add_holiday(&holiday, now).await?;
            println!(
                "Added holiday {} (id {}): {} to {}.",
                stored.name,
                stored.id.unwrap_or_default(),
                stored.first_day,
                stored.last_day
            );
            if stored.last_day < today {
                println!("Note: it is already over, so it changes nothing.");
            }
            Ok(ExitCode::SUCCESS)
        }
        HolidaysCommand::Remove { id } => {
            if store.remove_holiday(id).await? {
                println!("Removed holiday {id}.");
                Ok(ExitCode::SUCCESS)
            } else {
                bail!("there is no holiday with id {id}; `herald holidays list --all` shows them")
            }
        }
    }
}

/// A folder under the current one that does not exist yet: `herald-demo`,
/// `herald-demo-2`, …
fn fresh_demo_dir() -> anyhow::Result<PathBuf> {
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

async fn demo(
    mut settings: Settings,
    dir: Option<PathBuf>,
    now: DateTime<Utc>,
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
    let today = now.with_timezone(&tz).date_naive();
    let (document, (holiday_name, first, last)) = crate::demo::school(today);
    let school_file = dir.join("school.json");
    std::fs::write(&school_file, serde_json::to_string_pretty(&document)?)
        .with_context(|| format!("cannot write {}", school_file.display()))?;
    let options = ImportOptions {
        phone_region: settings.school.phone_region,
        progress_threshold: settings.import.progress_threshold,
    };
    let report = import_file(&*store, &school_file, None, options, now).await?;
    if report.has_errors() {
        print_import_report(&school_file, &report);
        bail!("the demo school did not import cleanly");
    }
    store
        .add_holiday(&Holiday::new(&holiday_name, first, last)?, now)
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

    let judged: Vec<(&EligibilityFacts, BTreeMap<Channel, Vec<Reason>>)> = everyone
        .iter()
        .map(|f| (f, verdicts(f, &settings)))
        .collect();
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
    print_timing(&settings, &calendar, now, tz);
    println!();
    println!("Look around (the demo database is selected by HERALD__DATABASE__URL):");
    let url = format!("HERALD__DATABASE__URL=sqlite://{}", database.display());
    println!("  {url} herald recipients --ineligible");
    println!("  {url} herald recipients --group g-1a --json");
    println!("  {url} herald holidays list");
    Ok(ExitCode::SUCCESS)
}

fn print_timing(settings: &Settings, calendar: &HolidayCalendar, now: DateTime<Utc>, tz: Tz) {
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

fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "email",
        Channel::Sms => "SMS",
    }
}

/// A reason in plain words, with the detail that lets a secretary fix it.
fn explain(reason: Reason, channel: Channel, facts: &EligibilityFacts) -> String {
    let r = &facts.recipient;
    let detail = match reason {
        Reason::InvalidEmail => r.email.as_ref().map(|e| format!("{e:?}")),
        Reason::InvalidPhone => r.phone.as_ref().map(|p| format!("{p:?}")),
        Reason::PhoneNotSmsEnabled => r
            .phone
            .as_ref()
            .map(|p| format!("{p} is stored but 'receives SMS' is off")),
        Reason::NoConsent if facts.contracts.is_empty() => Some(match r.role {
            Role::Guardian => "no student in their care has a contract".to_owned(),
            _ => "no contract".to_owned(),
        }),
        Reason::NoConsent => Some(
            facts
                .contracts
                .iter()
                .map(|c| describe_consent(c, channel))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        _ => None,
    };
    match detail {
        Some(d) => format!("{} ({d})", reason.describe()),
        None => reason.describe().to_owned(),
    }
}

/// Why one contract does not give consent on `channel`.
fn describe_consent(c: &ContractConsent, channel: Channel) -> String {
    if c.status != crate::domain::ContractStatus::Active {
        return format!("contract {} is {}", c.contract, c.status);
    }
    let consent = match channel {
        Channel::Email => &c.email,
        Channel::Sms => &c.sms,
    };
    let mut text = format!(
        "contract {} has no {} consent",
        c.contract,
        channel_name(channel)
    );
    let when = consent.changed_at.map(|t| t.format("%Y-%m-%d").to_string());
    match (when, &c.source) {
        (Some(w), Some(s)) => text.push_str(&format!(", recorded {w} ({s})")),
        (Some(w), None) => text.push_str(&format!(", recorded {w}")),
        (None, Some(s)) => text.push_str(&format!(" ({s})")),
        (None, None) => {}
    }
    text
}

/// Prints rows under headers, each column as wide as its widest cell.
fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}", w = *w))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}
