//! The dispatcher: claims due messages, checks them again, sends them through their
//! channel and records every outcome. The only caller of channels.
//!
//! A pass claims what is due in chunks (a lease, one statement per chunk, the
//! recipients of the chunk read in one go), and for each message runs one step
//! ([`Dispatcher::dispatch`]): re-check eligibility (consent may have been withdrawn
//! since it was created), hold it if the window is closed, send, and record. No
//! transaction is open while a message is on the wire: the claim is committed first
//! and the outcome is recorded after, in a short transaction shared with the other
//! outcomes being recorded at that moment ([`recorder`]).

mod recorder;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::channels::SendOutcome;
use crate::channels::email::{EmailChannel, EmailError, OutgoingEmail};
use crate::channels::sms::{OutgoingSms, SmsChannel, SmsError};
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::MessageStatus;
use crate::domain::retry::{retry_delay, spread_after_opening};
use crate::domain::sms::measure;
use crate::domain::window::start_of_day;
use crate::domain::{
    Channel, EligibilityFacts, EmailAddress, HolidayCalendar, MessageId, MessageKind, PhoneNumber,
    Reason, RecipientId,
};
use crate::store::{
    Attempt, AttemptOutcome, Claimed, Finish, PassCounts, Reservation, Store, StoreError, Write,
    Written,
};
use recorder::Recorder;

/// What became of one claimed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the server.
    Sent,
    /// Queued again after a passing failure.
    Retried,
    /// Failed for good.
    Failed,
    /// Handed over, outcome unknown.
    Unknown,
    /// Held for the window or a holiday.
    Held,
    /// Blocked by the re-check.
    Blocked,
    /// A periodic message that will not go: too late, or no longer relevant.
    Withdrawn,
    /// The lease had run out and another dispatcher took the message over.
    LeaseLost,
}

/// The leader lease of the instance that reclaims expired claims.
pub const RECLAIM_LEASE: &str = "reclaim";

/// The leader lease of the instance that expires unused approvals.
pub const APPROVALS_LEASE: &str = "approvals";

/// What can stop a pass.
pub type Result<T> = std::result::Result<T, StoreError>;

/// The channels a dispatcher sends through.
#[derive(Clone)]
pub struct Channels {
    /// Email.
    pub email: Arc<EmailChannel>,
    /// SMS.
    pub sms: Arc<SmsChannel>,
}

/// Why the channels cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Email.
    #[error(transparent)]
    Email(#[from] EmailError),
    /// SMS.
    #[error(transparent)]
    Sms(#[from] SmsError),
}

impl Channels {
    /// Builds every channel from the settings.
    pub fn build(settings: &Settings) -> std::result::Result<Channels, ChannelError> {
        Ok(Channels {
            email: Arc::new(EmailChannel::build(&settings.email)?),
            sms: Arc::new(SmsChannel::build(&settings.sms)?),
        })
    }
}

/// SMS sends in flight at once besides the email channel's: gateway calls are short
/// HTTP requests, and the rate limit paces them anyway.
const SMS_IN_FLIGHT: usize = 8;

/// Messages claimed per send slot (an SMTP connection, an SMS in flight): one chunk
/// is being sent while the next waits its turn, so a slot never waits for a claim,
/// and what a claim holds ahead stays small beside its lease.
const CLAIMED_PER_SLOT: usize = 2;

/// How long a message waits for credit before it is looked at again; a top-up makes
/// it due at once.
const CREDIT_RECHECK: ChronoDuration = ChronoDuration::hours(1);

/// Where a step of [`Dispatcher::dispatch`] leaves a message: on to the next step
/// with what it found, or ended here with what to record and what it became.
enum Step<T> {
    /// On to the next step.
    Go(T),
    /// Record this; the message goes no further in this pass.
    End(Finish, Outcome),
}

/// The end of a message whose day is over (`expires_at`): it expires as too late
/// rather than going late.
fn too_late() -> Finish {
    Finish::Withdrawn(MessageStatus::Expired, Reason::TooLate)
}

/// The most outcomes kept in memory while the database does not take them. Claiming
/// stops when the database fails, so no more than the sends in flight can land here;
/// the bound is the second line.
pub const BACKLOG_MAX: usize = 10_000;

/// An outcome the database would not take, kept until it does.
#[derive(Debug, Clone)]
struct Unrecorded {
    id: MessageId,
    claim: i64,
    finish: Finish,
    outcome: Outcome,
    /// When it happened: recorded with that time, not the time the database came back.
    at: DateTime<Utc>,
}

/// Outcomes of sends that happened while the database did not answer (a restart, a
/// locked file), written in order when it answers again. Without them, a sent
/// message would stay `sending` until its lease ran out and then go again (email,
/// SMSAPI) or wait for a person (Twilio).
#[derive(Debug, Default)]
pub struct Backlog {
    items: std::sync::Mutex<VecDeque<Unrecorded>>,
    /// One writer at a time, so the order holds and nothing is written twice.
    flushing: tokio::sync::Mutex<()>,
}

impl Backlog {
    /// How many outcomes wait for the database.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Unrecorded>> {
        // A panic while holding it leaves a plain queue behind, still usable.
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Claims, sends and records.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    email: Arc<EmailChannel>,
    sms: Arc<SmsChannel>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    worker: String,
    backlog: Arc<Backlog>,
    recorder: Recorder,
}

impl Dispatcher {
    /// A dispatcher named `worker` (unique among the instances on one database).
    pub fn new(
        store: Arc<dyn Store>,
        channels: Channels,
        settings: Arc<Settings>,
        clock: Arc<dyn Clock>,
        worker: String,
    ) -> Dispatcher {
        Dispatcher {
            recorder: Recorder::new(Arc::clone(&store), worker.clone()),
            store,
            email: channels.email,
            sms: channels.sms,
            settings,
            clock,
            worker,
            backlog: Arc::new(Backlog::default()),
        }
    }

    /// The outcomes waiting for the database (readiness and the daemon's status
    /// read it).
    pub fn backlog(&self) -> &Arc<Backlog> {
        &self.backlog
    }

    /// Keeps an outcome the database would not take through an outage: the server may
    /// have taken the message, and the outcome must not be lost with the database
    /// (the message would stay `sending`, and go again when its lease ran out).
    fn keep(
        &self,
        message: &Claimed,
        finish: Finish,
        outcome: Outcome,
        at: DateTime<Utc>,
        e: StoreError,
    ) -> Result<Outcome> {
        let mut backlog = self.backlog.lock();
        if backlog.len() >= BACKLOG_MAX {
            tracing::error!(
                message = %message.id,
                ?outcome,
                error = %e,
                kept = backlog.len(),
                "the database does not take outcomes and no more can be kept: this one is \
                 settled by the lease rule"
            );
            return Err(e);
        }
        backlog.push_back(Unrecorded {
            id: message.id,
            claim: message.claim,
            finish,
            outcome,
            at,
        });
        tracing::warn!(
            message = %message.id,
            ?outcome,
            error = %e,
            kept = backlog.len(),
            "the database did not take the outcome: kept in memory until it answers"
        );
        Ok(outcome)
    }

    /// At a stop: one more try to write the outcomes kept through an outage, and an
    /// error in the log for those that stay unwritten (the lease rule settles them).
    pub async fn flush_before_stopping(&self) {
        if self.backlog.is_empty() {
            return;
        }
        if let Err(e) = self.flush_backlog().await {
            tracing::error!(
                kept = self.backlog.len(),
                error = %e,
                "stopping with outcomes the database would not take: their messages are \
                 settled by the lease rule (sent again where the channel knows a repeat, \
                 otherwise unknown)"
            );
        }
    }

    /// Writes the outcomes kept while the database did not answer, oldest first;
    /// how many were written. Stops at the first failure (the database is still
    /// away), keeping the rest.
    pub async fn flush_backlog(&self) -> Result<usize> {
        let _one_writer = self.backlog.flushing.lock().await;
        let mut written = 0;
        loop {
            let Some(next) = self.backlog.lock().front().cloned() else {
                break;
            };
            let recorded = match self
                .store
                .finish(next.id, &self.worker, next.claim, &next.finish, next.at)
                .await
            {
                Ok(recorded) => recorded,
                Err(e) if e.is_outage() => return Err(e),
                // Refused for good, not for an outage: kept, it would block every
                // later pass. The lease rule settles the message instead.
                Err(e) => {
                    self.backlog.lock().pop_front();
                    tracing::error!(
                        message = %next.id,
                        outcome = ?next.outcome,
                        error = %e,
                        "the database refuses this kept outcome: the message is settled by \
                         the lease rule"
                    );
                    continue;
                }
            };
            self.backlog.lock().pop_front();
            written += 1;
            if !recorded {
                tracing::warn!(
                    message = %next.id,
                    outcome = ?next.outcome,
                    "a kept outcome came too late: the lease ran out during the outage and \
                     the message was settled by the lease rule"
                );
            }
        }
        if written > 0 {
            tracing::info!(
                written,
                "the database answers again: the outcomes kept meanwhile are recorded"
            );
        }
        Ok(written)
    }

    /// This dispatcher's name, as leases and attempts record it.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The email channel.
    pub fn email(&self) -> &EmailChannel {
        &self.email
    }

    /// The SMS channel.
    pub fn sms(&self) -> &SmsChannel {
        &self.sms
    }

    /// Sends everything of `kinds` that is due, with as many messages in flight as
    /// the channel allows, until nothing is due or `shutdown` fires. On shutdown it
    /// stops claiming, lets sends in flight finish for `dispatch.shutdown_grace`,
    /// and gives the rest back to the queue.
    pub async fn run_pass(
        self: &Arc<Self>,
        kinds: &[MessageKind],
        shutdown: &CancellationToken,
    ) -> Result<PassCounts> {
        // Timed by the process's monotonic clock, not `self.clock`: a test's fixed
        // clock (or `--at`) says when the pass is, not how long it takes.
        let started = std::time::Instant::now();
        let pass = self.pass(kinds, shutdown).await;
        crate::metrics::pass_finished(started.elapsed(), pass.is_ok());
        pass
    }

    async fn pass(
        self: &Arc<Self>,
        kinds: &[MessageKind],
        shutdown: &CancellationToken,
    ) -> Result<PassCounts> {
        // What happened during an outage is written before anything new is claimed
        // (and before the reclaim could take those messages for dead).
        self.flush_backlog().await?;
        let start = self.clock.now();
        if self
            .store
            .try_lead(
                APPROVALS_LEASE,
                &self.worker,
                start,
                start + chrono_duration(self.settings.dispatch.lease),
            )
            .await?
        {
            // Approvals age even while dispatch is on hold.
            let expires = chrono_duration(self.settings.approval.expires_after);
            for batch in self.store.expire_approvals(start - expires, start).await? {
                tracing::warn!(%batch, "an approval expired unused: the batch is back in the outbox");
            }
            // Periodic messages whose day is over (a birthday greeting still waiting
            // for approval) are recorded as too late rather than sent late.
            let expired = self.store.expire_overdue(start).await?;
            if expired > 0 {
                tracing::info!(expired, "periodic messages expired: too late to send");
            }
            // Unknown SMS nobody decided on are charged after a while: they were
            // handed over, and their reservation must not hold the wallet for ever.
            let before = start - chrono_duration(self.settings.sms.unknown_charged_after);
            let charged = self.store.charge_undecided(before, start).await?;
            if charged > 0 {
                tracing::warn!(
                    charged,
                    "unknown SMS left undecided were charged; they stay unknown"
                );
            }
        }
        // The hold switch pauses every instance: nothing is claimed, nothing is lost.
        if let Some(hold) = self.store.hold().await? {
            tracing::info!(since = %hold.since, reason = %hold.reason, by = %hold.by, "dispatch is on hold");
            // Recorded all the same: the dispatcher ran and looked, and readiness
            // reads the last pass as its sign of life (a day's hold must not leave
            // it overdue for a tick after the hold is lifted).
            let counts = PassCounts::default();
            self.store
                .record_pass(&self.worker, &counts, self.clock.now())
                .await?;
            return Ok(counts);
        }
        // Reclaiming dead dispatchers' claims is work for one instance at a time: the
        // leader, whose lease lasts as long as a claim's.
        let lease = chrono_duration(self.settings.dispatch.lease);
        if self
            .store
            .try_lead(RECLAIM_LEASE, &self.worker, start, start + lease)
            .await?
        {
            let reclaimed = self
                .store
                .reclaim_expired(
                    start,
                    self.settings.dispatch.max_attempts,
                    &self.repeats_recognised(),
                )
                .await?;
            if reclaimed > 0 {
                tracing::warn!(
                    reclaimed,
                    "claims of a dispatcher that died were settled: back to the queue, or \
                     unknown where handed to a channel that would not know a repeat"
                );
            }
        }
        let tz = self.settings.school.time_zone;
        let calendar = Arc::new(
            self.store
                .calendar(start.with_timezone(&tz).date_naive())
                .await?,
        );
        let slots = self.email.concurrency().max(1) + SMS_IN_FLIGHT;
        let most = slots * CLAIMED_PER_SLOT;
        let mut counts = PassCounts::default();
        let mut inflight: JoinSet<Result<Outcome>> = JoinSet::new();
        let mut claimed_by_task: HashMap<tokio::task::Id, (MessageId, i64)> = HashMap::new();
        let mut drained = false;
        let mut failure = None;
        loop {
            // Outcomes kept during this pass are written before more is claimed; while
            // the database will not take them, nothing more is claimed.
            if !drained
                && !self.backlog.is_empty()
                && let Err(e) = self.flush_backlog().await
            {
                failure = Some(e);
                drained = true;
            }
            // A chunk at a time: claimed when a slot's worth of room is free, so the
            // slots are still busy with the last chunk while this one is claimed.
            let room = most - inflight.len();
            if (room >= slots || inflight.is_empty()) && !drained && !shutdown.is_cancelled() {
                let now = self.clock.now();
                let lease_until = now + chrono_duration(self.settings.dispatch.lease);
                let claimed = match self
                    .store
                    .claim_due(now, kinds, &self.worker, lease_until, room as u32)
                    .await
                {
                    Ok(claimed) => claimed,
                    // Stop claiming, but let the sends in flight finish and record
                    // their outcome before reporting the failure.
                    Err(e) => {
                        failure = Some(e);
                        Vec::new()
                    }
                };
                drained = claimed.len() < room;
                // The chunk's recipients in one read; a failure leaves each message to
                // find its own.
                let mut facts = match self.facts_of(&claimed).await {
                    Ok(facts) => facts,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read the recipients of a claimed chunk");
                        HashMap::new()
                    }
                };
                for message in claimed {
                    let id = (message.id, message.claim);
                    let this = Arc::clone(self);
                    let calendar = Arc::clone(&calendar);
                    let found = message.recipient_id.and_then(|r| facts.remove(&r));
                    // Boxed: the send's state (lettre's, the recorder's) makes the
                    // future many KiB, copied several times on its way into a task
                    // when spawned by value.
                    let handle = inflight.spawn(Box::pin(async move {
                        this.dispatch_with(message, found, &calendar).await
                    }));
                    claimed_by_task.insert(handle.id(), id);
                }
            }
            if inflight.is_empty() {
                break;
            }
            let joined = tokio::select! {
                joined = inflight.join_next_with_id() => joined,
                _ = shutdown.cancelled(), if !shutdown.is_cancelled() => None,
            };
            if let Some(joined) = joined {
                self.tally(joined, &mut claimed_by_task, &mut counts);
            }
            if shutdown.is_cancelled() {
                self.wind_down(&mut inflight, &mut claimed_by_task, &mut counts)
                    .await?;
                break;
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        self.store
            .record_pass(&self.worker, &counts, self.clock.now())
            .await?;
        self.check_wallet().await?;
        Ok(counts)
    }

    /// Reports a low wallet once per crossing: below `sms.low_balance_threshold`, or
    /// below what the SMS due in the next 24 hours will cost.
    pub async fn check_wallet(&self) -> Result<()> {
        let now = self.clock.now();
        let wallet = self.store.wallet().await?;
        let due = self
            .store
            .sms_segments_due(now + ChronoDuration::hours(24))
            .await?
            * i64::from(self.settings.sms.price_per_segment);
        let threshold = self.settings.sms.low_balance_threshold;
        let low = wallet.balance < threshold || wallet.balance < due;
        if self.store.mark_low(low, now).await? {
            if low {
                tracing::warn!(
                    balance = wallet.balance,
                    threshold,
                    needed_next_24h = due,
                    "the SMS wallet is low: top it up with `herald wallet top-up`"
                );
            } else {
                tracing::info!(balance = wallet.balance, "the SMS wallet is no longer low");
            }
        }
        Ok(())
    }

    fn tally(
        &self,
        joined: std::result::Result<(tokio::task::Id, Result<Outcome>), tokio::task::JoinError>,
        claimed_by_task: &mut HashMap<tokio::task::Id, (MessageId, i64)>,
        counts: &mut PassCounts,
    ) {
        match joined {
            Ok((task, Ok(outcome))) => {
                claimed_by_task.remove(&task);
                match outcome {
                    Outcome::Sent => counts.sent += 1,
                    Outcome::Retried => counts.retried += 1,
                    Outcome::Failed => counts.failed += 1,
                    // Not a failure: it may well have arrived.
                    Outcome::Unknown => counts.unknown += 1,
                    Outcome::Held => counts.held += 1,
                    Outcome::Blocked => counts.blocked += 1,
                    Outcome::Withdrawn => counts.withdrawn += 1,
                    Outcome::LeaseLost => {}
                }
            }
            Ok((task, Err(e))) => {
                // The message stays claimed; its lease runs out and a later pass
                // takes it again.
                let message = claimed_by_task.remove(&task);
                tracing::error!(?message, error = %e, "could not record a message's outcome");
            }
            // An aborted task (a stopping daemon) keeps its claim in the map, so that
            // the wind-down releases it; its outcome was never recorded.
            Err(e) if e.is_cancelled() => {}
            Err(e) => {
                let message = claimed_by_task.remove(&e.id());
                tracing::error!(?message, error = %e, "a send task failed");
            }
        }
    }

    /// The channels that know a repeat of a message by its key: a claim of theirs
    /// that ended without an answer may go again; any other's waits for a person.
    pub fn repeats_recognised(&self) -> Vec<Channel> {
        [Channel::Email, Channel::Sms]
            .into_iter()
            .filter(|c| self.recognises_repeats(*c))
            .collect()
    }

    /// Whether `channel` knows a repeat of a message by its key.
    fn recognises_repeats(&self, channel: Channel) -> bool {
        match channel {
            // A repeat carries the same Message-ID, which mail systems and people
            // recognise, as the design accepts for email.
            Channel::Email => true,
            Channel::Sms => self.sms.recognises_repeats(),
        }
    }

    /// Records that `message` is being handed to its channel now, which may take up
    /// to `budget`: `false` when the claim is no longer ours or its lease would run
    /// out before the send could end, and then the send is not made.
    ///
    /// Where the channel recognises a repeat, the hand-over changes nothing a crash
    /// would leave (the message goes again under its key either way), so it is not
    /// written: the claim's own lease says whether the send fits, as no other
    /// dispatcher claims the message before that lease runs out. Elsewhere (Twilio)
    /// it is written before the call, as the lease rule needs it.
    async fn hand_over(&self, message: &Claimed, budget: std::time::Duration) -> Result<bool> {
        let now = self.clock.now();
        // A second's margin for recording the answer after it comes.
        let needed = now + chrono_duration(budget) + ChronoDuration::seconds(1);
        if self.recognises_repeats(message.channel) {
            return Ok(message.lease_until >= needed);
        }
        let write = Write::HandOver {
            id: message.id,
            claim: message.claim,
            at: now,
            lease_needed_until: needed,
        };
        match self.recorder.write(write).await? {
            Written::HandedOver(handed) => Ok(handed),
            other => unreachable_answer(other),
        }
    }

    /// Lets sends in flight finish within the grace period, then aborts the rest
    /// and releases their messages, so nothing stays `sending`.
    async fn wind_down(
        &self,
        inflight: &mut JoinSet<Result<Outcome>>,
        claimed_by_task: &mut HashMap<tokio::task::Id, (MessageId, i64)>,
        counts: &mut PassCounts,
    ) -> Result<()> {
        let grace = self.settings.dispatch.shutdown_grace;
        let _ = tokio::time::timeout(grace, async {
            while let Some(joined) = inflight.join_next_with_id().await {
                self.tally(joined, claimed_by_task, counts);
            }
        })
        .await;
        inflight.abort_all();
        while let Some(joined) = inflight.join_next_with_id().await {
            self.tally(joined, claimed_by_task, counts);
        }
        // Outcomes kept through an outage get one more chance before the process ends.
        self.flush_before_stopping().await;
        let left: Vec<(MessageId, i64)> = claimed_by_task.drain().map(|(_, id)| id).collect();
        if !left.is_empty() {
            // Those handed to a channel that would not know a repeat become
            // `unknown` rather than go again (and be paid for twice).
            let released = self
                .store
                .release(
                    &left,
                    &self.worker,
                    self.clock.now(),
                    &self.repeats_recognised(),
                )
                .await?;
            tracing::info!(
                released,
                "stopping: unfinished messages were released (to the queue, or to unknown \
                 where they were handed to a channel that would not know a repeat)"
            );
        }
        Ok(())
    }

    /// Claims one due message of any kind and dispatches it; `None` when nothing is
    /// due. The unit the tests drive.
    pub async fn try_dispatch_next(self: &Arc<Self>) -> Result<Option<Outcome>> {
        self.flush_backlog().await?;
        if self.store.hold().await?.is_some() {
            return Ok(None);
        }
        let now = self.clock.now();
        let lease_until = now + chrono_duration(self.settings.dispatch.lease);
        let claimed = self
            .store
            .claim_due(now, &MessageKind::ALL, &self.worker, lease_until, 1)
            .await?;
        let Some(message) = claimed.into_iter().next() else {
            return Ok(None);
        };
        let tz = self.settings.school.time_zone;
        let calendar = self
            .store
            .calendar(now.with_timezone(&tz).date_naive())
            .await?;
        self.dispatch(message, &calendar).await.map(Some)
    }

    /// The recipients of a claimed chunk, read in one go, by id.
    async fn facts_of(
        &self,
        claimed: &[Claimed],
    ) -> Result<HashMap<RecipientId, EligibilityFacts>> {
        let mut ids: Vec<RecipientId> = claimed.iter().filter_map(|m| m.recipient_id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let found = self.store.facts_of(&ids).await?;
        Ok(found.into_iter().map(|f| (f.recipient.id, f)).collect())
    }

    /// Checks, sends and records one claimed message.
    pub async fn dispatch(&self, message: Claimed, calendar: &HolidayCalendar) -> Result<Outcome> {
        self.dispatch_with(message, None, calendar).await
    }

    /// [`Self::dispatch`] with its recipient's facts read already (with its chunk's);
    /// `None` reads them here.
    async fn dispatch_with(
        &self,
        message: Claimed,
        facts: Option<EligibilityFacts>,
        calendar: &HolidayCalendar,
    ) -> Result<Outcome> {
        let now = self.clock.now();
        let facts = match self.recheck(&message, facts, now).await? {
            Step::Go(facts) => facts,
            Step::End(finish, outcome) => return self.finish(&message, finish, outcome).await,
        };
        if let Step::End(finish, outcome) = self.hold(&message, calendar, now).await? {
            return self.finish(&message, finish, outcome).await;
        }
        let sent = match self.send(&message, &facts, now).await? {
            Step::Go(sent) => sent,
            Step::End(finish, outcome) => return self.finish(&message, finish, outcome).await,
        };
        let (finish, outcome) = self.classify(&message, sent, calendar, now);
        self.finish(&message, finish, outcome).await
    }

    /// Judges the message again as of `now`: its recipient must still exist and be
    /// eligible on its channel, and a periodic message must still be relevant and not
    /// past its day. Goes on with the recipient's facts.
    async fn recheck(
        &self,
        message: &Claimed,
        facts: Option<EligibilityFacts>,
        now: DateTime<Utc>,
    ) -> Result<Step<EligibilityFacts>> {
        let settings = &self.settings;
        let facts = match (facts, message.recipient_id) {
            (Some(facts), _) => Some(facts),
            (None, Some(id)) => self.store.recipient_by_id(id).await?,
            (None, None) => None,
        };
        let Some(facts) = facts else {
            return Ok(Step::End(
                Finish::Blocked(Reason::RecipientUnknown),
                Outcome::Blocked,
            ));
        };
        let failed = facts.check(
            message.channel,
            settings.school.phone_region,
            settings.eligibility,
        );
        if let Some(reason) = failed.first() {
            return Ok(Step::End(Finish::Blocked(*reason), Outcome::Blocked));
        }
        // A periodic message about something settled (the instalment was paid) is
        // cancelled; one whose day is over (a birthday) expires.
        if let Some(relevance) = &message.relevance
            && !self.store.still_relevant(relevance).await?
        {
            return Ok(Step::End(
                Finish::Withdrawn(MessageStatus::Cancelled, Reason::NoLongerRelevant),
                Outcome::Withdrawn,
            ));
        }
        if message.expires_at.is_some_and(|t| t <= now) {
            return Ok(Step::End(too_late(), Outcome::Withdrawn));
        }
        Ok(Step::Go(facts))
    }

    /// Holds the message if it may not go now: the window is closed or it is a day
    /// off (for kinds that respect the window), or the recipient has had today's
    /// share of announcements.
    async fn hold(
        &self,
        message: &Claimed,
        calendar: &HolidayCalendar,
        now: DateTime<Utc>,
    ) -> Result<Step<()>> {
        let settings = &self.settings;
        let respects_window = settings.respects_window(message.kind);
        if respects_window && let Some(reason) = settings.send_window.hold_reason(now, calendar) {
            let until = self.opening_at_or_after(now, calendar);
            // Held past its day: skipped now, with the reason, rather than sent late.
            if message.expires_at.is_some_and(|t| until >= t) {
                return Ok(Step::End(too_late(), Outcome::Withdrawn));
            }
            return Ok(Step::End(Finish::Hold(reason, until), Outcome::Held));
        }
        // The daily cap: an announcement beyond today's share for this person waits
        // for tomorrow's window. What went today is counted, so a retry after a
        // crash never counts itself.
        if message.kind == MessageKind::Informational
            && let (Some(cap), Some(recipient)) = (
                settings.dispatch.informational_daily_cap,
                message.recipient_id,
            )
        {
            let tz = settings.school.time_zone;
            let today = now.with_timezone(&tz).date_naive();
            let since = start_of_day(tz, today);
            let sent = self
                .store
                .sent_since(recipient, message.channel, message.kind, since, message.id)
                .await?;
            if sent >= i64::from(cap) {
                let tomorrow = start_of_day(tz, today + ChronoDuration::days(1));
                let until = if respects_window {
                    self.opening_at_or_after(tomorrow, calendar)
                } else {
                    tomorrow
                };
                return Ok(Step::End(
                    Finish::Hold(Reason::DailyCapReached, until),
                    Outcome::Held,
                ));
            }
        }
        Ok(Step::Go(()))
    }

    /// Sends the message through its channel; goes on with the server's answer.
    async fn send(
        &self,
        message: &Claimed,
        facts: &EligibilityFacts,
        now: DateTime<Utc>,
    ) -> Result<Step<SendOutcome>> {
        match message.channel {
            Channel::Email => self.send_email(message, facts, now).await,
            Channel::Sms => self.send_sms(message, facts, now).await,
        }
    }

    /// Sends an email; an address the receiving server refuses for good is marked
    /// failing on the recipient.
    async fn send_email(
        &self,
        message: &Claimed,
        facts: &EligibilityFacts,
        now: DateTime<Utc>,
    ) -> Result<Step<SendOutcome>> {
        let raw = facts.recipient.email.as_deref().unwrap_or_default();
        let address = match EmailAddress::parse(raw) {
            Ok(a) => a,
            // The re-check passed, so this cannot happen; block rather than guess.
            Err(_) => {
                return Ok(Step::End(
                    Finish::Blocked(Reason::InvalidEmail),
                    Outcome::Blocked,
                ));
            }
        };
        let email = OutgoingEmail {
            id: message.id,
            created_at: message.created_at,
            to_name: &facts.recipient.name,
            to: &address,
            subject: message.subject.as_deref().unwrap_or_default(),
            body: &message.body,
            html: message.html.as_deref(),
            date: now,
        };
        // The wait for a connection comes before the hand-over, so the lease is
        // judged against the send alone.
        let turn = match self.email.wait_turn().await {
            Ok(turn) => turn,
            Err(refused) => return Ok(Step::Go(refused)),
        };
        if !self.hand_over(message, self.email.send_budget()).await? {
            return Ok(Step::End(Finish::Released, Outcome::LeaseLost));
        }
        let started = std::time::Instant::now();
        let sent = self.email.send_in_turn(&turn, &email).await;
        drop(turn);
        crate::metrics::sent(
            Channel::Email,
            self.email.transport_name(),
            &sent,
            started.elapsed(),
        );
        if let SendOutcome::Permanent {
            address_failing: true,
            detail,
            ..
        } = &sent
        {
            self.store
                .mark_email_failing(facts.recipient.id, address.as_str(), detail, now)
                .await?;
        }
        Ok(Step::Go(sent))
    }

    /// Reserves the SMS's cost in the wallet, holding it while the credit is short,
    /// and sends it; a number the gateway reports invalid is marked failing on the
    /// recipient.
    async fn send_sms(
        &self,
        message: &Claimed,
        facts: &EligibilityFacts,
        now: DateTime<Utc>,
    ) -> Result<Step<SendOutcome>> {
        let raw = facts.recipient.phone.as_deref().unwrap_or_default();
        let number = match PhoneNumber::parse(raw, self.settings.school.phone_region) {
            Ok(n) => n,
            Err(_) => {
                return Ok(Step::End(
                    Finish::Blocked(Reason::InvalidPhone),
                    Outcome::Blocked,
                ));
            }
        };
        if let Some(held) = self.gateway_resting() {
            return Ok(held);
        }
        let size = measure(&message.body);
        let cost = size.segments as i64 * i64::from(self.settings.sms.price_per_segment);
        // Reserved before sending, so the balance can never go below zero,
        // whatever other dispatchers spend at the same moment.
        let write = Write::Reserve {
            id: message.id,
            claim: message.claim,
            points: cost,
            at: now,
        };
        let reservation = match self.recorder.write(write).await? {
            Written::Reserved(reservation) => reservation,
            other => unreachable_answer(other),
        };
        match reservation {
            Reservation::Reserved => {}
            Reservation::ShortOfCredit => {
                let finish = Finish::Hold(Reason::InsufficientSmsCredit, now + CREDIT_RECHECK);
                return Ok(Step::End(finish, Outcome::Held));
            }
            Reservation::ClaimLost => return Ok(Step::End(Finish::Released, Outcome::LeaseLost)),
        }
        let sms = OutgoingSms {
            id: message.id,
            created_at: message.created_at,
            generation: message.generation,
            to: &number,
            text: &message.body,
            size,
            sender: self.sms.sender(),
        };
        // The rate limit's wait comes before the hand-over, so the lease is judged
        // against the call alone.
        if let Some(refused) = self.sms.wait_turn(&sms).await {
            return Ok(Step::Go(refused));
        }
        // Asked to wait while this one waited its turn: held too (its points back).
        if let Some(held) = self.gateway_resting() {
            return Ok(held);
        }
        if !self.hand_over(message, self.sms.send_budget()).await? {
            return Ok(Step::End(Finish::Released, Outcome::LeaseLost));
        }
        let started = std::time::Instant::now();
        let sent = self.sms.send_now(&sms).await;
        crate::metrics::sent(
            Channel::Sms,
            self.sms.gateway_name(),
            &sent,
            started.elapsed(),
        );
        if let SendOutcome::Permanent {
            address_failing: true,
            detail,
            ..
        } = &sent
        {
            self.store
                .mark_phone_failing(facts.recipient.id, number.e164(), detail, now)
                .await?;
        }
        Ok(Step::Go(sent))
    }

    /// While the gateway asked for a wait (`Retry-After`), nothing goes to it: the
    /// message is held until then, which is not an attempt.
    fn gateway_resting<T>(&self) -> Option<Step<T>> {
        let wait = self.sms.paused_for()?;
        Some(Step::End(
            Finish::Hold(
                Reason::RetryScheduled,
                self.clock.now() + chrono_duration(wait),
            ),
            Outcome::Held,
        ))
    }

    /// What the server's answer makes of the message: sent, retried later (until the
    /// attempts run out), failed, or unknown; with the attempt, started at `now`.
    fn classify(
        &self,
        message: &Claimed,
        sent: SendOutcome,
        calendar: &HolidayCalendar,
        now: DateTime<Utc>,
    ) -> (Finish, Outcome) {
        // A server's words are kept as they came, but for NUL, which PostgreSQL
        // cannot store (a binary error page read as text): the record must not fail.
        let stored = |text: String| {
            if text.contains('\0') {
                text.replace('\0', "\u{FFFD}")
            } else {
                text
            }
        };
        let attempt = |outcome: AttemptOutcome, code: Option<u16>, detail: String| Attempt {
            started_at: now,
            outcome,
            code: code.map(i64::from),
            detail: stored(detail),
            provider_id: None,
        };
        match sent {
            SendOutcome::Sent {
                code,
                detail,
                provider_id,
            } => (
                Finish::Sent(Attempt {
                    provider_id: provider_id.map(stored),
                    ..attempt(AttemptOutcome::Sent, code, detail)
                }),
                Outcome::Sent,
            ),
            SendOutcome::Transient { code, detail } => self.retry_or_fail(
                message,
                attempt(AttemptOutcome::Transient, code, detail),
                None,
                calendar,
            ),
            SendOutcome::Throttled {
                code,
                detail,
                retry_after,
            } => self.retry_or_fail(
                message,
                attempt(AttemptOutcome::Transient, code, detail),
                Some(retry_after),
                calendar,
            ),
            SendOutcome::Permanent { code, detail, .. } => (
                Finish::Failed(
                    attempt(AttemptOutcome::Permanent, code, detail),
                    Reason::RejectedByServer,
                ),
                Outcome::Failed,
            ),
            SendOutcome::Unknown { detail } => (
                Finish::Unknown(attempt(AttemptOutcome::Unknown, None, detail)),
                Outcome::Unknown,
            ),
        }
    }

    /// A passing failure: tried again after the backoff (never sooner than the
    /// server `asked`), or failed when the attempts are used up.
    fn retry_or_fail(
        &self,
        message: &Claimed,
        attempt: Attempt,
        asked: Option<std::time::Duration>,
        calendar: &HolidayCalendar,
    ) -> (Finish, Outcome) {
        let settings = &self.settings;
        let tried = message.attempts + 1;
        if tried >= settings.dispatch.max_attempts {
            return (
                Finish::Failed(attempt, Reason::AttemptsExhausted),
                Outcome::Failed,
            );
        }
        let delay = retry_delay(
            tried,
            settings.dispatch.retry_base,
            settings.dispatch.retry_max,
            fastrand::f64(),
        );
        let delay = asked.map_or(delay, |asked| delay.max(asked));
        let mut at = self.clock.now() + chrono_duration(delay);
        // A retry never lands outside the window or on a holiday, and those moved to
        // an opening are spread over its first minutes (unless the window closes
        // again sooner).
        let closed = |t| settings.send_window.hold_reason(t, calendar).is_some();
        if settings.respects_window(message.kind) && closed(at) {
            let opening = self.opening_at_or_after(at, calendar);
            let spread = spread_after_opening(opening, fastrand::f64());
            at = if closed(spread) { opening } else { spread };
        }
        (Finish::Retry(attempt, at), Outcome::Retried)
    }

    /// The next opening of the window at or after `at`; a day later if none is
    /// found within a year (a calendar of holidays only), so the message is looked
    /// at again rather than lost.
    fn opening_at_or_after(&self, at: DateTime<Utc>, calendar: &HolidayCalendar) -> DateTime<Utc> {
        self.settings
            .send_window
            .next_opening(at, calendar)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(at + ChronoDuration::days(1))
    }

    async fn finish(&self, message: &Claimed, finish: Finish, outcome: Outcome) -> Result<Outcome> {
        let at = self.clock.now();
        // A moment's blip (a busy SQLite file, a dropped connection) is waited out
        // here, so the outcome is usually written before more is claimed.
        let mut pauses = [200u64, 1000].into_iter();
        let recorded = loop {
            let write = Write::Finish {
                id: message.id,
                claim: message.claim,
                finish: finish.clone(),
                at,
            };
            match self.recorder.write(write).await {
                Ok(Written::Finished(recorded)) => break recorded,
                Ok(other) => unreachable_answer(other),
                Err(e) if e.is_outage() => match pauses.next() {
                    Some(ms) => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
                    None => return self.keep(message, finish, outcome, at, e),
                },
                // Refused for good (not an outage): the lease rule settles it.
                Err(e) => return Err(e),
            }
        };
        if recorded {
            tracing::debug!(message = %message.id, ?outcome, "dispatched");
            Ok(outcome)
        } else {
            tracing::warn!(
                message = %message.id,
                ?outcome,
                "the lease ran out before the outcome was recorded; another dispatcher owns the message now"
            );
            Ok(Outcome::LeaseLost)
        }
    }
}

/// The recorder answers each write with its own kind of answer; any other is a bug.
fn unreachable_answer<T>(answer: Written) -> T {
    unreachable!("the recorder answered a write with {answer:?}")
}

fn chrono_duration(d: std::time::Duration) -> ChronoDuration {
    ChronoDuration::from_std(d).unwrap_or(ChronoDuration::MAX)
}

/// A name for this dispatcher that no other instance shares: host, process, and a
/// random part for two daemons started in one process (tests).
pub fn worker_name() -> String {
    let host = hostname();
    format!("{host}:{}:{:04x}", std::process::id(), fastrand::u16(..))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "herald".to_owned())
}
