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

use crate::domain::contact::{PhoneRegion, parse_region};
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKinds {
    system: RawKind,
    informational: RawKind,
    periodic: RawKind,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKind {
    respect_send_window: bool,
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

/// `[dispatch]`: when the dispatcher runs.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// The dispatch tick, in the school's time zone.
    pub schedule: cron::Schedule,
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
            },
            kinds: KindsSettings {
                system: kind(&self.kinds.system),
                informational: kind(&self.kinds.informational),
                periodic: kind(&self.kinds.periodic),
            },
            import: ImportSettings {
                progress_threshold: self.import.progress_threshold,
            },
        })
    }
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

/// Reads `sqlite://PATH`, `sqlite:PATH` or a bare path ending in `.db`.
fn parse_database_url(url: &str) -> std::result::Result<Backend, String> {
    const EXPECTED: &str = "an SQLite URL such as \"sqlite://herald.db\" or \
                            \"sqlite:///var/lib/herald/herald.db\"";
    let path = if let Some(rest) = url.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        rest
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        return Err(format!(
            "{EXPECTED} (this build stores its data in SQLite; PostgreSQL is not available yet)"
        ));
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
        let err = load(&[(
            "HERALD__DATABASE__URL",
            "postgres://herald:s3cret@db/herald",
        )])
        .unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let s = load(&[]).unwrap();
        assert!(!format!("{:?}", s.database.url).contains("herald.db"));
    }
}
