//! The command line's grammar: every command, its arguments and their help.

use super::*;

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
    Import(ImportArgs),
    /// List recipients with who can be reached by which channel, and why not.
    Recipients(RecipientsArgs),
    /// List groups with how many students and teachers they have.
    Groups(GroupsArgs),
    /// The school's days off: nothing that respects the send window goes on them.
    Holidays(HolidaysArgs),
    /// Create a system message to one recipient: no approval, sent on the next pass,
    /// at once when `herald run` is running.
    Notify(NotifyArgs),
    /// Compose an informational email or SMS to an audience; it waits in the outbox
    /// for approval unless the operator may send without it.
    Send(SendArgs),
    /// Batches waiting for approval, with their counts per status and reason; `show`,
    /// `edit` and `cancel` one.
    Outbox(OutboxArgs),
    /// Approve a batch (or only some of its messages): they go on the next dispatch
    /// tick.
    Approve(ApproveArgs),
    /// Reject a batch (or only some of its messages): they will not go.
    Reject(RejectArgs),
    /// Send a message again whose outcome is unknown or that failed (needs approve).
    Resend(ResendArgs),
    /// Withdraw a message that has not been sent, or drop one whose outcome is
    /// unknown (needs approve).
    Cancel(CancelArgs),
    /// Run the daemon: a dispatch pass on each tick of dispatch.schedule, system
    /// messages at once; stops cleanly on SIGTERM or SIGINT.
    Run,
    /// Run one dispatch pass and exit.
    Dispatch(DispatchArgs),
    /// List messages, newest first, with their status and reason.
    Status(StatusArgs),
    /// Named templates: one variant per locale and channel, checked when saved.
    Templates(TemplatesArgs),
    /// How an SMS text would be sent: encoding, units, segments, cost.
    SmsInfo(SmsInfoArgs),
    /// The SMS wallet: balance, reserved points, the low-balance threshold, the ledger.
    Wallet(WalletArgs),
    /// The hold switch: pause all dispatch on every instance (nothing is lost), or
    /// resume it. Without a subcommand, show it.
    Hold(HoldArgs),
    /// The audit log: every change made by a person, newest first.
    Audit(AuditArgs),
    /// Why didn't they get it? Every check for one person (by id, external id, email
    /// address or phone number) or one message's whole story.
    Diagnose(DiagnoseArgs),
    /// Check the installation: configuration, database, SMTP, SMS gateway, DKIM,
    /// window, holidays, wallet, hold switch, dispatcher, rules. Sends nothing.
    Doctor(DoctorArgs),
    /// The periodic rules: their settings, last and next run; `run` runs them now.
    Rules(RulesArgs),
    /// Operators, their roles and permissions (`list`, `roles`, `add`, `set-role`,
    /// `grant`, `revoke`, `add-role`).
    Operators(OperatorsArgs),
    /// API tokens for the school's platform (`list`, `create`, `revoke`): each acts as
    /// an operator, with that operator's permissions.
    Tokens(TokensArgs),
    /// Create a demo school in a new SQLite database and show who can be reached.
    Demo(DemoArgs),
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
    /// Set an operator's password for the console: typed twice at a terminal, or
    /// read as the first line of standard input (`… < file`, a secret manager's pipe).
    /// Your own, or anyone's with `manage_operators`.
    SetPassword {
        /// The operator whose password it is.
        login: String,
        /// The operator setting it (the same login for one's own).
        #[arg(long = "as", value_name = "LOGIN")]
        operator: String,
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
    /// The audience these flags name.
    pub fn audience(&self) -> Audience {
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

pub(super) fn parse_role(s: &str) -> Result<Role, String> {
    s.parse().map_err(|e: UnknownCode| e.to_string())
}

pub(super) fn parse_channel(s: &str) -> Result<Channel, String> {
    s.parse().map_err(|e: UnknownCode| e.to_string())
}

pub(super) fn parse_var(s: &str) -> Result<(String, String), String> {
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

pub(super) fn parse_code<T: std::str::FromStr<Err = UnknownCode>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: UnknownCode| e.to_string())
}

/// The arguments of `herald import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The files, applied in the order given.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// What a CSV file (or a JSON list) holds, when its name does not say.
    #[arg(long, value_enum)]
    pub kind: Option<ImportKind>,
    /// The operator (needs `manage_recipients`).
    #[arg(long = "as", value_name = "LOGIN")]
    pub operator: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `herald recipients`.
#[derive(Debug, clap::Args)]
pub struct RecipientsArgs {
    /// Only this role.
    #[arg(long, value_parser = parse_role)]
    pub role: Option<Role>,
    /// Only members of this group (the platform's group id).
    #[arg(long, value_name = "GROUP_ID")]
    pub group: Option<String>,
    /// Only those whose name, id, email or phone contains this text.
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    /// Only those who cannot be reached (on `--channel`, or on any channel).
    #[arg(long)]
    pub ineligible: bool,
    /// Only judge this channel.
    #[arg(long, value_parser = parse_channel)]
    pub channel: Option<Channel>,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `herald groups`.
#[derive(Debug, clap::Args)]
pub struct GroupsArgs {
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `herald holidays`.
#[derive(Debug, clap::Args)]
pub struct HolidaysArgs {
    /// What to do with the calendar.
    #[command(subcommand)]
    pub action: HolidaysCommand,
}

/// The arguments of `herald notify`.
#[derive(Debug, clap::Args)]
pub struct NotifyArgs {
    /// The recipient (the platform's id).
    pub recipient: String,
    /// The channel.
    #[arg(long, value_parser = parse_channel, default_value = "email")]
    pub channel: Channel,
    /// The subject (email).
    #[arg(long, conflicts_with = "template")]
    pub subject: Option<String>,
    /// The text.
    #[arg(
        long,
        required_unless_present = "template",
        conflicts_with = "template"
    )]
    pub body: Option<String>,
    /// Render the message from this template for the recipient (`herald templates`).
    #[arg(long)]
    pub template: Option<String>,
    /// A free template variable, NAME=VALUE (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var, requires = "template")]
    pub vars: Vec<(String, String)>,
    /// SMS: replace national characters to stay in GSM-7.
    #[arg(long)]
    pub transliterate: bool,
    /// The operator (needs `send`; the platform has an operator of its own).
    #[arg(long = "as", value_name = "LOGIN")]
    pub actor: String,
}

/// The arguments of `herald send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The operator composing it (needs `send`; `herald operators list`).
    #[arg(long = "as", value_name = "LOGIN")]
    pub operator: String,
    /// Whom it is for.
    #[command(flatten)]
    pub audience: AudienceArgs,
    /// For students: write to them, to their guardians, or to both (a guardian of
    /// several students gets one message).
    #[arg(long, value_enum, default_value = "students")]
    pub reach: Reach,
    /// The channel: email, sms, both (an email and an SMS to each person), or
    /// sms_if_no_email (an SMS to those whose email cannot be used).
    #[arg(long, value_parser = parse_code::<ChannelChoice>, default_value = "email")]
    pub channel: ChannelChoice,
    /// The subject (email).
    #[arg(long)]
    pub subject: Option<String>,
    /// The text.
    #[arg(
        long,
        required_unless_present = "template",
        conflicts_with = "template"
    )]
    pub body: Option<String>,
    /// An HTML body sent beside the plain text (email), from this file.
    #[arg(long, value_name = "FILE")]
    pub html_file: Option<PathBuf>,
    /// Render each message from this template (`herald templates`).
    #[arg(long)]
    pub template: Option<String>,
    /// A free template variable, NAME=VALUE (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// SMS: replace national characters to stay in GSM-7.
    #[arg(long)]
    pub transliterate: bool,
    /// Show what would be created, and create nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `herald outbox`.
#[derive(Debug, clap::Args)]
pub struct OutboxArgs {
    /// What to do with one batch (nothing: list them).
    #[command(subcommand)]
    pub action: Option<OutboxCommand>,
    /// Show decided batches too.
    #[arg(long)]
    pub all: bool,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `herald approve`.
#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The batch id (`herald outbox`).
    pub batch: i64,
    /// Only this message of the batch (repeatable); the rest wait on.
    #[arg(long = "message", value_name = "MESSAGE")]
    pub messages: Vec<i64>,
    /// The approving operator (needs `approve`).
    #[arg(long = "as", value_name = "LOGIN")]
    pub operator: String,
    /// The version of the batch you saw (`herald outbox show` prints it): refused
    /// if the batch changed since. Without it, the batch is decided as it is now,
    /// and that view is printed.
    #[arg(long, value_name = "VERSION")]
    pub seen: Option<String>,
}

/// The arguments of `herald reject`.
#[derive(Debug, clap::Args)]
pub struct RejectArgs {
    /// The batch id.
    pub batch: i64,
    /// Only this message of the batch (repeatable); the rest wait on.
    #[arg(long = "message", value_name = "MESSAGE")]
    pub messages: Vec<i64>,
    /// The rejecting operator (needs `approve`).
    #[arg(long = "as", value_name = "LOGIN")]
    pub operator: String,
    /// Why, for the person who composed it.
    #[arg(long)]
    pub reason: String,
    /// The version of the batch you saw (`herald outbox show` prints it): refused
    /// if the batch changed since. Without it, the batch is decided as it is now,
    /// and that view is printed.
    #[arg(long, value_name = "VERSION")]
    pub seen: Option<String>,
}

/// The arguments of `herald resend`.
#[derive(Debug, clap::Args)]
pub struct ResendArgs {
    /// The message id (`herald status`).
    pub message: i64,
    /// The operator.
    #[arg(long = "as", value_name = "LOGIN")]
    pub operator: String,
}

/// The arguments of `herald cancel`.
#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// The message id.
    pub message: i64,
    /// The operator.
    #[arg(long = "as", value_name = "LOGIN")]
    pub operator: String,
}

/// The arguments of `herald dispatch`.
#[derive(Debug, clap::Args)]
pub struct DispatchArgs {
    /// One pass (the only mode; the daemon is `herald run`).
    #[arg(long, required = true)]
    pub once: bool,
    /// Run the pass as if at this school time, e.g. 2026-11-24T10:00.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Print the counts as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `herald status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Only this batch.
    #[arg(long)]
    pub batch: Option<i64>,
    /// Only this recipient (the platform's id).
    #[arg(long)]
    pub recipient: Option<String>,
    /// Only this status (queued, sent, blocked, failed, …).
    #[arg(long, value_parser = parse_code::<MessageStatus>)]
    pub status: Option<MessageStatus>,
    /// Only this kind (system, informational, periodic).
    #[arg(long, value_parser = parse_code::<MessageKind>)]
    pub kind: Option<MessageKind>,
    /// Only this channel.
    #[arg(long, value_parser = parse_code::<Channel>)]
    pub channel: Option<Channel>,
    /// Only messages created since: a duration ("24h", "7d") or a school date or
    /// time ("2026-11-24", "2026-11-24T08:00").
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// At most this many (newest first).
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Counts per status and reason instead of a list.
    #[arg(long)]
    pub summary: bool,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `herald templates`.
#[derive(Debug, clap::Args)]
pub struct TemplatesArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: TemplatesCommand,
}

/// The arguments of `herald sms-info`.
#[derive(Debug, clap::Args)]
pub struct SmsInfoArgs {
    /// The text.
    pub text: String,
    /// Replace national characters to stay in GSM-7.
    #[arg(long)]
    pub transliterate: bool,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `herald wallet`.
#[derive(Debug, clap::Args)]
pub struct WalletArgs {
    /// What to do (nothing: show the wallet).
    #[command(subcommand)]
    pub action: Option<WalletCommand>,
    /// Ledger lines to show.
    #[arg(long, default_value_t = 20)]
    pub ledger: i64,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `herald hold`.
#[derive(Debug, clap::Args)]
pub struct HoldArgs {
    /// On or off.
    #[command(subcommand)]
    pub action: Option<HoldCommand>,
}

/// The arguments of `herald audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only this person.
    #[arg(long = "actor", value_name = "LOGIN")]
    pub actor: Option<String>,
    /// Only this action (send, approve, reject, cancel, resend, top_up, hold_on, …).
    #[arg(long, value_parser = parse_code::<AuditAction>)]
    pub action: Option<AuditAction>,
    /// Only since: a duration ("24h") or a school date or time.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// At most this many lines.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `herald diagnose`.
#[derive(Debug, clap::Args)]
pub struct DiagnoseArgs {
    /// The person: Herald's id, the platform's id, an email address or a phone
    /// number.
    #[arg(required_unless_present = "message", conflicts_with = "message")]
    pub recipient: Option<String>,
    /// One message's timeline instead (`herald status` shows ids).
    #[arg(long, value_name = "ID")]
    pub message: Option<i64>,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `herald doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `herald rules`.
#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    /// What to do (nothing: list them).
    #[command(subcommand)]
    pub action: Option<RulesCommand>,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `herald operators`.
#[derive(Debug, clap::Args)]
pub struct OperatorsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: OperatorsCommand,
}

/// The arguments of `herald tokens`.
#[derive(Debug, clap::Args)]
pub struct TokensArgs {
    /// What to do [default: list them].
    #[command(subcommand)]
    pub action: Option<TokensCommand>,
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `herald tokens …`
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token that acts as an operator; it is printed once, never again
    /// (needs `manage_operators`).
    Create {
        /// The token's name, e.g. the platform's ("eduSky").
        name: String,
        /// The operator it acts as, with their permissions at each request.
        #[arg(long, value_name = "LOGIN")]
        operator: String,
        /// Who creates it.
        #[arg(long = "as", value_name = "LOGIN")]
        by: String,
    },
    /// Revoke a token: its next request fails (needs `manage_operators`).
    Revoke {
        /// The token's name.
        name: String,
        /// Who revokes it.
        #[arg(long = "as", value_name = "LOGIN")]
        by: String,
    },
}

/// The arguments of `herald demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The folder for the demo's database, import file and .eml files [default:
    /// a new folder herald-demo… under the current one].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Run the demo's dispatch pass as if at this school time, e.g.
    /// 2026-11-24T10:00 [default: now].
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Then serve the demo school: `herald run` on its database with the web console
    /// at http.listen, and a sign-in per demo operator printed once. With --dir
    /// naming a demo made before, serve that one as it is.
    #[arg(long)]
    pub serve: bool,
}
