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

/// This machine's clock set to the database's (PostgreSQL's `now()`): every instance
/// on one database writes and judges leases by the same clock, so one whose clock is
/// ahead does not take over claims that are still alive, and one behind does not
/// hold them past their end. The daemon measures the offset now and then
/// (`daemon::follow_database_clock`); until then it is zero.
#[derive(Debug, Default)]
pub struct DatabaseClock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl DatabaseClock {
    /// The database's clock minus this machine's.
    pub fn offset(&self) -> chrono::Duration {
        chrono::Duration::milliseconds(self.offset_ms.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Sets how far the database's clock is from this machine's.
    pub fn set_offset(&self, offset: chrono::Duration) {
        self.offset_ms.store(
            offset.num_milliseconds(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

impl Clock for DatabaseClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset()
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
