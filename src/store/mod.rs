//! Storage: the only place with SQL.
//!
//! The rest of Herald sees traits sized by use: [`DirectoryStore`] (who exists and
//! how to reach them), [`CalendarStore`] (days off); the outbox joins them when
//! dispatch arrives. Each backend implements them in its own file with runtime
//! queries (two backends rule out one set of compile-checked queries), and one
//! conformance suite in `tests/it` runs the same tests against each.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use crate::config::{Backend, DatabaseSettings};
use crate::domain::directory::{DirectoryRecord, GroupSummary, Role};
use crate::domain::{EligibilityFacts, Holiday, HolidayCalendar};

pub mod sqlite;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement, or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The schema is older than this build and migrations are not applied on start.
    #[error(
        "the database schema is at version {found:?} but this build needs {needed}: run \
         `herald migrate` (or set database.migrate_on_start = true)"
    )]
    NotMigrated {
        /// The newest applied migration, if any.
        found: Option<i64>,
        /// The newest migration this build knows.
        needed: i64,
    },
    /// A stored value is not one this build understands.
    #[error("the database holds {value:?} in {column}, which this build does not understand")]
    Corrupt {
        /// Table and column.
        column: &'static str,
        /// The value found.
        value: String,
    },
}

/// `Result` with a [`StoreError`].
pub type Result<T> = std::result::Result<T, StoreError>;

/// What applying one directory record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    /// A new row.
    Created,
    /// An existing row whose values changed.
    Updated,
    /// An existing row already holding these values.
    Unchanged,
}

/// Why a directory record was refused by what the store already holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A reference to a record that does not exist.
    #[error("no {expected} with external id {value:?} exists (import it first)")]
    Unknown {
        /// The field holding the reference.
        field: &'static str,
        /// The id referred to.
        value: String,
        /// What kind of record was expected.
        expected: &'static str,
    },
    /// A reference to a recipient of the wrong role.
    #[error("{value:?} is a {found}, expected {expected}")]
    WrongRole {
        /// The field holding the reference.
        field: &'static str,
        /// The id referred to.
        value: String,
        /// The role it has.
        found: Role,
        /// The roles that fit.
        expected: &'static str,
    },
}

impl Refused {
    /// The field of the record that was at fault.
    pub fn field(&self) -> &'static str {
        match self {
            Refused::Unknown { field, .. } | Refused::WrongRole { field, .. } => field,
        }
    }

    /// The value of that field.
    pub fn value(&self) -> &str {
        match self {
            Refused::Unknown { value, .. } | Refused::WrongRole { value, .. } => value,
        }
    }
}

/// Which recipients a listing wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientFilter {
    /// Only the recipient with this platform id.
    pub external_id: Option<String>,
    /// Only this role.
    pub role: Option<Role>,
    /// Only members of the group with this platform id.
    pub group: Option<String>,
    /// Only those whose name, external id, email or phone contains this (any case).
    pub search: Option<String>,
}

/// How big the directory is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DirectoryCounts {
    /// Students.
    pub students: i64,
    /// Guardians.
    pub guardians: i64,
    /// Teachers.
    pub teachers: i64,
    /// Staff.
    pub staff: i64,
    /// Groups.
    pub groups: i64,
    /// Contracts.
    pub contracts: i64,
    /// Active contracts.
    pub active_contracts: i64,
}

/// The school's directory.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Applies records in order, each one whole or not at all: a refused record
    /// changes nothing and does not stop the others. Upserts by the platform's ids,
    /// so applying the same records twice reports them `Unchanged`.
    async fn apply(
        &self,
        records: &[DirectoryRecord],
        now: DateTime<Utc>,
    ) -> Result<Vec<std::result::Result<Applied, Refused>>>;

    /// Recipients matching `filter`, with the contracts that speak for each, ordered
    /// by role then name.
    async fn recipients(&self, filter: &RecipientFilter) -> Result<Vec<EligibilityFacts>>;

    /// One recipient by the platform's id.
    async fn recipient(&self, external_id: &str) -> Result<Option<EligibilityFacts>>;

    /// Every group with its head counts.
    async fn groups(&self) -> Result<Vec<GroupSummary>>;

    /// How big the directory is.
    async fn counts(&self) -> Result<DirectoryCounts>;
}

/// The school's calendar of days off.
#[async_trait]
pub trait CalendarStore: Send + Sync {
    /// Stores a holiday and returns it with its id.
    async fn add_holiday(&self, holiday: &Holiday, now: DateTime<Utc>) -> Result<Holiday>;

    /// Removes a holiday; `false` when there was none with that id.
    async fn remove_holiday(&self, id: i64) -> Result<bool>;

    /// Holidays that end on or after `from` (all of them when `None`), earliest first.
    async fn holidays(&self, from: Option<NaiveDate>) -> Result<Vec<Holiday>>;

    /// The calendar the send window consults, from `from` on.
    async fn calendar(&self, from: NaiveDate) -> Result<HolidayCalendar> {
        Ok(HolidayCalendar::new(self.holidays(Some(from)).await?))
    }
}

/// Everything Herald stores, behind one handle.
pub trait Store: DirectoryStore + CalendarStore {}

impl<T: DirectoryStore + CalendarStore> Store for T {}

/// Opens the database the settings name, applying or checking migrations.
pub async fn open(settings: &DatabaseSettings) -> Result<Arc<dyn Store>> {
    match &settings.backend {
        Backend::Sqlite(path) => {
            let store = sqlite::SqliteStore::open(path, settings).await?;
            if settings.migrate_on_start {
                store.migrate().await?;
            } else {
                store.check_migrated().await?;
            }
            Ok(Arc::new(store))
        }
    }
}

/// Applies pending migrations to the database the settings name.
pub async fn migrate(settings: &DatabaseSettings) -> Result<Vec<i64>> {
    match &settings.backend {
        Backend::Sqlite(path) => {
            sqlite::SqliteStore::open(path, settings)
                .await?
                .migrate()
                .await
        }
    }
}
