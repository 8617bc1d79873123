//! `[database]`: where Herald keeps its state. Owns reading the URL (which backend,
//! which file) and keeping its password out of every message and log line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{Problems, parse_duration};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    pub(super) url: SecretString,
    pub(super) max_connections: u32,
    pub(super) acquire_timeout: String,
    pub(super) busy_timeout: String,
    pub(super) migrate_on_start: bool,
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

/// Checks `[database]`. A bad URL is reported redacted, since it may hold a password.
pub(super) fn check(raw: &RawDatabase, bad: &mut Problems) -> DatabaseSettings {
    let url = raw.url.expose_secret().trim().to_owned();
    let backend = parse_database_url(&url).unwrap_or_else(|expected| {
        bad.add("database.url", &redact_url(&url), &expected);
        Backend::Sqlite(PathBuf::from("herald.db"))
    });
    if raw.max_connections == 0 {
        bad.add(
            "database.max_connections",
            "0",
            "a number of connections of at least 1",
        );
    }
    let acquire_timeout = parse_duration(&raw.acquire_timeout).unwrap_or_else(|| {
        bad.add(
            "database.acquire_timeout",
            &raw.acquire_timeout,
            "a duration such as \"10s\"",
        );
        Duration::from_secs(10)
    });
    let busy_timeout = parse_duration(&raw.busy_timeout).unwrap_or_else(|| {
        bad.add(
            "database.busy_timeout",
            &raw.busy_timeout,
            "a duration such as \"5s\" or \"500ms\"",
        );
        Duration::from_secs(5)
    });
    DatabaseSettings {
        url: SecretString::from(url),
        backend,
        max_connections: raw.max_connections,
        acquire_timeout,
        busy_timeout,
        migrate_on_start: raw.migrate_on_start,
    }
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
pub(super) fn redact_url(url: &str) -> String {
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
