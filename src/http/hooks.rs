//! The delivery-report hooks the SMS gateways call: `/hooks/smsapi/{secret}`,
//! `/hooks/twilio` and `/hooks/webhook`. They take no API token; each proves its
//! sender the gateway's way (a secret in the path, `X-Twilio-Signature`,
//! `X-Herald-Signature`) before anything is read, so a forged report changes nothing.
//! Only the configured gateway's hook is open; the others answer 404.
//!
//! What a report means and what it does is decided below this layer: the gateway
//! modules read the gateways' fields, and `App::delivery_reports` applies them.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use sha2::Digest;
use subtle::ConstantTimeEq;

use super::api::{Route, route};
use super::{ApiError, PathParam};
use crate::app::App;
use crate::channels::sms::{hook_url, smsapi, twilio, webhook};
use crate::config::SmsGateway;
use crate::domain::report::DeliveryReport;

/// The hooks' routes.
pub(super) fn routes() -> Vec<Route> {
    vec![
        route(Method::GET, "/hooks/smsapi/{secret}", smsapi_report),
        route(Method::POST, "/hooks/smsapi/{secret}", smsapi_report),
        route(Method::POST, "/hooks/twilio", twilio_report),
        route(Method::POST, "/hooks/webhook", webhook_report),
    ]
}

/// A hook of a gateway Herald is not set up to hear from.
fn closed(gateway: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("delivery reports from {gateway} are not taken here"),
    )
}

/// A request that proves nothing: no signature at all. Its own code, since these
/// hooks take a gateway's signature and never an API token.
fn unsigned(header: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unsigned",
        format!("expected the {header} header"),
    )
}

/// A request whose proof is wrong.
fn forged(gateway: &str, what: &str) -> ApiError {
    tracing::warn!(gateway, "refused a delivery report: {what} does not match");
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("{what} does not match"),
    )
}

/// A report whose fields are not what the gateway sends.
fn malformed(problem: String) -> ApiError {
    let field = problem.split(':').next().unwrap_or_default().to_owned();
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", problem).on(field)
}

/// The name-value pairs of a query string or a form body, in order.
fn pairs(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

/// Applies the reports; an unknown message is acknowledged like any other, so the
/// gateway does not retry it for days.
async fn apply(app: &App, reports: &[DeliveryReport]) -> Result<(), ApiError> {
    app.delivery_reports(reports).await?;
    Ok(())
}

/// SMSAPI's delivery-report callback: one to five reports as parallel comma-separated
/// lists `MsgId`, `status` (401–410), `idx` (Herald's key) and `donedate` (Unix
/// seconds), in the query (GET, as SMSAPI sends it) or a form (POST). Answered `OK`,
/// also for ids Herald does not know (kept and logged).
#[utoipa::path(method(get, post), path = "/hooks/smsapi/{secret}", tag = "delivery reports",
    params(
        ("secret" = String, Path, description = "`sms.smsapi.report_secret`"),
        ("MsgId" = String, Query, description = "SMSAPI's message ids, comma-separated"),
        ("status" = String, Query, description = "Their status codes: 404 delivered; 402, \
            405, 406, 407 undelivered; 403, 409, 410 on the way; 401, 408 unknown"),
        ("idx" = Option<String>, Query, description = "Herald's keys (`herald-ID-CREATED`)"),
        ("donedate" = Option<String>, Query, description = "When each happened, Unix seconds"),
    ),
    responses(
        (status = 200, description = "Recorded", body = String, content_type = "text/plain",
            example = "OK"),
        (status = 400, description = "Not SMSAPI's fields (`bad_request`, `field` names it)",
            body = super::error::ErrorBody),
        (status = 403, description = "Not the secret (`forbidden`); nothing changes",
            body = super::error::ErrorBody),
        (status = 404, description = "SMSAPI is not the gateway, or it has no report secret",
            body = super::error::ErrorBody),
    ))]
pub(super) async fn smsapi_report(
    State(app): State<App>,
    method: Method,
    PathParam(secret): PathParam,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let SmsGateway::Smsapi {
        report_secret: Some(expected),
        ..
    } = &app.settings().sms.gateway
    else {
        return Err(closed("smsapi"));
    };
    // Compared as digests, so that neither the content nor the length of the secret
    // shows in how long a wrong guess takes.
    let digest = |text: &str| sha2::Sha256::digest(text.as_bytes());
    let same: bool = digest(expected.expose_secret())
        .ct_eq(&digest(&secret))
        .into();
    if !same {
        return Err(forged("smsapi", "the secret in the path"));
    }
    let mut fields = pairs(query.as_deref().unwrap_or_default().as_bytes());
    if method == Method::POST {
        fields.extend(pairs(&body));
    }
    let reports = smsapi::reports(&fields).map_err(malformed)?;
    apply(&app, &reports).await?;
    Ok((StatusCode::OK, "OK").into_response())
}

/// Twilio's status callback: a form POST signed with the account's auth token over
/// the URL Herald gave it (from `http.public_url`, never from the Host header).
#[utoipa::path(post, path = "/hooks/twilio", tag = "delivery reports",
    params(
        ("ref" = Option<String>, Query, description = "Herald's key, as Herald put it in \
            the `StatusCallback` it gave Twilio"),
        ("X-Twilio-Signature" = String, Header, description = "Base64 of HMAC-SHA1 with \
            the auth token over the public URL and the sorted form fields"),
    ),
    request_body(content_type = "application/x-www-form-urlencoded", content = String,
        description = "Twilio's fields: `MessageSid`, `MessageStatus` (`delivered`, `read`; \
            `undelivered`, `failed`, `canceled`; or on the way), `ErrorCode`, …"),
    responses(
        (status = 204, description = "Recorded (also for a message Herald does not know)"),
        (status = 400, description = "Not Twilio's fields (`bad_request`)",
            body = super::error::ErrorBody),
        (status = 401, description = "No signature (`unsigned`); nothing changes",
            body = super::error::ErrorBody),
        (status = 403, description = "A wrong signature (`forbidden`); nothing changes",
            body = super::error::ErrorBody),
        (status = 404, description = "Twilio is not the gateway, or `http.public_url` is unset",
            body = super::error::ErrorBody),
    ))]
pub(super) async fn twilio_report(
    State(app): State<App>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let settings = &app.settings().sms;
    let (SmsGateway::Twilio { auth_token, .. }, Some(public)) =
        (&settings.gateway, &settings.public_url)
    else {
        return Err(closed("twilio"));
    };
    let given = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unsigned("X-Twilio-Signature"))?;
    let mut url = hook_url(public, "twilio");
    url.set_query(query.as_deref());
    let fields = pairs(&body);
    if !twilio::signed_by_twilio(auth_token.expose_secret().as_bytes(), &url, &fields, given) {
        return Err(forged("twilio", "X-Twilio-Signature"));
    }
    let reference = url
        .query_pairs()
        .find(|(k, _)| k == "ref")
        .map(|(_, v)| v.into_owned());
    let report = twilio::report(&fields, reference.as_deref()).map_err(malformed)?;
    apply(&app, &[report]).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A report from the school's own gateway, signed like Herald's requests to it.
#[utoipa::path(post, path = "/hooks/webhook", tag = "delivery reports",
    params(
        ("X-Herald-Signature" = String, Header, description = "`sha256=` and the hex of \
            HMAC-SHA256 with `sms.webhook.secret` over the body"),
    ),
    request_body(content = WebhookReport, content_type = "application/json"),
    responses(
        (status = 200, description = "Recorded, with what it did: `applied`, `no_change`, \
            `pending` or `unknown_message`", body = ReportAnswer),
        (status = 400, description = "Not a report (`bad_request`, `field` names it)",
            body = super::error::ErrorBody),
        (status = 401, description = "No signature (`unsigned`); nothing changes",
            body = super::error::ErrorBody),
        (status = 403, description = "A wrong signature (`forbidden`); nothing changes",
            body = super::error::ErrorBody),
        (status = 404, description = "The webhook is not the gateway",
            body = super::error::ErrorBody),
    ))]
pub(super) async fn webhook_report(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let SmsGateway::Webhook { secret, .. } = &app.settings().sms.gateway else {
        return Err(closed("webhook"));
    };
    let given = headers
        .get(webhook::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unsigned(webhook::SIGNATURE_HEADER))?;
    if !webhook::signed(secret.expose_secret().as_bytes(), &body, given) {
        return Err(forged("webhook", webhook::SIGNATURE_HEADER));
    }
    let report = webhook::report(&body).map_err(malformed)?;
    let effects = app.delivery_reports(std::slice::from_ref(&report)).await?;
    Ok(axum::Json(ReportAnswer {
        effect: effects.first().map_or("no_change", |e| e.as_str()),
    })
    .into_response())
}

/// A webhook delivery report, for the document: `webhook::report` reads it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct WebhookReport {
    /// The `id` Herald sent (`herald-ID-CREATED`).
    id: String,
    /// `delivered`, `undelivered` or `failed` (final), `queued`, `accepted` or `sent`.
    status: String,
    /// The receiver's own id of the message.
    provider_id: Option<String>,
    /// When it happened (RFC 3339).
    at: Option<chrono::DateTime<chrono::Utc>>,
    /// The receiver's words on a failure.
    error: Option<String>,
}

/// What a report did.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct ReportAnswer {
    /// `applied`, `no_change`, `pending` or `unknown_message`.
    #[schema(example = "applied")]
    effect: &'static str,
}
