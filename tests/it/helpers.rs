//! The test harness: a fresh store per test, on a real database file, with settings
//! loaded through the same layers as the binary's.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use herald::config::Settings;
use herald::import::{ImportKind, ImportOptions, ImportReport, import_file};
use herald::store::{self, RecipientFilter, Store};
use tempfile::TempDir;

/// A store with its settings and a folder for files the test writes.
pub struct TestApp {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// The settings it was opened with.
    pub settings: Settings,
    dir: TempDir,
}

impl TestApp {
    /// Writes `contents` to a file named `name` in the test's folder.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("the temp folder is writable");
        path
    }

    /// The options the CLI would use.
    pub fn import_options(&self) -> ImportOptions {
        ImportOptions {
            phone_region: self.settings.school.phone_region,
            progress_threshold: self.settings.import.progress_threshold,
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
        import_file(&*self.store, path, kind, self.import_options(), now).await
    }

    /// Imports the example files shipped in `examples/import`, in dependency order.
    pub async fn import_examples(&self, now: DateTime<Utc>) {
        for name in [
            "recipients",
            "groups",
            "guardianships",
            "memberships",
            "contracts",
        ] {
            let report = self.import(&example(&format!("{name}.csv")), now).await;
            assert!(!report.has_errors(), "{name}: {:?}", report.errors);
        }
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

/// A fixed instant: Tuesday 2026-11-24 11:00 in Warsaw.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap()
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
    }
}

/// Runs each listed `async fn(TestApp)` once per backend, as `<name>::sqlite`.
/// PostgreSQL joins here with its backend.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::helpers::sqlite().await).await;
                }
            }
        )*
    };
}
