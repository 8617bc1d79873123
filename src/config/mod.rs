//! Configuration: the settings tree, loaded in layers and checked once at start-up.
//!
//! Layers, later ones winning: the embedded `config/default.toml` (so every key has a
//! documented default), the file given by `--config`, then `HERALD__SECTION__KEY`
//! environment variables. Every value that can be wrong (time zone, hours, cron
//! expression, region, URL, duration) is parsed here, in `validate()`, so a bad
//! setting stops start-up naming its key instead of failing at 3 a.m.
//!
//! This module owns the loading, the errors, the root of the settings tree and the
//! order in which the sections are checked. Each section's raw shape (as the layers
//! give it), its checked shape (what the rest of Herald reads) and its check live in
//! a file of their own: `school` (with the send window and eligibility), `database`,
//! `telemetry`, `dispatch` (with the kinds, approval and the shared durations),
//! `email`, `sms`, `rules` and `tools` (import and diagnose). Every check pushes what
//! it finds into one `Problems` list, so a start-up reports every bad key at once.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::domain::window::SendWindow;
use crate::domain::{ConsentRules, MessageKind};

mod database;
mod dispatch;
mod email;
mod http;
mod rules;
mod school;
mod sms;
mod telemetry;
mod tools;

pub use database::{Backend, DatabaseSettings};
pub use dispatch::{ApprovalSettings, DispatchSettings, KindSettings, KindsSettings};
pub use email::{
    DkimAlgorithm, DkimSettings, EmailSettings, EmailTransport, SmtpSettings, SmtpTls,
};
pub use http::{HttpSettings, RateLimitSettings};
pub use rules::{RuleCommon, RulesSettings};
pub use school::SchoolSettings;
pub use sms::{SmsGateway, SmsSettings};
pub use telemetry::{LogFormat, TelemetrySettings};
pub use tools::{DiagnoseSettings, ImportSettings};

/// The defaults, compiled in so that the binary runs with no file beside it.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

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
// key is an error, not a silently ignored setting. Each section's table is defined
// beside its check.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    school: school::RawSchool,
    database: database::RawDatabase,
    telemetry: telemetry::RawTelemetry,
    send_window: school::RawSendWindow,
    eligibility: school::RawEligibility,
    dispatch: dispatch::RawDispatch,
    kinds: dispatch::RawKinds,
    import: tools::RawImport,
    email: email::RawEmail,
    sms: sms::RawSms,
    approval: dispatch::RawApproval,
    rules: rules::RawRules,
    diagnose: tools::RawDiagnose,
    http: http::RawHttp,
}

// ---------------------------------------------------------------------------------
// The checked tree: what the rest of Herald reads. Its sections' types are defined
// beside their checks and re-exported above.

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
    /// `[http]`
    pub http: HttpSettings,
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
    ///
    /// The sections are checked in this order, and so are their problems listed;
    /// people and tests read the list, so the order stays as it is.
    fn validate(self) -> Result<Settings> {
        let mut bad = Problems::default();

        let school = school::check(&self.school, &mut bad);
        let database = database::check(&self.database, &mut bad);
        let telemetry = telemetry::check(&self.telemetry, &mut bad);
        let send_window = school::check_send_window(&self.send_window, school.time_zone, &mut bad);

        let schedule = dispatch::check_schedule(&self.dispatch, &mut bad);
        let durations =
            dispatch::check_durations(&self.dispatch, &self.email.smtp, &self.sms, &mut bad);
        let dispatch = dispatch::check(&self.dispatch, schedule, &durations, &mut bad);
        // The lease must outlast a send on either channel; each comparison is listed
        // just before that channel's own problems.
        dispatch::check_lease(
            &self.dispatch,
            durations.lease,
            "email.smtp.timeout",
            &self.email.smtp.timeout,
            durations.smtp_timeout,
            &mut bad,
        );
        let email = email::check(
            &self.email,
            durations.smtp_timeout,
            durations.smtp_idle_timeout,
            &mut bad,
        );
        dispatch::check_lease(
            &self.dispatch,
            durations.lease,
            "sms.timeout",
            &self.sms.timeout,
            durations.sms_timeout,
            &mut bad,
        );
        let sms = sms::check(&self.sms, durations.sms_timeout, &mut bad);
        let approval = dispatch::check_approval(&self.approval, &mut bad);

        let rules = rules::check(&self.rules, &mut bad);
        let import = tools::check_import(&self.import, &mut bad);
        let http = http::check(&self.http, &mut bad);

        if !bad.0.is_empty() {
            return Err(ConfigError::Invalid(bad.0));
        }
        Ok(Settings {
            school,
            database,
            telemetry,
            send_window,
            eligibility: school::eligibility(&self.eligibility),
            dispatch: dispatch.expect("a bad schedule was reported above"),
            email: email.expect("a bad email setting was reported above"),
            sms: SmsSettings {
                public_url: http.public_url.clone(),
                ..sms.expect("a bad SMS setting was reported above")
            },
            approval,
            rules: rules.expect("a bad rule setting was reported above"),
            diagnose: tools::diagnose(&self.diagnose),
            kinds: dispatch::kinds(&self.kinds),
            import,
            http,
        })
    }
}

/// The bad settings found so far, in the order they were found; every section's
/// check adds to the same list.
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

/// A duration as people write it: "30s", "2m", "1h 30m".
fn parse_duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text.trim()).ok()
}

/// Whether `host` (a name, or an address as a URL or a setting spells it) is this
/// machine: where plain text never crosses a network.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use chrono::Weekday;

    use super::database::redact_url;
    use super::*;
    use crate::domain::contact::PhoneRegion;

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
    fn delivery_reports_need_a_long_secret_and_reach_the_gateways_through_public_url() {
        let base = [
            ("HERALD__SMS__GATEWAY", "smsapi"),
            ("HERALD__SMS__SMSAPI__TOKEN", "t0ken"),
            ("HERALD__HTTP__PUBLIC_URL", "https://herald.school.example/"),
        ];
        let short = [
            base.as_slice(),
            &[("HERALD__SMS__SMSAPI__REPORT_SECRET", "short")],
        ]
        .concat();
        let err = load(&short).unwrap_err().to_string();
        assert!(err.contains("sms.smsapi.report_secret"), "{err}");
        assert!(!err.contains("short"), "a secret is never echoed: {err}");
        let slash = [
            base.as_slice(),
            &[(
                "HERALD__SMS__SMSAPI__REPORT_SECRET",
                "0123456789/0123456789abcd",
            )],
        ]
        .concat();
        assert!(
            load(&slash).is_err(),
            "a secret must fit in one path segment"
        );
        let good = [
            base.as_slice(),
            &[(
                "HERALD__SMS__SMSAPI__REPORT_SECRET",
                "0123456789abcdef01234567",
            )],
        ]
        .concat();
        let s = load(&good).unwrap();
        assert!(matches!(
            &s.sms.gateway,
            SmsGateway::Smsapi {
                report_secret: Some(_),
                ..
            }
        ));
        assert_eq!(
            s.sms.public_url.as_ref().map(|u| u.as_str()),
            Some("https://herald.school.example/")
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
    fn metrics_settings_are_checked_and_the_token_never_prints() {
        let s = load(&[]).unwrap();
        assert!(s.http.metrics_listen.is_none());
        assert!(s.http.metrics_token.is_none());
        let err = load(&[
            ("HERALD__HTTP__METRICS_LISTEN", "127.0.0.1:8080"),
            ("HERALD__HTTP__METRICS_TOKEN", "short secret"),
        ])
        .unwrap_err();
        assert!(!err.to_string().contains("short secret"), "{err}");
        assert_eq!(
            invalid_keys(err),
            ["http.metrics_listen", "http.metrics_token"]
        );
        let err = load(&[("HERALD__HTTP__METRICS_LISTEN", "localhost")]).unwrap_err();
        assert_eq!(invalid_keys(err), ["http.metrics_listen"]);
        let s = load(&[
            ("HERALD__HTTP__METRICS_LISTEN", "127.0.0.1:9464"),
            ("HERALD__HTTP__METRICS_TOKEN", "0123456789abcdef"),
        ])
        .unwrap();
        assert_eq!(
            s.http.metrics_listen,
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert!(!format!("{s:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn the_rate_limit_is_off_at_zero_and_checked_otherwise() {
        let s = load(&[]).unwrap();
        let limit = s.http.rate_limit.expect("on by default");
        assert_eq!((limit.per_second.get(), limit.burst.get()), (20, 100));
        let s = load(&[("HERALD__HTTP__RATE_LIMIT_PER_SECOND", "0")]).unwrap();
        assert_eq!(s.http.rate_limit, None);
        let err = load(&[
            ("HERALD__HTTP__RATE_LIMIT_PER_SECOND", "5"),
            ("HERALD__HTTP__RATE_LIMIT_BURST", "0"),
        ])
        .unwrap_err();
        assert_eq!(invalid_keys(err), ["http.rate_limit_burst"]);
        let err = load(&[("HERALD__HTTP__RATE_LIMIT_PER_SECOND", "1000000")]).unwrap_err();
        assert_eq!(invalid_keys(err), ["http.rate_limit_per_second"]);
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
