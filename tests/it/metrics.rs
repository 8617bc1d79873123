//! `GET /metrics` through a real server, on both backends: what the database holds
//! (messages by kind, channel, status and reason; the queue; the wallet; the last
//! pass) read at each scrape, what the process counted (passes, sends, requests by
//! route), and who may read them.
//!
//! The process's recorder is shared by every test in this binary, so counters are
//! compared before and after (other tests count too); the gauges from the database
//! are this test's own and compared exactly.

use std::sync::Arc;

use herald::clock::FixedClock;
use herald::domain::{Audience, MessageKind, MessageStatus, Reach};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::conformance;
use crate::helpers::{TestApp, now, warsaw};
use crate::http::Server;
use crate::smtp::SmtpServer;

conformance!(
    metrics_show_the_outbox_before_and_after_a_pass_and_count_it,
    requests_are_counted_by_route_template_never_by_path,
    metrics_need_their_token_on_the_api_listener_and_none_on_their_own,
);

const TOKEN: &str = "metrics-token-for-the-tests";

/// The API's server over the test's store, with `/metrics` behind [`TOKEN`].
async fn server(app: &TestApp, settings: &herald::config::Settings) -> Server {
    let mut settings = settings.clone();
    settings.http.metrics_token = Some(SecretString::from(TOKEN));
    let herald = herald::app::App::new(
        Arc::clone(&app.store),
        Arc::new(settings.clone()),
        Arc::new(FixedClock::new(now())),
    );
    Server::serve(herald::http::router(herald, &settings.http)).await
}

/// The page, with the token.
async fn scrape(server: &Server) -> Page {
    let res = server
        .client
        .get(format!("{}/metrics", server.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    Page(res.text().await.unwrap())
}

/// A page in Prometheus' text format.
struct Page(String);

impl Page {
    /// The samples of `name` whose labels include `labels`, as (labels, value).
    fn samples(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(Vec<(String, String)>, f64)> {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (metric, set) = match series.split_once('{') {
                    Some((m, rest)) => (m, parse_labels(rest.trim_end_matches('}'))),
                    None => (series, Vec::new()),
                };
                (metric == name).then(|| (set, value.parse::<f64>().unwrap()))
            })
            .filter(|(set, _)| {
                labels
                    .iter()
                    .all(|(k, v)| set.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .collect()
    }

    /// The sum of the samples of `name` with `labels` (0 when there is none).
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(name, labels).iter().map(|(_, v)| v).sum()
    }
}

/// `a="x",b="y"` as pairs (the values here hold no quotes or commas).
fn parse_labels(text: &str) -> Vec<(String, String)> {
    text.split("\",")
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.to_owned(), v.trim_matches('"').to_owned()))
        })
        .collect()
}

async fn metrics_show_the_outbox_before_and_after_a_pass_and_count_it(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    let server = server(&app, &settings).await;
    app.approved_batch(&settings, Audience::AllGroups, Reach::Both, now())
        .await;
    let queued = app.count(MessageStatus::Queued).await;
    let blocked = app.count(MessageStatus::Blocked).await;
    assert!(
        queued > 0 && blocked > 0,
        "{queued} queued, {blocked} blocked"
    );

    let before = scrape(&server).await;
    assert_eq!(before.sum("herald_database_up", &[]), 1.0);
    assert_eq!(
        before.sum(
            "herald_messages",
            &[
                ("kind", "informational"),
                ("channel", "email"),
                ("status", "queued"),
                ("reason", ""),
            ],
        ),
        queued as f64
    );
    assert_eq!(
        before.sum("herald_messages", &[("status", "blocked")]),
        blocked as f64
    );
    assert_eq!(
        before.sum("herald_queue_depth", &[("channel", "email")]),
        queued as f64
    );
    assert_eq!(before.sum("herald_queue_depth", &[("channel", "sms")]), 0.0);
    assert!(
        before
            .samples("herald_dispatch_last_pass_timestamp_seconds", &[])
            .is_empty()
    );
    assert_eq!(before.sum("herald_dispatch_hold", &[]), 0.0);
    let wallet = app.store.wallet().await.unwrap();
    assert_eq!(
        before.sum("herald_wallet_balance_points", &[]),
        wallet.balance as f64
    );

    let at = warsaw("2026-11-24 10:00");
    let clock = Arc::new(FixedClock::new(at));
    let counts = app
        .dispatcher_with(settings.clone(), &clock)
        .run_pass(&MessageKind::ALL, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(counts.sent as i64, queued);

    let after = scrape(&server).await;
    // The gauges are the database's, now.
    assert_eq!(
        after.sum("herald_messages", &[("status", "queued")]),
        0.0,
        "{}",
        after.0
    );
    assert_eq!(
        after.sum(
            "herald_messages",
            &[
                ("kind", "informational"),
                ("channel", "email"),
                ("status", "sent"),
                ("reason", ""),
            ],
        ),
        queued as f64
    );
    assert_eq!(
        after.sum("herald_messages", &[("status", "blocked")]),
        blocked as f64
    );
    assert_eq!(
        after.sum("herald_queue_depth", &[("channel", "email")]),
        0.0
    );
    assert_eq!(
        after.sum("herald_dispatch_last_pass_timestamp_seconds", &[]),
        at.timestamp() as f64
    );
    // The counters are the process's: this pass and its sends are among them.
    let passes = |page: &Page| {
        page.sum(
            "herald_dispatch_pass_duration_seconds_count",
            &[("outcome", "ok")],
        )
    };
    assert!(passes(&after) >= passes(&before) + 1.0);
    let sends = |page: &Page| {
        page.sum(
            "herald_sends_total",
            &[
                ("channel", "email"),
                ("provider", "smtp"),
                ("outcome", "sent"),
            ],
        )
    };
    assert!(sends(&after) >= sends(&before) + queued as f64);
    let timed = |page: &Page| {
        page.sum(
            "herald_send_duration_seconds_count",
            &[("channel", "email"), ("provider", "smtp")],
        )
    };
    assert!(timed(&after) >= timed(&before) + queued as f64);
}

async fn requests_are_counted_by_route_template_never_by_path(app: TestApp) {
    let tokens = crate::http::tokens(&app).await;
    let owner = tokens[0].1.clone();
    let server = server(&app, &app.settings).await;
    let route = [("method", "GET"), ("route", "/api/v1/messages/{id}")];
    let count = |page: &Page, status: &'static str| {
        let mut labels = route.to_vec();
        labels.push(("status", status));
        page.sum("herald_http_requests_total", &labels)
    };
    let before = scrape(&server).await;
    let (status, _) = server
        .call(
            reqwest::Method::GET,
            "/api/v1/messages/987654",
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, answer): (StatusCode, Value) = server
        .call(reqwest::Method::GET, "/no/such/route/12345", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let after = scrape(&server).await;
    assert!(count(&after, "404") >= count(&before, "404") + 1.0);
    assert!(
        !after.0.contains("987654") && !after.0.contains("12345"),
        "a path became a label:\n{}",
        after.0
    );
    assert!(
        after.sum(
            "herald_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ) >= 1.0
    );
    assert!(
        after.sum(
            "herald_http_request_duration_seconds_count",
            &[("method", "GET"), ("route", "/metrics")]
        ) >= 1.0
    );
}

async fn metrics_need_their_token_on_the_api_listener_and_none_on_their_own(app: TestApp) {
    // Neither a token nor an address of their own: not served on the API's listener.
    let herald = app.app_at(now());
    let plain = Server::serve(herald::http::router(herald.clone(), &app.settings.http)).await;
    let (status, answer) = plain
        .call(reqwest::Method::GET, "/metrics", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["error"]["code"], "not_found", "{answer}");

    // With a token: only that token opens it; an API token does not.
    let guarded = server(&app, &app.settings).await;
    let api_token = crate::http::tokens(&app).await[0].1.clone();
    for token in [
        None,
        Some("wrong-token-of-some-length"),
        Some(api_token.as_str()),
    ] {
        let (status, answer) = guarded
            .call(reqwest::Method::GET, "/metrics", token, None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(answer["error"]["code"], "unauthenticated", "{answer}");
    }
    assert!(scrape(&guarded).await.0.contains("herald_database_up 1"));

    // Their own listener serves them to whoever reaches it, and nothing else.
    let own = Server::serve(herald::http::metrics_router(herald)).await;
    let res = own
        .client
        .get(format!("{}/metrics", own.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("herald_queue_depth"));
    let (status, answer) = own
        .call(
            reqwest::Method::GET,
            "/api/v1/wallet",
            Some(&api_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["error"]["code"], "not_found", "{answer}");
}
