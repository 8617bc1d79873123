//! The school's settings that people change: days off, the SMS wallet, the hold
//! switch.

use chrono::NaiveDate;
use serde_json::json;

use super::{Actor, App, AppError, Result};
use crate::domain::Holiday;
use crate::domain::access::Permission;
use crate::domain::audit::AuditAction;
use crate::store::{Hold, WalletState};

/// What switching the hold did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoldChange {
    /// It changed (and was audited).
    Switched,
    /// It already was as asked: nothing changed, nothing was logged.
    AlreadySo,
}

impl App {
    /// Adds a day off, or a range of them (both ends included).
    pub async fn add_holiday(
        &self,
        actor: &Actor,
        name: &str,
        first_day: NaiveDate,
        last_day: NaiveDate,
    ) -> Result<Holiday> {
        self.authorize(actor, Permission::ManageSettings, "change holidays")
            .await?;
        let holiday = Holiday::new(name, first_day, last_day)
            .map_err(|e| AppError::invalid("holiday", e.to_string()))?;
        let audit = self.audit_line(
            actor,
            AuditAction::HolidayAdd,
            "holiday {id}",
            json!({"name": holiday.name, "first_day": holiday.first_day, "last_day": holiday.last_day}),
        );
        Ok(self.store.add_holiday(&holiday, &audit).await?)
    }

    /// Removes a day off.
    pub async fn remove_holiday(&self, actor: &Actor, id: i64) -> Result<()> {
        self.authorize(actor, Permission::ManageSettings, "change holidays")
            .await?;
        let audit = self.audit_line(
            actor,
            AuditAction::HolidayRemove,
            format!("holiday {id}"),
            json!({}),
        );
        if self.store.remove_holiday(id, &audit).await? {
            Ok(())
        } else {
            Err(AppError::NotFound {
                what: "holiday",
                id: id.to_string(),
            })
        }
    }

    /// Adds prepaid points to the SMS wallet; what waited for credit goes on the next
    /// pass. `note` says what paid for them (an invoice, a transfer).
    pub async fn top_up(&self, actor: &Actor, points: i64, note: &str) -> Result<WalletState> {
        self.authorize(actor, Permission::TopUp, "top up the wallet")
            .await?;
        if points <= 0 {
            return Err(AppError::invalid(
                "points",
                format!("{points}: expected a positive number of points"),
            ));
        }
        let note = note.trim();
        if note.is_empty() {
            return Err(AppError::invalid(
                "note",
                "empty: expected what the top-up is (an invoice, a transfer)",
            ));
        }
        let audit = self.audit_line(
            actor,
            AuditAction::TopUp,
            "wallet",
            json!({"points": points, "note": note}),
        );
        Ok(self.store.top_up(points, note, &audit).await?)
    }

    /// Pauses all dispatch on every instance (`Some(reason)`), or resumes it.
    pub async fn set_hold(&self, actor: &Actor, reason: Option<&str>) -> Result<HoldChange> {
        self.authorize(actor, Permission::ManageSettings, "switch the hold")
            .await?;
        let (hold, action) = match reason.map(str::trim) {
            Some("") => {
                return Err(AppError::invalid(
                    "reason",
                    "empty: expected why dispatch is held",
                ));
            }
            Some(reason) => (
                Some(Hold {
                    since: self.now(),
                    reason: reason.to_owned(),
                    by: actor.name().to_owned(),
                }),
                AuditAction::HoldOn,
            ),
            None => (None, AuditAction::HoldOff),
        };
        let details = match &hold {
            Some(h) => json!({"reason": h.reason}),
            None => json!({}),
        };
        let audit = self.audit_line(actor, action, "dispatch", details);
        Ok(if self.store.set_hold(hold.as_ref(), &audit).await? {
            HoldChange::Switched
        } else {
            HoldChange::AlreadySo
        })
    }
}
