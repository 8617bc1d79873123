//! Prometheus metrics: their names, the process's recorder, the helpers the
//! dispatcher, the daemon and the HTTP layer record through, and the exposition that
//! `GET /metrics` serves.
//!
//! Two sources make one page. What happens in this process (passes, sends, ticks,
//! HTTP requests) is counted as it happens in the global recorder, installed once
//! ([`recorder`]). What the database knows (messages by kind, channel, status and
//! reason; the queue; the wallet; the last pass of any instance) is read at each
//! scrape into a recorder of its own, made for that scrape ([`render`]): a label set
//! that no longer occurs (no message is `failed` with `rejected_by_server` any more)
//! then disappears instead of staying at its last value, and two instances on one
//! PostgreSQL database report the same numbers.
//!
//! The recorder is global because the `metrics` macros are; a test process shares it
//! between its tests, which therefore compare counters before and after rather than
//! expecting exact values.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::channels::SendOutcome;
use crate::domain::{Channel, MessageStatus};
use crate::store::{MessageTally, Store, StoreError, WalletState};

/// Messages by `kind`, `channel`, `status` and `reason` (`""` when none), from the
/// database.
pub const MESSAGES: &str = "herald_messages";
/// Messages waiting to go (`queued`, held ones included) by `channel`, from the
/// database.
pub const QUEUE_DEPTH: &str = "herald_queue_depth";
/// Points free to spend in the SMS wallet, from the database.
pub const WALLET_BALANCE: &str = "herald_wallet_balance_points";
/// Points held for SMS being sent, from the database.
pub const WALLET_RESERVED: &str = "herald_wallet_reserved_points";
/// When the last dispatch pass of any instance finished (Unix seconds), from the
/// database; absent before the first.
pub const LAST_PASS: &str = "herald_dispatch_last_pass_timestamp_seconds";
/// 1 when the database answered the scrape, 0 when it did not (and the other
/// metrics from the database are missing).
pub const DATABASE_UP: &str = "herald_database_up";
/// 1 while dispatch is on hold, from the database.
pub const HOLD: &str = "herald_dispatch_hold";
/// How long a dispatch pass took, by `outcome` (`ok`, `failed`).
pub const PASS_DURATION: &str = "herald_dispatch_pass_duration_seconds";
/// How late a tick's pass started after the tick was due.
pub const TICK_LAG: &str = "herald_dispatch_tick_lag_seconds";
/// How long one send took, by `channel` and `provider`: the call to the server
/// (the wait for a connection or the rate limit comes before, and is not counted).
pub const SEND_DURATION: &str = "herald_send_duration_seconds";
/// Sends by `channel`, `provider` and `outcome` (`sent`, `transient`, `throttled`, `permanent`,
/// `unknown`).
pub const SENDS: &str = "herald_sends_total";
/// Delivery reports by `gateway`, `state` (`delivered`, `undelivered`, `in_flight`,
/// `unknown`) and `effect` (`applied`, `no_change`, `pending`, `unknown_message`).
pub const DELIVERY_REPORTS: &str = "herald_delivery_reports_total";
/// HTTP requests by `method`, `route` (the route's template, `unmatched` for none)
/// and `status`.
pub const HTTP_REQUESTS: &str = "herald_http_requests_total";
/// How long HTTP requests took, by `method` and `route`.
pub const HTTP_DURATION: &str = "herald_http_request_duration_seconds";

/// How often the recorder folds recent histogram samples into its buckets. Without
/// it, samples pile up in memory between scrapes (and forever when nobody scrapes).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process's recorder, installed as the global one on first use; every later
/// call returns the same handle. Should another recorder already be installed (a
/// program embedding Herald), Herald's pages show only what the database knows.
pub fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        match metrics::set_global_recorder(recorder) {
            Ok(()) => describe(),
            Err(e) => tracing::warn!(error = %e, "another metrics recorder is installed"),
        }
        handle
    })
}

/// The builder with the buckets of each histogram, chosen around what is normal for
/// it: milliseconds for a request, seconds for a send, minutes for a long pass.
fn builder() -> PrometheusBuilder {
    const REQUEST: &[f64] = &[
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    const SEND: &[f64] = &[
        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ];
    const PASS: &[f64] = &[
        0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
    ];
    const LAG: &[f64] = &[
        0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    ];
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in [
        (HTTP_DURATION, REQUEST),
        (SEND_DURATION, SEND),
        (PASS_DURATION, PASS),
        (TICK_LAG, LAG),
    ] {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
            .expect("the buckets are not empty");
    }
    builder
}

/// The help lines of the metrics counted as they happen.
fn describe() {
    describe_histogram!(
        PASS_DURATION,
        Unit::Seconds,
        "How long a dispatch pass took, by outcome."
    );
    describe_histogram!(
        TICK_LAG,
        Unit::Seconds,
        "How late a tick's dispatch pass started after the tick was due."
    );
    describe_histogram!(
        SEND_DURATION,
        Unit::Seconds,
        "How long one send took, by channel and provider (SMS: with the rate limit's wait)."
    );
    describe_counter!(SENDS, "Sends by channel, provider and outcome.");
    describe_counter!(
        DELIVERY_REPORTS,
        "SMS delivery reports by gateway, what they said and what they did."
    );
    describe_counter!(HTTP_REQUESTS, "HTTP requests by method, route and status.");
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "How long HTTP requests took, by method and route."
    );
}

/// Runs the recorder's upkeep every few seconds until `shutdown`.
pub async fn keep_up(handle: &'static PrometheusHandle, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(UPKEEP_EVERY) => handle.run_upkeep(),
        }
    }
}

/// A dispatch pass ended after `took`; `ok` unless it failed.
pub fn pass_finished(took: Duration, ok: bool) {
    let outcome = if ok { "ok" } else { "failed" };
    histogram!(PASS_DURATION, "outcome" => outcome).record(took.as_secs_f64());
}

/// A tick's pass started `lag` after the tick was due.
pub fn tick_lag(lag: Duration) {
    histogram!(TICK_LAG).record(lag.as_secs_f64());
}

/// One send on `channel` through `provider` ended with `outcome` after `took`.
pub fn sent(channel: Channel, provider: &'static str, outcome: &SendOutcome, took: Duration) {
    let outcome = match outcome {
        SendOutcome::Sent { .. } => "sent",
        SendOutcome::Transient { .. } => "transient",
        SendOutcome::Throttled { .. } => "throttled",
        SendOutcome::Permanent { .. } => "permanent",
        SendOutcome::Unknown { .. } => "unknown",
    };
    let channel = channel.as_str();
    histogram!(SEND_DURATION, "channel" => channel, "provider" => provider)
        .record(took.as_secs_f64());
    counter!(SENDS, "channel" => channel, "provider" => provider, "outcome" => outcome)
        .increment(1);
}

/// A delivery report from `gateway` that said `state` did `effect`.
pub fn delivery_report(gateway: &'static str, state: &'static str, effect: &'static str) {
    counter!(DELIVERY_REPORTS, "gateway" => gateway, "state" => state, "effect" => effect)
        .increment(1);
}

/// An HTTP request to `route` (a template, never the raw path, so the number of
/// series stays bounded) answered `status` after `took`.
pub fn http_request(method: &'static str, route: String, status: u16, took: Duration) {
    histogram!(HTTP_DURATION, "method" => method, "route" => route.clone())
        .record(took.as_secs_f64());
    counter!(HTTP_REQUESTS, "method" => method, "route" => route, "status" => status.to_string())
        .increment(1);
}

/// The exposition in Prometheus' text format: what this process counted, then what
/// the database holds now. A database that does not answer leaves out its part and
/// reports [`DATABASE_UP`] 0: the process's own numbers matter most just then.
pub async fn render(handle: &PrometheusHandle, store: &dyn Store) -> String {
    // A recorder of this scrape's own, never installed: see the module's comment.
    let scrape = PrometheusBuilder::new().build_recorder();
    let read = from_store(store).await;
    metrics::with_local_recorder(&scrape, || {
        describe_gauge!(DATABASE_UP, "1 when the database answered this scrape.");
        gauge!(DATABASE_UP).set(if read.is_ok() { 1.0 } else { 0.0 });
    });
    match read {
        Ok(stored) => metrics::with_local_recorder(&scrape, || stored.record()),
        // The cause (which may name a host or user) goes to the log only.
        Err(e) => tracing::warn!(error = %e, "metrics: the database does not answer"),
    }
    let mut page = handle.render();
    page.push_str(&scrape.handle().render());
    page
}

/// What the database holds, read for one scrape.
struct Stored {
    tally: Vec<MessageTally>,
    wallet: WalletState,
    last_pass: Option<DateTime<Utc>>,
    held: bool,
}

async fn from_store(store: &dyn Store) -> Result<Stored, StoreError> {
    Ok(Stored {
        tally: store.message_tally().await?,
        wallet: store.wallet().await?,
        last_pass: store.last_pass().await?,
        held: store.hold().await?.is_some(),
    })
}

impl Stored {
    /// Sets the gauges, in the recorder of the scrape.
    fn record(&self) {
        let Stored {
            tally,
            wallet,
            last_pass,
            held,
        } = self;
        describe_gauge!(
            MESSAGES,
            "Messages by kind, channel, status and reason (empty when none)."
        );
        describe_gauge!(
            QUEUE_DEPTH,
            "Messages waiting to go (queued, held ones included), by channel."
        );
        describe_gauge!(WALLET_BALANCE, "Points free to spend in the SMS wallet.");
        describe_gauge!(WALLET_RESERVED, "Points held for SMS being sent.");
        describe_gauge!(HOLD, "1 while dispatch is on hold.");
        describe_gauge!(
            LAST_PASS,
            Unit::Seconds,
            "When the last dispatch pass of any instance finished (Unix time)."
        );
        for t in tally {
            gauge!(
                MESSAGES,
                "kind" => t.kind.as_str(),
                "channel" => t.channel.as_str(),
                "status" => t.status.as_str(),
                "reason" => t.reason.map(|r| r.as_str()).unwrap_or_default(),
            )
            .set(t.count as f64);
        }
        for channel in Channel::ALL {
            let queued: i64 = tally
                .iter()
                .filter(|t| t.channel == channel && t.status == MessageStatus::Queued)
                .map(|t| t.count)
                .sum();
            gauge!(QUEUE_DEPTH, "channel" => channel.as_str()).set(queued as f64);
        }
        gauge!(WALLET_BALANCE).set(wallet.balance as f64);
        gauge!(WALLET_RESERVED).set(wallet.reserved as f64);
        gauge!(HOLD).set(if *held { 1.0 } else { 0.0 });
        if let Some(at) = last_pass {
            gauge!(LAST_PASS).set(at.timestamp_millis() as f64 / 1000.0);
        }
    }
}
