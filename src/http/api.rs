//! The routes of `/api/v1` and the health endpoints. Each handler reads its input,
//! makes one `App` call as the caller's operator, and answers its result as JSON.
//!
//! Each handler carries its `#[utoipa::path]`: the method, path, parameters, body and
//! answers the OpenAPI document (`openapi.rs`) describes. The answers are typed
//! structs rather than ad-hoc JSON, so what the document says is what is sent.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, MethodRouter};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::openapi::{BodyErrors, ImportDocument};
use super::{ApiError, Body, Caller, Params, PathParam};
use crate::app::{
    Actor, App, BatchView, HoldChange, NotifyContent, NotifyRequest, SendContent, SendRequest,
    Summary, WalletView,
};
use crate::diagnose::Lookup;
use crate::domain::{
    Audience, BatchId, BatchStatus, Channel, ChannelChoice, Holiday, MessageId, MessageStatus,
    Reach, Reason,
};
use crate::import::ImportReport;
use crate::store::{BatchSummary, Decision, Hold, MessageAction, MessageFilter, MessageView};

/// One route: a method and a path, and the handler that serves them.
pub(super) struct Route {
    /// The method.
    pub(super) method: Method,
    /// The path, with `{name}` for a parameter.
    pub(super) path: &'static str,
    /// The handler, for this method only.
    pub(super) handler: MethodRouter<App>,
}

/// A route whose method is named once, for the router and for the list of routes.
pub(super) fn route<H, T>(method: Method, path: &'static str, handler: H) -> Route
where
    H: Handler<T, App>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a method axum routes");
    Route {
        method,
        path,
        handler: axum::routing::on(filter, handler),
    }
}

/// The API's routes. Each is also described in the OpenAPI document (`openapi.rs`);
/// the integration tests fail when one is not.
pub(super) fn routes() -> Vec<Route> {
    use Method as M;
    vec![
        route(M::GET, "/healthz", healthz),
        route(M::GET, "/readyz", readyz),
        route(
            M::GET,
            "/api/v1/openapi.json",
            super::openapi::serve_document,
        ),
        route(M::GET, "/api/v1/wallet", wallet),
        route(M::POST, "/api/v1/wallet/top-ups", top_up),
        route(M::GET, "/api/v1/hold", hold),
        route(M::PUT, "/api/v1/hold", set_hold),
        route(M::GET, "/api/v1/holidays", holidays),
        route(M::POST, "/api/v1/holidays", add_holiday),
        route(M::DELETE, "/api/v1/holidays/{id}", remove_holiday),
        route(M::POST, "/api/v1/import", import),
        route(M::POST, "/api/v1/notifications", notify),
        route(M::POST, "/api/v1/sends", send),
        route(M::GET, "/api/v1/batches", batches),
        route(M::GET, "/api/v1/batches/{id}", batch),
        route(M::POST, "/api/v1/batches/{id}/approve", approve),
        route(M::POST, "/api/v1/batches/{id}/reject", reject),
        route(M::GET, "/api/v1/messages", messages),
        route(M::GET, "/api/v1/messages/{id}", message),
        route(M::POST, "/api/v1/messages/{id}/resend", resend),
        route(M::POST, "/api/v1/messages/{id}/cancel", cancel),
        route(M::GET, "/api/v1/messages/{id}/diagnosis", message_diagnosis),
        route(
            M::GET,
            "/api/v1/recipients/{id}/diagnosis",
            recipient_diagnosis,
        ),
    ]
}

/// Refuses an `Idempotency-Key` on a route that cannot honour one yet, rather than
/// ignoring it: a caller counting on it would repeat a top-up or a send.
fn no_idempotency_key(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    if headers.contains_key("idempotency-key") {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "idempotency_key: this route does not take an Idempotency-Key yet (only \
             /api/v1/notifications does); before repeating a request, look at what the \
             first one did",
        )
        .on("idempotency_key"));
    }
    Ok(())
}

/// An id from the path, refused in the API's error shape when it is not a number.
fn id_in_path(text: &str) -> Result<i64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{text:?} is not an id: expected a number"),
        )
    })
}

/// A stable code from a query parameter, refused naming the parameter.
fn code_in_query<T: std::str::FromStr<Err = crate::domain::codes::UnknownCode>>(
    field: &str,
    text: Option<&str>,
) -> Result<Option<T>, ApiError> {
    text.map(|t| {
        t.parse().map_err(|e: crate::domain::codes::UnknownCode| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string()).on(field)
        })
    })
    .transpose()
}

type Answer = Result<axum::response::Response, ApiError>;

/// Whether the process is alive.
#[derive(Serialize, ToSchema)]
struct Health {
    /// `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// Alive: answers without touching the database (no token).
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process answers", body = Health)))]
async fn healthz() -> impl IntoResponse {
    axum::Json(Health { status: "ok" })
}

/// Whether this instance can do its work: each check and what it found.
#[derive(Serialize, ToSchema)]
struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(example = "ready")]
    status: &'static str,
    /// Each check's finding.
    checks: crate::app::Readiness,
}

/// Ready: the database answers, its schema is this build's, and dispatch passes are
/// not overdue (`App::readiness`); 503 naming the failing check otherwise (no token).
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Every check passes", body = Readiness),
    (status = 503, description = "A check fails: `database` unreachable, `migrations` \
        behind, or `dispatcher` overdue (the cause is in the log)", body = Readiness),
))]
async fn readyz(State(app): State<App>) -> impl IntoResponse {
    let checks = app.readiness().await;
    let (status, word) = if checks.ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    };
    (
        status,
        axum::Json(Readiness {
            status: word,
            checks,
        }),
    )
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LedgerQuery {
    /// How many of the newest ledger lines to include (0 to 1000; 20 by default).
    ledger: Option<i64>,
}

/// The SMS wallet: balance, reserved points, the low-balance threshold, the next 24
/// hours' need and the newest ledger lines.
#[utoipa::path(get, path = "/api/v1/wallet", tag = "wallet", params(LedgerQuery),
    security(("bearer" = [])), responses(
    (status = 200, description = "The wallet", body = WalletView),
    (status = 400, description = "A query parameter does not parse", body = ErrorBody),
))]
async fn wallet(
    State(app): State<App>,
    Caller(actor): Caller,
    Params(q): Params<LedgerQuery>,
) -> Answer {
    let view = app
        .wallet_view(&actor, q.ledger.unwrap_or(20).clamp(0, 1000))
        .await?;
    Ok(axum::Json(view).into_response())
}

/// Prepaid points bought.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TopUp {
    /// How many points (more than zero).
    #[schema(example = 500)]
    points: i64,
    /// What paid for them (an invoice number).
    #[schema(example = "FV 12/2026")]
    note: String,
}

/// The wallet after a top-up.
#[derive(Serialize, ToSchema)]
struct WalletAfter {
    /// Points left to spend.
    balance: i64,
    /// Points held for SMS being sent now.
    reserved: i64,
}

/// Adds prepaid points (needs `top_up`); SMS waiting for credit go on the next pass.
#[utoipa::path(post, path = "/api/v1/wallet/top-ups", tag = "wallet", request_body = TopUp,
    security(("bearer" = [])), responses(
    (status = 201, description = "Credited", body = WalletAfter),
    BodyErrors,
    (status = 422, description = "`points` is not positive, `note` is blank, or an \
        `Idempotency-Key` was sent (this route cannot honour one)", body = ErrorBody),
))]
async fn top_up(
    State(app): State<App>,
    Caller(actor): Caller,
    headers: axum::http::HeaderMap,
    Body(t): Body<TopUp>,
) -> Answer {
    no_idempotency_key(&headers)?;
    let wallet = app.top_up(&actor, t.points, &t.note).await?;
    let after = WalletAfter {
        balance: wallet.balance,
        reserved: wallet.reserved,
    };
    Ok((StatusCode::CREATED, axum::Json(after)).into_response())
}

/// The hold switch: on pauses every dispatcher at its next pass.
#[derive(Serialize, ToSchema)]
struct HoldState {
    /// Whether dispatch is held.
    on: bool,
    /// Since when, why and by whom, while it is on.
    hold: Option<Hold>,
    /// What the request did (only in the answer to a change).
    #[serde(skip_serializing_if = "Option::is_none")]
    change: Option<HoldChange>,
}

/// Whether dispatch is held, and why.
#[utoipa::path(get, path = "/api/v1/hold", tag = "calendar", security(("bearer" = [])),
    responses((status = 200, description = "The hold switch", body = HoldState)))]
async fn hold(State(app): State<App>, Caller(actor): Caller) -> Answer {
    let hold = app.hold(&actor).await?;
    let state = HoldState {
        on: hold.is_some(),
        hold,
        change: None,
    };
    Ok(axum::Json(state).into_response())
}

/// The hold switch as asked for.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetHold {
    /// Hold dispatch (`true`) or let it go on.
    on: bool,
    /// Why (needed to switch it on).
    #[schema(example = "wrong date in the batch")]
    reason: Option<String>,
}

/// Holds dispatch, or lets it go on (needs `manage_settings`).
#[utoipa::path(put, path = "/api/v1/hold", tag = "calendar", request_body = SetHold,
    security(("bearer" = [])), responses(
    (status = 200, description = "The switch, and whether this request changed it",
        body = HoldState),
    BodyErrors,
    (status = 422, description = "Switched on without a `reason`", body = ErrorBody),
))]
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
    let state = HoldState {
        on: hold.is_some(),
        hold,
        change: Some(change),
    };
    Ok(axum::Json(state).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HolidaysQuery {
    /// Past days off too (by default only from today on).
    #[serde(default)]
    all: bool,
}

/// Days off, from today on (or all of them).
#[utoipa::path(get, path = "/api/v1/holidays", tag = "calendar", params(HolidaysQuery),
    security(("bearer" = [])), responses(
    (status = 200, description = "Days off, earliest first", body = Vec<Holiday>),
    (status = 400, description = "A query parameter does not parse", body = ErrorBody),
))]
async fn holidays(
    State(app): State<App>,
    Caller(actor): Caller,
    Params(q): Params<HolidaysQuery>,
) -> Answer {
    Ok(axum::Json(app.holidays(&actor, q.all).await?).into_response())
}

/// A day off, or a run of days off (both ends included).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewHoliday {
    /// What people call it.
    #[schema(example = "Ferie zimowe")]
    name: String,
    /// The first day off.
    first_day: NaiveDate,
    /// The last day off (the first one when absent).
    last_day: Option<NaiveDate>,
}

/// Adds a day off or a range of them (needs `manage_settings`).
#[utoipa::path(post, path = "/api/v1/holidays", tag = "calendar", request_body = NewHoliday,
    security(("bearer" = [])), responses(
    (status = 201, description = "Added", body = Holiday),
    BodyErrors,
    (status = 422, description = "A blank name or a range that runs backwards (`holiday`), \
        or an `Idempotency-Key`", body = ErrorBody),
))]
async fn add_holiday(
    State(app): State<App>,
    Caller(actor): Caller,
    headers: axum::http::HeaderMap,
    Body(h): Body<NewHoliday>,
) -> Answer {
    no_idempotency_key(&headers)?;
    let last = h.last_day.unwrap_or(h.first_day);
    let holiday = app.add_holiday(&actor, &h.name, h.first_day, last).await?;
    Ok((StatusCode::CREATED, axum::Json(holiday)).into_response())
}

/// Removes a day off (needs `manage_settings`).
#[utoipa::path(delete, path = "/api/v1/holidays/{id}", tag = "calendar",
    params(("id" = i64, Path, description = "The day off's id")),
    security(("bearer" = [])), responses(
    (status = 204, description = "Removed"),
    (status = 404, description = "No such day off, or an id that is not a number",
        body = ErrorBody),
))]
async fn remove_holiday(
    State(app): State<App>,
    Caller(actor): Caller,
    PathParam(id): PathParam,
) -> Answer {
    app.remove_holiday(&actor, id_in_path(&id)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct BatchesQuery {
    /// Only batches in this status.
    #[param(value_type = Option<BatchStatus>)]
    status: Option<String>,
}

/// Batches, newest first, with their counts per status and reason.
#[utoipa::path(get, path = "/api/v1/batches", tag = "outbox", params(BatchesQuery),
    security(("bearer" = [])), responses(
    (status = 200, description = "Batches, newest first", body = Vec<BatchSummary>),
    (status = 400, description = "A query parameter does not parse", body = ErrorBody),
    (status = 422, description = "`status` is not a batch status", body = ErrorBody),
))]
async fn batches(
    State(app): State<App>,
    Caller(actor): Caller,
    Params(q): Params<BatchesQuery>,
) -> Answer {
    let status = code_in_query("status", q.status.as_deref())?;
    Ok(axum::Json(app.batches(&actor, status).await?).into_response())
}

/// The approver's view, with the version an approval or rejection must name.
#[utoipa::path(get, path = "/api/v1/batches/{id}", tag = "outbox",
    params(("id" = i64, Path, description = "The batch's id")),
    security(("bearer" = [])), responses(
    (status = 200, description = "The batch as an approver sees it, with its `version`",
        body = BatchView),
    (status = 404, description = "No such batch", body = ErrorBody),
))]
async fn batch(State(app): State<App>, Caller(actor): Caller, PathParam(id): PathParam) -> Answer {
    let view = app.batch_view(&actor, BatchId(id_in_path(&id)?)).await?;
    Ok(axum::Json(view).into_response())
}

/// An approval or a rejection of the batch as it was shown.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    /// The version of the batch the caller showed (`GET /api/v1/batches/{id}`).
    #[schema(example = "4e96e82a-0b271941-14")]
    seen: Option<String>,
    /// Only these messages of the batch (all of them when empty).
    #[serde(default)]
    messages: Vec<i64>,
    /// Why (a rejection).
    reason: Option<String>,
}

/// A decision taken.
#[derive(Serialize, ToSchema)]
struct DecisionMade {
    /// How many messages it moved.
    messages: u64,
    /// The version it was taken on.
    version: String,
}

/// Approves a batch (all its waiting messages, or those named) as it was shown
/// (needs `approve`).
#[utoipa::path(post, path = "/api/v1/batches/{id}/approve", tag = "outbox",
    params(("id" = i64, Path, description = "The batch's id")), request_body = DecisionBody,
    security(("bearer" = [])), responses(
    (status = 200, description = "Approved", body = DecisionMade),
    BodyErrors,
    (status = 404, description = "No such batch", body = ErrorBody),
    (status = 409, description = "The batch changed since the version `seen`, or is \
        decided already; the message says what changed", body = ErrorBody),
    (status = 422, description = "No `seen` version", body = ErrorBody),
))]
async fn approve(
    State(app): State<App>,
    Caller(actor): Caller,
    PathParam(id): PathParam,
    Body(d): Body<DecisionBody>,
) -> Answer {
    decide(app, actor, &id, d, Decision::Approve).await
}

/// Rejects a batch (all its waiting messages, or those named) as it was shown, with
/// a reason (needs `approve`).
#[utoipa::path(post, path = "/api/v1/batches/{id}/reject", tag = "outbox",
    params(("id" = i64, Path, description = "The batch's id")), request_body = DecisionBody,
    security(("bearer" = [])), responses(
    (status = 200, description = "Rejected", body = DecisionMade),
    BodyErrors,
    (status = 404, description = "No such batch", body = ErrorBody),
    (status = 409, description = "The batch changed since the version `seen`, or is \
        decided already; the message says what changed", body = ErrorBody),
    (status = 422, description = "No `seen` version", body = ErrorBody),
))]
async fn reject(
    State(app): State<App>,
    Caller(actor): Caller,
    PathParam(id): PathParam,
    Body(d): Body<DecisionBody>,
) -> Answer {
    let reason = d.reason.clone().unwrap_or_default();
    decide(app, actor, &id, d, Decision::Reject(reason)).await
}

/// A decision over the API always names the version it was taken on: a platform
/// deciding on a batch it has not shown would approve blind.
async fn decide(app: App, actor: Actor, id: &str, d: DecisionBody, decision: Decision) -> Answer {
    let Some(seen) = d.seen.as_deref().filter(|s| !s.trim().is_empty()) else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "seen: expected the version of the batch that was shown (GET /api/v1/batches/{id})",
        )
        .on("seen"));
    };
    let only: Vec<MessageId> = d.messages.iter().copied().map(MessageId).collect();
    let taken = app
        .decide(
            &actor,
            BatchId(id_in_path(id)?),
            &only,
            decision,
            Some(seen),
        )
        .await?;
    let taken = DecisionMade {
        messages: taken.messages,
        version: taken.view.version,
    };
    Ok(axum::Json(taken).into_response())
}

/// What resending or cancelling a message did.
#[derive(Serialize, ToSchema)]
struct MessageActed {
    /// The message.
    id: MessageId,
    /// The status it had before.
    status_before: MessageStatus,
}

/// Sends again a message whose outcome is `unknown` (or that `failed`) (needs
/// `approve`).
#[utoipa::path(post, path = "/api/v1/messages/{id}/resend", tag = "messages",
    params(("id" = i64, Path, description = "The message's id")),
    security(("bearer" = [])), responses(
    (status = 200, description = "Queued again", body = MessageActed),
    (status = 404, description = "No such message", body = ErrorBody),
    (status = 409, description = "The message is not in a status that can be resent",
        body = ErrorBody),
))]
async fn resend(State(app): State<App>, Caller(actor): Caller, PathParam(id): PathParam) -> Answer {
    act(app, actor, &id, MessageAction::Resend).await
}

/// Withdraws a message not sent yet, or drops an `unknown` one (needs `approve`).
#[utoipa::path(post, path = "/api/v1/messages/{id}/cancel", tag = "messages",
    params(("id" = i64, Path, description = "The message's id")),
    security(("bearer" = [])), responses(
    (status = 200, description = "Cancelled", body = MessageActed),
    (status = 404, description = "No such message", body = ErrorBody),
    (status = 409, description = "The message is not in a status that can be cancelled",
        body = ErrorBody),
))]
async fn cancel(State(app): State<App>, Caller(actor): Caller, PathParam(id): PathParam) -> Answer {
    act(app, actor, &id, MessageAction::Cancel).await
}

async fn act(app: App, actor: Actor, id: &str, action: MessageAction) -> Answer {
    let id = MessageId(id_in_path(id)?);
    let status_before = app.act_on_message(&actor, id, action).await?;
    Ok(axum::Json(MessageActed { id, status_before }).into_response())
}

/// One message with its events and attempts (the JSON of `herald diagnose
/// --message`).
#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "messages",
    params(("id" = i64, Path, description = "The message's id")),
    security(("bearer" = [])), responses(
    (status = 200, description = "The message, its attempts, its events and its batch's \
        decision: the JSON of `herald diagnose --message`", body = Object),
    (status = 404, description = "No such message", body = ErrorBody),
))]
async fn message(state: State<App>, caller: Caller, id: PathParam) -> Answer {
    message_diagnosis(state, caller, id).await
}

/// One message's whole story (the JSON of `herald diagnose --message`).
#[utoipa::path(get, path = "/api/v1/messages/{id}/diagnosis", tag = "diagnosis",
    params(("id" = i64, Path, description = "The message's id")),
    security(("bearer" = [])), responses(
    (status = 200, description = "The message, its attempts, its events and its batch's \
        decision: the JSON of `herald diagnose --message`", body = Object),
    (status = 404, description = "No such message", body = ErrorBody),
))]
async fn message_diagnosis(
    State(app): State<App>,
    Caller(actor): Caller,
    PathParam(id): PathParam,
) -> Answer {
    let timeline = app
        .diagnose_message(&actor, MessageId(id_in_path(&id)?))
        .await?;
    Ok(axum::Json(timeline).into_response())
}

/// Why a person did (not) get messages, by the platform's id (or any id, address or
/// number Herald knows them by): the JSON of `herald diagnose`.
#[utoipa::path(get, path = "/api/v1/recipients/{id}/diagnosis", tag = "diagnosis",
    params(("id" = String, Path,
        description = "The platform's id, Herald's id, an email address or a phone number")),
    security(("bearer" = [])), responses(
    (status = 200, description = "The person, their channels' checks, timing, the \
        dispatcher and their recent messages: the JSON of `herald diagnose`", body = Object),
    (status = 404, description = "Nobody matches", body = ErrorBody),
    (status = 409, description = "Several people match (`ambiguous`); the message names \
        them", body = ErrorBody),
))]
async fn recipient_diagnosis(
    State(app): State<App>,
    Caller(actor): Caller,
    PathParam(id): PathParam,
) -> Answer {
    match app.diagnose_recipient(&actor, &id).await? {
        Lookup::One(d) => Ok(axum::Json(d).into_response()),
        Lookup::None { query } => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("nobody matches {query:?}"),
        )),
        Lookup::Ambiguous { query, matches } => Err(ApiError::new(
            StatusCode::CONFLICT,
            "ambiguous",
            format!(
                "{} people match {query:?}: {}",
                matches.len(),
                matches
                    .iter()
                    .map(|r| r.external_id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct MessagesQuery {
    /// Only messages in this status.
    #[param(value_type = Option<MessageStatus>)]
    status: Option<String>,
    /// Only messages with this reason code.
    #[param(value_type = Option<Reason>)]
    reason: Option<String>,
    /// Only messages of this kind.
    #[param(value_type = Option<crate::domain::MessageKind>)]
    kind: Option<String>,
    /// Only messages on this channel.
    #[param(value_type = Option<Channel>)]
    channel: Option<String>,
    /// Only messages to this person (the platform's id).
    recipient: Option<String>,
    /// Only messages of this batch.
    batch: Option<i64>,
    /// Only messages created at or after this instant (RFC 3339).
    since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only messages created before this instant (RFC 3339).
    until: Option<chrono::DateTime<chrono::Utc>>,
    /// At most this many (1 to 1000; 100 by default).
    limit: Option<i64>,
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
}

/// A page of messages, newest first.
#[derive(Serialize, ToSchema)]
struct MessagePage {
    /// The messages.
    items: Vec<MessageView>,
    /// Pass back as `cursor` for the next page; `null` when there is none.
    next_cursor: Option<String>,
}

/// The largest page, and the one given when none is asked for.
const PAGE_MAX: i64 = 1000;
const PAGE_DEFAULT: i64 = 100;

/// Messages newest first, a page at a time: `{items, next_cursor}`; pass
/// `next_cursor` back as `cursor` for the next page (`null`: there is none).
#[utoipa::path(get, path = "/api/v1/messages", tag = "messages", params(MessagesQuery),
    security(("bearer" = [])), responses(
    (status = 200, description = "A page of messages", body = MessagePage),
    (status = 400, description = "A query parameter does not parse", body = ErrorBody),
    (status = 422, description = "A filter that is not a known code, a `limit` out of \
        range, or a `cursor` this API did not give", body = ErrorBody),
))]
async fn messages(
    State(app): State<App>,
    Caller(actor): Caller,
    Params(q): Params<MessagesQuery>,
) -> Answer {
    let limit = q.limit.unwrap_or(PAGE_DEFAULT);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("limit: {limit}: expected 1 to {PAGE_MAX}"),
        )
        .on("limit"));
    }
    let before = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(MessageId(c.parse().map_err(|_| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("cursor: {c:?} is not a cursor this API gave"),
            )
            .on("cursor")
        })?)),
    };
    let filter = MessageFilter {
        batch: q.batch.map(BatchId),
        recipient: q.recipient.clone(),
        status: code_in_query("status", q.status.as_deref())?,
        kind: code_in_query("kind", q.kind.as_deref())?,
        channel: code_in_query("channel", q.channel.as_deref())?,
        reason: code_in_query("reason", q.reason.as_deref())?,
        since: q.since,
        until: q.until,
        before,
        limit: Some(limit),
    };
    let items = app.messages(&actor, &filter).await?.messages;
    let next_cursor = (items.len() as i64 == limit)
        .then(|| items.last().map(|m| m.id.0.to_string()))
        .flatten();
    Ok(axum::Json(MessagePage { items, next_cursor }).into_response())
}

/// An informational send, as `herald send` takes it: exactly one audience (`to`,
/// `groups`, `teachers_of`, `all_groups` or `active_contracts`), and a text (`subject`
/// for email, `body`, `html`) or a template (`template`, `vars`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SendBody {
    /// People, by the platform's ids.
    #[serde(default)]
    to: Vec<String>,
    /// Groups, by the platform's ids.
    #[serde(default)]
    groups: Vec<String>,
    /// The teachers of this group.
    teachers_of: Option<String>,
    /// Every group.
    #[serde(default)]
    all_groups: bool,
    /// Everyone with an active contract.
    #[serde(default)]
    active_contracts: bool,
    /// For students: the students, their guardians, or both (`both` by default).
    #[schema(value_type = Option<Reach>)]
    reach: Option<Reach>,
    /// `email` (the default), `sms`, `both` or `sms_if_no_email`.
    #[schema(value_type = Option<ChannelChoice>)]
    channel: Option<String>,
    /// The subject (email, with `body`).
    subject: Option<String>,
    /// The text.
    body: Option<String>,
    /// An HTML body beside the text (email, with `body`).
    html: Option<String>,
    /// A saved template's name, rendered for each person in their locale.
    template: Option<String>,
    /// Values for the template's free variables (`{{ vars.name }}`).
    #[serde(default)]
    vars: BTreeMap<String, String>,
    /// SMS: replace national characters to stay in GSM-7.
    #[serde(default)]
    transliterate: bool,
    /// Compose and summarise, store nothing.
    #[serde(default)]
    dry_run: bool,
}

/// A send composed: stored as a batch, or (a dry run) only summarised.
#[derive(Serialize, ToSchema)]
struct SendComposed {
    /// The batch (`null` for a dry run).
    batch_id: Option<BatchId>,
    /// Whether nothing was stored.
    dry_run: bool,
    /// Where the batch stands (awaiting approval, or approved).
    status: BatchStatus,
    /// Whom it is for, in words.
    audience: String,
    /// How many messages it made.
    messages: usize,
    /// Messages per status (`status/reason` for blocked ones).
    counts: BTreeMap<String, i64>,
    /// How many will go, who is blocked and why, the cost and when.
    summary: Summary,
    /// The batch's address in this API (`null` for a dry run).
    uri: Option<String>,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message).on(field)
}

impl SendBody {
    fn audience(&self) -> Result<Audience, ApiError> {
        let given = [
            !self.to.is_empty(),
            !self.groups.is_empty(),
            self.teachers_of.is_some(),
            self.all_groups,
            self.active_contracts,
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(invalid(
                "audience",
                "audience: expected exactly one of to, groups, teachers_of, all_groups, \
                 active_contracts",
            ));
        }
        Ok(match (&self.to[..], &self.groups[..]) {
            ([one], _) => Audience::Recipient(one.clone()),
            (many @ [_, _, ..], _) => Audience::List(many.to_vec()),
            (_, [one]) => Audience::Group(one.clone()),
            (_, many @ [_, _, ..]) => Audience::Groups(many.to_vec()),
            _ => match &self.teachers_of {
                Some(g) => Audience::TeachersOf(g.clone()),
                None if self.all_groups => Audience::AllGroups,
                None => Audience::ActiveContracts,
            },
        })
    }

    fn content(&self) -> Result<SendContent, ApiError> {
        match (&self.template, &self.body) {
            (Some(_), Some(_)) | (None, None) => Err(invalid(
                "body",
                "body: expected either a body (with a subject for email) or a template",
            )),
            (Some(_), _) if self.html.is_some() => Err(invalid(
                "html",
                "html: goes with body; a template has its own HTML variant",
            )),
            (Some(name), None) => Ok(SendContent::Template {
                name: name.clone(),
                vars: self.vars.clone(),
            }),
            (None, Some(body)) => Ok(SendContent::Text {
                subject: self.subject.clone(),
                body: body.clone(),
                html: self.html.clone(),
            }),
        }
    }
}

/// Composes an informational send (needs `send`): `201` with the batch and what it
/// will do; a dry run answers `200` and stores nothing.
#[utoipa::path(post, path = "/api/v1/sends", tag = "messages", request_body = SendBody,
    security(("bearer" = [])), responses(
    (status = 200, description = "A dry run: what the send would do", body = SendComposed),
    (status = 201, description = "Stored, awaiting approval (or approved, for an operator \
        who sends without approval)", body = SendComposed),
    BodyErrors,
    (status = 404, description = "A group the audience names does not exist",
        body = ErrorBody),
    (status = 422, description = "The audience, text, template or channel is not clear; \
        `field` names it", body = ErrorBody),
))]
async fn send(
    State(app): State<App>,
    Caller(actor): Caller,
    headers: axum::http::HeaderMap,
    Body(b): Body<SendBody>,
) -> Answer {
    no_idempotency_key(&headers)?;
    let request = SendRequest {
        audience: b.audience()?,
        reach: b.reach.unwrap_or(Reach::Both),
        channel: code_in_query("channel", b.channel.as_deref())?.unwrap_or(ChannelChoice::Email),
        content: b.content()?,
        transliterate: b.transliterate,
    };
    let composed = app.send(&actor, &request, b.dry_run).await?;
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for m in &composed.send.messages {
        let key = match m.reason {
            Some(r) => format!("{}/{}", m.status, r.as_str()),
            None => m.status.to_string(),
        };
        *counts.entry(key).or_default() += 1;
    }
    let status = if composed.batch.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let answer = SendComposed {
        batch_id: composed.batch,
        dry_run: composed.batch.is_none(),
        status: composed.send.batch.status,
        audience: composed.send.batch.audience,
        messages: composed.send.messages.len(),
        counts,
        summary: composed.summary,
        uri: composed.batch.map(|b| format!("/api/v1/batches/{b}")),
    };
    Ok((status, axum::Json(answer)).into_response())
}

/// A system message to one person: a text (`body`, with a `subject` for email) or a
/// saved template rendered for them (`template`, with `vars`), not both.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NotifyBody {
    /// The person (the platform's id).
    #[schema(example = "gd-07")]
    recipient: String,
    /// `email` (the default) or `sms`.
    #[schema(value_type = Option<Channel>)]
    channel: Option<String>,
    /// The subject (email, with `body`).
    subject: Option<String>,
    /// The text.
    body: Option<String>,
    /// A saved template's name (`herald templates add`), rendered for the recipient
    /// in their locale on the channel.
    #[schema(example = "account-created")]
    template: Option<String>,
    /// Values for the template's free variables (`{{ vars.name }}`).
    vars: Option<BTreeMap<String, String>>,
    /// SMS: replace national characters to stay in GSM-7.
    #[serde(default)]
    transliterate: bool,
}

impl NotifyBody {
    /// Exactly one of a text and a template.
    fn content(&self) -> Result<NotifyContent, ApiError> {
        match (&self.template, &self.body) {
            (Some(_), Some(_)) => Err(invalid(
                "body",
                "body: expected either a body (with a subject for email) or a template, \
                 not both",
            )),
            (None, None) => Err(invalid(
                "body",
                "body: expected either a body (with a subject for email) or a template",
            )),
            (Some(_), None) if self.subject.is_some() => Err(invalid(
                "subject",
                "subject: goes with body; a template has its own subject",
            )),
            (Some(name), None) => Ok(NotifyContent::Template {
                name: name.clone(),
                vars: self.vars.clone().unwrap_or_default(),
            }),
            (None, Some(_)) if self.vars.is_some() => Err(invalid(
                "vars",
                "vars: go with a template; a body is sent as written",
            )),
            (None, Some(body)) => Ok(NotifyContent::Text {
                subject: self.subject.clone(),
                body: body.clone(),
            }),
        }
    }
}

/// The header that makes a notification safe to repeat (documentation only: the
/// handler reads it from the headers, to refuse one that is not text in the API's
/// shape).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct IdempotencyKeyHeader {
    /// Up to 255 characters, per token's operator: a repeat of the same request
    /// answers the same message (`200`), even when the repeats race or reach another
    /// instance; the key with another request is `422`.
    #[param(rename = "Idempotency-Key", required = false, max_length = 255)]
    idempotency_key: String,
}

/// A system message created (or, for a repeated `Idempotency-Key`, found).
#[derive(Serialize, ToSchema)]
struct Notified {
    /// The message.
    id: MessageId,
    /// Where it stands: `queued`, or `blocked` when the person cannot be reached.
    status: MessageStatus,
    /// Why it is blocked.
    reason: Option<Reason>,
    /// The message's address in this API.
    uri: String,
}

/// A system message to one person (needs `send`): no approval, sent at once by the
/// daemon; someone who cannot be reached gets a `blocked` message with its reason.
///
/// `201 {id, status, reason, uri}`. With an `Idempotency-Key`, a repeat of the same
/// request answers `200` with the same message (and `Idempotent-Replayed: true`),
/// never a second one; the key with another request is `422`.
#[utoipa::path(post, path = "/api/v1/notifications", tag = "messages",
    request_body = NotifyBody,
    params(IdempotencyKeyHeader),
    security(("bearer" = [])), responses(
    (status = 201, description = "Created", body = Notified),
    (status = 200, description = "A repeat of the request that created it, under the same \
        `Idempotency-Key`: the same message", body = Notified,
        headers(("Idempotent-Replayed" = String, description = "`true`"))),
    BodyErrors,
    (status = 422, description = "Neither or both of a text and a template (`body`), a \
        template that does not exist for the channel or does not render (`template`), a \
        text or channel that is not usable, or an `Idempotency-Key` that named another \
        request (`idempotency_key`)", body = ErrorBody),
))]
async fn notify(
    State(app): State<App>,
    Caller(actor): Caller,
    headers: axum::http::HeaderMap,
    Body(raw): Body<serde_json::Value>,
) -> Answer {
    let n: NotifyBody = serde_json::from_value(raw)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?;
    let request = NotifyRequest {
        recipient: n.recipient.clone(),
        channel: code_in_query("channel", n.channel.as_deref())?.unwrap_or(Channel::Email),
        content: n.content()?,
        transliterate: n.transliterate,
    };
    let key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid",
                    "Idempotency-Key: expected printable ASCII",
                )
                .on("idempotency_key")
            })
        })
        .transpose()?;
    let (id, status, reason, replayed) = match key {
        Some(key) => {
            let done = app.notify_once(&actor, key, &request).await?;
            (
                done.view.id,
                done.view.status,
                done.view.reason,
                done.replayed,
            )
        }
        None => {
            let (id, m) = app.notify_with(&actor, &request).await?;
            (id, m.status, m.reason, false)
        }
    };
    let answer = Notified {
        id,
        status,
        reason,
        uri: format!("/api/v1/messages/{}", id.0),
    };
    Ok(if replayed {
        (
            StatusCode::OK,
            [("idempotent-replayed", "true")],
            axum::Json(answer),
        )
            .into_response()
    } else {
        (StatusCode::CREATED, axum::Json(answer)).into_response()
    })
}

/// The directory from the platform: the JSON import document of `herald import`
/// (needs `manage_recipients`).
///
/// Good records are applied and bad ones reported with their line, field and what was
/// expected; `200` with the report either way (`422` when the document itself is not
/// one).
#[utoipa::path(post, path = "/api/v1/import", tag = "directory",
    request_body(content = ImportDocument, content_type = "application/json"),
    security(("bearer" = [])), responses(
    (status = 200, description = "What was applied, and every refused record with why",
        body = ImportReport),
    (status = 400, description = "The body is not UTF-8", body = ErrorBody),
    (status = 413, description = "The body is over `http.body_limit_kib`", body = ErrorBody),
    (status = 422, description = "Not an import document: not JSON, or an unknown \
        section (`document`)", body = ErrorBody),
))]
async fn import(
    State(app): State<App>,
    Caller(actor): Caller,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => super::too_large(&app),
        _ => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()),
    })?;
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected a UTF-8 JSON document",
        )
    })?;
    let report = app.import_document(&actor, text).await?;
    Ok(axum::Json(report).into_response())
}
