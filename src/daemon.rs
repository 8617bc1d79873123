//! The daemon: wiring (`Daemon::build`) and the loop that runs passes on the
//! dispatch schedule, wakes early for system messages, talks to systemd, and stops
//! cleanly when told.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::dispatcher::{
    APPROVALS_LEASE, ChannelError, Channels, Dispatcher, RECLAIM_LEASE, worker_name,
};
use crate::domain::MessageKind;
use crate::store::{self, PassCounts, Store, StoreError};

/// The leader lease of the instance that runs the periodic rules.
pub const RULES_LEASE: &str = "rules";

/// Why the daemon could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A channel could not be set up.
    #[error(transparent)]
    Channel(#[from] ChannelError),
}

/// A built daemon, ready to run.
pub struct Daemon {
    dispatcher: Arc<Dispatcher>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
}

impl Daemon {
    /// Opens the store (migrating it), builds the channels, on the system clock.
    pub async fn build(settings: Settings) -> Result<Daemon, DaemonError> {
        let store = store::open(&settings.database).await?;
        Daemon::build_with(settings, store, Arc::new(SystemClock))
    }

    /// Builds a daemon on a given store and clock (tests, `--at`).
    pub fn build_with(
        settings: Settings,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Daemon, DaemonError> {
        let settings = Arc::new(settings);
        let channels = Channels::build(&settings)?;
        let dispatcher = Arc::new(Dispatcher::new(
            store,
            channels,
            Arc::clone(&settings),
            Arc::clone(&clock),
            worker_name(),
        ));
        Ok(Daemon {
            dispatcher,
            settings,
            clock,
        })
    }

    /// The dispatcher, for one-off passes.
    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    /// Runs one pass over every kind (`herald dispatch --once`).
    pub async fn run_once(&self) -> Result<PassCounts, DaemonError> {
        // No rules here: `dispatch --once --at` may run at any time, and a rule run
        // records when it ran (`herald rules run` is the way to run them by hand).
        Ok(self
            .dispatcher
            .run_pass(&MessageKind::ALL, &CancellationToken::new())
            .await?)
    }

    /// Runs the periodic rules whose time has come, on one instance at a time (the
    /// holder of the rules lease; the occurrence keys keep a race harmless anyway).
    /// A failing rule is logged and tried again on the next tick.
    async fn run_rules(&self) {
        let settings = &self.settings;
        if !crate::rules::Rule::ALL
            .iter()
            .any(|r| r.settings(settings).enabled)
        {
            return;
        }
        let store = self.dispatcher.store();
        let now = self.clock.now();
        let lease = chrono::Duration::from_std(settings.dispatch.lease)
            .unwrap_or_else(|_| chrono::Duration::minutes(2));
        match store
            .try_lead(RULES_LEASE, self.dispatcher.worker(), now, now + lease)
            .await
        {
            Ok(true) => {
                // Errors are logged by run_due, per rule.
                let _ = crate::rules::run_due(&**store, settings, now).await;
            }
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "could not take the rules lease"),
        }
    }

    /// Runs until `shutdown` fires: a pass over every kind on each tick of
    /// `dispatch.schedule`, and a pass over system messages whenever one is due
    /// between ticks (`kinds.system.immediate`): at once when the store signals one
    /// (PostgreSQL's NOTIFY, from any instance), otherwise found by polling every
    /// `dispatch.wake_poll`, which lets a message created by another process
    /// (`herald notify`) go within a second on SQLite too.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), DaemonError> {
        let tz = self.settings.school.time_zone;
        let schedule = &self.settings.dispatch.schedule;
        let immediate = self.settings.kinds.system.immediate;
        let poll = self.settings.dispatch.wake_poll;
        // The watchdog is fed from its own task while the process lives: a long pass
        // (a slow SMTP server) does not starve it, and a database outage does not get
        // a daemon that keeps its unrecorded outcomes killed and those outcomes lost
        // (the outage is reported as STATUS= instead, see `Health`).
        let watchdog = tokio::spawn(async move {
            let Some(interval) = sd_notify::watchdog_enabled().map(|d| d / 2) else {
                return;
            };
            loop {
                tokio::time::sleep(interval).await;
                notify_systemd(&[sd_notify::NotifyState::Watchdog]);
            }
        });
        let backlog = Arc::clone(self.dispatcher.backlog());
        let mut health = Health::default();
        notify_systemd(&[sd_notify::NotifyState::Ready]);
        tracing::info!(
            worker = self.dispatcher.worker(),
            schedule = %schedule,
            email = ?self.dispatcher.email().file_dir().map(|d| d.display().to_string()).unwrap_or_else(|| "smtp".into()),
            "herald is running"
        );

        // PostgreSQL wakes us when another instance creates a system message; the
        // poll stays as the fallback (and is all there is on SQLite).
        let wake = if immediate {
            self.dispatcher.store().wakeups().await?
        } else {
            None
        };
        let woken = || async {
            match &wake {
                Some(signal) => signal.notified().await,
                None => std::future::pending().await,
            }
        };
        let mut next_tick = schedule.after(&self.clock.now().with_timezone(&tz)).next();
        // The tick walks instants (cron's own iteration), so it keeps ticking through
        // the repeated autumn hour; the rules read wall-clock schedules
        // (`domain::schedule`).
        loop {
            let now = self.clock.now();
            let until_tick = next_tick
                .map(|t| {
                    (t.with_timezone(&Utc) - now)
                        .to_std()
                        .unwrap_or(Duration::ZERO)
                })
                .unwrap_or(Duration::MAX);
            let wait = until_tick.min(poll);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
                _ = woken() => {}
            }
            let now = self.clock.now();
            // Outcomes kept through an outage are written as soon as the database
            // answers, not only on the next tick.
            if !backlog.is_empty() {
                match self.dispatcher.flush_backlog().await {
                    Ok(_) => health.ok(backlog.len()),
                    Err(e) => health.failed("recording kept outcomes", &e, backlog.len()),
                }
            }
            // A failing database must not stop the daemon: it runs degraded, and tries
            // again on the next round (what was claimed stays leased and is settled by
            // the lease rule if need be).
            if let Some(due) = next_tick
                .map(|t| t.with_timezone(&Utc))
                .filter(|t| *t <= now)
            {
                next_tick = schedule.after(&self.clock.now().with_timezone(&tz)).next();
                self.run_rules().await;
                // Late by the sleep's slack, a pass for system messages in between, the
                // rules just run, or a previous pass that outlasted the tick.
                let lag = (self.clock.now() - due).to_std().unwrap_or(Duration::ZERO);
                crate::metrics::tick_lag(lag);
                match self.dispatcher.run_pass(&MessageKind::ALL, &shutdown).await {
                    Ok(counts) => {
                        health.ok(backlog.len());
                        log_pass("tick", &counts);
                    }
                    Err(e) => health.failed("a dispatch pass", &e, backlog.len()),
                }
            } else if immediate {
                let due = self
                    .dispatcher
                    .store()
                    .has_due(now, &[MessageKind::System])
                    .await;
                match due {
                    Ok(true) => match self
                        .dispatcher
                        .run_pass(&[MessageKind::System], &shutdown)
                        .await
                    {
                        Ok(counts) => {
                            health.ok(backlog.len());
                            log_pass("system message", &counts);
                        }
                        Err(e) => health.failed("a dispatch pass", &e, backlog.len()),
                    },
                    Ok(false) => health.ok(backlog.len()),
                    Err(e) => health.failed("looking for due system messages", &e, backlog.len()),
                }
            }
        }
        watchdog.abort();
        notify_systemd(&[sd_notify::NotifyState::Stopping]);
        self.dispatcher.flush_before_stopping().await;
        // Let another instance take over reclaiming at once instead of after the lease.
        for lease in [RECLAIM_LEASE, APPROVALS_LEASE] {
            if let Err(e) = self
                .dispatcher
                .store()
                .resign(lease, self.dispatcher.worker())
                .await
            {
                tracing::warn!(error = %e, lease, "could not give up a leader lease");
            }
        }
        tracing::info!("herald stopped");
        Ok(())
    }
}

/// How often the daemon measures the database's clock again.
const CLOCK_EVERY: Duration = Duration::from_secs(60);

/// Sets `clock` to the database's (where the database has a clock of its own:
/// PostgreSQL), read at the middle of one round trip; a round trip over a second
/// (a busy pool) keeps the last measurement. Says so in the log when this machine's
/// clock is a second or more off and that moved by a second or more since the last
/// measurement (so a steady offset is said once).
pub async fn set_to_database_clock(
    clock: &crate::clock::DatabaseClock,
    store: &dyn Store,
) -> Result<(), StoreError> {
    let before = std::time::Instant::now();
    let Some(database) = store.database_now().await? else {
        return Ok(());
    };
    let trip = before.elapsed();
    if trip > Duration::from_secs(1) && clock.is_set() {
        tracing::debug!(
            trip_ms = trip.as_millis(),
            "the database's clock was read too slowly; kept the last reading"
        );
        return Ok(());
    }
    let middle = before + trip / 2;
    let here = Utc::now() - chrono::Duration::from_std(middle.elapsed()).unwrap_or_default();
    let offset = database - here;
    let moved = (offset - clock.offset()).num_milliseconds().abs();
    clock.set(middle, database);
    if offset.num_milliseconds().abs() >= 1000 && moved >= 1000 {
        tracing::warn!(
            offset_ms = offset.num_milliseconds(),
            "this machine's clock is off the database's: Herald keeps the database's time \
             (leases, schedules, records); set up NTP on this machine"
        );
    }
    Ok(())
}

/// Keeps `clock` set to the database's until `shutdown`.
pub async fn follow_database_clock(
    clock: Arc<crate::clock::DatabaseClock>,
    store: Arc<dyn Store>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(CLOCK_EVERY) => {}
        }
        // The offset kept is the last one measured; an outage is reported elsewhere.
        if let Err(e) = set_to_database_clock(&clock, &*store).await {
            tracing::debug!(error = %e, "the database's clock could not be read");
        }
    }
}

/// Whether the daemon reaches its database, as it tells the log and systemd. Through
/// an outage it keeps running (degraded): it says so once a minute at most, and
/// once more when it is over.
#[derive(Debug, Default)]
struct Health {
    degraded_since: Option<std::time::Instant>,
    last_said: Option<std::time::Instant>,
}

impl Health {
    /// How often an ongoing outage is repeated in the log.
    const REPEAT: Duration = Duration::from_secs(60);

    fn failed(&mut self, doing: &str, e: &StoreError, kept: usize) {
        let now = std::time::Instant::now();
        let since = *self.degraded_since.get_or_insert(now);
        if self
            .last_said
            .is_some_and(|said| now.duration_since(said) < Self::REPEAT)
        {
            return;
        }
        self.last_said = Some(now);
        tracing::error!(
            error = %e,
            doing,
            kept,
            for_s = now.duration_since(since).as_secs(),
            "the database does not answer: running degraded; outcomes of sends are kept in \
             memory and written when it answers, nothing new is claimed"
        );
        let status = format!(
            "degraded: the database does not answer ({doing}); {kept} outcome(s) kept in memory"
        );
        notify_systemd(&[sd_notify::NotifyState::Status(&status)]);
    }

    /// The database answered; the outage is over once nothing is `kept` for it
    /// either (SQLite answers reads while another program holds its write lock).
    fn ok(&mut self, kept: usize) {
        if kept > 0 {
            return;
        }
        if let Some(since) = self.degraded_since.take() {
            self.last_said = None;
            tracing::info!(
                after_s = since.elapsed().as_secs(),
                "the database answers again: running normally"
            );
            notify_systemd(&[sd_notify::NotifyState::Status("running")]);
        }
    }
}

fn log_pass(cause: &str, c: &PassCounts) {
    if c.sent + c.retried + c.failed + c.unknown + c.held + c.blocked + c.withdrawn > 0 {
        tracing::info!(
            cause,
            sent = c.sent,
            retried = c.retried,
            failed = c.failed,
            unknown = c.unknown,
            held = c.held,
            blocked = c.blocked,
            withdrawn = c.withdrawn,
            "dispatch pass"
        );
    } else {
        tracing::debug!(cause, "dispatch pass: nothing due");
    }
}

fn notify_systemd(state: &[sd_notify::NotifyState<'_>]) {
    // Outside systemd there is no socket and this does nothing.
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!(error = %e, "systemd notification failed");
    }
}
