//! The directory from the platform: recipients, groups, guardianships, memberships,
//! contracts and instalments, each row applied whole or refused with why.

use std::path::Path;

use serde_json::json;

use super::{Actor, App, AppError, Result};
use crate::domain::access::Permission;
use crate::domain::audit::AuditAction;
use crate::import::{self, ImportError, ImportKind, ImportOptions, ImportReport};

impl App {
    /// Imports a JSON import document (what `herald import` reads from a `.json`
    /// file), given as text: the platform's feed over the API. Problems name
    /// `request.json` and the line of the record.
    pub async fn import_document(&self, actor: &Actor, text: &str) -> Result<ImportReport> {
        self.import_from(actor, Path::new("request.json"), Some(text), None)
            .await
            .map_err(|e| match e {
                AppError::Invalid { problem, .. } => AppError::invalid("document", problem),
                other => other,
            })
    }

    /// Imports one CSV or JSON file: the good rows are applied, the bad ones reported
    /// with their line, field and what was expected.
    pub async fn import_file(
        &self,
        actor: &Actor,
        path: &Path,
        kind: Option<ImportKind>,
    ) -> Result<ImportReport> {
        self.import_from(actor, path, None, kind).await
    }

    /// Imports `text`, or the file at `path` when there is none.
    async fn import_from(
        &self,
        actor: &Actor,
        path: &Path,
        text: Option<&str>,
        kind: Option<ImportKind>,
    ) -> Result<ImportReport> {
        self.authorize(actor, Permission::ManageRecipients, "import recipients")
            .await?;
        let options = ImportOptions {
            phone_region: self.settings.school.phone_region,
            progress_threshold: self.settings.import.progress_threshold,
            max_file_bytes: self.settings.import.max_file_bytes,
        };
        let audit = self.audit_line(
            actor,
            AuditAction::Import,
            format!("file {}", path.display()),
            json!({"kind": kind}),
        );
        let report = match text {
            Some(text) => {
                import::import_text(&*self.store, path, text, kind, options, &audit).await
            }
            None => import::import_file(&*self.store, path, kind, options, &audit).await,
        }
        .map_err(|e| match e {
            ImportError::Store(e) => AppError::Store(e),
            e @ ImportError::UnknownKind { .. } => AppError::invalid("kind", e.to_string()),
            other => AppError::invalid("file", other.to_string()),
        })?;
        // The changes wrote their lines; an import that changed nothing still says
        // it ran (the platform's nightly sync, say), with what it found.
        if report.total_changed() == 0 {
            let line = audit.with_detail("report", &report);
            self.store.audit(&line).await?;
        }
        Ok(report)
    }
}
