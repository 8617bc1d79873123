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

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::app::{
    Actor, App, AppError, BatchText, HoldChange, OperatorRequest, SendContent, SendRequest, Summary,
};
use crate::clock::FixedClock;
use crate::compose::{self, Content};
use crate::config::Settings;
use crate::daemon::Daemon;
use crate::domain::MessageId;
use crate::domain::access::{AccessError, Permission};
use crate::domain::audit::AuditAction;
use crate::domain::codes::UnknownCode;
use crate::domain::directory::{ContractConsent, Role};
use crate::domain::{Audience, BatchId, BatchStatus, MessageKind, MessageStatus, Reach};
use crate::domain::{Channel, ChannelChoice, EligibilityFacts, HolidayCalendar, Reason};
use crate::import::{ImportKind, ImportReport};
use crate::store::{self, RecipientFilter, Store};
use crate::store::{Decision, MessageAction, MessageFilter};

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
    /// Import recipients, groups, guardianships, memberships, contracts or instalments
    /// from CSV or JSON files (upserted by the platform's ids; a bad row is reported
    /// and skipped).
    Import {
        /// The files, applied in the order given.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// What a CSV file (or a JSON list) holds, when its name does not say.
        #[arg(long, value_enum)]
        kind: Option<ImportKind>,
        /// The operator (needs `manage_recipients`).
        #[arg(long = "as", value_name = "LOGIN")]
        operator: String,
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
    /// Create a system message to one recipient: no approval, sent on the next pass,
    /// at once when `herald run` is running.
    Notify {
        /// The recipient (the platform's id).
        recipient: String,
        /// The channel.
        #[arg(long, value_parser = parse_channel, default_value = "email")]
        channel: Channel,
        /// The subject (email).
        #[arg(long)]
        subject: Option<String>,
        /// The text.
        #[arg(long)]
        body: String,
        /// SMS: replace national characters to stay in GSM-7.
        #[arg(long)]
        transliterate: bool,
        /// The operator (needs `send`; the platform has an operator of its own).
        #[arg(long = "as", value_name = "LOGIN")]
        actor: String,
    },
    /// Compose an informational email or SMS to an audience; it waits in the outbox
    /// for approval unless the operator may send without it.
    Send {
        /// The operator composing it (needs `send`; `herald operators list`).
        #[arg(long = "as", value_name = "LOGIN")]
        operator: String,
        /// Whom it is for.
        #[command(flatten)]
        audience: AudienceArgs,
        /// For students: write to them, to their guardians, or to both (a guardian of
        /// several students gets one message).
        #[arg(long, value_enum, default_value = "students")]
        reach: Reach,
        /// The channel: email, sms, both (an email and an SMS to each person), or
        /// sms_if_no_email (an SMS to those whose email cannot be used).
        #[arg(long, value_parser = parse_code::<ChannelChoice>, default_value = "email")]
        channel: ChannelChoice,
        /// The subject (email).
        #[arg(long)]
        subject: Option<String>,
        /// The text.
        #[arg(
            long,
            required_unless_present = "template",
            conflicts_with = "template"
        )]
        body: Option<String>,
        /// An HTML body sent beside the plain text (email), from this file.
        #[arg(long, value_name = "FILE")]
        html_file: Option<PathBuf>,
        /// Render each message from this template (`herald templates`).
        #[arg(long)]
        template: Option<String>,
        /// A free template variable, NAME=VALUE (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
        vars: Vec<(String, String)>,
        /// SMS: replace national characters to stay in GSM-7.
        #[arg(long)]
        transliterate: bool,
        /// Show what would be created, and create nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Batches waiting for approval, with their counts per status and reason; `show`,
    /// `edit` and `cancel` one.
    Outbox {
        /// What to do with one batch (nothing: list them).
        #[command(subcommand)]
        action: Option<OutboxCommand>,
        /// Show decided batches too.
        #[arg(long)]
        all: bool,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a batch (or only some of its messages): they go on the next dispatch
    /// tick.
    Approve {
        /// The batch id (`herald outbox`).
        batch: i64,
        /// Only this message of the batch (repeatable); the rest wait on.
        #[arg(long = "message", value_name = "MESSAGE")]
        messages: Vec<i64>,
        /// The approving operator (needs `approve`).
        #[arg(long = "as", value_name = "LOGIN")]
        operator: String,
        /// The version of the batch you saw (`herald outbox show` prints it): refused
        /// if the batch changed since. Without it, the batch is decided as it is now,
        /// and that view is printed.
        #[arg(long, value_name = "VERSION")]
        seen: Option<String>,
    },
    /// Reject a batch (or only some of its messages): they will not go.
    Reject {
        /// The batch id.
        batch: i64,
        /// Only this message of the batch (repeatable); the rest wait on.
        #[arg(long = "message", value_name = "MESSAGE")]
        messages: Vec<i64>,
        /// The rejecting operator (needs `approve`).
        #[arg(long = "as", value_name = "LOGIN")]
        operator: String,
        /// Why, for the person who composed it.
        #[arg(long)]
        reason: String,
        /// The version of the batch you saw (`herald outbox show` prints it): refused
        /// if the batch changed since. Without it, the batch is decided as it is now,
        /// and that view is printed.
        #[arg(long, value_name = "VERSION")]
        seen: Option<String>,
    },
    /// Send a message again whose outcome is unknown or that failed (needs approve).
    Resend {
        /// The message id (`herald status`).
        message: i64,
        /// The operator.
        #[arg(long = "as", value_name = "LOGIN")]
        operator: String,
    },
    /// Withdraw a message that has not been sent, or drop one whose outcome is
    /// unknown (needs approve).
    Cancel {
        /// The message id.
        message: i64,
        /// The operator.
        #[arg(long = "as", value_name = "LOGIN")]
        operator: String,
    },
    /// Run the daemon: a dispatch pass on each tick of dispatch.schedule, system
    /// messages at once; stops cleanly on SIGTERM or SIGINT.
    Run,
    /// Run one dispatch pass and exit.
    Dispatch {
        /// One pass (the only mode; the daemon is `herald run`).
        #[arg(long, required = true)]
        once: bool,
        /// Run the pass as if at this school time, e.g. 2026-11-24T10:00.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List messages, newest first, with their status and reason.
    Status {
        /// Only this batch.
        #[arg(long)]
        batch: Option<i64>,
        /// Only this recipient (the platform's id).
        #[arg(long)]
        recipient: Option<String>,
        /// Only this status (queued, sent, blocked, failed, …).
        #[arg(long, value_parser = parse_code::<MessageStatus>)]
        status: Option<MessageStatus>,
        /// Only this kind (system, informational, periodic).
        #[arg(long, value_parser = parse_code::<MessageKind>)]
        kind: Option<MessageKind>,
        /// Only this channel.
        #[arg(long, value_parser = parse_code::<Channel>)]
        channel: Option<Channel>,
        /// Only messages created since: a duration ("24h", "7d") or a school date or
        /// time ("2026-11-24", "2026-11-24T08:00").
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// At most this many (newest first).
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Counts per status and reason instead of a list.
        #[arg(long)]
        summary: bool,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Named templates: one variant per locale and channel, checked when saved.
    Templates {
        /// What to do.
        #[command(subcommand)]
        action: TemplatesCommand,
    },
    /// How an SMS text would be sent: encoding, units, segments, cost.
    SmsInfo {
        /// The text.
        text: String,
        /// Replace national characters to stay in GSM-7.
        #[arg(long)]
        transliterate: bool,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The SMS wallet: balance, reserved points, the low-balance threshold, the ledger.
    Wallet {
        /// What to do (nothing: show the wallet).
        #[command(subcommand)]
        action: Option<WalletCommand>,
        /// Ledger lines to show.
        #[arg(long, default_value_t = 20)]
        ledger: i64,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The hold switch: pause all dispatch on every instance (nothing is lost), or
    /// resume it. Without a subcommand, show it.
    Hold {
        /// On or off.
        #[command(subcommand)]
        action: Option<HoldCommand>,
    },
    /// The audit log: every change made by a person, newest first.
    Audit {
        /// Only this person.
        #[arg(long = "actor", value_name = "LOGIN")]
        actor: Option<String>,
        /// Only this action (send, approve, reject, cancel, resend, top_up, hold_on, …).
        #[arg(long, value_parser = parse_code::<AuditAction>)]
        action: Option<AuditAction>,
        /// Only since: a duration ("24h") or a school date or time.
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// At most this many lines.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Why didn't they get it? Every check for one person (by id, external id, email
    /// address or phone number) or one message's whole story.
    Diagnose {
        /// The person: Herald's id, the platform's id, an email address or a phone
        /// number.
        #[arg(required_unless_present = "message", conflicts_with = "message")]
        recipient: Option<String>,
        /// One message's timeline instead (`herald status` shows ids).
        #[arg(long, value_name = "ID")]
        message: Option<i64>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the installation: configuration, database, SMTP, SMS gateway, DKIM,
    /// window, holidays, wallet, hold switch, dispatcher, rules. Sends nothing.
    Doctor {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The periodic rules: their settings, last and next run; `run` runs them now.
    Rules {
        /// What to do (nothing: list them).
        #[command(subcommand)]
        action: Option<RulesCommand>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Operators, their roles and permissions (`list`, `roles`, `add`, `set-role`,
    /// `grant`, `revoke`, `add-role`).
    Operators {
        /// What to do.
        #[command(subcommand)]
        action: OperatorsCommand,
    },
    /// Create a demo school in a new SQLite database and show who can be reached.
    Demo {
        /// The folder for the demo's database, import file and .eml files [default:
        /// a new folder herald-demo… under the current one].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Run the demo's dispatch pass as if at this school time, e.g.
        /// 2026-11-24T10:00 [default: now].
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
}

/// `herald rules …`
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Run the rules whose time has come (or one rule, now) and exit. Each occurrence
    /// is created once, however often this runs.
    Run {
        /// Only this rule (instalment_due, arrears, birthday), whatever its schedule.
        #[arg(long, value_parser = parse_code::<crate::rules::Rule>)]
        rule: Option<crate::rules::Rule>,
        /// Run as if at this school time in the past, e.g. 2026-11-24T07:00 (a
        /// missed morning); never later than now.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// The operator (needs `manage_settings`).
        #[arg(long = "as", value_name = "LOGIN")]
        operator: String,
        /// Print the reports as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `herald operators …`
#[derive(Debug, Subcommand)]
pub enum OperatorsCommand {
    /// Every operator with their role and permissions.
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every role with its permissions, and what each permission allows.
    Roles {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add an operator. The installation's first operator is added without `--as`
    /// and must be an owner.
    Add {
        /// What they will type after `--as` (letters, digits, . _ - @).
        login: String,
        /// Their name, shown in the audit trail [default: the login].
        #[arg(long)]
        name: Option<String>,
        /// Their role (owner, secretary, teacher, or one added with `add-role`).
        #[arg(long)]
        role: String,
        /// The platform id of the teacher they are: without `send_any_audience` they
        /// may send only to the groups this teacher teaches.
        #[arg(long, value_name = "RECIPIENT")]
        teacher: Option<String>,
        /// The operator adding them (needs `manage_operators`).
        #[arg(long = "as", value_name = "LOGIN")]
        operator: Option<String>,
    },
    /// Give an operator another role (their grants and revocations stay).
    SetRole {
        /// The operator to change.
        login: String,
        /// The new role.
        role: String,
        /// The operator making the change (needs `manage_operators`).
        #[arg(long = "as", value_name = "LOGIN")]
        operator: String,
    },
    /// Give an operator permissions beyond their role.
    Grant {
        /// The operator to change.
        login: String,
        /// The permissions (`herald operators roles` lists them).
        #[arg(required = true, value_parser = parse_code::<Permission>)]
        permissions: Vec<Permission>,
        /// The operator making the change (needs `manage_operators`).
        #[arg(long = "as", value_name = "LOGIN")]
        operator: String,
    },
    /// Take permissions from an operator, also ones their role gives.
    Revoke {
        /// The operator to change.
        login: String,
        /// The permissions.
        #[arg(required = true, value_parser = parse_code::<Permission>)]
        permissions: Vec<Permission>,
        /// The operator making the change (needs `manage_operators`).
        #[arg(long = "as", value_name = "LOGIN")]
        operator: String,
    },
    /// Add a role of the school's own (or redefine one it added).
    AddRole {
        /// Its name (lower-case letters, digits, _ and -).
        name: String,
        /// What it is for.
        #[arg(long)]
        description: String,
        /// A permission it gives (repeatable).
        #[arg(long = "permission", value_parser = parse_code::<Permission>)]
        permissions: Vec<Permission>,
        /// The operator making the change (needs `manage_operators`).
        #[arg(long = "as", value_name = "LOGIN")]
        operator: String,
    },
}

/// `herald templates …`
#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// Save a variant (refused if it names an unknown variable or filter).
    Add {
        /// The template's name.
        name: String,
        /// The locale of this variant.
        #[arg(long, default_value = "pl")]
        locale: String,
        /// The channel of this variant.
        #[arg(long, value_parser = parse_channel, default_value = "email")]
        channel: Channel,
        /// The subject (email).
        #[arg(long)]
        subject: Option<String>,
        /// The text.
        #[arg(long)]
        body: String,
        /// An HTML body sent beside the plain text (email; values are HTML-escaped), from
        /// this file.
        #[arg(long, value_name = "FILE")]
        html_file: Option<PathBuf>,
        /// The operator (needs `manage_settings`).
        #[arg(long = "as", value_name = "LOGIN")]
        operator: String,
    },
    /// List templates with their variants.
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a template's variants.
    Show {
        /// The name.
        name: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Render a template for one recipient (or sample values).
    Preview {
        /// The name.
        name: String,
        /// The recipient (the platform's id) [default: sample values].
        #[arg(long)]
        to: Option<String>,
        /// The channel.
        #[arg(long, value_parser = parse_channel, default_value = "email")]
        channel: Channel,
        /// A free template variable, NAME=VALUE (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
        vars: Vec<(String, String)>,
    },
}

/// `herald outbox …`
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Everything an approver needs: the text, who gets it, who does not and why,
    /// what it costs, and when it will go.
    Show {
        /// The batch.
        batch: i64,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a batch's text; an approved batch goes back to the outbox.
    Edit {
        /// The batch.
        batch: i64,
        /// The operator (who composed it, or one with `approve`).
        #[arg(long = "as", value_name = "LOGIN")]
        operator: String,
        /// The channel whose text changes (a batch sent by email and SMS has one text
        /// per channel) [default: the batch's].
        #[arg(long, value_parser = parse_channel)]
        channel: Option<Channel>,
        /// The new subject (email).
        #[arg(long)]
        subject: Option<String>,
        /// The new text.
        #[arg(long)]
        body: String,
        /// An HTML body sent beside the plain text (email), from this file.
        #[arg(long, value_name = "FILE")]
        html_file: Option<PathBuf>,
        /// SMS: replace national characters to stay in GSM-7.
        #[arg(long)]
        transliterate: bool,
    },
    /// Cancel every message of a batch that has not been sent.
    Cancel {
        /// The batch.
        batch: i64,
        /// The operator (who composed it, or one with `approve`).
        #[arg(long = "as", value_name = "LOGIN")]
        operator: String,
    },
}

/// `herald hold …`
#[derive(Debug, Subcommand)]
pub enum HoldCommand {
    /// Pause all dispatch (an incident: a wrong batch, a mail server in trouble).
    On {
        /// Why, for everyone who looks.
        #[arg(long)]
        reason: String,
        /// The operator (needs `manage_settings`).
        #[arg(long = "as", value_name = "LOGIN")]
        operator: String,
    },
    /// Resume dispatch.
    Off {
        /// The operator (needs `manage_settings`).
        #[arg(long = "as", value_name = "LOGIN")]
        operator: String,
    },
}

/// `herald wallet …`
#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Add prepaid points; messages waiting for credit go on the next pass.
    TopUp {
        /// Points to add.
        points: i64,
        /// The operator (needs `top_up`).
        #[arg(long = "as", value_name = "LOGIN")]
        operator: String,
        /// What it is (an invoice number, a transfer).
        #[arg(long)]
        note: String,
    },
}

/// The audience of `herald send`: exactly one of these.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct AudienceArgs {
    /// People by the platform's id (repeat for a list).
    #[arg(long, value_name = "RECIPIENT")]
    to: Vec<String>,
    /// The students of a group (repeat for several groups; each student once).
    #[arg(long, value_name = "GROUP_ID")]
    group: Vec<String>,
    /// The teachers of a group.
    #[arg(long, value_name = "GROUP_ID")]
    teachers_of: Option<String>,
    /// The students of every group.
    #[arg(long)]
    all_groups: bool,
    /// Every student with an active contract.
    #[arg(long)]
    active_contracts: bool,
}

impl AudienceArgs {
    fn audience(&self) -> Audience {
        match (&self.to[..], &self.group[..]) {
            ([one], _) => Audience::Recipient(one.clone()),
            (many @ [_, _, ..], _) => Audience::List(many.to_vec()),
            (_, [one]) => Audience::Group(one.clone()),
            (_, many @ [_, _, ..]) => Audience::Groups(many.to_vec()),
            _ => match &self.teachers_of {
                Some(g) => Audience::TeachersOf(g.clone()),
                None if self.all_groups => Audience::AllGroups,
                None => Audience::ActiveContracts,
            },
        }
    }
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
        /// The operator (needs `manage_settings`).
        #[arg(long = "as", value_name = "LOGIN")]
        operator: String,
    },
    /// Remove a holiday by the id `holidays list` shows.
    Remove {
        /// The holiday's id.
        id: i64,
        /// The operator (needs `manage_settings`).
        #[arg(long = "as", value_name = "LOGIN")]
        operator: String,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse().map_err(|e: UnknownCode| e.to_string())
}

fn parse_channel(s: &str) -> Result<Channel, String> {
    s.parse().map_err(|e: UnknownCode| e.to_string())
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v))
            if !k.trim().is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            Ok((k.trim().to_owned(), v.to_owned()))
        }
        _ => Err(format!(
            "{s:?}: expected NAME=VALUE, NAME made of letters, digits and _"
        )),
    }
}

fn parse_code<T: std::str::FromStr<Err = UnknownCode>>(s: &str) -> Result<T, String> {
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
        Command::Import {
            files,
            kind,
            operator,
            json,
        } => {
            let store = store::open(&settings.database).await?;
            import(&app(&store, &settings, now), &files, kind, &operator, json).await
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
                println!("No groups. Import some with `herald import groups.csv --as LOGIN`.");
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
            holidays(&store, &settings, action, now).await
        }
        Command::Notify {
            recipient,
            channel,
            subject,
            body,
            transliterate,
            actor,
        } => {
            let store = store::open(&settings.database).await?;
            let (id, message) = app(&store, &settings, now)
                .notify_text(
                    &Actor::operator(actor),
                    &recipient,
                    channel,
                    subject.as_deref(),
                    &body,
                    transliterate,
                )
                .await
                .map_err(cli_error)?;
            match message.reason {
                Some(reason) if message.status == MessageStatus::Blocked => {
                    println!(
                        "Message {id} to {recipient} is blocked: {} ({}).",
                        reason.describe(),
                        reason.as_str()
                    );
                }
                _ => println!(
                    "Message {id} to {recipient} is queued; `herald run` sends it at once."
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Send {
            operator,
            audience,
            reach,
            channel,
            subject,
            body,
            html_file,
            template,
            vars,
            transliterate,
            dry_run,
            json,
        } => {
            let html = read_html(html_file.as_deref())?;
            let content = match (template, body) {
                (Some(_), _) if html.is_some() => {
                    bail!("--html-file goes with --body; a template has its own HTML variant")
                }
                (Some(name), _) => SendContent::Template {
                    name,
                    vars: vars.into_iter().collect(),
                },
                (None, body) => SendContent::Text {
                    subject,
                    body: body.unwrap_or_default(),
                    html,
                },
            };
            let request = SendRequest {
                audience: audience.audience(),
                reach,
                channel,
                content,
                transliterate,
            };
            let store = store::open(&settings.database).await?;
            let composed = app(&store, &settings, now)
                .send(&Actor::operator(operator), &request, dry_run)
                .await
                .map_err(cli_error)?;
            print_send(&composed.send, composed.batch, json)?;
            if !json {
                print_summary(&composed.summary);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Outbox {
            action: Some(action),
            ..
        } => {
            let store = store::open(&settings.database).await?;
            outbox_action(&store, &settings, action, now).await
        }
        Command::Outbox {
            action: None,
            all,
            json,
        } => {
            let store = store::open(&settings.database).await?;
            let batches = store
                .batches((!all).then_some(BatchStatus::AwaitingApproval))
                .await?;
            if !json && let Some(h) = store.hold().await? {
                println!("{}\n", hold_banner(&h, &settings));
            }
            print_batches(&batches, json, all)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Approve {
            batch,
            messages,
            operator,
            seen,
        } => {
            decide(
                &settings,
                batch,
                &messages,
                &operator,
                Decision::Approve,
                seen.as_deref(),
                now,
            )
            .await
        }
        Command::Reject {
            batch,
            messages,
            operator,
            reason,
            seen,
        } => {
            let decision = Decision::Reject(reason.trim().to_owned());
            decide(
                &settings,
                batch,
                &messages,
                &operator,
                decision,
                seen.as_deref(),
                now,
            )
            .await
        }
        Command::Resend { message, operator } => {
            act(&settings, message, &operator, MessageAction::Resend, now).await
        }
        Command::Cancel { message, operator } => {
            act(&settings, message, &operator, MessageAction::Cancel, now).await
        }
        Command::Diagnose {
            recipient,
            message,
            json,
        } => {
            let store = store::open(&settings.database).await?;
            diagnose_command(&*store, &settings, recipient, message, json, now).await
        }
        Command::Doctor { json } => {
            let checks = crate::diagnose::doctor(&settings, now).await;
            let failed = checks
                .iter()
                .any(|c| c.verdict == crate::diagnose::Verdict::Error);
            if json {
                println!("{}", serde_json::to_string_pretty(&checks)?);
            } else {
                for c in &checks {
                    print_check(c);
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Rules { action, json } => {
            let store = store::open(&settings.database).await?;
            rules_command(&store, &settings, action, json, now).await
        }
        Command::Operators { action } => {
            let store = store::open(&settings.database).await?;
            operators_command(&store, &settings, action, now).await
        }
        Command::Run => {
            let daemon = Daemon::build(settings).await?;
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            daemon.run_until_stopped(shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Dispatch { once: _, at, json } => {
            let at = match at {
                Some(text) => school_time(&settings, &text)?,
                None => now,
            };
            let store = store::open(&settings.database).await?;
            let daemon = Daemon::build_with(settings, store, Arc::new(FixedClock::new(at)))?;
            let counts = daemon.run_once().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&counts)?);
            } else {
                println!(
                    "Dispatch pass: {} sent, {} to retry, {} failed, {} held, {} blocked, {} too late or no longer relevant.",
                    counts.sent,
                    counts.retried,
                    counts.failed,
                    counts.held,
                    counts.blocked,
                    counts.withdrawn
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status {
            batch,
            recipient,
            status,
            kind,
            channel,
            since,
            limit,
            summary,
            json,
        } => {
            let since = since.map(|s| parse_since(&settings, &s, now)).transpose()?;
            let filter = MessageFilter {
                batch: batch.map(BatchId),
                recipient,
                status,
                kind,
                channel,
                since,
                limit: Some(limit),
            };
            let store = store::open(&settings.database).await?;
            if summary {
                let counts = store.message_counts(&filter).await?;
                print_counts(&counts, json)?;
            } else {
                if !json && let Some(h) = store.hold().await? {
                    println!("{}\n", hold_banner(&h, &settings));
                }
                let messages = store.messages(&filter).await?;
                print_messages(&settings, &messages, json)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Templates { action } => {
            let store = store::open(&settings.database).await?;
            templates_command(&store, &settings, action, now).await
        }
        Command::SmsInfo {
            text,
            transliterate,
            json,
        } => {
            let text = if transliterate {
                crate::domain::sms::transliterate(&text)
            } else {
                text
            };
            let size = crate::domain::sms::measure(&text);
            let cost = size.segments as i64 * i64::from(settings.sms.price_per_segment);
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "encoding": size.encoding,
                        "units": size.units,
                        "segments": size.segments,
                        "cost": cost,
                    })
                );
            } else {
                println!(
                    "{} units in {}, {} segment(s), {cost} point(s){}",
                    size.units,
                    size.encoding,
                    size.segments,
                    if transliterate {
                        format!(": {text}")
                    } else {
                        String::new()
                    }
                );
                if size.segments > settings.sms.max_segments as usize {
                    println!(
                        "Longer than sms.max_segments = {}: Herald would refuse it.",
                        settings.sms.max_segments
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Wallet {
            action,
            ledger,
            json,
        } => {
            let store = store::open(&settings.database).await?;
            if let Some(WalletCommand::TopUp {
                points,
                operator,
                note,
            }) = action
            {
                let w = app(&store, &settings, now)
                    .top_up(&Actor::operator(operator), points, &note)
                    .await
                    .map_err(cli_error)?;
                println!(
                    "Added {points} point(s): the balance is {} ({} reserved). Messages waiting for credit go on the next pass.",
                    w.balance, w.reserved
                );
                return Ok(ExitCode::SUCCESS);
            }
            print_wallet(&*store, &settings, ledger, json, now).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Hold { action } => {
            let store = store::open(&settings.database).await?;
            match action {
                None => {
                    match store.hold().await? {
                        Some(h) => println!("{}", hold_banner(&h, &settings)),
                        None => println!("Dispatch is running (the hold switch is off)."),
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Some(HoldCommand::On { reason, operator }) => {
                    let change = app(&store, &settings, now)
                        .set_hold(&Actor::operator(operator), Some(&reason))
                        .await
                        .map_err(cli_error)?;
                    if change == HoldChange::Switched {
                        println!(
                            "Dispatch is on hold on every instance; messages wait as queued. `herald hold off --as LOGIN` resumes."
                        );
                    } else {
                        println!("Dispatch was on hold already.");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Some(HoldCommand::Off { operator }) => {
                    let change = app(&store, &settings, now)
                        .set_hold(&Actor::operator(operator), None)
                        .await
                        .map_err(cli_error)?;
                    if change == HoldChange::Switched {
                        println!("Dispatch resumes: what waited goes on the next pass.");
                    } else {
                        println!("Dispatch was not on hold.");
                    }
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Command::Audit {
            actor,
            action,
            since,
            limit,
            json,
        } => {
            let since = since.map(|s| parse_since(&settings, &s, now)).transpose()?;
            let store = store::open(&settings.database).await?;
            let lines = store
                .audit_log(&crate::store::AuditFilter {
                    actor,
                    action,
                    since,
                    limit: Some(limit),
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&lines)?);
            } else if lines.is_empty() {
                println!("The audit log has nothing that matches.");
            } else {
                let tz = settings.school.time_zone;
                let rows = lines
                    .iter()
                    .map(|l| {
                        vec![
                            l.at.with_timezone(&tz)
                                .format("%Y-%m-%d %H:%M:%S")
                                .to_string(),
                            l.actor.clone(),
                            l.action.to_string(),
                            l.subject.clone(),
                            l.details.to_string(),
                        ]
                    })
                    .collect();
                print_table(&["AT", "WHO", "ACTION", "ON", "DETAILS"], rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { dir, at } => {
            // One clock for the whole demo: with `--at`, composing, approving, the
            // rules and the pass all happen at that school time, past or future, so
            // the story is the same on any date.
            let at = at.map(|t| school_time(&settings, &t)).transpose()?;
            demo(settings, dir, at.unwrap_or(now)).await
        }
    }
}

async fn print_wallet(
    store: &dyn Store,
    settings: &Settings,
    ledger: i64,
    json: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let w = store.wallet().await?;
    let due = store
        .sms_segments_due(now + chrono::Duration::hours(24))
        .await?
        * i64::from(settings.sms.price_per_segment);
    let threshold = settings.sms.low_balance_threshold;
    let low = w.balance < threshold || w.balance < due;
    let lines = store.ledger(ledger).await?;
    let totals = store.ledger_totals().await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "balance": w.balance,
                "reserved": w.reserved,
                "low_balance_threshold": threshold,
                "needed_next_24h": due,
                "low": low,
                "low_since": w.low_since,
                "price_per_segment": settings.sms.price_per_segment,
                "totals": totals,
                "ledger": lines,
            }))?
        );
        return Ok(());
    }
    println!(
        "SMS wallet ({} gateway, sender {:?}):",
        settings.sms.gateway.name(),
        settings.sms.sender
    );
    println!("  balance:   {} point(s)", w.balance);
    println!(
        "  reserved:  {} point(s) (held for SMS being sent)",
        w.reserved
    );
    println!("  threshold: {threshold} point(s); SMS due in the next 24 h need {due}");
    if low {
        println!("  LOW: top it up with `herald wallet top-up POINTS --as LOGIN --note TEXT`");
    }
    println!(
        "  totals:    {} topped up, {} charged, {} reserved now ({} per segment)",
        totals.top_ups, totals.charges, w.reserved, settings.sms.price_per_segment
    );
    if lines.is_empty() {
        println!("The ledger is empty.");
        return Ok(());
    }
    let tz = settings.school.time_zone;
    let rows = lines
        .iter()
        .map(|l| {
            vec![
                l.at.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string(),
                l.entry.clone(),
                l.points.to_string(),
                l.message_id.map(|m| m.to_string()).unwrap_or_default(),
                l.balance_after.to_string(),
                l.reserved_after.to_string(),
                [l.actor.clone(), l.note.clone()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": "),
            ]
        })
        .collect();
    print_table(
        &[
            "AT", "ENTRY", "POINTS", "MESSAGE", "BALANCE", "RESERVED", "NOTE",
        ],
        rows,
    );
    Ok(())
}

async fn outbox_action(
    store: &Arc<dyn Store>,
    settings: &Settings,
    action: OutboxCommand,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    match action {
        OutboxCommand::Show { batch, json } => {
            let view = app(store, settings, now)
                .batch_view(BatchId(batch), &[])
                .await
                .map_err(|e| match e {
                    AppError::NotFound { .. } => anyhow::anyhow!(
                        "there is no batch {batch}; `herald outbox --all` lists them"
                    ),
                    other => cli_error(other),
                })?;
            let (b, summary, samples) = (&view.batch, &view.summary, &view.samples);
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                if let Some(h) = &view.hold {
                    println!("{}\n", hold_banner(h, settings));
                }
                print_batches(std::slice::from_ref(b), false, true)?;
                if samples.is_empty() {
                    println!("Text:");
                    for line in b.body.lines() {
                        println!("  | {line}");
                    }
                }
                // What people will read: one message per channel and locale, as
                // rendered for its recipient.
                for m in samples {
                    println!(
                        "{} to {} ({}):",
                        channel_name(m.channel),
                        m.recipient,
                        m.locale
                            .as_deref()
                            .unwrap_or(&settings.school.default_locale)
                    );
                    if let Some(subject) = &m.subject {
                        println!("  | Subject: {subject}");
                    }
                    for line in m.body.lines() {
                        println!("  | {line}");
                    }
                    if m.html.is_some() {
                        println!("  | (with an HTML version)");
                    }
                }
                print_summary(summary);
                println!(
                    "Version:   {} (approve exactly this: `herald approve {batch} --seen {} --as LOGIN`)",
                    view.version, view.version
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        OutboxCommand::Edit {
            batch,
            operator,
            channel,
            subject,
            body,
            html_file,
            transliterate,
        } => {
            let text = BatchText {
                channel,
                subject,
                body,
                html: read_html(html_file.as_deref())?,
                transliterate,
            };
            let app = app(store, settings, now);
            let was = app
                .batch_view(BatchId(batch), &[])
                .await
                .map_err(cli_error)?;
            let n = app
                .edit_batch(&Actor::operator(operator), BatchId(batch), &text)
                .await
                .map_err(cli_error)?;
            println!(
                "Batch {batch} edited: {n} unsent message(s) take the new text and wait for approval{}.",
                if was.batch.status == BatchStatus::Approved {
                    " again"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        OutboxCommand::Cancel { batch, operator } => {
            let n = app(store, settings, now)
                .cancel_batch(&Actor::operator(operator), BatchId(batch))
                .await
                .map_err(cli_error)?;
            println!("Batch {batch}: {n} unsent message(s) cancelled.");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One check on one line, with its fix below.
fn print_check(c: &crate::diagnose::Check) {
    use crate::diagnose::Verdict;
    let mark = match c.verdict {
        Verdict::Ok => "ok     ",
        Verdict::Warning => "warning",
        Verdict::Error => "ERROR  ",
    };
    let reason = c.reason.map(|r| format!(" [{r}]")).unwrap_or_default();
    println!("  {mark} {}{reason}", c.text);
    if let Some(fix) = &c.fix {
        println!("          fix: {fix}");
    }
}

fn print_message_diagnosis(m: &crate::diagnose::MessageDiagnosis, tz: Tz) {
    let v = &m.message;
    let at = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string();
    println!(
        "  #{} {} {} {} — {}{}",
        v.id,
        at(v.created_at),
        v.kind,
        v.channel,
        m.status_text,
        v.subject
            .as_deref()
            .map(|s| format!(" — {s:?}"))
            .unwrap_or_default()
    );
    if let Some(next) = v
        .next_attempt_at
        .filter(|_| v.status == MessageStatus::Queued)
    {
        println!("      next attempt {}", at(next));
    }
    for (i, a) in m.attempts.iter().enumerate() {
        println!(
            "      attempt {} at {}: {:?}{} {}{}",
            i + 1,
            at(a.started_at),
            a.outcome,
            a.code.map(|c| format!(" {c}")).unwrap_or_default(),
            a.detail,
            a.provider_id
                .as_deref()
                .map(|p| format!(" (gateway id {p})"))
                .unwrap_or_default()
        );
    }
    if let Some(id) = &m.message_id {
        println!("      Message-ID: {id}");
    }
    for advice in &m.advice {
        println!("      → {advice}");
    }
}

async fn diagnose_command(
    store: &dyn Store,
    settings: &Settings,
    recipient: Option<String>,
    message: Option<i64>,
    json: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    use crate::diagnose::{self, Lookup};
    let tz = settings.school.time_zone;
    if let Some(id) = message {
        let Some(t) = diagnose::message_timeline(store, settings, MessageId(id)).await? else {
            bail!("there is no message {id}; `herald status` lists them");
        };
        if json {
            println!("{}", serde_json::to_string_pretty(&t)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "Message {id} to {} ({}):",
            t.message.message.recipient,
            t.message.message.address.as_deref().unwrap_or("no address")
        );
        if let Some(b) = &t.batch {
            println!(
                "  batch {} \"{}\" composed by {}{}",
                b.id,
                b.audience,
                b.created_by,
                match (&b.decided_by, b.decided_at) {
                    (Some(by), Some(at)) => format!(
                        "; {} by {by} at {}{}",
                        b.status,
                        at.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
                        b.decision_note
                            .as_deref()
                            .map(|n| format!(" ({n})"))
                            .unwrap_or_default()
                    ),
                    _ => format!("; {}", b.status),
                }
            );
        }
        println!("Timeline:");
        for e in &t.events {
            println!(
                "  {}  {}{}{}{}",
                e.at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S"),
                e.status,
                e.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                e.actor
                    .as_deref()
                    .map(|a| format!(" by {a}"))
                    .unwrap_or_default(),
                e.note
                    .as_deref()
                    .map(|n| format!(" — {n}"))
                    .unwrap_or_default()
            );
        }
        println!("Now:");
        print_message_diagnosis(&t.message, tz);
        return Ok(ExitCode::SUCCESS);
    }
    let query = recipient.unwrap_or_default();
    let lookup = diagnose::diagnose_recipient(store, settings, &query, now).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&lookup)?);
        return Ok(match lookup {
            Lookup::One(_) => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        });
    }
    let d = match lookup {
        Lookup::None { query } => bail!(
            "nobody matches {query:?}: try the platform's id, Herald's id, an email address or a phone number (`herald recipients --search TEXT` searches)"
        ),
        Lookup::Ambiguous { query, matches } => {
            println!(
                "{} people match {query:?}; diagnose one by their id:",
                matches.len()
            );
            for r in matches {
                println!(
                    "  {}  {} ({}) {} {}",
                    r.external_id,
                    r.name,
                    r.role,
                    r.email.as_deref().unwrap_or("-"),
                    r.phone.as_deref().unwrap_or("-")
                );
            }
            return Ok(ExitCode::FAILURE);
        }
        Lookup::One(d) => d,
    };
    let r = &d.recipient;
    println!(
        "{} ({}, {}, Herald id {})",
        r.name, r.role, r.external_id, r.id.0
    );
    println!(
        "  email {}   phone {}{}",
        r.email.as_deref().unwrap_or("-"),
        r.phone.as_deref().unwrap_or("-"),
        if r.sms_enabled { " (receives SMS)" } else { "" }
    );
    for rel in &d.related {
        println!("  {}: {} ({})", rel.relation, rel.name, rel.external_id);
    }
    for c in &d.channels {
        println!(
            "\n{}: {}",
            channel_name(c.channel),
            if c.eligible {
                "can be reached".to_owned()
            } else {
                let reasons: Vec<&str> = c
                    .checks
                    .iter()
                    .filter_map(|x| x.reason.map(|r| r.as_str()))
                    .collect();
                format!("CANNOT be reached ({})", reasons.join(", "))
            }
        );
        for check in &c.checks {
            print_check(check);
        }
    }
    println!("\nTiming:");
    for check in &d.timing {
        print_check(check);
    }
    println!("\nDispatcher:");
    for check in &d.dispatcher {
        print_check(check);
    }
    println!(
        "\nRecent messages ({} of the last {} days, newest first):",
        d.messages.len(),
        settings.diagnose.recent_days
    );
    if d.messages.is_empty() {
        println!("  none");
    }
    for m in &d.messages {
        print_message_diagnosis(m, tz);
    }
    Ok(ExitCode::SUCCESS)
}

async fn rules_command(
    store: &Arc<dyn Store>,
    settings: &Settings,
    action: Option<RulesCommand>,
    json: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    use crate::rules::{self, Rule};
    let tz = settings.school.time_zone;
    match action {
        None => {
            let mut list = Vec::new();
            for rule in Rule::ALL {
                let c = rule.settings(settings);
                let last = store.rule_run(rule.as_str()).await?;
                let next = c
                    .enabled
                    .then(|| rules::next_run(settings, rule, last.as_ref(), now))
                    .flatten();
                let detail = match rule {
                    Rule::InstalmentDue => {
                        format!("days before the due date: {:?}", settings.rules.days_before)
                    }
                    Rule::Arrears => format!(
                        "after {} days in arrears, from {:.2} zł, every {} days",
                        settings.rules.arrears_min_days,
                        settings.rules.arrears_min_amount_cents as f64 / 100.0,
                        settings.rules.arrears_repeat_every_days
                    ),
                    Rule::Birthday => format!(
                        "skipped when it cannot go on the day (max_lateness {})",
                        humantime::format_duration(settings.rules.birthday_max_lateness)
                    ),
                };
                list.push(serde_json::json!({
                    "rule": rule,
                    "enabled": c.enabled,
                    "schedule": c.schedule.to_string(),
                    "channel": c.channel,
                    "template": c.template,
                    "requires_approval": c.requires_approval,
                    "detail": detail,
                    "last_run": last,
                    "next_run": next,
                }));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(ExitCode::SUCCESS);
            }
            let when = |t: Option<DateTime<Utc>>| {
                t.map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_else(|| "-".into())
            };
            let rows = Rule::ALL
                .iter()
                .zip(&list)
                .map(|(rule, v)| {
                    let c = rule.settings(settings);
                    vec![
                        rule.to_string(),
                        if c.enabled { "on" } else { "off" }.to_owned(),
                        c.schedule.to_string(),
                        c.channel.to_string(),
                        if c.template.is_empty() {
                            "-".to_owned()
                        } else {
                            c.template.clone()
                        },
                        if c.requires_approval {
                            "outbox"
                        } else {
                            "automatic"
                        }
                        .to_owned(),
                        when(
                            v["last_run"]["last_run_at"]
                                .as_str()
                                .and_then(|t| t.parse().ok()),
                        ),
                        when(v["next_run"].as_str().and_then(|t| t.parse().ok())),
                        v["detail"].as_str().unwrap_or_default().to_owned(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "RULE", "ON", "SCHEDULE", "CHANNEL", "TEMPLATE", "APPROVAL", "LAST RUN",
                    "NEXT RUN", "",
                ],
                rows,
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(RulesCommand::Run {
            rule,
            at,
            operator,
            json,
        }) => {
            let at = at.map(|text| school_time(settings, &text)).transpose()?;
            let results = app(store, settings, now)
                .run_rules(&Actor::operator(operator), rule, at)
                .await
                .map_err(|e| match e {
                    AppError::Invalid {
                        field: "at",
                        problem,
                    } => anyhow::anyhow!("--at {problem}"),
                    other => cli_error(other),
                })?;
            let mut failed = false;
            let mut reports = Vec::new();
            for r in results {
                match r {
                    Ok(report) => {
                        if !json {
                            for f in &report.failed {
                                eprintln!("herald: {}: could not be written: {f}", report.rule);
                            }
                            failed |= !report.failed.is_empty();
                            println!(
                                "{}: {} new occurrence(s), {} message(s); {} existed already (days {}).",
                                report.rule,
                                report.occurrences,
                                report.messages,
                                report.existing,
                                report
                                    .days
                                    .iter()
                                    .map(|d| d.to_string())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            );
                        }
                        reports.push(serde_json::to_value(&report)?);
                    }
                    Err(e) => {
                        failed = true;
                        eprintln!("herald: {e}");
                    }
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else if reports.is_empty() && !failed {
                println!("No rule is due (`herald rules` shows when each runs next).");
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

async fn operators_command(
    store: &Arc<dyn Store>,
    settings: &Settings,
    action: OperatorsCommand,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    use crate::domain::access::RoleDef;
    let app = app(store, settings, now);
    let grant = matches!(action, OperatorsCommand::Grant { .. });
    let perms = |p: &std::collections::BTreeSet<Permission>| {
        p.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
    };
    match action {
        OperatorsCommand::List { json } => {
            let all = store.operators().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!(
                    "No operators yet. Add the first owner with `herald operators add LOGIN --role owner --name \"…\"`."
                );
            } else {
                let rows = all
                    .iter()
                    .map(|o| {
                        let mut extra = Vec::new();
                        extra.extend(o.granted.iter().map(|p| format!("+{p}")));
                        extra.extend(o.revoked.iter().map(|p| format!("-{p}")));
                        vec![
                            o.login.clone(),
                            o.name.clone(),
                            o.role.clone(),
                            o.teacher.clone().unwrap_or_default(),
                            extra.join(" "),
                            perms(&o.permissions),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "LOGIN",
                        "NAME",
                        "ROLE",
                        "TEACHER",
                        "EXCEPTIONS",
                        "PERMISSIONS",
                    ],
                    rows,
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        OperatorsCommand::Roles { json } => {
            let roles = store.roles().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&roles)?);
            } else {
                let rows = roles
                    .iter()
                    .map(|r| {
                        vec![
                            r.name.clone(),
                            if r.builtin { "built-in" } else { "school" }.to_owned(),
                            perms(&r.permissions),
                            r.description.clone(),
                        ]
                    })
                    .collect();
                print_table(&["ROLE", "KIND", "PERMISSIONS", "DESCRIPTION"], rows);
                println!("\nPermissions:");
                for p in Permission::ALL {
                    println!("  {:<22} {}", p.as_str(), p.describe());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        OperatorsCommand::Add {
            login,
            name,
            role,
            teacher,
            operator,
        } => {
            let first = operator.is_none();
            let request = OperatorRequest {
                login: login.clone(),
                name,
                role: role.clone(),
                teacher,
            };
            let added = app
                .add_operator(operator.map(Actor::operator).as_ref(), &request)
                .await
                .map_err(|e| match e {
                    AppError::Conflict(_) if first => anyhow::anyhow!(
                        "--as is required: only the installation's first operator is added without it"
                    ),
                    AppError::Invalid { field: "role", problem } if first => anyhow::anyhow!(
                        "--role {problem} (--role owner)"
                    ),
                    AppError::Invalid { field: "role", problem } => anyhow::anyhow!(
                        "--role {problem} (`herald operators roles` lists them; `add-role` adds one)"
                    ),
                    other => cli_error(other),
                })?;
            println!(
                "Added operator {login} ({}) with the role {role}.",
                added.name
            );
            Ok(ExitCode::SUCCESS)
        }
        OperatorsCommand::SetRole {
            login,
            role,
            operator,
        } => {
            let after = app
                .set_role(&Actor::operator(operator), &login, &role)
                .await
                .map_err(cli_error)?;
            println!(
                "{login} now has the role {role}: {}.",
                perms(&after.permissions)
            );
            Ok(ExitCode::SUCCESS)
        }
        OperatorsCommand::Grant {
            login,
            permissions,
            operator,
        }
        | OperatorsCommand::Revoke {
            login,
            permissions,
            operator,
        } => {
            let change = app
                .change_permissions(&Actor::operator(operator), &login, &permissions, grant)
                .await
                .map_err(cli_error)?;
            if change.changed == 0 {
                println!(
                    "Nothing to change: {login} may {}.",
                    perms(&change.operator.permissions)
                );
            } else {
                println!("{login} may now: {}.", perms(&change.operator.permissions));
            }
            Ok(ExitCode::SUCCESS)
        }
        OperatorsCommand::AddRole {
            name,
            description,
            permissions,
            operator,
        } => {
            let role = RoleDef {
                name: name.clone(),
                description,
                builtin: false,
                permissions: permissions.into_iter().collect(),
            };
            app.save_role(&Actor::operator(operator), &role)
                .await
                .map_err(cli_error)?;
            println!("Saved role {name}: {}.", perms(&role.permissions));
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn templates_command(
    store: &Arc<dyn Store>,
    settings: &Settings,
    action: TemplatesCommand,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    use crate::templates::{self, Variant};
    match action {
        TemplatesCommand::Add {
            name,
            locale,
            channel,
            subject,
            body,
            html_file,
            operator,
        } => {
            let variant = Variant {
                name,
                locale,
                channel,
                subject,
                body,
                html: read_html(html_file.as_deref())?,
            };
            let variant = app(store, settings, now)
                .save_template(&Actor::operator(operator), &variant)
                .await
                .map_err(|e| match e {
                    // The check's own words say what is wrong and where.
                    AppError::Invalid { problem, .. } => anyhow::anyhow!(problem),
                    other => cli_error(other),
                })?;
            println!(
                "Saved template {:?} ({}, {}).",
                variant.name, variant.locale, variant.channel
            );
            Ok(ExitCode::SUCCESS)
        }
        TemplatesCommand::List { json } => {
            let all = store.templates(None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!(
                    "No templates. Add one with `herald templates add NAME --body TEXT --as LOGIN`."
                );
            } else {
                let rows = all
                    .iter()
                    .map(|v| {
                        vec![
                            v.name.clone(),
                            v.channel.to_string(),
                            v.locale.clone(),
                            v.subject.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                print_table(&["NAME", "CHANNEL", "LOCALE", "SUBJECT"], rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        TemplatesCommand::Show { name, json } => {
            let variants = store.templates(Some(&name)).await?;
            if variants.is_empty() {
                bail!("there is no template {name:?}");
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&variants)?);
            } else {
                for v in variants {
                    println!("{} — {} — {}", v.name, v.channel, v.locale);
                    if let Some(s) = &v.subject {
                        println!("  subject: {s}");
                    }
                    for line in v.body.lines() {
                        println!("  | {line}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TemplatesCommand::Preview {
            name,
            to,
            channel,
            vars,
        } => {
            let variants: Vec<Variant> = store
                .templates(Some(&name))
                .await?
                .into_iter()
                .filter(|v| v.channel == channel)
                .collect();
            let vars: std::collections::BTreeMap<String, String> = vars.into_iter().collect();
            let (ctx, locale) = match &to {
                Some(id) => {
                    let facts = store
                        .recipient(id)
                        .await?
                        .with_context(|| format!("there is no recipient {id:?}"))?;
                    let locale = facts.recipient.locale.clone();
                    (
                        compose::context(&**store, settings, &facts, &vars).await?,
                        locale,
                    )
                }
                None => (templates::sample(vars), None),
            };
            let variant = templates::pick(
                &variants,
                locale.as_deref(),
                &settings.school.default_locale,
            )
            .with_context(|| format!("there is no template {name:?} for {channel}"))?;
            let templates::Rendered {
                subject,
                body,
                html,
            } = templates::render(
                variant,
                &templates::Context {
                    locale: variant.locale.clone(),
                    ..ctx
                },
            )?;
            println!("({} variant)", variant.locale);
            if let Some(s) = subject {
                println!("Subject: {s}");
            }
            println!("{body}");
            if let Some(html) = html {
                println!("--- HTML ---\n{html}");
            }
            if channel == Channel::Sms {
                let size = crate::domain::sms::measure(&body);
                println!(
                    "({} units in {}, {} segment(s))",
                    size.units, size.encoding, size.segments
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_summary(s: &Summary) {
    println!(
        "Will go:   {} message(s){}",
        s.will_go,
        if s.sent > 0 {
            format!(" ({} sent already)", s.sent)
        } else {
            String::new()
        }
    );
    for (reason, n) in &s.blocked {
        let words = reason
            .parse::<Reason>()
            .map(|r| r.describe())
            .unwrap_or_default();
        println!("Blocked:   {n} — {reason}: {words}");
    }
    for (status, n) in &s.other {
        println!("Also:      {n} {status}");
    }
    if s.sms_segments > 0 {
        let short = s.sms_cost - s.wallet_balance;
        println!(
            "SMS cost:  {} segment(s) = {} point(s); the wallet holds {}{}",
            s.sms_segments,
            s.sms_cost,
            s.wallet_balance,
            if short > 0 {
                format!(" — {short} short: top it up or part of it waits")
            } else {
                String::new()
            }
        );
    }
    println!("When:      {}", s.when);
}

/// The HTML body in `path`, if one was given.
fn read_html(path: Option<&Path>) -> anyhow::Result<Option<String>> {
    path.map(|p| {
        std::fs::read_to_string(p)
            .with_context(|| format!("--html-file {}: cannot read it as UTF-8 text", p.display()))
    })
    .transpose()
}

/// The application over `store`, on the command's one clock.
fn app(store: &Arc<dyn Store>, settings: &Settings, now: DateTime<Utc>) -> App {
    App::new(
        Arc::clone(store),
        Arc::new(settings.clone()),
        Arc::new(FixedClock::new(now)),
    )
}

/// An application error in the CLI's words: what the library says, plus how to fix
/// it from the command line.
fn cli_error(e: AppError) -> anyhow::Error {
    match e {
        AppError::UnknownOperator(login) => anyhow::Error::new(AccessError::UnknownOperator(login)),
        AppError::Forbidden {
            login,
            role,
            what,
            permission,
        } => anyhow::Error::new(AccessError::Denied {
            login,
            role,
            what,
            permission,
        }),
        AppError::Invalid { field, problem } => {
            let flag = match field {
                "points" => "POINTS",
                "holiday" => "the holiday",
                other => return anyhow::anyhow!("--{}: {problem}", other.replace('_', "-")),
            };
            anyhow::anyhow!("{flag}: {problem}")
        }
        AppError::NotFound { what: "batch", id } => {
            anyhow::anyhow!("there is no batch {id}; `herald outbox --all` lists them")
        }
        AppError::NotFound {
            what: "message",
            id,
        } => {
            anyhow::anyhow!("there is no message {id}; `herald status` lists them")
        }
        other => anyhow::Error::new(other),
    }
}

/// The hold switch in one prominent line.
fn hold_banner(h: &crate::store::Hold, settings: &Settings) -> String {
    format!(
        "*** DISPATCH IS ON HOLD since {} by {}: {} — nothing is sent until `herald hold off` ***",
        h.since
            .with_timezone(&settings.school.time_zone)
            .format("%Y-%m-%d %H:%M"),
        h.by,
        h.reason
    )
}

/// Cancels `shutdown` on SIGTERM (systemd's stop) or SIGINT (Ctrl-C).
async fn stop_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => tracing::info!("SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
    }
    shutdown.cancel();
}

/// A school wall-clock time (`2026-11-24T10:00`, `2026-11-24 10:00:30`) as an instant.
fn school_time(settings: &Settings, text: &str) -> anyhow::Result<DateTime<Utc>> {
    let text = text.trim();
    let naive = [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
    .with_context(|| {
        format!("{text:?} is not a school time; expected e.g. 2026-11-24T10:00 or 2026-11-24")
    })?;
    use chrono::TimeZone;
    settings
        .school
        .time_zone
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| {
            format!(
                "{text:?} does not exist in {} (a DST gap)",
                settings.school.time_zone
            )
        })
}

/// `--since`: a duration back from now, or a school date or time.
fn parse_since(
    settings: &Settings,
    text: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(d) = humantime::parse_duration(text.trim()) {
        return Ok(now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX));
    }
    school_time(settings, text).with_context(|| {
        format!("--since {text:?}: expected a duration such as 24h or 7d, or a school date or time")
    })
}

async fn act(
    settings: &Settings,
    message: i64,
    login: &str,
    action: MessageAction,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let store = store::open(&settings.database).await?;
    let before = app(&store, settings, now)
        .act_on_message(&Actor::operator(login), MessageId(message), action)
        .await
        .map_err(cli_error)?;
    let verb = match action {
        MessageAction::Resend => "queued again",
        MessageAction::Cancel => "cancelled",
    };
    println!("Message {message} ({before}) {verb} by {login}.");
    Ok(ExitCode::SUCCESS)
}

async fn decide(
    settings: &Settings,
    batch: i64,
    only: &[i64],
    login: &str,
    decision: Decision,
    seen: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let store = store::open(&settings.database).await?;
    let verb = match decision {
        Decision::Approve => "approved",
        Decision::Reject(_) => "rejected",
    };
    let only: Vec<MessageId> = only.iter().copied().map(MessageId).collect();
    let taken = app(&store, settings, now)
        .decide(
            &Actor::operator(login),
            BatchId(batch),
            &only,
            decision.clone(),
            seen,
        )
        .await
        .map_err(|e| match e {
            AppError::Conflict(text) if text.contains("changed") => anyhow::anyhow!(
                "{text}; look again with `herald outbox show {batch}` and decide with --seen VERSION"
            ),
            AppError::NotFound { .. } => {
                anyhow::anyhow!("there is no batch {batch}; `herald outbox --all` lists them")
            }
            other => cli_error(other),
        })?;
    if seen.is_none() {
        // Without --seen the decision is on the batch as it was at that moment: show
        // what that was, as `outbox show` would have.
        println!("Decided on version {}:", taken.view.version);
        print_summary(&taken.view.summary);
    }
    let n = taken.messages;
    if !only.is_empty() && n < only.len() as u64 {
        println!(
            "Note: {} of the messages named are not in batch {batch} or no longer await approval.",
            only.len() as u64 - n
        );
    }
    println!(
        "{} {verb} by {login}: {n} message(s) {}.",
        if only.is_empty() {
            format!("Batch {batch}")
        } else {
            format!("Messages of batch {batch}")
        },
        match decision {
            Decision::Approve => "go on the next dispatch tick",
            Decision::Reject(_) => "will not be sent",
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn print_send(send: &compose::Send, id: Option<BatchId>, json: bool) -> anyhow::Result<()> {
    let mut counts: BTreeMap<(MessageStatus, Option<Reason>), i64> = BTreeMap::new();
    for m in &send.messages {
        *counts.entry((m.status, m.reason)).or_default() += 1;
    }
    if json {
        let counts: Vec<_> = counts
            .iter()
            .map(|((status, reason), count)| {
                serde_json::json!({"status": status, "reason": reason, "count": count})
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "batch_id": id,
                "dry_run": id.is_none(),
                "status": send.batch.status,
                "audience": send.batch.audience,
                "messages": send.messages.len(),
                "counts": counts,
            }))?
        );
        return Ok(());
    }
    match id {
        Some(id) => println!(
            "Batch {id} ({}): {}",
            send.batch.status, send.batch.audience
        ),
        None => println!("Dry run, nothing created: {}", send.batch.audience),
    }
    println!("  {} message(s):", send.messages.len());
    for ((status, reason), n) in &counts {
        println!("  {n:>5}  {}", status_words(*status, *reason));
    }
    if send.batch.status == BatchStatus::AwaitingApproval && id.is_some() {
        println!(
            "  It waits in the outbox: `herald approve {} --as LOGIN`.",
            id.unwrap_or(BatchId(0))
        );
    }
    Ok(())
}

fn status_words(status: MessageStatus, reason: Option<Reason>) -> String {
    match reason {
        Some(r) => format!("{status} ({}: {})", r.as_str(), r.describe()),
        None => status.to_string(),
    }
}

fn print_batches(
    batches: &[crate::store::BatchSummary],
    json: bool,
    all: bool,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(batches)?);
        return Ok(());
    }
    if batches.is_empty() {
        println!(
            "{}",
            if all {
                "No batches."
            } else {
                "Nothing waits for approval."
            }
        );
        return Ok(());
    }
    for b in batches {
        let total: i64 = b.counts.iter().map(|c| c.count).sum();
        println!(
            "Batch {} — {} — {} {} by {} at {}",
            b.id,
            b.status,
            b.kind,
            b.channel,
            b.created_by,
            b.created_at.format("%Y-%m-%d %H:%M UTC")
        );
        println!("  to:      {} ({total} message(s))", b.audience);
        println!("  subject: {}", b.subject.as_deref().unwrap_or("-"));
        if let (Some(by), Some(at)) = (&b.decided_by, b.decided_at) {
            println!(
                "  decided: {} by {by} at {}{}",
                b.status,
                at.format("%Y-%m-%d %H:%M UTC"),
                b.decision_note
                    .as_ref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            );
        }
        for c in &b.counts {
            println!("  {:>5}  {}", c.count, status_words(c.status, c.reason));
        }
        println!();
    }
    Ok(())
}

fn print_counts(counts: &[crate::store::StatusCount], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(counts)?);
        return Ok(());
    }
    if counts.is_empty() {
        println!("No messages match.");
    }
    for c in counts {
        println!("{:>7}  {}", c.count, status_words(c.status, c.reason));
    }
    Ok(())
}

fn print_messages(
    settings: &Settings,
    messages: &[crate::store::MessageView],
    json: bool,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(messages)?);
        return Ok(());
    }
    if messages.is_empty() {
        println!("No messages match.");
        return Ok(());
    }
    let tz = settings.school.time_zone;
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).format("%m-%d %H:%M").to_string();
    let rows = messages
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                m.batch_id
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "-".into()),
                m.kind.to_string(),
                m.channel.to_string(),
                m.recipient.clone(),
                m.status.to_string(),
                m.reason.map(|r| r.as_str().to_owned()).unwrap_or_default(),
                m.attempts.to_string(),
                local(m.created_at),
                match (m.sent_at, m.next_attempt_at) {
                    (Some(t), _) => format!("sent {}", local(t)),
                    (None, Some(t)) if m.status == MessageStatus::Queued => {
                        format!("next {}", local(t))
                    }
                    _ => String::new(),
                },
            ]
        })
        .collect();
    print_table(
        &[
            "ID",
            "BATCH",
            "KIND",
            "CHANNEL",
            "RECIPIENT",
            "STATUS",
            "REASON",
            "TRIES",
            "CREATED",
            "WHEN",
        ],
        rows,
    );
    Ok(())
}

async fn import(
    app: &App,
    files: &[PathBuf],
    kind: Option<ImportKind>,
    operator: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    let mut reports = Vec::new();
    for file in files {
        match app
            .import_file(&Actor::operator(operator), file, kind)
            .await
        {
            Ok(report) => {
                failed |= report.has_errors();
                if !json {
                    print_import_report(file, &report);
                }
                reports.push(serde_json::json!({"file": file, "report": report}));
            }
            Err(AppError::Invalid { problem, .. }) => {
                failed = true;
                if json {
                    reports.push(serde_json::json!({"file": file, "error": problem}));
                } else {
                    eprintln!("herald: {problem}");
                    eprintln!("  nothing was imported from {}", file.display());
                }
            }
            Err(other) => return Err(cli_error(other)),
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
    store: &Arc<dyn Store>,
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
            operator,
        } => {
            let stored = app(store, settings, now)
                .add_holiday(
                    &Actor::operator(operator),
                    &name,
                    first_day,
                    last_day.unwrap_or(first_day),
                )
                .await
                .map_err(cli_error)
                .with_context(|| format!("cannot add the holiday {name:?}"))?;
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
        HolidaysCommand::Remove { id, operator } => {
            app(store, settings, now)
                .remove_holiday(&Actor::operator(operator), id)
                .await
                .map_err(|e| match e {
                    AppError::NotFound { .. } => anyhow::anyhow!(
                        "there is no holiday with id {id}; `herald holidays list --all` shows them"
                    ),
                    other => cli_error(other),
                })?;
            println!("Removed holiday {id}.");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The demo's second half: a system message, an informational batch to every group
/// (students and guardians) approved by the demo owner, and one dispatch pass at
/// `at`, with the outcome in plain words.
async fn demo_send(
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
