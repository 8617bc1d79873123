//! The directory from the platform: recipients, groups, guardianships, memberships,
//! contracts and instalments, each row applied whole or refused with why.

use std::path::Path;

use serde_json::json;

use super::{Actor, App, AppError, Result};
use crate::domain::access::Permission;
use crate::domain::audit::AuditAction;
use crate::import::{self, ImportError, ImportKind, ImportOptions, ImportReport};

impl App {
    /// Imports one CSV or JSON file: the good rows are applied, the bad ones reported
    /// with their line, field and what was expected.
    pub async fn import_file(
        &self,
        actor: &Actor,
        path: &Path,
        kind: Option<ImportKind>,
    ) -> Result<ImportReport> {
        self.authorize(actor, Permission::ManageRecipients, "import recipients")
            .await?;
        let options = ImportOptions {
            phone_region: self.settings.school.phone_region,
            progress_threshold: self.settings.import.progress_threshold,
        };
        let audit = self.audit_line(
            actor,
            AuditAction::Import,
            format!("file {}", path.display()),
            json!({"kind": kind}),
        );
        let report = import::import_file(&*self.store, path, kind, options, &audit)
            .await
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
