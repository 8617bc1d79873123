//! Readiness: whether this instance can do its work, check by check — the database
//! answers, its schema is the one this build expects, and dispatch passes are
//! happening. What `/readyz` answers; the HTTP layer only turns it into a status.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::App;
use crate::config::Settings;
use crate::store::StoreError;

/// Ticks of `dispatch.schedule` that may go by without a pass before dispatch counts
/// as overdue: one missed tick is a slow pass or a restart, three are a stuck or dead
/// dispatcher.
const MISSED_TICKS: usize = 3;

/// Beyond the third tick, for the pass that tick starts to finish (passes are
/// recorded when they end).
const GRACE: Duration = Duration::minutes(1);

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyCheck {
    /// As it should be.
    Ok,
    /// Dispatch: no pass since this instance started, but its first is not due yet.
    Starting,
    /// Database: it did not answer.
    Unreachable,
    /// Migrations: the schema is older than this build.
    Behind,
    /// Dispatch: no pass for three ticks of `dispatch.schedule` (and a minute).
    Overdue,
    /// Not known, because the database did not answer.
    Unknown,
    /// Outcomes: sends whose outcome the database has not taken yet are kept in this
    /// instance's memory (an outage, or just over).
    Waiting,
}

impl ReadyCheck {
    /// Whether the check lets the instance count as ready.
    pub fn passes(self) -> bool {
        matches!(self, ReadyCheck::Ok | ReadyCheck::Starting)
    }
}

/// Each check's finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// The database answers.
    pub database: ReadyCheck,
    /// Every migration of this build is applied.
    pub migrations: ReadyCheck,
    /// Dispatch passes are happening: the last one of any instance on this database,
    /// or this instance's start, is less than three ticks (and a minute) ago. While
    /// dispatch is on hold, passes go on (and find the hold), so a hold is no
    /// failure.
    pub dispatcher: ReadyCheck,
    /// Every outcome of this instance's sends is recorded (`waiting` while some are
    /// kept in memory because the database did not take them).
    pub outcomes: ReadyCheck,
}

impl Readiness {
    /// Whether every check passes.
    pub fn ready(&self) -> bool {
        [
            self.database,
            self.migrations,
            self.dispatcher,
            self.outcomes,
        ]
        .iter()
        .all(|c| c.passes())
    }
}

impl App {
    /// Whether this instance can do its work. Never fails: a failure is a finding.
    pub async fn readiness(&self) -> Readiness {
        let (database, migrations) = match self.store.check_schema().await {
            Ok(()) => (ReadyCheck::Ok, ReadyCheck::Ok),
            Err(StoreError::NotMigrated { found, needed }) => {
                tracing::warn!(?found, needed, "not ready: the database schema is behind");
                (ReadyCheck::Ok, ReadyCheck::Behind)
            }
            Err(e) => {
                // The cause (which may name a host or user) goes to the log only.
                tracing::warn!(error = %e, "not ready: the database does not answer");
                (ReadyCheck::Unreachable, ReadyCheck::Unknown)
            }
        };
        let dispatcher = if database.passes() {
            match self.store.last_pass().await {
                Ok(last) => dispatch_state(&self.settings, self.started, last, self.now()),
                Err(e) => {
                    tracing::warn!(error = %e, "not ready: the last pass cannot be read");
                    ReadyCheck::Unknown
                }
            }
        } else {
            ReadyCheck::Unknown
        };
        let outcomes = match &self.backlog {
            Some(backlog) if !backlog.is_empty() => {
                tracing::warn!(
                    kept = backlog.len(),
                    "not ready: outcomes of sends wait in memory for the database"
                );
                ReadyCheck::Waiting
            }
            _ => ReadyCheck::Ok,
        };
        Readiness {
            database,
            migrations,
            dispatcher,
            outcomes,
        }
    }
}

/// Counted from the later of the last pass and this instance's start: a daemon just
/// started (or restarted after a day off) gets the same three ticks for its first
/// pass as a running one gets between passes.
fn dispatch_state(
    settings: &Settings,
    started: DateTime<Utc>,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> ReadyCheck {
    let since = last.map_or(started, |last| last.max(started));
    let tz = settings.school.time_zone;
    let deadline = settings
        .dispatch
        .schedule
        .after(&since.with_timezone(&tz))
        .nth(MISSED_TICKS - 1)
        .map(|tick| tick.with_timezone(&Utc) + GRACE);
    match deadline {
        Some(deadline) if now > deadline => ReadyCheck::Overdue,
        _ if last.is_some_and(|last| last >= started) => ReadyCheck::Ok,
        _ => ReadyCheck::Starting,
    }
}
