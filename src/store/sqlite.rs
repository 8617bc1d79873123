//! The SQLite backend: the embedded default, one daemon, no server to install.
//!
//! WAL lets readers run beside the one writer; `synchronous=NORMAL` is safe in WAL
//! (a power cut may lose the last commits, never corrupt the file) and saves an fsync
//! per commit. Write transactions begin with `BEGIN IMMEDIATE`: a deferred
//! transaction that reads and then writes cannot upgrade its lock while another
//! connection writes, and fails with "database is locked" at once, whatever the busy
//! timeout says.

//!
//! The SQL itself is shared with PostgreSQL (`body.rs`); this file keeps what is
//! SQLite's own: opening the file, the write transaction, lists bound as JSON arrays
//! (`json_each`) and rows read as one (`json_group_array`), and no row locks, since
//! SQLite has one writer at a time.

use std::path::Path;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqliteConnection, SqlitePool, Transaction};

use super::{Result, StoreError};
use crate::config::DatabaseSettings;

/// The migrations of this backend, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite store.
///
/// Two pools: `pool` holds the one connection that writes, `reads` the connections
/// that only read. SQLite takes one writer at a time whatever the pool says; with
/// several writing connections, a writer that finds the lock taken sleeps in
/// SQLite's busy handler (1, 2, 5, 10 ms…) instead of queueing, and every commit
/// empties the page cache of the other connections, which then read the pages back.
/// One writing connection makes this process's writers queue in order for it, and
/// keeps its cache warm; another process on the same file still meets the busy
/// timeout.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    reads: SqlitePool,
}

/// The names `body.rs` is written against.
type Backend = SqliteStore;
type Db = sqlx::Sqlite;
type DbConn = SqliteConnection;
type DbArgs = sqlx::sqlite::SqliteArguments;

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub async fn open(path: &Path, settings: &DatabaseSettings) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Database(sqlx::Error::Configuration(
                    format!(
                        "cannot create the folder {} for the database: {e}",
                        dir.display()
                    )
                    .into(),
                ))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(settings.busy_timeout)
            .foreign_keys(true);
        // The writer first: it creates the file and turns WAL on, which the readers,
        // opened read-only, cannot do.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options.clone())
            .await?;
        let reads = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore { pool, reads })
    }

    /// A write transaction. `BEGIN IMMEDIATE` takes the write lock at once: a deferred
    /// transaction that reads and then writes cannot upgrade its lock while another
    /// connection writes, and fails with "database is locked" whatever the busy
    /// timeout says.
    async fn begin_write(&self) -> Result<Transaction<'static, Db>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn migrations_table_exists(&self) -> Result<bool> {
        let exists: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&self.reads)
        .await?;
        Ok(exists > 0)
    }

    /// SQLite runs in this process: its clock is this machine's.
    async fn server_now(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        Ok(None)
    }

    /// SQLite has no notifications between processes: the daemon polls.
    async fn listen_for_wakeups(&self) -> Result<Option<std::sync::Arc<tokio::sync::Notify>>> {
        Ok(None)
    }

    /// SQLite plans without statistics unless `ANALYZE` was ever run, so a bulk
    /// change leaves no plan stale: nothing to count or refresh (PostgreSQL's store
    /// has work here).
    fn count_queued(&self, _rows: u64) {}

    /// See [`SqliteStore::count_queued`].
    async fn refresh_statistics(&self, _analyze: &'static str) {}

    /// The pool, for tests that need to look underneath.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// `column IN list`, the list bound as one JSON array, so one statement takes a list
/// of any length.
macro_rules! in_list {
    ($param:literal) => {
        concat!(" IN (SELECT value FROM json_each(", $param, "))")
    };
}
/// The same for a query builder: what goes before and after the bound list.
const LIST_OPEN: &str = " IN (SELECT value FROM json_each(";
const LIST_CLOSE: &str = "))";

/// Writes the `n`th parameter (from 1, in the order of the text) into SQL written by
/// hand: `?`. A numbered `?NNN` or `$NNN` would do, but SQLite looks each one up
/// among all the names before it, which for a statement of thousands of parameters
/// takes seconds.
fn push_parameter(sql: &mut String, _n: usize) {
    sql.push('?');
}

/// The most parameters one statement may bind (`SQLITE_MAX_VARIABLE_NUMBER` in the
/// SQLite that sqlx bundles): multi-row inserts split their rows to stay under it.
const BIND_LIMIT: usize = 32_766;

/// `SELECT` of the columns of every row found as one JSON array of arrays, read with
/// `json_rows`: the import reads thousands of references at a time, and each row
/// costs a hand-over between sqlx's SQLite thread and the caller, while one value
/// costs one. With `order by`, the rows are in that order.
macro_rules! json_rows {
    ($columns:literal) => {
        concat!("SELECT json_group_array(json_array(", $columns, "))")
    };
    ($columns:literal, order by $order:literal) => {
        concat!(
            "SELECT json_group_array(json_array(",
            $columns,
            ") ORDER BY ",
            $order,
            ")"
        )
    };
}

/// Row locks: none, SQLite's write transaction already excludes other writers.
macro_rules! for_update {
    () => {
        ""
    };
}
/// An unpaid instalment, spelt as the partial index `instalments_due` says it: SQLite
/// uses a partial index only for a query that repeats its condition.
macro_rules! unpaid {
    () => {
        "i.paid = 0"
    };
}
/// Claims: none to skip, SQLite runs the claim under its single write lock.
macro_rules! skip_locked {
    () => {
        ""
    };
}

/// Strings as a JSON array (`json_each`).
/// A list bound as one parameter (see `text_list`).
type TextList = String;

fn text_list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> TextList {
    let items: Vec<String> = items.into_iter().map(|s| s.as_ref().to_owned()).collect();
    serde_json::to_string(&items).expect("strings serialise")
}

/// Ids as a JSON array (`json_each`).
fn id_list(ids: impl IntoIterator<Item = i64>) -> String {
    serde_json::to_string(&ids.into_iter().collect::<Vec<_>>()).expect("integers serialise")
}

/// Nothing to do: `BEGIN IMMEDIATE` already serialises "first owner" checks.
async fn lock_operators(_: &mut DbConn) -> Result<()> {
    Ok(())
}

/// Nothing to do: one daemon per SQLite file, and it polls (`dispatch.wake_poll`).
async fn wake_other_instances(_: &mut DbConn) -> Result<()> {
    Ok(())
}

// The SQL shared with PostgreSQL, compiled here against SQLite's types. Including
// one file in two modules is what `duplicate_mod` warns about; here it is the point.
#[allow(clippy::duplicate_mod)]
#[path = "body/mod.rs"]
mod body;
