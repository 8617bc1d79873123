//! The routes of `/api/v1` and the health endpoints. Each handler reads its input,
//! makes one `App` call as the caller's operator, and answers its result as JSON.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Body, Caller};
use crate::app::App;

/// The API's routes.
pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/wallet", get(wallet))
        .route("/api/v1/wallet/top-ups", post(top_up))
        .route("/api/v1/hold", get(hold).put(set_hold))
        .route("/api/v1/holidays", get(holidays).post(add_holiday))
        .route("/api/v1/holidays/{id}", delete(remove_holiday))
}

type Answer = Result<axum::response::Response, ApiError>;

/// Alive: answers without touching the database.
async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// Ready: the database answers.
async fn readyz(State(app): State<App>) -> impl IntoResponse {
    match app.store().hold().await {
        Ok(_) => (
            StatusCode::OK,
            axum::Json(json!({"status": "ready", "checks": {"database": "ok"}})),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "not_ready", "checks": {"database": e.to_string()}})),
        ),
    }
}

#[derive(Deserialize)]
struct LedgerQuery {
    ledger: Option<i64>,
}

async fn wallet(State(app): State<App>, Caller(actor): Caller, q: Query<LedgerQuery>) -> Answer {
    let view = app
        .wallet_view(&actor, q.ledger.unwrap_or(20).clamp(0, 1000))
        .await?;
    Ok(axum::Json(view).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopUp {
    points: i64,
    note: String,
}

async fn top_up(State(app): State<App>, Caller(actor): Caller, Body(t): Body<TopUp>) -> Answer {
    let wallet = app.top_up(&actor, t.points, &t.note).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"balance": wallet.balance, "reserved": wallet.reserved})),
    )
        .into_response())
}

async fn hold(State(app): State<App>, Caller(actor): Caller) -> Answer {
    let hold = app.hold(&actor).await?;
    Ok(axum::Json(json!({"on": hold.is_some(), "hold": hold})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetHold {
    on: bool,
    reason: Option<String>,
}

async fn set_hold(State(app): State<App>, Caller(actor): Caller, Body(h): Body<SetHold>) -> Answer {
    let reason = match (h.on, h.reason.as_deref()) {
        (true, Some(reason)) => Some(reason),
        (true, None) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "reason: expected why dispatch is held",
            )
            .on("reason"));
        }
        (false, _) => None,
    };
    let change = app.set_hold(&actor, reason).await?;
    let hold = app.hold(&actor).await?;
    Ok(axum::Json(json!({"on": hold.is_some(), "hold": hold, "change": change})).into_response())
}

#[derive(Deserialize)]
struct HolidaysQuery {
    #[serde(default)]
    all: bool,
}

async fn holidays(
    State(app): State<App>,
    Caller(actor): Caller,
    q: Query<HolidaysQuery>,
) -> Answer {
    Ok(axum::Json(app.holidays(&actor, q.all).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewHoliday {
    name: String,
    first_day: NaiveDate,
    last_day: Option<NaiveDate>,
}

async fn add_holiday(
    State(app): State<App>,
    Caller(actor): Caller,
    Body(h): Body<NewHoliday>,
) -> Answer {
    let last = h.last_day.unwrap_or(h.first_day);
    let holiday = app.add_holiday(&actor, &h.name, h.first_day, last).await?;
    Ok((StatusCode::CREATED, axum::Json(holiday)).into_response())
}

async fn remove_holiday(
    State(app): State<App>,
    Caller(actor): Caller,
    Path(id): Path<i64>,
) -> Answer {
    app.remove_holiday(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
