//! What an operator does to one message: send it again, or withdraw it.

use serde_json::json;

use super::{Actor, App, AppError, Result};
use crate::domain::access::Permission;
use crate::domain::audit::AuditAction;
use crate::domain::{MessageId, MessageStatus};
use crate::store::{ActionResult, MessageAction};

impl App {
    /// Resends a message whose outcome is `unknown` (or that `failed`), or cancels one
    /// not sent yet (or drops an `unknown` one). Returns the status it had before.
    pub async fn act_on_message(
        &self,
        actor: &Actor,
        id: MessageId,
        action: MessageAction,
    ) -> Result<MessageStatus> {
        self.authorize(actor, Permission::Approve, "resend or cancel messages")
            .await?;
        let code = match action {
            MessageAction::Resend => AuditAction::Resend,
            MessageAction::Cancel => AuditAction::Cancel,
        };
        let audit = self.audit_line(actor, code, format!("message {}", id.0), json!({}));
        match self.store.act_on_message(id, action, &audit).await? {
            ActionResult::Done(before) => Ok(before),
            ActionResult::NotFound => Err(AppError::NotFound {
                what: "message",
                id: id.0.to_string(),
            }),
            ActionResult::NotApplicable(status) => {
                let (verb, allowed) = match action {
                    MessageAction::Resend => ("queued again", "unknown or failed"),
                    MessageAction::Cancel => ("cancelled", "awaiting approval, queued or unknown"),
                };
                Err(AppError::Conflict(format!(
                    "message {} is {status}; only a message that is {allowed} can be {verb}",
                    id.0
                )))
            }
        }
    }
}
