//! The one place Herald reads the time. Everything else takes `now` as a value or
//! asks a [`Clock`], so tests and `--at` can put any command at any instant, and the
//! whole of one command (composing, approving, rules, a pass) sees one clock.

use chrono::{DateTime, Utc};

/// The source of "now" for the daemon and the application layer.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The database's clock (PostgreSQL's `now()`), carried forward by this process's
/// monotonic clock: every instance on one database writes and judges leases by the
/// same time, so one whose clock is ahead does not take over claims that are still
/// alive, and one behind does not hold them past their end; a step of this machine's
/// clock (NTP) does not move it either. The daemon measures it now and then
/// (`daemon::follow_database_clock`); until the first measurement it is this
/// machine's clock.
#[derive(Debug, Default)]
pub struct DatabaseClock {
    /// The database's time at an instant of the monotonic clock.
    anchor: std::sync::Mutex<Option<(std::time::Instant, DateTime<Utc>)>>,
}

impl DatabaseClock {
    /// The database's clock read `database` at `instant`.
    pub fn set(&self, instant: std::time::Instant, database: DateTime<Utc>) {
        *self.anchor.lock().unwrap_or_else(|e| e.into_inner()) = Some((instant, database));
    }

    /// Whether it has been measured.
    pub fn is_set(&self) -> bool {
        self.anchor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// How far it is from this machine's clock (zero until measured).
    pub fn offset(&self) -> chrono::Duration {
        self.now() - Utc::now()
    }

    /// Sets it `offset` from this machine's clock (tests).
    pub fn set_offset(&self, offset: chrono::Duration) {
        self.set(std::time::Instant::now(), Utc::now() + offset);
    }
}

impl Clock for DatabaseClock {
    fn now(&self) -> DateTime<Utc> {
        match *self.anchor.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((instant, database)) => {
                database + chrono::Duration::from_std(instant.elapsed()).unwrap_or_default()
            }
            None => Utc::now(),
        }
    }
}

/// A clock that says what it is told: for tests and `--at`.
#[derive(Debug, Default)]
pub struct FixedClock(std::sync::Mutex<DateTime<Utc>>);

impl FixedClock {
    /// A clock stopped at `at`.
    pub fn new(at: DateTime<Utc>) -> FixedClock {
        FixedClock(std::sync::Mutex::new(at))
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("the clock's lock is never poisoned") = at;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("the clock's lock is never poisoned")
    }
}
