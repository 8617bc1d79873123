//! The test harness: a fresh store per test, on a real database file, with settings
//! loaded through the same layers as the binary's.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use herald::clock::FixedClock;
use herald::compose::{self, Content};
use herald::config::{EmailTransport, Settings, SmtpSettings, SmtpTls};
use herald::dispatcher::{Channels, Dispatcher};
use herald::domain::access::{Operator, Permission};
use herald::domain::audit::AuditAction;
use herald::domain::{Audience, BatchId, MessageStatus, Reach};
use herald::import::{ImportKind, ImportOptions, ImportReport, import_file};
use herald::store::{
    self, AuditEntry, Decided, Decision, MessageFilter, MessageView, RecipientFilter, Store,
};
use tempfile::TempDir;

/// A store with its settings and a folder for files the test writes.
pub struct TestApp {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// The settings it was opened with.
    pub settings: Settings,
    dir: TempDir,
    /// For PostgreSQL: the server's admin URL and the test's own database, dropped
    /// when the test ends.
    postgres: Option<(String, String)>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        // Drop cannot await; a thread with its own runtime can. FORCE ends the
        // connections the test's pools still hold.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

impl TestApp {
    /// Writes `contents` to a file named `name` in the test's folder.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("the temp folder is writable");
        path
    }

    /// A path in the test's folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The options the CLI would use.
    pub fn import_options(&self) -> ImportOptions {
        ImportOptions {
            phone_region: self.settings.school.phone_region,
            progress_threshold: self.settings.import.progress_threshold,
            max_file_bytes: self.settings.import.max_file_bytes,
        }
    }

    /// Imports a file at `now`, panicking only on a file-level error.
    pub async fn import(&self, path: &Path, now: DateTime<Utc>) -> ImportReport {
        self.try_import(path, None, now)
            .await
            .unwrap_or_else(|e| panic!("importing {}: {e}", path.display()))
    }

    /// Imports a file, returning a file-level error as it is.
    pub async fn try_import(
        &self,
        path: &Path,
        kind: Option<ImportKind>,
        now: DateTime<Utc>,
    ) -> Result<ImportReport, herald::import::ImportError> {
        let audit = AuditEntry {
            subject: format!("file {}", path.display()),
            ..audit_line("test", AuditAction::Import, now)
        };
        import_file(&*self.store, path, kind, self.import_options(), &audit).await
    }

    /// Imports the example files shipped in `examples/import`, in dependency order.
    pub async fn import_examples(&self, now: DateTime<Utc>) {
        for name in [
            "recipients",
            "groups",
            "guardianships",
            "memberships",
            "contracts",
            "instalments",
        ] {
            let report = self.import(&example(&format!("{name}.csv")), now).await;
            assert!(!report.has_errors(), "{name}: {:?}", report.errors);
        }
    }

    /// Runs raw SQL on the test's own database, outside the store: `sqlite` on SQLite,
    /// `postgres` on PostgreSQL (to break the database on purpose).
    pub async fn execute_raw(&self, sqlite: &str, postgres: &str) {
        use sqlx::Connection;
        match &self.postgres {
            Some((admin, name)) => {
                let mut conn = sqlx::PgConnection::connect(&with_database(admin, name))
                    .await
                    .unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(postgres.to_owned()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            None => {
                let mut conn = self.sqlite_connection().await;
                sqlx::raw_sql(sqlx::AssertSqlSafe(sqlite.to_owned()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }

    /// On PostgreSQL, a connection of its own to the test's database, outside the
    /// store; `None` on SQLite.
    pub async fn postgres_connection(&self) -> Option<sqlx::PgConnection> {
        use sqlx::Connection;
        let (admin, name) = self.postgres.as_ref()?;
        Some(
            sqlx::PgConnection::connect(&with_database(admin, name))
                .await
                .unwrap(),
        )
    }

    /// A connection of its own to the SQLite file, outside the store.
    async fn sqlite_connection(&self) -> sqlx::SqliteConnection {
        use sqlx::Connection;
        let path = self.dir.path().join("herald.db");
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap()
    }

    /// Takes the test's own database away until [`Outage::end`]: on SQLite another
    /// connection holds the write lock (the file is locked), on PostgreSQL the
    /// database refuses connections and the open ones are ended.
    pub async fn outage(&self) -> Outage {
        use sqlx::Connection;
        match &self.postgres {
            Some((admin, name)) => {
                let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
                for sql in [
                    format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"),
                    format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                    ),
                ] {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await
                        .unwrap();
                }
                Outage::Postgres(conn, name.clone())
            }
            None => {
                let mut conn = self.sqlite_connection().await;
                sqlx::raw_sql("BEGIN EXCLUSIVE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                Outage::Sqlite(conn)
            }
        }
    }

    /// The application over this store, its clock stopped at `at`.
    pub fn app_at(&self, at: DateTime<Utc>) -> herald::app::App {
        herald::app::App::new(
            Arc::clone(&self.store),
            Arc::new(self.settings.clone()),
            Arc::new(FixedClock::new(at)),
        )
    }

    /// Every recipient's platform id, in listing order.
    pub async fn recipient_ids(&self) -> Vec<String> {
        self.store
            .recipients(&RecipientFilter::default())
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.recipient.external_id)
            .collect()
    }
}

/// A path in the repository's `examples/import` folder.
pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/import")
        .join(name)
}

/// A fixed instant: Tuesday 2026-11-24 08:00 in Warsaw, when the tests create things.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 7, 0, 0).unwrap()
}

/// An audit line by `actor` at `at`, for store methods that write one with their
/// change.
pub fn audit_line(actor: &str, action: AuditAction, at: DateTime<Utc>) -> AuditEntry {
    AuditEntry {
        at,
        actor: actor.to_owned(),
        action,
        subject: "test {id}".to_owned(),
        details: serde_json::json!({}),
    }
}

/// Settings from the embedded defaults, ignoring the process's environment.
pub fn default_settings() -> Settings {
    Settings::load_from(None, Vec::new()).expect("the defaults are valid")
}

/// A fresh SQLite database file in a temporary folder.
pub async fn sqlite() -> TestApp {
    let dir = tempfile::tempdir().expect("a temp folder");
    let mut settings = default_settings();
    settings
        .database
        .use_sqlite_file(&dir.path().join("herald.db"));
    let store = store::open(&settings.database)
        .await
        .expect("the SQLite store opens");
    TestApp {
        store,
        settings,
        dir,
        postgres: None,
    }
}

/// The PostgreSQL server the tests may use: `HERALD_TEST_POSTGRES`, a connection URL
/// of a role that may create databases. `None` (and a printed line) when unset,
/// unless `HERALD_REQUIRE_POSTGRES` is set, as in CI: then a missing server fails.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("HERALD_TEST_POSTGRES") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("HERALD_REQUIRE_POSTGRES").is_none(),
                "HERALD_REQUIRE_POSTGRES is set but HERALD_TEST_POSTGRES is not"
            );
            eprintln!(
                "skipped on PostgreSQL: set HERALD_TEST_POSTGRES to a connection URL to run it"
            );
            None
        }
    }
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    format!("{}/{database}{query}", &base[..host_end])
}

/// A database outage made by [`TestApp::outage`].
pub enum Outage {
    /// The connection holding SQLite's write lock.
    Sqlite(sqlx::SqliteConnection),
    /// The admin connection, and the database that refuses connections.
    Postgres(sqlx::PgConnection, String),
}

impl Outage {
    /// The database answers again.
    pub async fn end(self) {
        match self {
            Outage::Sqlite(mut conn) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
            }
            Outage::Postgres(mut conn, name) => {
                let sql = format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
}

/// A fresh PostgreSQL database of its own (so tests run in parallel), or `None` when
/// no server is configured.
pub async fn postgres() -> Option<TestApp> {
    use sqlx::Connection;
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let admin = postgres_admin_url()?;
    let name = format!(
        "herald_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        fastrand_name().replace('-', "_")
    );
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("HERALD_TEST_POSTGRES does not connect: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .unwrap();
    let dir = tempfile::tempdir().expect("a temp folder");
    let mut settings = default_settings();
    settings
        .database
        .use_postgres(&with_database(&admin, &name));
    let store = store::open(&settings.database)
        .await
        .expect("the PostgreSQL store opens");
    Some(TestApp {
        store,
        settings,
        dir,
        postgres: Some((admin, name)),
    })
}

/// Runs each listed `async fn(TestApp)` once per backend, as `<name>::sqlite` and
/// `<name>::postgres` (the latter only when `HERALD_TEST_POSTGRES` is set).
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::sqlite().await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = $crate::helpers::postgres().await {
                        super::$name(app).await;
                    }
                }
            }
        )*
    };
}

/// The operator the dispatch tests approve with.
pub const OWNER: &str = "owner";

impl TestApp {
    /// Settings that send through `smtp` on loopback, with a two-second timeout.
    pub fn smtp_settings(&self, smtp: &crate::smtp::SmtpServer) -> Settings {
        let mut settings = self.settings.clone();
        settings.email.transport = EmailTransport::Smtp(SmtpSettings {
            host: smtp.addr.ip().to_string(),
            port: smtp.addr.port(),
            tls: SmtpTls::None,
            credentials: None,
            timeout: std::time::Duration::from_secs(2),
            max_connections: 4,
            idle_timeout: std::time::Duration::from_secs(30),
            hello_name: Some("herald.test".into()),
        });
        settings.dispatch.lease = std::time::Duration::from_secs(15);
        settings.dispatch.shutdown_grace = std::time::Duration::from_secs(5);
        settings
    }

    /// The operator `login` with `role` and extra `grants`, added to the store on
    /// first use (the first one as the installation's first operator).
    pub async fn operator_with(&self, login: &str, role: &str, grants: &[Permission]) -> Operator {
        if self.store.operator(login).await.unwrap().is_none() {
            let first = self.store.operators().await.unwrap().is_empty();
            let entry = herald::store::AuditEntry {
                at: now(),
                actor: "test".into(),
                action: AuditAction::OperatorAdd,
                subject: format!("operator {login}"),
                details: serde_json::json!({"role": role}),
            };
            let added = self
                .store
                .add_operator(
                    &herald::store::NewOperator {
                        login: login.into(),
                        name: login.into(),
                        role: role.into(),
                        teacher: None,
                        at: now(),
                        by: "test".into(),
                    },
                    first,
                    &entry,
                )
                .await
                .unwrap();
            assert_eq!(added, herald::store::AddOperator::Added);
            for p in grants {
                self.store
                    .set_permission(login, *p, Some(true), &entry)
                    .await
                    .unwrap();
            }
        }
        self.store.operator(login).await.unwrap().unwrap()
    }

    /// The `owner` operator (role owner: every permission).
    pub async fn owner(&self) -> Operator {
        self.operator_with(OWNER, "owner", &[]).await
    }

    /// A dispatcher with the given settings.
    pub fn dispatcher_with(&self, settings: Settings, clock: &Arc<FixedClock>) -> Arc<Dispatcher> {
        let channels = Channels::build(&settings).expect("the channels build");
        Arc::new(Dispatcher::new(
            Arc::clone(&self.store),
            channels,
            Arc::new(settings),
            Arc::clone(clock) as Arc<dyn herald::clock::Clock>,
            format!("test-{}", fastrand_name()),
        ))
    }

    /// Composes an email to `audience`, stores it and approves it as the owner.
    pub async fn approved_batch(
        &self,
        settings: &Settings,
        audience: Audience,
        reach: Reach,
        now: DateTime<Utc>,
    ) -> BatchId {
        let content =
            Content::email("School closed tomorrow", "The school is closed tomorrow.").unwrap();
        let send = compose::compose_send(
            &*self.store,
            settings,
            &self.owner().await,
            &audience,
            reach,
            &content,
        )
        .await
        .unwrap();
        let id = self.store_send(&send, now).await;
        let decided = self
            .decide(id, &Decision::Approve, OWNER, now)
            .await
            .unwrap();
        assert!(matches!(decided, Decided::Done(_)));
        id
    }

    /// Stores a composed send as its composer, at `at`.
    pub async fn store_send(&self, send: &compose::Send, at: DateTime<Utc>) -> BatchId {
        let audit = AuditEntry {
            subject: "batch {id}".into(),
            ..audit_line(&send.batch.created_by, AuditAction::Send, at)
        };
        self.store
            .create_batch(&send.batch, &send.messages, &audit)
            .await
            .unwrap()
    }

    /// Decides a whole batch as `actor` at `at`, as the approver sees it now.
    pub async fn decide(
        &self,
        batch: BatchId,
        decision: &Decision,
        actor: &str,
        at: DateTime<Utc>,
    ) -> store::Result<Decided> {
        let seen = self.store.batch_state(batch).await?.unwrap_or_default();
        let action = match decision {
            Decision::Approve => AuditAction::Approve,
            Decision::Reject(_) => AuditAction::Reject,
        };
        self.store
            .decide_batch(batch, decision, &seen, &audit_line(actor, action, at))
            .await
    }

    /// Decides some messages of a batch as `actor` at `at`.
    pub async fn decide_some(
        &self,
        batch: BatchId,
        ids: &[herald::domain::MessageId],
        decision: &Decision,
        actor: &str,
        at: DateTime<Utc>,
    ) -> store::Result<Decided> {
        let seen = self.store.batch_state(batch).await?.unwrap_or_default();
        let action = match decision {
            Decision::Approve => AuditAction::Approve,
            Decision::Reject(_) => AuditAction::Reject,
        };
        self.store
            .decide_messages(batch, ids, decision, &seen, &audit_line(actor, action, at))
            .await
    }

    /// Changes a batch's text on `channel`, as `actor` at `at`.
    #[allow(clippy::too_many_arguments)]
    pub async fn edit(
        &self,
        batch: BatchId,
        channel: herald::domain::Channel,
        subject: Option<&str>,
        body: &str,
        html: Option<&str>,
        segments: Option<i64>,
        actor: &str,
        at: DateTime<Utc>,
    ) -> store::Result<Option<u64>> {
        let edit = store::BatchEdit {
            channel,
            subject: subject.map(str::to_owned),
            body: body.to_owned(),
            html: html.map(str::to_owned),
            segments,
        };
        self.store
            .edit_batch(batch, &edit, &audit_line(actor, AuditAction::Edit, at))
            .await
    }

    /// Cancels a batch's unsent messages, as `actor` at `at`.
    pub async fn cancel(
        &self,
        batch: BatchId,
        actor: &str,
        at: DateTime<Utc>,
    ) -> store::Result<u64> {
        self.store
            .cancel_batch(batch, &audit_line(actor, AuditAction::Cancel, at))
            .await
    }

    /// The messages to one recipient, newest first.
    pub async fn messages_to(&self, recipient: &str) -> Vec<MessageView> {
        self.store
            .messages(&MessageFilter {
                recipient: Some(recipient.into()),
                ..Default::default()
            })
            .await
            .unwrap()
    }

    /// The one message to `recipient` (panics if there is not exactly one).
    pub async fn only_message_to(&self, recipient: &str) -> MessageView {
        let mut all = self.messages_to(recipient).await;
        assert_eq!(all.len(), 1, "messages to {recipient}: {all:?}");
        all.remove(0)
    }

    /// How many messages stand in `status`.
    pub async fn count(&self, status: MessageStatus) -> i64 {
        self.store
            .message_counts(&MessageFilter {
                status: Some(status),
                ..Default::default()
            })
            .await
            .unwrap()
            .iter()
            .map(|c| c.count)
            .sum()
    }
}

fn fastrand_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A Warsaw wall-clock time as a UTC instant.
pub fn warsaw(local: &str) -> DateTime<Utc> {
    let naive = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").unwrap();
    chrono_tz::Europe::Warsaw
        .from_local_datetime(&naive)
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}
