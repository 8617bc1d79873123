//! `/healthz` and `/readyz` through a real server, on both backends: ready after a
//! pass, overdue three ticks later, a hold that is no failure, a restarted instance's
//! grace for its first pass, a schema behind this build, and a database that does
//! not answer.

use std::sync::Arc;

use chrono::Duration;
use herald::app::{Actor, App};
use herald::clock::FixedClock;
use herald::domain::MessageKind;
use herald::store::PassCounts;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::conformance;
use crate::helpers::{OWNER, TestApp, now};
use crate::http::Server;

conformance!(
    ready_after_a_pass_and_not_when_three_ticks_go_by_without_one,
    a_started_instance_has_three_ticks_for_its_first_pass,
    not_ready_while_the_schema_is_behind_this_build,
    not_ready_when_the_database_does_not_answer,
    the_daemon_keeps_the_database_clock,
);

/// The API over `store`, on `clock`.
async fn server(
    app: &TestApp,
    store: Arc<dyn herald::store::Store>,
    clock: &Arc<FixedClock>,
) -> Server {
    let mut settings = app.settings.clone();
    settings.http.metrics_token = Some(METRICS_TOKEN.into());
    let herald = App::new(
        store,
        Arc::new(settings.clone()),
        Arc::clone(clock) as Arc<dyn herald::clock::Clock>,
    );
    Server::serve(herald::http::router(herald, &settings.http)).await
}

const METRICS_TOKEN: &str = "metrics-token-for-the-tests";

async fn readyz(server: &Server) -> (StatusCode, Value) {
    server.call(Method::GET, "/readyz", None, None).await
}

fn checks(database: &str, migrations: &str, dispatcher: &str) -> Value {
    json!({"database": database, "migrations": migrations, "dispatcher": dispatcher, "outcomes": "ok"})
}

async fn ready_after_a_pass_and_not_when_three_ticks_go_by_without_one(app: TestApp) {
    let clock = Arc::new(FixedClock::new(now()));
    let server = server(&app, Arc::clone(&app.store), &clock).await;
    // Started, no pass yet: the first is not due.
    let (status, answer) = readyz(&server).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["checks"], checks("ok", "ok", "starting"));

    let dispatcher = app.dispatcher_with(app.settings.clone(), &clock);
    let pass = || async {
        dispatcher
            .run_pass(&MessageKind::ALL, &CancellationToken::new())
            .await
            .unwrap()
    };
    pass().await;
    let (status, answer) = readyz(&server).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"status": "ready", "checks": checks("ok", "ok", "ok")})
    );

    // A pass every five minutes (the default schedule): the third tick after the
    // last pass and a minute's grace, then overdue.
    clock.set(now() + Duration::minutes(16));
    let (status, _) = readyz(&server).await;
    assert_eq!(status, StatusCode::OK);
    clock.set(now() + Duration::minutes(16) + Duration::seconds(1));
    let (status, answer) = readyz(&server).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(
        answer,
        json!({"status": "not_ready", "checks": checks("ok", "ok", "overdue")})
    );

    // On hold, passes go on and find the hold: that is no failure.
    app.owner().await;
    let herald = App::new(
        Arc::clone(&app.store),
        Arc::new(app.settings.clone()),
        Arc::clone(&clock) as Arc<dyn herald::clock::Clock>,
    );
    herald
        .set_hold(&Actor::operator(OWNER), Some("checking the batch"))
        .await
        .unwrap();
    pass().await;
    let (status, answer) = readyz(&server).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["checks"]["dispatcher"], "ok");
}

async fn a_started_instance_has_three_ticks_for_its_first_pass(app: TestApp) {
    // The last pass is a day old: another instance, or this one before a restart.
    app.store
        .record_pass("gone", &PassCounts::default(), now() - Duration::days(1))
        .await
        .unwrap();
    let clock = Arc::new(FixedClock::new(now()));
    let server = server(&app, Arc::clone(&app.store), &clock).await;
    let (status, answer) = readyz(&server).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["checks"]["dispatcher"], "starting");
    clock.set(now() + Duration::minutes(17));
    let (status, answer) = readyz(&server).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["checks"]["dispatcher"], "overdue");
}

async fn not_ready_while_the_schema_is_behind_this_build(app: TestApp) {
    let clock = Arc::new(FixedClock::new(now()));
    let server = server(&app, Arc::clone(&app.store), &clock).await;
    // As if the database were restored from a backup taken before the last upgrade.
    let forget = "DELETE FROM _sqlx_migrations \
                  WHERE version = (SELECT max(version) FROM _sqlx_migrations)";
    app.execute_raw(forget, forget).await;
    let (status, answer) = readyz(&server).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["status"], "not_ready");
    assert_eq!(answer["checks"]["database"], "ok");
    assert_eq!(answer["checks"]["migrations"], "behind");
}

async fn not_ready_when_the_database_does_not_answer(app: TestApp) {
    // A server on connections of its own, which then close under it: every query
    // fails as it would with the database gone.
    let store = herald::store::open(&app.settings.database).await.unwrap();
    let clock = Arc::new(FixedClock::new(now()));
    let server = server(&app, Arc::clone(&store), &clock).await;
    let (status, _) = readyz(&server).await;
    assert_eq!(status, StatusCode::OK);
    store.close().await;
    let (status, answer) = readyz(&server).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(
        answer,
        json!({"status": "not_ready", "checks": checks("unreachable", "unknown", "unknown")})
    );
    // Alive all the same: liveness does not depend on the database.
    let (status, answer) = server.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // The metrics say so too, and still show what the process counted.
    let page = server
        .client
        .get(format!("{}/metrics", server.base))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("herald_database_up 0"), "{page}");
    assert!(!page.contains("herald_queue_depth"), "{page}");
    assert!(page.contains("herald_http_requests_total"), "{page}");
}

/// `herald run` keeps PostgreSQL's time (`now()`), measured over a round trip, so
/// every instance on one database judges leases by one clock: a clock set an hour
/// off comes back to the server's. SQLite runs in the process: nothing to follow.
async fn the_daemon_keeps_the_database_clock(app: TestApp) {
    use herald::clock::{Clock, DatabaseClock};
    let clock = DatabaseClock::default();
    let an_hour = Duration::hours(1);
    clock.set_offset(an_hour);
    assert!(
        (clock.now() - chrono::Utc::now() - an_hour)
            .num_milliseconds()
            .abs()
            < 100
    );
    herald::daemon::set_to_database_clock(&clock, &*app.store)
        .await
        .unwrap();
    if app.store.database_now().await.unwrap().is_some() {
        // The server runs on this machine: its clock and ours agree within a round trip.
        assert!(
            clock.offset().num_milliseconds().abs() < 500,
            "{:?}",
            clock.offset()
        );
    } else {
        assert!(
            (clock.offset() - an_hour).num_milliseconds().abs() < 100,
            "SQLite has no clock of its own: {:?}",
            clock.offset()
        );
    }
}
