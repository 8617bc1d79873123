//! The read models: what people look at, as typed, serialisable answers that every
//! interface shows in its own way (the CLI's tables and `--json`, the API's JSON, the
//! console's pages). Reading needs the permission `view`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Actor, App, AppError, Result};
use crate::diagnose::{self, Lookup, MessageTimeline};
use crate::domain::access::{Operator, Permission, RoleDef};
use crate::domain::directory::ContractConsent;
use crate::domain::{Channel, EligibilityFacts, MessageId, Reason, Role};
use crate::store::{
    AuditEntry, AuditFilter, Hold, LedgerEntry, LedgerTotals, MessageFilter, MessageView,
    RecipientFilter, StatusCount,
};
use chrono::NaiveDate;

/// The SMS wallet as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WalletView {
    /// Points left to spend.
    pub balance: i64,
    /// Points held for SMS being sent now.
    pub reserved: i64,
    /// Below this the wallet counts as low.
    pub low_balance_threshold: i64,
    /// What the SMS due in the next 24 hours will cost.
    pub needed_next_24h: i64,
    /// Below the threshold, or below the next 24 hours' need.
    pub low: bool,
    /// Since when it has been low.
    pub low_since: Option<chrono::DateTime<chrono::Utc>>,
    /// Points per SMS segment.
    pub price_per_segment: u32,
    /// What has been topped up and charged in all.
    pub totals: LedgerTotals,
    /// The newest ledger lines.
    pub ledger: Vec<LedgerEntry>,
}

/// One person with their verdict per channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientView {
    /// Herald's id.
    pub id: i64,
    /// The platform's id.
    pub external_id: String,
    /// Student, guardian, teacher or staff.
    pub role: Role,
    /// Their name.
    pub name: String,
    /// Their locale, if the platform gave one.
    pub locale: Option<String>,
    /// Their email address as the platform gave it.
    pub email: Option<String>,
    /// Their phone number as the platform gave it.
    pub phone: Option<String>,
    /// Whether the number takes SMS.
    pub sms_enabled: bool,
    /// Per channel: may they be written to, and if not, why.
    pub channels: BTreeMap<Channel, ChannelVerdict>,
    /// The contracts whose consent speaks for them.
    pub contracts: Vec<ContractConsent>,
}

/// Whether a person can be reached on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelVerdict {
    /// No check failed.
    pub eligible: bool,
    /// The checks that failed.
    pub reasons: Vec<ReasonView>,
}

/// A reason code with its plain words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReasonView {
    /// The stable code.
    pub code: Reason,
    /// What it means.
    pub description: &'static str,
}

/// Messages as a listing shows them, with the hold switch when it is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageListing {
    /// The messages, newest first.
    pub messages: Vec<MessageView>,
    /// The hold switch, when on.
    pub hold: Option<Hold>,
}

impl App {
    /// The wallet, its 24-hour need and the newest `ledger` lines.
    pub async fn wallet_view(&self, actor: &Actor, ledger: i64) -> Result<WalletView> {
        self.authorize(actor, Permission::View, "see the wallet")
            .await?;
        let settings = &self.settings;
        let w = self.store.wallet().await?;
        let due = self
            .store
            .sms_segments_due(self.now() + chrono::Duration::hours(24))
            .await?
            * i64::from(settings.sms.price_per_segment);
        let threshold = settings.sms.low_balance_threshold;
        Ok(WalletView {
            balance: w.balance,
            reserved: w.reserved,
            low_balance_threshold: threshold,
            needed_next_24h: due,
            low: w.balance < threshold || w.balance < due,
            low_since: w.low_since,
            price_per_segment: settings.sms.price_per_segment,
            totals: self.store.ledger_totals().await?,
            ledger: self.store.ledger(ledger).await?,
        })
    }

    /// The people `filter` selects, each judged on every channel (or only on
    /// `channel`); with `only_ineligible`, only those who cannot be reached somewhere.
    pub async fn recipients(
        &self,
        actor: &Actor,
        filter: &RecipientFilter,
        channel: Option<Channel>,
        only_ineligible: bool,
    ) -> Result<Vec<RecipientView>> {
        self.authorize(actor, Permission::View, "see the recipients")
            .await?;
        Ok(self
            .store
            .recipients(filter)
            .await?
            .into_iter()
            .map(|f| self.recipient_view(f, channel))
            .filter(|v| !only_ineligible || v.channels.values().any(|c| !c.eligible))
            .collect())
    }

    /// Every check that fails for `facts`, per channel.
    pub fn verdicts(&self, facts: &EligibilityFacts) -> BTreeMap<Channel, Vec<Reason>> {
        Channel::ALL
            .into_iter()
            .map(|c| {
                let s = &self.settings;
                (c, facts.check(c, s.school.phone_region, s.eligibility))
            })
            .collect()
    }

    fn recipient_view(&self, facts: EligibilityFacts, only: Option<Channel>) -> RecipientView {
        let channels = self
            .verdicts(&facts)
            .into_iter()
            .filter(|(c, _)| only.is_none_or(|o| o == *c))
            .map(|(c, reasons)| {
                let verdict = ChannelVerdict {
                    eligible: reasons.is_empty(),
                    reasons: reasons
                        .into_iter()
                        .map(|code| ReasonView {
                            code,
                            description: code.describe(),
                        })
                        .collect(),
                };
                (c, verdict)
            })
            .collect();
        let r = facts.recipient;
        RecipientView {
            id: r.id.0,
            external_id: r.external_id,
            role: r.role,
            name: r.name,
            locale: r.locale,
            email: r.email,
            phone: r.phone,
            sms_enabled: r.sms_enabled,
            channels,
            contracts: facts.contracts,
        }
    }

    /// Messages `filter` selects, newest first.
    pub async fn messages(&self, actor: &Actor, filter: &MessageFilter) -> Result<MessageListing> {
        self.authorize(actor, Permission::View, "see the messages")
            .await?;
        Ok(MessageListing {
            messages: self.store.messages(filter).await?,
            hold: self.store.hold().await?,
        })
    }

    /// How many messages `filter` selects, per status and reason.
    pub async fn message_counts(
        &self,
        actor: &Actor,
        filter: &MessageFilter,
    ) -> Result<Vec<StatusCount>> {
        self.authorize(actor, Permission::View, "see the messages")
            .await?;
        Ok(self.store.message_counts(filter).await?)
    }

    /// "Why didn't they get it?": a person found by any id, address or number, with
    /// every check per channel, the timing, the dispatcher and their recent messages.
    pub async fn diagnose_recipient(&self, actor: &Actor, query: &str) -> Result<Lookup> {
        self.authorize(actor, Permission::View, "diagnose deliveries")
            .await?;
        Ok(diagnose::diagnose_recipient(&*self.store, &self.settings, query, self.now()).await?)
    }

    /// One message's whole story: created, approved, held, tried, how it ended.
    pub async fn diagnose_message(&self, actor: &Actor, id: MessageId) -> Result<MessageTimeline> {
        self.authorize(actor, Permission::View, "diagnose deliveries")
            .await?;
        diagnose::message_timeline(&*self.store, &self.settings, id)
            .await?
            .ok_or_else(|| AppError::NotFound {
                what: "message",
                id: id.0.to_string(),
            })
    }

    /// Batches, newest first; only those in `status` when given.
    pub async fn batches(
        &self,
        actor: &Actor,
        status: Option<crate::domain::BatchStatus>,
    ) -> Result<Vec<crate::store::BatchSummary>> {
        self.authorize(actor, Permission::View, "see the outbox")
            .await?;
        Ok(self.store.batches(status).await?)
    }

    /// The hold switch: `Some` while dispatch is paused.
    pub async fn hold(&self, actor: &Actor) -> Result<Option<Hold>> {
        self.authorize(actor, Permission::View, "see the hold switch")
            .await?;
        Ok(self.store.hold().await?)
    }

    /// Days off: from today on, or `all` of them.
    pub async fn holidays(&self, actor: &Actor, all: bool) -> Result<Vec<crate::domain::Holiday>> {
        self.authorize(actor, Permission::View, "see the calendar")
            .await?;
        let today = self
            .now()
            .with_timezone(&self.settings.school.time_zone)
            .date_naive();
        Ok(self.store.holidays((!all).then_some(today)).await?)
    }

    /// The audit log, newest first.
    pub async fn audit_log(&self, actor: &Actor, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        self.authorize(actor, Permission::View, "see the audit log")
            .await?;
        Ok(self.store.audit_log(filter).await?)
    }

    /// The groups with how many students and teachers each has.
    pub async fn groups(
        &self,
        actor: &Actor,
    ) -> Result<Vec<crate::domain::directory::GroupSummary>> {
        self.authorize(actor, Permission::View, "see the groups")
            .await?;
        Ok(self.store.groups().await?)
    }

    /// The saved templates, every variant; only `name`'s when given.
    pub async fn templates(
        &self,
        actor: &Actor,
        name: Option<&str>,
    ) -> Result<Vec<crate::templates::Variant>> {
        self.authorize(actor, Permission::View, "see the templates")
            .await?;
        Ok(self.store.templates(name).await?)
    }

    /// The operators and the roles they can be given.
    pub async fn operators(&self, actor: &Actor) -> Result<(Vec<Operator>, Vec<RoleDef>)> {
        self.authorize(actor, Permission::ManageOperators, "see the operators")
            .await?;
        Ok((self.store.operators().await?, self.store.roles().await?))
    }

    /// The dispatcher's health: its last pass and each channel's failure streak.
    pub async fn dispatcher_health(&self, actor: &Actor) -> Result<Vec<diagnose::Check>> {
        self.authorize(actor, Permission::View, "see the dispatcher's health")
            .await?;
        Ok(diagnose::dispatcher_checks(&*self.store, &self.settings, self.now()).await?)
    }

    /// How many queued messages a day off from `first_day` to `last_day` would hold
    /// back: those due on those days, and (when it starts today or earlier) every
    /// one already due.
    pub async fn held_by_days_off(
        &self,
        actor: &Actor,
        first_day: NaiveDate,
        last_day: NaiveDate,
    ) -> Result<i64> {
        self.authorize(actor, Permission::View, "see the calendar")
            .await?;
        let tz = self.settings.school.time_zone;
        let today = self.now().with_timezone(&tz).date_naive();
        let start = |day: NaiveDate| crate::domain::window::start_of_day(tz, day);
        let until = last_day
            .succ_opt()
            .map(start)
            .ok_or_else(|| AppError::invalid("last_day", "last_day: out of range"))?;
        let from = (first_day > today).then(|| start(first_day));
        Ok(self.store.queued_between(from, until).await?)
    }
}
