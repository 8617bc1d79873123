//! Configuration: the settings tree, loaded in layers and checked once at start-up.
//!
//! Layers, later ones winning: the embedded `config/default.toml` (so every key has a
//! documented default), the file given by `--config`, then `HERALD__SECTION__KEY`
//! environment variables. Every value that can be wrong (time zone, hours, cron
//! expression, region, URL, duration) is parsed here, in `validate()`, so a bad
//! setting stops start-up naming its key instead of failing at 3 a.m.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::Weekday;
use chrono_tz::Tz;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::contact::{EmailAddress, PhoneRegion, parse_region};
use crate::domain::window::{SendWindow, Span, parse_hours};
use crate::domain::{ConsentRules, MessageKind};

/// The defaults, compiled in so that the binary runs with no file beside it.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// The prefix of environment overrides: `HERALD__SCHOOL__TIME_ZONE=Europe/Berlin`.
pub const ENV_PREFIX: &str = "HERALD";

/// What can go wrong while loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A layer could not be read or does not fit the settings tree (a file that is
    /// not TOML, an unknown key, a number where text belongs).
    #[error("configuration could not be loaded: {0}")]
    Load(#[from] config::ConfigError),
    /// One or more values are of the right shape but mean nothing valid.
    #[error("invalid configuration:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<InvalidSetting>),
}

/// One setting whose value is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} = {value:?}: expected {expected}")]
pub struct InvalidSetting {
    /// The dotted key, e.g. `school.time_zone`.
    pub key: String,
    /// The value as given (secrets are redacted).
    pub value: String,
    /// What a valid value looks like.
    pub expected: String,
}

/// `Result` with a [`ConfigError`].
pub type Result<T> = std::result::Result<T, ConfigError>;

// ---------------------------------------------------------------------------------
// The raw tree, as the layers give it. `deny_unknown_fields` everywhere: a misspelt
// key is an error, not a silently ignored setting.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    school: RawSchool,
    database: RawDatabase,
    telemetry: RawTelemetry,
    send_window: RawSendWindow,
    eligibility: RawEligibility,
    dispatch: RawDispatch,
    kinds: RawKinds,
    import: RawImport,
    email: RawEmail,
    sms: RawSms,
    approval: RawApproval,
    rules: RawRules,
    diagnose: RawDiagnose,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiagnose {
    recent_messages: i64,
    recent_days: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    catch_up_days: u32,
    instalment_due: RawInstalmentRule,
    arrears: RawArrearsRule,
    birthday: RawBirthdayRule,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstalmentRule {
    enabled: bool,
    schedule: String,
    days_before: Vec<u32>,
    channel: String,
    template: String,
    requires_approval: bool,
    reach: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArrearsRule {
    enabled: bool,
    schedule: String,
    min_days: u32,
    min_amount: String,
    repeat_every_days: u32,
    channel: String,
    template: String,
    requires_approval: bool,
    reach: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBirthdayRule {
    enabled: bool,
    schedule: String,
    whom: String,
    max_lateness: String,
    channel: String,
    template: String,
    requires_approval: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApproval {
    expires_after: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSms {
    gateway: String,
    sender: String,
    price_per_segment: u32,
    max_segments: u32,
    timeout: String,
    segments_per_second: u32,
    low_balance_threshold: i64,
    file: RawSmsFile,
    smsapi: RawSmsapi,
    twilio: RawTwilio,
    webhook: RawWebhook,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmsFile {
    path: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmsapi {
    url: String,
    token: SecretString,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTwilio {
    url: String,
    account_sid: String,
    auth_token: SecretString,
    messaging_service_sid: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    secret: SecretString,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchool {
    name: String,
    time_zone: String,
    default_locale: String,
    phone_region: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: SecretString,
    max_connections: u32,
    acquire_timeout: String,
    busy_timeout: String,
    migrate_on_start: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTelemetry {
    format: String,
    level: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSendWindow {
    monday: String,
    tuesday: String,
    wednesday: String,
    thursday: String,
    friday: String,
    saturday: String,
    sunday: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEligibility {
    teachers_need_consent: bool,
    staff_need_consent: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDispatch {
    schedule: String,
    lease: String,
    max_attempts: u32,
    retry_base: String,
    retry_max: String,
    shutdown_grace: String,
    wake_poll: String,
    informational_daily_cap: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKinds {
    system: RawSystemKind,
    informational: RawKind,
    periodic: RawKind,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKind {
    respect_send_window: bool,
    transliterate_sms: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSystemKind {
    respect_send_window: bool,
    immediate: bool,
    transliterate_sms: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    transport: String,
    from: String,
    file: RawEmailFile,
    smtp: RawSmtp,
    dkim: RawDkim,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmailFile {
    dir: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: String,
    port: u16,
    tls: String,
    username: String,
    password: SecretString,
    timeout: String,
    max_connections: u32,
    idle_timeout: String,
    hello_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDkim {
    enabled: bool,
    selector: String,
    domain: String,
    algorithm: String,
    private_key_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImport {
    progress_threshold: u64,
}

// ---------------------------------------------------------------------------------
// The checked tree: what the rest of Herald reads.

/// Every setting, parsed and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[school]`
    pub school: SchoolSettings,
    /// `[database]`
    pub database: DatabaseSettings,
    /// `[telemetry]`
    pub telemetry: TelemetrySettings,
    /// `[send_window]`, in the school's time zone.
    pub send_window: SendWindow,
    /// `[eligibility]`
    pub eligibility: ConsentRules,
    /// `[dispatch]`
    pub dispatch: DispatchSettings,
    /// `[kinds.*]`
    pub kinds: KindsSettings,
    /// `[import]`
    pub import: ImportSettings,
    /// `[email]`
    pub email: EmailSettings,
    /// `[sms]`
    pub sms: SmsSettings,
    /// `[approval]`
    pub approval: ApprovalSettings,
    /// `[rules]`: the periodic rules.
    pub rules: RulesSettings,
    /// `[diagnose]`
    pub diagnose: DiagnoseSettings,
}

/// `[diagnose]`: how much history `herald diagnose` shows.
#[derive(Debug, Clone, Copy)]
pub struct DiagnoseSettings {
    /// At most this many recent messages.
    pub recent_messages: i64,
    /// Messages of at most this many days back.
    pub recent_days: u32,
}

/// What every periodic rule has.
#[derive(Debug, Clone)]
pub struct RuleCommon {
    /// Whether it runs.
    pub enabled: bool,
    /// When it runs, in the school's time zone.
    pub schedule: cron::Schedule,
    /// Email, SMS, both, or SMS where there is no email.
    pub channel: crate::domain::ChannelChoice,
    /// The template its messages are rendered from.
    pub template: String,
    /// Whether its messages wait in the outbox for a person.
    pub requires_approval: bool,
    /// The students, their guardians, or both.
    pub reach: crate::domain::Reach,
}

/// `[rules]`
#[derive(Debug, Clone)]
pub struct RulesSettings {
    /// How many days back a run that was missed (downtime) still creates occurrences.
    pub catch_up_days: u32,
    /// `[rules.instalment_due]`
    pub instalment_due: RuleCommon,
    /// Days before the due date a reminder goes.
    pub days_before: Vec<u32>,
    /// `[rules.arrears]`
    pub arrears: RuleCommon,
    /// Days in arrears before the first notice.
    pub arrears_min_days: u32,
    /// The smallest balance (grosze) that gets a notice.
    pub arrears_min_amount_cents: i64,
    /// Days between notices while the balance stays unpaid.
    pub arrears_repeat_every_days: u32,
    /// `[rules.birthday]`
    pub birthday: RuleCommon,
    /// How long after the end of the birthday a greeting may still go.
    pub birthday_max_lateness: Duration,
}

/// `[school]`: who the school is and where.
#[derive(Debug, Clone)]
pub struct SchoolSettings {
    /// The name shown in messages and reports.
    pub name: String,
    /// The time zone of the send window, holidays and schedules.
    pub time_zone: Tz,
    /// The locale used when a recipient has none.
    pub default_locale: String,
    /// The region phone numbers without a country code are read in.
    pub phone_region: PhoneRegion,
}

/// `[database]`: where Herald keeps its state.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// The connection URL; may hold a password, so it never prints.
    pub url: SecretString,
    /// Which backend the URL names.
    pub backend: Backend,
    /// Connections in the pool.
    pub max_connections: u32,
    /// How long a query waits for a free connection before failing.
    pub acquire_timeout: Duration,
    /// How long a writer waits for SQLite's lock before giving up.
    pub busy_timeout: Duration,
    /// Apply pending migrations whenever Herald opens the database.
    pub migrate_on_start: bool,
}

/// The database backend named by `database.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file at this path.
    Sqlite(PathBuf),
    /// A PostgreSQL server (the URL is in `DatabaseSettings::url`).
    Postgres,
}

impl DatabaseSettings {
    /// The URL with any password replaced, for logs and reports.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose_secret())
    }

    /// Points the settings at an SQLite file (the demo and tests use their own).
    pub fn use_sqlite_file(&mut self, path: &Path) {
        self.url = SecretString::from(format!("sqlite://{}", path.display()));
        self.backend = Backend::Sqlite(path.to_owned());
    }

    /// Points the settings at a PostgreSQL database (tests use their own).
    pub fn use_postgres(&mut self, url: &str) {
        self.url = SecretString::from(url.to_owned());
        self.backend = Backend::Postgres;
    }
}

/// `[telemetry]`: how Herald logs.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// Human-readable lines or one JSON object per line.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `herald=debug,sqlx=warn`.
    pub level: String,
}

/// The shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people reading a terminal or the journal.
    Text,
    /// For log collectors.
    Json,
}

/// `[dispatch]`: when and how the dispatcher runs.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// The dispatch tick, in the school's time zone.
    pub schedule: cron::Schedule,
    /// How long a claimed message belongs to the dispatcher that claimed it; longer
    /// than the channel's timeout, so a slow send is never taken for a crash.
    pub lease: Duration,
    /// Attempts before a transient failure becomes final.
    pub max_attempts: u32,
    /// The delay before the first retry; doubles with each attempt.
    pub retry_base: Duration,
    /// The longest delay between two attempts.
    pub retry_max: Duration,
    /// How long a stopping daemon lets in-flight sends finish.
    pub shutdown_grace: Duration,
    /// How often the daemon looks for new system messages between ticks.
    pub wake_poll: Duration,
    /// At most this many informational messages per recipient and channel a school
    /// day; the excess waits for the next day. `None`: no cap.
    pub informational_daily_cap: Option<u32>,
}

/// `[email]`: how email leaves Herald.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// Where messages go.
    pub transport: EmailTransport,
    /// The sender, e.g. `Herald School <no-reply@school.example>`.
    pub from: lettre::message::Mailbox,
    /// DKIM signing, when enabled.
    pub dkim: Option<DkimSettings>,
}

/// The email transport.
#[derive(Debug, Clone)]
pub enum EmailTransport {
    /// Each message becomes an `.eml` file in this folder.
    File {
        /// The folder.
        dir: PathBuf,
    },
    /// An SMTP server.
    Smtp(SmtpSettings),
}

/// `[email.smtp]`
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// The server's host name or address.
    pub host: String,
    /// The port.
    pub port: u16,
    /// How the connection is secured.
    pub tls: SmtpTls,
    /// User name and password, when the server wants them.
    pub credentials: Option<(String, SecretString)>,
    /// The longest one message may take, connect to final reply.
    pub timeout: Duration,
    /// Connections open at once, at most.
    pub max_connections: u32,
    /// An idle connection older than this is closed instead of reused.
    pub idle_timeout: Duration,
    /// The name Herald gives in EHLO; `None` for the machine's host name.
    pub hello_name: Option<String>,
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text: for a relay on the same machine only.
    None,
    /// Plain connect, then STARTTLS, required.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

/// `[email.dkim]`
#[derive(Debug, Clone)]
pub struct DkimSettings {
    /// The selector of the DNS record.
    pub selector: String,
    /// The signing domain.
    pub domain: String,
    /// `rsa` (PKCS#1 PEM) or `ed25519` (base64 of the raw key).
    pub algorithm: DkimAlgorithm,
    /// The private key's file.
    pub private_key_file: PathBuf,
}

/// A DKIM key's algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimAlgorithm {
    /// RSA, key as PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`).
    Rsa,
    /// Ed25519, key as base64 of the 32 raw bytes.
    Ed25519,
}

/// `[approval]`: how long an approval stays good.
#[derive(Debug, Clone, Copy)]
pub struct ApprovalSettings {
    /// An approved batch with messages still unsent after this long goes back to
    /// the outbox (`approval_expired`).
    pub expires_after: Duration,
}

/// `[sms]`: how SMS leave Herald and what they cost.
#[derive(Debug, Clone)]
pub struct SmsSettings {
    /// The gateway.
    pub gateway: SmsGateway,
    /// The sender name (or number) recipients see; it cannot be replied to.
    pub sender: String,
    /// Wallet points per segment.
    pub price_per_segment: u32,
    /// The longest message, in segments; longer texts are refused when composed.
    pub max_segments: u32,
    /// The longest one send may take.
    pub timeout: Duration,
    /// The gateway's rate limit, in segments per second.
    pub segments_per_second: u32,
    /// Below this balance the wallet is reported low.
    pub low_balance_threshold: i64,
}

/// An SMS gateway and its settings.
#[derive(Debug, Clone)]
pub enum SmsGateway {
    /// Each SMS becomes a JSON line in this file.
    File {
        /// The file.
        path: PathBuf,
    },
    /// SMSAPI.pl.
    Smsapi {
        /// The endpoint, `https://api.smsapi.pl/sms.do`.
        url: reqwest::Url,
        /// The OAuth bearer token.
        token: SecretString,
    },
    /// Twilio Programmable Messaging.
    Twilio {
        /// The API base, `https://api.twilio.com`.
        url: reqwest::Url,
        /// The account SID.
        account_sid: String,
        /// The auth token.
        auth_token: SecretString,
        /// A messaging service to send from instead of the sender number.
        messaging_service_sid: Option<String>,
    },
    /// A school's own gateway: a signed JSON POST.
    Webhook {
        /// Where to POST.
        url: reqwest::Url,
        /// The HMAC-SHA256 key of the signature header.
        secret: SecretString,
    },
}

impl SmsGateway {
    /// The gateway's name in the configuration.
    pub fn name(&self) -> &'static str {
        match self {
            SmsGateway::File { .. } => "file",
            SmsGateway::Smsapi { .. } => "smsapi",
            SmsGateway::Twilio { .. } => "twilio",
            SmsGateway::Webhook { .. } => "webhook",
        }
    }
}

/// `[kinds.*]`: per-kind behaviour.
#[derive(Debug, Clone, Copy)]
pub struct KindsSettings {
    /// `[kinds.system]`
    pub system: KindSettings,
    /// `[kinds.informational]`
    pub informational: KindSettings,
    /// `[kinds.periodic]`
    pub periodic: KindSettings,
}

/// One kind's behaviour.
#[derive(Debug, Clone, Copy)]
pub struct KindSettings {
    /// Hold messages of this kind outside the send window and on holidays.
    pub respect_send_window: bool,
    /// Wake the dispatcher as soon as a message of this kind is created, instead of
    /// waiting for the tick (system messages only).
    pub immediate: bool,
    /// Transliterate SMS texts of this kind to stay in GSM-7.
    pub transliterate_sms: bool,
}

impl KindsSettings {
    /// The settings of `kind`.
    pub fn of(&self, kind: MessageKind) -> KindSettings {
        match kind {
            MessageKind::System => self.system,
            MessageKind::Informational => self.informational,
            MessageKind::Periodic => self.periodic,
        }
    }
}

/// `[import]`: how imports behave.
#[derive(Debug, Clone, Copy)]
pub struct ImportSettings {
    /// Show a progress bar for files with more rows than this.
    pub progress_threshold: u64,
}

impl Settings {
    /// Loads the layers (defaults, then `file` if given, then the environment) and
    /// validates the result.
    pub fn load(file: Option<&Path>) -> Result<Settings> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, env)
    }

    /// [`Settings::load`] with the environment given, so tests need not touch the
    /// process's.
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            builder = builder.add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        // No `try_parsing`: it would turn `+48500100200` into the number 48500100200.
        let env_source = config::Environment::with_prefix(ENV_PREFIX)
            .separator("__")
            .source(Some(env.into_iter().collect()));
        let raw: Raw = builder.add_source(env_source).build()?.try_deserialize()?;
        raw.validate()
    }

    /// Whether messages of `kind` wait for the send window and skip holidays.
    pub fn respects_window(&self, kind: MessageKind) -> bool {
        self.kinds.of(kind).respect_send_window
    }
}

impl Raw {
    /// Parses every value that can be wrong and reports all the bad ones at once.
    fn validate(self) -> Result<Settings> {
        let mut bad = Problems::default();

        let name = self.school.name.trim().to_owned();
        if name.is_empty() {
            bad.add(
                "school.name",
                &self.school.name,
                "the school's name, not empty",
            );
        }
        let time_zone = Tz::from_str(self.school.time_zone.trim()).unwrap_or_else(|_| {
            bad.add(
                "school.time_zone",
                &self.school.time_zone,
                "an IANA time zone name such as \"Europe/Warsaw\"",
            );
            Tz::UTC
        });
        let default_locale = self.school.default_locale.trim().to_owned();
        if !is_locale(&default_locale) {
            bad.add(
                "school.default_locale",
                &self.school.default_locale,
                "a language tag such as \"pl\" or \"en-GB\"",
            );
        }
        let phone_region = parse_region(&self.school.phone_region).unwrap_or_else(|| {
            bad.add(
                "school.phone_region",
                &self.school.phone_region,
                "a two-letter country code such as \"PL\"",
            );
            PhoneRegion::PL
        });

        let url = self.database.url.expose_secret().trim().to_owned();
        let backend = parse_database_url(&url).unwrap_or_else(|expected| {
            bad.add("database.url", &redact_url(&url), &expected);
            Backend::Sqlite(PathBuf::from("herald.db"))
        });
        if self.database.max_connections == 0 {
            bad.add(
                "database.max_connections",
                "0",
                "a number of connections of at least 1",
            );
        }
        let acquire_timeout = parse_duration(&self.database.acquire_timeout).unwrap_or_else(|| {
            bad.add(
                "database.acquire_timeout",
                &self.database.acquire_timeout,
                "a duration such as \"10s\"",
            );
            Duration::from_secs(10)
        });
        let busy_timeout = parse_duration(&self.database.busy_timeout).unwrap_or_else(|| {
            bad.add(
                "database.busy_timeout",
                &self.database.busy_timeout,
                "a duration such as \"5s\" or \"500ms\"",
            );
            Duration::from_secs(5)
        });

        let format = match self.telemetry.format.trim().to_ascii_lowercase().as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => {
                bad.add(
                    "telemetry.format",
                    &self.telemetry.format,
                    "\"text\" or \"json\"",
                );
                LogFormat::Text
            }
        };
        if tracing_subscriber::EnvFilter::try_new(&self.telemetry.level).is_err() {
            bad.add(
                "telemetry.level",
                &self.telemetry.level,
                "a log filter such as \"info\" or \"herald=debug,sqlx=warn\"",
            );
        }

        let w = &self.send_window;
        let mut days: [Vec<Span>; 7] = Default::default();
        for (day, key, text) in [
            (Weekday::Mon, "monday", &w.monday),
            (Weekday::Tue, "tuesday", &w.tuesday),
            (Weekday::Wed, "wednesday", &w.wednesday),
            (Weekday::Thu, "thursday", &w.thursday),
            (Weekday::Fri, "friday", &w.friday),
            (Weekday::Sat, "saturday", &w.saturday),
            (Weekday::Sun, "sunday", &w.sunday),
        ] {
            match parse_hours(text) {
                Ok(spans) => days[day.num_days_from_monday() as usize] = spans,
                Err(e) => bad.add(
                    &format!("send_window.{key}"),
                    text,
                    &format!(
                        "opening hours \"HH:MM-HH:MM\", several separated by commas, or \
                         \"closed\" ({})",
                        e.why
                    ),
                ),
            }
        }
        let send_window = SendWindow::new(time_zone, days);
        if send_window.is_empty() && !bad.mentions("send_window") {
            bad.add(
                "send_window",
                "closed every day",
                "at least one weekday with open hours (otherwise informational and \
                 periodic messages would never go)",
            );
        }

        let schedule = cron::Schedule::from_str(self.dispatch.schedule.trim())
            .map_err(|e| e.to_string())
            .and_then(|s| {
                // An expression that never fires (30 February) would send nothing.
                match s.upcoming(chrono_tz::UTC).next() {
                    Some(_) => Ok(s),
                    None => Err("it never fires".to_owned()),
                }
            })
            .map_err(|e| {
                bad.add(
                    "dispatch.schedule",
                    &self.dispatch.schedule,
                    &format!(
                        "a cron expression with seconds, \"sec min hour day month weekday\", \
                         such as \"0 */5 * * * *\" ({e})"
                    ),
                )
            })
            .ok();

        let mut duration = |key: &str, text: &str| {
            parse_duration(text).unwrap_or_else(|| {
                bad.add(key, text, "a duration such as \"30s\", \"2m\" or \"1h\"");
                Duration::from_secs(1)
            })
        };
        let d = &self.dispatch;
        let lease = duration("dispatch.lease", &d.lease);
        let retry_base = duration("dispatch.retry_base", &d.retry_base);
        let retry_max = duration("dispatch.retry_max", &d.retry_max);
        let shutdown_grace = duration("dispatch.shutdown_grace", &d.shutdown_grace);
        let wake_poll = duration("dispatch.wake_poll", &d.wake_poll);
        let smtp_timeout = duration("email.smtp.timeout", &self.email.smtp.timeout);
        let idle_timeout = duration("email.smtp.idle_timeout", &self.email.smtp.idle_timeout);
        let sms_timeout = duration("sms.timeout", &self.sms.timeout);
        // Floors below which a setting can only do harm: a poll of zero is a busy
        // loop, a zero timeout fails every send, a zero retry burns every attempt
        // within one pass.
        for (key, value, text, floor) in [
            (
                "dispatch.wake_poll",
                wake_poll,
                &d.wake_poll,
                Duration::from_millis(100),
            ),
            (
                "dispatch.retry_base",
                retry_base,
                &d.retry_base,
                Duration::from_secs(1),
            ),
            (
                "email.smtp.timeout",
                smtp_timeout,
                &self.email.smtp.timeout,
                Duration::from_secs(1),
            ),
            (
                "sms.timeout",
                sms_timeout,
                &self.sms.timeout,
                Duration::from_secs(1),
            ),
        ] {
            if value < floor {
                bad.add(
                    key,
                    text,
                    &format!(
                        "a duration of at least {}",
                        humantime::format_duration(floor)
                    ),
                );
            }
        }
        if d.max_attempts == 0 {
            bad.add(
                "dispatch.max_attempts",
                "0",
                "a number of attempts of at least 1",
            );
        }
        if retry_max < retry_base {
            bad.add(
                "dispatch.retry_max",
                &d.retry_max,
                &format!("a duration at least dispatch.retry_base ({})", d.retry_base),
            );
        }
        // A lease shorter than a send would let a second dispatcher take a message
        // that is still being sent: the margin covers the database round trips.
        if lease < smtp_timeout + LEASE_MARGIN {
            bad.add(
                "dispatch.lease",
                &d.lease,
                &format!(
                    "a duration longer than email.smtp.timeout ({}) by at least {}s",
                    self.email.smtp.timeout,
                    LEASE_MARGIN.as_secs()
                ),
            );
        }
        let email = validate_email(&self.email, smtp_timeout, idle_timeout, &mut bad);
        if lease < sms_timeout + LEASE_MARGIN {
            bad.add(
                "dispatch.lease",
                &d.lease,
                &format!(
                    "a duration longer than sms.timeout ({}) by at least {}s",
                    self.sms.timeout,
                    LEASE_MARGIN.as_secs()
                ),
            );
        }
        let sms = validate_sms(&self.sms, sms_timeout, &mut bad);
        let expires_after = parse_duration(&self.approval.expires_after)
            .filter(|d| *d >= Duration::from_secs(60))
            .unwrap_or_else(|| {
                bad.add(
                    "approval.expires_after",
                    &self.approval.expires_after,
                    "a duration of at least a minute, such as \"7d\"",
                );
                Duration::from_secs(7 * 86_400)
            });

        let rules = validate_rules(&self.rules, &mut bad);

        if self.import.progress_threshold == 0 {
            bad.add(
                "import.progress_threshold",
                "0",
                "a number of rows of at least 1",
            );
        }

        if !bad.0.is_empty() {
            return Err(ConfigError::Invalid(bad.0));
        }
        let kind = |k: &RawKind| KindSettings {
            respect_send_window: k.respect_send_window,
            immediate: false,
            transliterate_sms: k.transliterate_sms,
        };
        Ok(Settings {
            school: SchoolSettings {
                name,
                time_zone,
                default_locale,
                phone_region,
            },
            database: DatabaseSettings {
                url: SecretString::from(url),
                backend,
                max_connections: self.database.max_connections,
                acquire_timeout,
                busy_timeout,
                migrate_on_start: self.database.migrate_on_start,
            },
            telemetry: TelemetrySettings {
                format,
                level: self.telemetry.level,
            },
            send_window,
            eligibility: ConsentRules {
                teachers_need_consent: self.eligibility.teachers_need_consent,
                staff_need_consent: self.eligibility.staff_need_consent,
            },
            dispatch: DispatchSettings {
                schedule: schedule.expect("a bad schedule was reported above"),
                lease,
                max_attempts: self.dispatch.max_attempts,
                retry_base,
                retry_max,
                shutdown_grace,
                wake_poll,
                informational_daily_cap: (self.dispatch.informational_daily_cap > 0)
                    .then_some(self.dispatch.informational_daily_cap),
            },
            email: email.expect("a bad email setting was reported above"),
            sms: sms.expect("a bad SMS setting was reported above"),
            approval: ApprovalSettings { expires_after },
            rules: rules.expect("a bad rule setting was reported above"),
            diagnose: DiagnoseSettings {
                recent_messages: self.diagnose.recent_messages.clamp(1, 1000),
                recent_days: self.diagnose.recent_days.max(1),
            },
            kinds: KindsSettings {
                system: KindSettings {
                    respect_send_window: self.kinds.system.respect_send_window,
                    immediate: self.kinds.system.immediate,
                    transliterate_sms: self.kinds.system.transliterate_sms,
                },
                informational: kind(&self.kinds.informational),
                periodic: kind(&self.kinds.periodic),
            },
            import: ImportSettings {
                progress_threshold: self.import.progress_threshold,
            },
        })
    }
}

/// How much longer than the SMTP timeout a lease must be.
const LEASE_MARGIN: Duration = Duration::from_secs(10);

fn validate_email(
    raw: &RawEmail,
    timeout: Duration,
    idle_timeout: Duration,
    bad: &mut Problems,
) -> Option<EmailSettings> {
    let from = match raw.from.parse::<lettre::message::Mailbox>() {
        Ok(m) if EmailAddress::parse(m.email.as_ref()).is_ok() => Some(m),
        _ => {
            bad.add(
                "email.from",
                &raw.from,
                "a sender such as \"Herald School <no-reply@school.example>\" with a \
                 deliverable address",
            );
            None
        }
    };
    let s = &raw.smtp;
    let tls = match s.tls.trim().to_ascii_lowercase().as_str() {
        "none" => Some(SmtpTls::None),
        "starttls" => Some(SmtpTls::StartTls),
        "tls" => Some(SmtpTls::Tls),
        _ => {
            bad.add(
                "email.smtp.tls",
                &s.tls,
                "\"none\", \"starttls\" or \"tls\"",
            );
            None
        }
    };
    if s.max_connections == 0 {
        bad.add(
            "email.smtp.max_connections",
            "0",
            "a number of connections of at least 1",
        );
    }
    let transport = match raw.transport.trim().to_ascii_lowercase().as_str() {
        "file" => {
            if raw.file.dir.trim().is_empty() {
                bad.add(
                    "email.file.dir",
                    &raw.file.dir,
                    "a folder for the .eml files",
                );
            }
            Some(EmailTransport::File {
                dir: PathBuf::from(raw.file.dir.trim()),
            })
        }
        "smtp" => {
            if s.host.trim().is_empty() {
                bad.add(
                    "email.smtp.host",
                    &s.host,
                    "the SMTP server's host name or address",
                );
            }
            if s.port == 0 {
                bad.add("email.smtp.port", "0", "a TCP port such as 25, 587 or 465");
            }
            let credentials = (!s.username.trim().is_empty())
                .then(|| (s.username.trim().to_owned(), s.password.clone()));
            if credentials.is_some() && tls == Some(SmtpTls::None) && !is_loopback(&s.host) {
                bad.add(
                    "email.smtp.tls",
                    &s.tls,
                    "\"starttls\" or \"tls\" when a password is sent to a server that is \
                     not on this machine",
                );
            }
            tls.map(|tls| {
                EmailTransport::Smtp(SmtpSettings {
                    host: s.host.trim().to_owned(),
                    port: s.port,
                    tls,
                    credentials,
                    timeout,
                    max_connections: s.max_connections.max(1),
                    idle_timeout,
                    hello_name: Some(s.hello_name.trim().to_owned()).filter(|h| !h.is_empty()),
                })
            })
        }
        _ => {
            bad.add("email.transport", &raw.transport, "\"file\" or \"smtp\"");
            None
        }
    };
    let k = &raw.dkim;
    let dkim = if k.enabled {
        let algorithm = match k.algorithm.trim().to_ascii_lowercase().as_str() {
            "rsa" => Some(DkimAlgorithm::Rsa),
            "ed25519" => Some(DkimAlgorithm::Ed25519),
            _ => {
                bad.add(
                    "email.dkim.algorithm",
                    &k.algorithm,
                    "\"rsa\" or \"ed25519\"",
                );
                None
            }
        };
        for (key, value, what) in [
            (
                "email.dkim.selector",
                &k.selector,
                "the selector of the DKIM DNS record",
            ),
            ("email.dkim.domain", &k.domain, "the signing domain"),
            (
                "email.dkim.private_key_file",
                &k.private_key_file,
                "the private key's file",
            ),
        ] {
            if value.trim().is_empty() {
                bad.add(key, value, what);
            }
        }
        algorithm.map(|algorithm| DkimSettings {
            selector: k.selector.trim().to_owned(),
            domain: k.domain.trim().to_owned(),
            algorithm,
            private_key_file: PathBuf::from(k.private_key_file.trim()),
        })
    } else {
        None
    };
    Some(EmailSettings {
        transport: transport?,
        from: from?,
        dkim,
    })
}

fn validate_sms(raw: &RawSms, timeout: Duration, bad: &mut Problems) -> Option<SmsSettings> {
    fn url(bad: &mut Problems, key: &str, text: &str) -> Option<reqwest::Url> {
        match reqwest::Url::parse(text.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
            _ => {
                bad.add(key, text, "an http:// or https:// URL");
                None
            }
        }
    }
    fn required(bad: &mut Problems, key: &str, value: &str, what: &str) {
        if value.trim().is_empty() {
            bad.add(key, value, what);
        }
    }
    // Secrets are checked for presence; their value is never echoed.
    fn present(secret: &SecretString) -> &'static str {
        if secret.expose_secret().is_empty() {
            ""
        } else {
            "***"
        }
    }
    let gateway = match raw.gateway.trim().to_ascii_lowercase().as_str() {
        "file" => {
            required(
                bad,
                "sms.file.path",
                &raw.file.path,
                "a file for the SMS lines",
            );
            Some(SmsGateway::File {
                path: PathBuf::from(raw.file.path.trim()),
            })
        }
        "smsapi" => {
            required(
                bad,
                "sms.smsapi.token",
                present(&raw.smsapi.token),
                "the OAuth token from the SMSAPI panel",
            );
            url(bad, "sms.smsapi.url", &raw.smsapi.url).map(|url| SmsGateway::Smsapi {
                url,
                token: raw.smsapi.token.clone(),
            })
        }
        "twilio" => {
            let t = &raw.twilio;
            required(
                bad,
                "sms.twilio.account_sid",
                &t.account_sid,
                "the account SID (AC…)",
            );
            required(
                bad,
                "sms.twilio.auth_token",
                present(&t.auth_token),
                "the account's auth token",
            );
            url(bad, "sms.twilio.url", &t.url).map(|url| SmsGateway::Twilio {
                url,
                account_sid: t.account_sid.trim().to_owned(),
                auth_token: t.auth_token.clone(),
                messaging_service_sid: Some(t.messaging_service_sid.trim().to_owned())
                    .filter(|s| !s.is_empty()),
            })
        }
        "webhook" => {
            required(
                bad,
                "sms.webhook.secret",
                present(&raw.webhook.secret),
                "a secret to sign requests with (HMAC-SHA256)",
            );
            url(bad, "sms.webhook.url", &raw.webhook.url).map(|url| SmsGateway::Webhook {
                url,
                secret: raw.webhook.secret.clone(),
            })
        }
        _ => {
            bad.add(
                "sms.gateway",
                &raw.gateway,
                "\"file\", \"smsapi\", \"twilio\" or \"webhook\"",
            );
            None
        }
    };
    let sender = raw.sender.trim().to_owned();
    // SMSAPI and the operators take alphanumeric sender names of at most 11
    // characters; a number may be longer (Twilio sends from a number).
    let is_number = sender.starts_with('+') && sender[1..].chars().all(|c| c.is_ascii_digit());
    if sender.is_empty() || (!is_number && (sender.chars().count() > 11 || !sender.is_ascii())) {
        bad.add(
            "sms.sender",
            &raw.sender,
            "a sender name of 1 to 11 ASCII characters (as registered with the gateway) or a \
             number such as +48500100200",
        );
    }
    if raw.price_per_segment == 0 {
        bad.add(
            "sms.price_per_segment",
            "0",
            "points per segment, at least 1",
        );
    }
    if raw.max_segments == 0 {
        bad.add(
            "sms.max_segments",
            "0",
            "a number of segments of at least 1",
        );
    }
    if raw.segments_per_second == 0 {
        bad.add(
            "sms.segments_per_second",
            "0",
            "a rate of at least 1 segment per second",
        );
    }
    if raw.low_balance_threshold < 0 {
        bad.add(
            "sms.low_balance_threshold",
            &raw.low_balance_threshold.to_string(),
            "a number of points of at least 0",
        );
    }
    Some(SmsSettings {
        gateway: gateway?,
        sender,
        price_per_segment: raw.price_per_segment.max(1),
        max_segments: raw.max_segments.max(1),
        timeout,
        segments_per_second: raw.segments_per_second.max(1),
        low_balance_threshold: raw.low_balance_threshold.max(0),
    })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The bad settings found so far.
#[derive(Default)]
struct Problems(Vec<InvalidSetting>);

impl Problems {
    fn add(&mut self, key: &str, value: &str, expected: &str) {
        self.0.push(InvalidSetting {
            key: key.to_owned(),
            value: value.to_owned(),
            expected: expected.to_owned(),
        });
    }

    fn mentions(&self, prefix: &str) -> bool {
        self.0.iter().any(|b| b.key.starts_with(prefix))
    }

    fn count(&self) -> usize {
        self.0.len()
    }
}

/// Checks `[rules]`, naming every bad key.
fn validate_rules(r: &RawRules, bad: &mut Problems) -> Option<RulesSettings> {
    let before = bad.count();
    let mut common = |name: &str,
                      enabled: bool,
                      schedule: &str,
                      channel: &str,
                      template: &str,
                      requires_approval: bool,
                      reach: &str| {
        let key = |k: &str| format!("rules.{name}.{k}");
        let parsed = cron::Schedule::from_str(schedule.trim());
        let schedule = match parsed {
            Ok(s) if s.upcoming(chrono_tz::UTC).next().is_some() => Some(s),
            _ => {
                bad.add(
                    &key("schedule"),
                    schedule,
                    "a cron expression with seconds, \"sec min hour day month weekday\", such as \"0 0 7 * * *\" (07:00 every day)",
                );
                None
            }
        };
        let channel = match channel.parse::<crate::domain::ChannelChoice>() {
            Ok(c) => Some(c),
            Err(_) => {
                bad.add(
                    &key("channel"),
                    channel,
                    "email, sms, both or sms_if_no_email",
                );
                None
            }
        };
        let reach = match reach.trim().to_ascii_lowercase().as_str() {
            "students" | "student" => Some(crate::domain::Reach::Students),
            "guardians" | "guardian" => Some(crate::domain::Reach::Guardians),
            "both" => Some(crate::domain::Reach::Both),
            _ => {
                let field = if name == "birthday" { "whom" } else { "reach" };
                bad.add(&key(field), reach, "students, guardians or both");
                None
            }
        };
        if enabled && template.trim().is_empty() {
            bad.add(
                &key("template"),
                template,
                "the name of a template (`herald templates add`) when the rule is enabled",
            );
        }
        Some(RuleCommon {
            enabled,
            schedule: schedule?,
            channel: channel?,
            template: template.trim().to_owned(),
            requires_approval,
            reach: reach?,
        })
    };
    let i = &r.instalment_due;
    let instalment_due = common(
        "instalment_due",
        i.enabled,
        &i.schedule,
        &i.channel,
        &i.template,
        i.requires_approval,
        &i.reach,
    );
    let a = &r.arrears;
    let arrears = common(
        "arrears",
        a.enabled,
        &a.schedule,
        &a.channel,
        &a.template,
        a.requires_approval,
        &a.reach,
    );
    let b = &r.birthday;
    let birthday = common(
        "birthday",
        b.enabled,
        &b.schedule,
        &b.channel,
        &b.template,
        b.requires_approval,
        &b.whom,
    );
    if i.days_before.is_empty() || i.days_before.iter().any(|d| *d > 90) {
        bad.add(
            "rules.instalment_due.days_before",
            &format!("{:?}", i.days_before),
            "a list of days before the due date, each 0 to 90, such as [7, 1]",
        );
    }
    if a.repeat_every_days == 0 {
        bad.add(
            "rules.arrears.repeat_every_days",
            "0",
            "a number of days of at least 1",
        );
    }
    let min_amount = parse_cents(&a.min_amount);
    if min_amount.is_none() {
        bad.add(
            "rules.arrears.min_amount",
            &a.min_amount,
            "an amount in złoty of zero or more, such as \"50.00\"",
        );
    }
    let max_lateness = parse_duration(&b.max_lateness);
    if max_lateness.is_none() {
        bad.add(
            "rules.birthday.max_lateness",
            &b.max_lateness,
            "a duration such as \"0s\" (only on the day) or \"12h\"",
        );
    }
    if r.catch_up_days > 366 {
        bad.add(
            "rules.catch_up_days",
            &r.catch_up_days.to_string(),
            "a number of days from 0 to 366",
        );
    }
    if bad.count() > before {
        return None;
    }
    let mut days_before = i.days_before.clone();
    days_before.sort_unstable_by(|x, y| y.cmp(x));
    days_before.dedup();
    Some(RulesSettings {
        catch_up_days: r.catch_up_days,
        instalment_due: instalment_due?,
        days_before,
        arrears: arrears?,
        arrears_min_days: a.min_days,
        arrears_min_amount_cents: min_amount?,
        arrears_repeat_every_days: a.repeat_every_days,
        birthday: birthday?,
        birthday_max_lateness: max_lateness?,
    })
}

/// An amount in złoty ("50", "50.00", "50,5") as grosze, zero or more.
fn parse_cents(text: &str) -> Option<i64> {
    let t = text.trim().replace(',', ".");
    let (whole, frac) = t.split_once('.').unwrap_or((&t, ""));
    if whole.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 2
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let frac = format!("{frac:0<2}");
    Some(whole.parse::<i64>().ok()? * 100 + frac.parse::<i64>().ok()?)
}

fn parse_duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text.trim()).ok()
}

fn is_locale(tag: &str) -> bool {
    let mut parts = tag.split(['-', '_']);
    let lang = parts.next().unwrap_or_default();
    (2..=3).contains(&lang.len())
        && lang.chars().all(|c| c.is_ascii_alphabetic())
        && parts
            .all(|p| !p.is_empty() && p.len() <= 8 && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Reads `sqlite://PATH`, `sqlite:PATH`, or `postgres://…` / `postgresql://…`.
fn parse_database_url(url: &str) -> std::result::Result<Backend, String> {
    const EXPECTED: &str = "an SQLite URL such as \"sqlite://herald.db\" or a PostgreSQL \
                            URL such as \"postgres://herald@db.example/herald\"";
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return match url.parse::<sqlx::postgres::PgConnectOptions>() {
            Ok(_) => Ok(Backend::Postgres),
            Err(e) => Err(format!("{EXPECTED} ({e})")),
        };
    }
    let path = if let Some(rest) = url.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        rest
    } else {
        return Err(EXPECTED.to_owned());
    };
    // Connection options after `?` are ours to set (WAL, busy timeout), not the URL's.
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Err(format!(
            "{EXPECTED}; an in-memory database would lose every message on restart"
        ));
    }
    Ok(Backend::Sqlite(PathBuf::from(path)))
}

/// Replaces the password of a `scheme://user:password@host` URL with `***`.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Settings> {
        Settings::load_from(None, env(pairs))
    }

    fn invalid_keys(err: ConfigError) -> Vec<String> {
        match err {
            ConfigError::Invalid(list) => list.into_iter().map(|e| e.key).collect(),
            other => panic!("expected invalid settings, got {other}"),
        }
    }

    #[test]
    fn the_embedded_defaults_load_and_match_the_design() {
        let s = load(&[]).unwrap();
        assert_eq!(s.school.time_zone, chrono_tz::Europe::Warsaw);
        assert_eq!(s.school.phone_region, PhoneRegion::PL);
        assert_eq!(s.database.backend, Backend::Sqlite("herald.db".into()));
        assert_eq!(s.send_window.describe_day(Weekday::Mon), "08:00-20:00");
        assert_eq!(s.send_window.describe_day(Weekday::Sat), "08:00-20:00");
        assert_eq!(s.send_window.describe_day(Weekday::Sun), "closed");
        assert!(!s.respects_window(MessageKind::System));
        assert!(s.respects_window(MessageKind::Informational));
        assert!(s.respects_window(MessageKind::Periodic));
        assert!(!s.eligibility.teachers_need_consent);
    }

    #[test]
    fn environment_variables_override_with_double_underscores() {
        let s = load(&[
            ("HERALD__SCHOOL__TIME_ZONE", "Europe/Berlin"),
            ("HERALD__SEND_WINDOW__SUNDAY", "10:00-12:00"),
            ("HERALD__DATABASE__MAX_CONNECTIONS", "3"),
            ("HERALD_UNRELATED", "ignored"),
        ])
        .unwrap();
        assert_eq!(s.school.time_zone, chrono_tz::Europe::Berlin);
        assert_eq!(s.send_window.describe_day(Weekday::Sun), "10:00-12:00");
        assert_eq!(s.database.max_connections, 3);
    }

    #[test]
    fn every_bad_value_is_named_with_its_key() {
        let err = load(&[
            ("HERALD__SCHOOL__TIME_ZONE", "Europe/Warszawa"),
            ("HERALD__SCHOOL__PHONE_REGION", "Poland"),
            ("HERALD__SEND_WINDOW__MONDAY", "8-20"),
            ("HERALD__DISPATCH__SCHEDULE", "*/5 * * * *"),
            ("HERALD__DISPATCH__WAKE_POLL", "0s"),
            ("HERALD__DATABASE__BUSY_TIMEOUT", "soon"),
            ("HERALD__DATABASE__URL", "mysql://root@localhost/herald"),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"Europe/Warszawa\""), "{text}");
        assert_eq!(
            invalid_keys(err),
            [
                "school.time_zone",
                "school.phone_region",
                "database.url",
                "database.busy_timeout",
                "send_window.monday",
                "dispatch.schedule",
                "dispatch.wake_poll",
            ]
        );
    }

    #[test]
    fn an_unknown_key_stops_loading_with_its_name() {
        let err = load(&[("HERALD__SCHOOL__TIMEZONE", "Europe/Warsaw")]).unwrap_err();
        assert!(err.to_string().contains("timezone"), "{err}");
    }

    #[test]
    fn a_window_closed_every_day_is_refused() {
        let days = [
            "MONDAY",
            "TUESDAY",
            "WEDNESDAY",
            "THURSDAY",
            "FRIDAY",
            "SATURDAY",
            "SUNDAY",
        ];
        let vars: Vec<(String, String)> = days
            .iter()
            .map(|d| (format!("HERALD__SEND_WINDOW__{d}"), "closed".to_owned()))
            .collect();
        let err = Settings::load_from(None, vars).unwrap_err();
        assert_eq!(invalid_keys(err), ["send_window"]);
    }

    #[test]
    fn phone_like_values_keep_their_plus_sign() {
        // `try_parsing` would make this a number; the school name must stay text.
        let s = load(&[("HERALD__SCHOOL__NAME", "+48500100200")]).unwrap();
        assert_eq!(s.school.name, "+48500100200");
    }

    #[test]
    fn passwords_in_database_urls_never_print() {
        assert_eq!(
            redact_url("postgres://herald:s3cret@db.example/herald"),
            "postgres://herald:***@db.example/herald"
        );
        assert_eq!(redact_url("sqlite://herald.db"), "sqlite://herald.db");
        let err = load(&[
            (
                "HERALD__DATABASE__URL",
                "postgres://herald:s3cret@db/herald",
            ),
            ("HERALD__DATABASE__MAX_CONNECTIONS", "0"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("max_connections"), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let s = load(&[(
            "HERALD__DATABASE__URL",
            "postgres://herald:s3cret@db/herald",
        )])
        .unwrap();
        assert_eq!(s.database.backend, Backend::Postgres);
        assert_eq!(s.database.redacted_url(), "postgres://herald:***@db/herald");
        assert!(!format!("{s:?}").contains("s3cret"));
        let s = load(&[]).unwrap();
        assert!(!format!("{:?}", s.database.url).contains("herald.db"));
    }
}
