//! Delivery reports from the SMS gateways: the hooks prove where a report came from
//! (a secret in the path, a signature); this records it and moves its message forward.

use super::{App, Result};
use crate::domain::report::{DeliveryReport, ReportEffect};

impl App {
    /// Records each report and applies it to its message; says what each did. A report
    /// about no message of Herald's is kept and logged, and is not an error: gateways
    /// retry what they see refused, and another system may share the account.
    pub async fn delivery_reports(&self, reports: &[DeliveryReport]) -> Result<Vec<ReportEffect>> {
        let now = self.now();
        let mut effects = Vec::with_capacity(reports.len());
        for report in reports {
            let effect = self.store.record_report(report, now).await?;
            let key = report.key.map(|k| k.to_string());
            match effect {
                ReportEffect::UnknownMessage => tracing::warn!(
                    gateway = report.gateway,
                    key = key.as_deref(),
                    provider_id = report.provider_id.as_deref(),
                    status = %report.status,
                    "a delivery report names no message of Herald's; kept, nothing changed"
                ),
                _ => tracing::info!(
                    gateway = report.gateway,
                    key = key.as_deref(),
                    provider_id = report.provider_id.as_deref(),
                    status = %report.status,
                    effect = effect.as_str(),
                    "delivery report"
                ),
            }
            crate::metrics::delivery_report(report.gateway, report.state.as_str(), effect.as_str());
            effects.push(effect);
        }
        Ok(effects)
    }
}
