//! The PostgreSQL backend: several Herald instances on one database.
//!
//! Claims take rows with `FOR UPDATE SKIP LOCKED` inside the one statement that sets
//! the lease, so two instances never claim the same message and never wait for each
//! other; outcomes are recorded in short transactions that lock the one message row.
//! Creating a system message notifies the other instances (`NOTIFY herald_wake`), so
//! one created on instance A is sent by instance B at once.
//!
//! The SQL itself is shared with SQLite (`body.rs`); this file keeps what is
//! PostgreSQL's own: connecting, lists bound as arrays (`= ANY`), rows read as one
//! JSON array (`json_agg`), row locks and
//! `SKIP LOCKED`, the table lock for the first owner, and `LISTEN`/`NOTIFY`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Transaction};

use super::{Result, StoreError, WAKE_CHANNEL};
use crate::config::DatabaseSettings;

/// The migrations of this backend, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The same pool: PostgreSQL runs its writers side by side, so reads need no
    /// connections of their own (SQLite's store has a pool for each).
    reads: PgPool,
    /// Messages queued since the planner's statistics were last refreshed (see
    /// `refresh_statistics`), shared by the store's clones.
    unanalysed: Arc<AtomicU64>,
}

/// The names `body.rs` is written against.
type Backend = PgStore;
type Db = sqlx::Postgres;
type DbConn = PgConnection;
type DbArgs = sqlx::postgres::PgArguments;

impl PgStore {
    /// Connects to the database `settings.url` names.
    pub async fn open(settings: &DatabaseSettings) -> Result<PgStore> {
        let options: PgConnectOptions = settings
            .url
            .expose_secret()
            .parse()
            .map_err(StoreError::Database)?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(PgStore {
            reads: pool.clone(),
            pool,
            unanalysed: Arc::default(),
        })
    }

    /// A write transaction: PostgreSQL's default; the statements lock the rows they
    /// change (`for_update!`).
    async fn begin_write(&self) -> Result<Transaction<'static, Db>> {
        Ok(self.pool.begin().await?)
    }

    async fn migrations_table_exists(&self) -> Result<bool> {
        Ok(
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The database server's clock: every instance on one database judges leases by
    /// it, whatever its own clock says.
    async fn server_now(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        Ok(Some(
            sqlx::query_scalar("SELECT now()")
                .fetch_one(&self.pool)
                .await?,
        ))
    }

    /// A task that listens on `herald_wake` and signals the returned `Notify`; it ends
    /// when the daemon drops it.
    async fn listen_for_wakeups(&self) -> Result<Option<std::sync::Arc<tokio::sync::Notify>>> {
        // PgListener detaches its connection from the pool, which may open another.
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(WAKE_CHANNEL).await?;
        let wake = std::sync::Arc::new(tokio::sync::Notify::new());
        let signal = std::sync::Arc::downgrade(&wake);
        tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    // `notify_one` keeps a permit, so a notification that arrives while
                    // the daemon is busy with a pass is not lost.
                    Ok(Some(_)) => match signal.upgrade() {
                        Some(wake) => wake.notify_one(),
                        None => break,
                    },
                    // The connection dropped; PgListener reconnects on the next call.
                    // Messages created meanwhile are found by the daemon's polling.
                    Ok(None) => tracing::warn!("LISTEN connection lost; reconnecting"),
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN failed; polling only for a while");
                        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    }
                }
                if signal.strong_count() == 0 {
                    break;
                }
            }
        });
        Ok(Some(wake))
    }

    /// Counts `rows` messages queued (committed) toward the next refresh of the
    /// planner's statistics.
    fn count_queued(&self, rows: u64) {
        self.unanalysed.fetch_add(rows, Ordering::Relaxed);
    }

    /// Refreshes the planner's statistics with `analyze` (an `ANALYZE` of the tables a
    /// bulk change touched) once the messages counted since the last refresh reach
    /// [`super::REFRESH_STATISTICS_AFTER`]. Autovacuum does it too, but up to a minute
    /// later: a 100,000-message batch sent at once would be claimed meanwhile with
    /// plans made for an empty queue (every claim reading and sorting the whole queue
    /// instead of walking `messages_due`). Called where a bulk change ends, not per
    /// part of it (a rule's run writes a few hundred at a time, and an `ANALYZE` of a
    /// large school takes a few hundred milliseconds). Best effort: the change is
    /// committed already, and a failure only leaves it to autovacuum.
    async fn refresh_statistics(&self, analyze: &'static str) {
        // Taken to zero by one caller only, so two never refresh for the same count
        // (the second ANALYZE would wait for the first) and none counted is lost.
        let taken = self
            .unanalysed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n >= super::REFRESH_STATISTICS_AFTER).then_some(0)
            });
        if taken.is_err() {
            return;
        }
        if let Err(e) = sqlx::query(analyze).execute(&self.pool).await {
            tracing::warn!(error = %e, analyze, "the planner's statistics were not refreshed");
        }
    }

    /// The pool, for tests that need to look underneath.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// `column = ANY(list)`, the list bound as one PostgreSQL array.
macro_rules! in_list {
    ($param:literal) => {
        concat!(" = ANY(", $param, ")")
    };
}
/// The same for a query builder: what goes before and after the bound list.
const LIST_OPEN: &str = " = ANY(";
const LIST_CLOSE: &str = ")";

/// Writes the `n`th parameter (from 1, in the order of the text) into SQL written by
/// hand: `$n`.
fn push_parameter(sql: &mut String, n: usize) {
    use std::fmt::Write;
    write!(sql, "${n}").expect("writing to a String");
}

/// The most parameters one statement may bind (the protocol counts them in 16 bits):
/// multi-row inserts split their rows to stay under it.
const BIND_LIMIT: usize = 65_535;

/// `SELECT` of the columns of every row found as one JSON array of arrays (as text; an
/// empty array when none), read with `json_rows`: the same SQL as SQLite's. With
/// `order by`, the rows are in that order.
macro_rules! json_rows {
    ($columns:literal) => {
        concat!(
            "SELECT coalesce(json_agg(json_build_array(",
            $columns,
            ")), '[]')::text"
        )
    };
    ($columns:literal, order by $order:literal) => {
        concat!(
            "SELECT coalesce(json_agg(json_build_array(",
            $columns,
            ") ORDER BY ",
            $order,
            "), '[]')::text"
        )
    };
}

/// Row locks: an outcome, a decision or a settlement locks the one row it changes, so
/// two instances acting on it at once take turns.
macro_rules! for_update {
    () => {
        " FOR UPDATE"
    };
}
/// An unpaid instalment, spelt as the partial index `instalments_due` says it.
macro_rules! unpaid {
    () => {
        "NOT i.paid"
    };
}
/// Claims skip rows another instance is claiming right now instead of waiting.
macro_rules! skip_locked {
    () => {
        " FOR UPDATE SKIP LOCKED"
    };
}

/// Strings as a list PostgreSQL binds as `TEXT[]` (`= ANY($1)`).
/// A list bound as one parameter (see `text_list`).
type TextList = Vec<String>;

fn text_list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> TextList {
    items.into_iter().map(|s| s.as_ref().to_owned()).collect()
}

/// Ids as a list PostgreSQL binds as `BIGINT[]` (`= ANY($1)`).
fn id_list(ids: impl IntoIterator<Item = i64>) -> Vec<i64> {
    ids.into_iter().collect()
}

/// Two "first owner" commands at once must not both see an empty table.
async fn lock_operators(conn: &mut DbConn) -> Result<()> {
    sqlx::query("LOCK TABLE operators IN SHARE ROW EXCLUSIVE MODE")
        .execute(conn)
        .await?;
    Ok(())
}

/// Tells every listening instance, when the transaction commits, that a system
/// message waits.
async fn wake_other_instances(conn: &mut DbConn) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WAKE_CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

// The SQL shared with SQLite, compiled here against PostgreSQL's types. Including
// one file in two modules is what `duplicate_mod` warns about; here it is the point.
#[allow(clippy::duplicate_mod)]
#[path = "body/mod.rs"]
mod body;
