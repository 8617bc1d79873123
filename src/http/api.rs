//! The routes of `/api/v1` and the health endpoints. Each handler reads its input,
//! makes one `App` call as the caller's operator, and answers its result as JSON.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Body, Caller, Params, PathParam};
use crate::app::{Actor, App, SendContent, SendRequest};
use crate::diagnose::Lookup;
use crate::domain::{Audience, BatchId, Channel, ChannelChoice, MessageId, Reach};
use crate::store::{Decision, MessageAction, MessageFilter};

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
        .route("/api/v1/import", post(import))
        .route("/api/v1/notifications", post(notify))
        .route("/api/v1/sends", post(send))
        .route("/api/v1/batches", get(batches))
        .route("/api/v1/batches/{id}", get(batch))
        .route("/api/v1/batches/{id}/approve", post(approve))
        .route("/api/v1/batches/{id}/reject", post(reject))
        .route("/api/v1/messages", get(messages))
        .route("/api/v1/messages/{id}", get(message_diagnosis))
        .route("/api/v1/messages/{id}/resend", post(resend))
        .route("/api/v1/messages/{id}/cancel", post(cancel))
        .route("/api/v1/messages/{id}/diagnosis", get(message_diagnosis))
        .route(
            "/api/v1/recipients/{id}/diagnosis",
            get(recipient_diagnosis),
        )
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

/// Alive: answers without touching the database.
async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// Ready: the database answers, its schema is this build's, and dispatch passes are
/// not overdue (`App::readiness`); 503 naming the failing check otherwise.
async fn readyz(State(app): State<App>) -> impl IntoResponse {
    let checks = app.readiness().await;
    let (status, word) = if checks.ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    };
    (
        status,
        axum::Json(json!({"status": word, "checks": checks})),
    )
}

#[derive(Deserialize)]
struct LedgerQuery {
    ledger: Option<i64>,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopUp {
    points: i64,
    note: String,
}

async fn top_up(
    State(app): State<App>,
    Caller(actor): Caller,
    headers: axum::http::HeaderMap,
    Body(t): Body<TopUp>,
) -> Answer {
    no_idempotency_key(&headers)?;
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
    Params(q): Params<HolidaysQuery>,
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
    headers: axum::http::HeaderMap,
    Body(h): Body<NewHoliday>,
) -> Answer {
    no_idempotency_key(&headers)?;
    let last = h.last_day.unwrap_or(h.first_day);
    let holiday = app.add_holiday(&actor, &h.name, h.first_day, last).await?;
    Ok((StatusCode::CREATED, axum::Json(holiday)).into_response())
}

async fn remove_holiday(
    State(app): State<App>,
    Caller(actor): Caller,
    PathParam(id): PathParam,
) -> Answer {
    app.remove_holiday(&actor, id_in_path(&id)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct BatchesQuery {
    status: Option<String>,
}

async fn batches(
    State(app): State<App>,
    Caller(actor): Caller,
    Params(q): Params<BatchesQuery>,
) -> Answer {
    let status = code_in_query("status", q.status.as_deref())?;
    Ok(axum::Json(app.batches(&actor, status).await?).into_response())
}

/// The approver's view, with the version an approval or rejection must name.
async fn batch(State(app): State<App>, Caller(actor): Caller, PathParam(id): PathParam) -> Answer {
    let view = app.batch_view(&actor, BatchId(id_in_path(&id)?)).await?;
    Ok(axum::Json(view).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    /// The version of the batch the caller showed (`GET /api/v1/batches/{id}`).
    seen: Option<String>,
    /// Only these messages of the batch.
    #[serde(default)]
    messages: Vec<i64>,
    /// Why (a rejection).
    reason: Option<String>,
}

async fn approve(
    State(app): State<App>,
    Caller(actor): Caller,
    PathParam(id): PathParam,
    Body(d): Body<DecisionBody>,
) -> Answer {
    decide(app, actor, &id, d, Decision::Approve).await
}

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
    Ok(
        axum::Json(json!({"messages": taken.messages, "version": taken.view.version}))
            .into_response(),
    )
}

async fn resend(State(app): State<App>, Caller(actor): Caller, PathParam(id): PathParam) -> Answer {
    act(app, actor, &id, MessageAction::Resend).await
}

async fn cancel(State(app): State<App>, Caller(actor): Caller, PathParam(id): PathParam) -> Answer {
    act(app, actor, &id, MessageAction::Cancel).await
}

async fn act(app: App, actor: Actor, id: &str, action: MessageAction) -> Answer {
    let id = MessageId(id_in_path(id)?);
    let before = app.act_on_message(&actor, id, action).await?;
    Ok(axum::Json(json!({"id": id, "status_before": before})).into_response())
}

/// One message's whole story (the JSON of `herald diagnose --message`).
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

#[derive(Deserialize)]
struct MessagesQuery {
    status: Option<String>,
    reason: Option<String>,
    kind: Option<String>,
    channel: Option<String>,
    recipient: Option<String>,
    batch: Option<i64>,
    since: Option<chrono::DateTime<chrono::Utc>>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// The largest page, and the one given when none is asked for.
const PAGE_MAX: i64 = 1000;
const PAGE_DEFAULT: i64 = 100;

/// Messages newest first, a page at a time: `{items, next_cursor}`; pass
/// `next_cursor` back as `cursor` for the next page (`null`: there is none).
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
        before,
        limit: Some(limit),
    };
    let items = app.messages(&actor, &filter).await?.messages;
    let next_cursor = (items.len() as i64 == limit)
        .then(|| items.last().map(|m| m.id.0.to_string()))
        .flatten();
    Ok(axum::Json(json!({"items": items, "next_cursor": next_cursor})).into_response())
}

/// An informational send, as `herald send` takes it: exactly one audience (`to`,
/// `groups`, `teachers_of`, `all_groups` or `active_contracts`), and a text or a
/// template.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    teachers_of: Option<String>,
    #[serde(default)]
    all_groups: bool,
    #[serde(default)]
    active_contracts: bool,
    reach: Option<Reach>,
    channel: Option<String>,
    subject: Option<String>,
    body: Option<String>,
    html: Option<String>,
    template: Option<String>,
    #[serde(default)]
    vars: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    transliterate: bool,
    #[serde(default)]
    dry_run: bool,
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

/// `201` with the batch and what it will do; a dry run answers `200` and stores
/// nothing.
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
    let mut counts: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
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
    let answer = json!({
        "batch_id": composed.batch,
        "dry_run": composed.batch.is_none(),
        "status": composed.send.batch.status,
        "audience": composed.send.batch.audience,
        "messages": composed.send.messages.len(),
        "counts": counts,
        "summary": composed.summary,
        "uri": composed.batch.map(|b| format!("/api/v1/batches/{b}")),
    });
    Ok((status, axum::Json(answer)).into_response())
}

/// A system message to one person.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyBody {
    recipient: String,
    channel: Option<String>,
    subject: Option<String>,
    body: String,
    #[serde(default)]
    transliterate: bool,
}

/// `201 {id, status, reason, uri}`. With an `Idempotency-Key`, a repeat of the same
/// request answers `200` with the same message (and `Idempotent-Replayed: true`),
/// never a second one; the key with another request is `422`.
async fn notify(
    State(app): State<App>,
    Caller(actor): Caller,
    headers: axum::http::HeaderMap,
    Body(raw): Body<serde_json::Value>,
) -> Answer {
    let n: NotifyBody = serde_json::from_value(raw)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?;
    let channel = code_in_query("channel", n.channel.as_deref())?.unwrap_or(Channel::Email);
    // The request's fingerprint is what it asks for, defaults filled in: spacing, key
    // order or a default spelt out do not make a retry "another request".
    let asked = json!({
        "recipient": n.recipient,
        "channel": channel.as_str(),
        "subject": n.subject,
        "body": n.body,
        "transliterate": n.transliterate,
    });
    let request_sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        asked.to_string().as_bytes(),
    ));
    let content = crate::compose::Content::for_channel(
        app.settings(),
        crate::domain::MessageKind::System,
        channel,
        n.subject.as_deref(),
        &n.body,
        n.transliterate,
    )
    .map_err(crate::app::AppError::from)?;
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
            let done = app
                .notify_once(&actor, key, &request_sha256, &n.recipient, &content)
                .await?;
            (
                done.view.id,
                done.view.status,
                done.view.reason,
                done.replayed,
            )
        }
        None => {
            let (id, m) = app.notify(&actor, &n.recipient, &content).await?;
            (id, m.status, m.reason, false)
        }
    };
    let answer = json!({
        "id": id,
        "status": status,
        "reason": reason,
        "uri": format!("/api/v1/messages/{}", id.0),
    });
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

/// The directory from the platform: the JSON import document of `herald import`.
/// Good records are applied and bad ones reported with their line, field and what was
/// expected; `200` with the report either way (`422` when the document itself is not
/// one).
async fn import(
    State(app): State<App>,
    Caller(actor): Caller,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.body_text())
        }
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
