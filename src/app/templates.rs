//! Templates: saved only when they render (every variable and filter known), so a
//! sent message never shows a blank where a name should be.

use serde_json::json;

use super::{Actor, App, AppError, Result, content_hash};
use crate::domain::access::Permission;
use crate::domain::audit::AuditAction;
use crate::templates::{self, Variant};

impl App {
    /// Saves a template variant (name, locale, channel), replacing the one there was,
    /// after checking that it renders.
    pub async fn save_template(&self, actor: &Actor, variant: &Variant) -> Result<Variant> {
        self.authorize(actor, Permission::ManageSettings, "save templates")
            .await?;
        let variant = Variant {
            name: variant.name.trim().to_owned(),
            locale: variant.locale.trim().to_owned(),
            ..variant.clone()
        };
        if variant.name.is_empty() {
            return Err(AppError::invalid("name", "empty: a template needs a name"));
        }
        templates::check(&variant).map_err(|e| {
            AppError::invalid(
                "body",
                format!(
                    "template {:?} ({}, {}) was not saved: {e}",
                    variant.name, variant.locale, variant.channel
                ),
            )
        })?;
        let audit = self.audit_line(
            actor,
            AuditAction::TemplateSave,
            format!("template {}", variant.name),
            json!({
                "locale": variant.locale,
                "channel": variant.channel,
                "sha256": content_hash(variant.subject.as_deref(), &variant.body),
            }),
        );
        self.store.save_template(&variant, &audit).await?;
        Ok(variant)
    }
}
