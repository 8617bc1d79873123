//! The periodic rules, run by hand: the rules whose time has come, or one of them now,
//! or a missed morning caught up. Each occurrence is written once under its key,
//! whoever triggers the run, so running again changes nothing.

use chrono::{DateTime, Utc};

use super::{Actor, App, AppError, Result};
use crate::domain::access::Permission;
use crate::domain::audit::AuditAction;
use crate::rules::{self, Rule, RuleError, RunReport};

impl App {
    /// Runs the rules whose time has come at `at` (default: now), or only `rule`,
    /// whatever its schedule. A run in the future is refused: it would hold each
    /// rule's schedule back until then. Each report is one item; a rule that fails
    /// does not stop the others.
    pub async fn run_rules(
        &self,
        actor: &Actor,
        rule: Option<Rule>,
        at: Option<DateTime<Utc>>,
    ) -> Result<Vec<std::result::Result<RunReport, RuleError>>> {
        self.authorize(actor, Permission::ManageSettings, "run the periodic rules")
            .await?;
        let now = self.now();
        let at = at.unwrap_or(now);
        if at > now {
            return Err(AppError::invalid(
                "at",
                format!(
                    "{}: a run in the future would hold the schedule back until then; \
                     expected a time up to now",
                    at.with_timezone(&self.settings.school.time_zone)
                        .format("%Y-%m-%dT%H:%M")
                ),
            ));
        }
        let results = match rule {
            Some(rule) => vec![rules::run_rule(&*self.store, &self.settings, rule, at).await],
            None => rules::run_due(&*self.store, &self.settings, at).await,
        };
        // Who ran which rule and what it wrote. The occurrences are the rule's own
        // writes, each committed with its unique key; this line records the run.
        for report in results.iter().flatten() {
            let line = self.audit_line(
                actor,
                AuditAction::RulesRun,
                format!("rule {}", report.rule),
                serde_json::to_value(report).unwrap_or_default(),
            );
            self.store.audit(&line).await?;
        }
        Ok(results)
    }
}
