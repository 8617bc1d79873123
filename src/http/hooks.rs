//! The delivery-report hooks the SMS gateways call: `/hooks/smsapi/{secret}`,
//! `/hooks/twilio` and `/hooks/webhook`. They take no API token; each proves its
//! sender the gateway's way (a secret in the path, `X-Twilio-Signature`,
//! `X-Herald-Signature`) before anything is read, so a forged report changes nothing.
//! Only the configured gateway's hook is open; the others answer 404.
//!
//! What a report means and what it does is decided below this layer: the gateway
//! modules read the gateways' fields, and `App::delivery_reports` applies them.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::{ApiError, PathParam};
use crate::app::App;
use crate::channels::sms::{hook_url, smsapi, twilio, webhook};
use crate::config::SmsGateway;
use crate::domain::report::DeliveryReport;

/// The hooks' routes.
pub(super) fn routes() -> Router<App> {
    Router::new()
        .route(
            "/hooks/smsapi/{secret}",
            get(smsapi_report).post(smsapi_report),
        )
        .route("/hooks/twilio", post(twilio_report))
        .route("/hooks/webhook", post(webhook_report))
}

/// A hook of a gateway Herald is not set up to hear from.
fn closed(gateway: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("delivery reports from {gateway} are not taken here"),
    )
}

/// A request that proves nothing: no signature at all.
fn unsigned(header: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
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

/// SMSAPI's callback: a GET (as SMSAPI sends it) or a POST form; answered `OK`.
async fn smsapi_report(
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
    let same: bool = expected
        .expose_secret()
        .as_bytes()
        .ct_eq(secret.as_bytes())
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
async fn twilio_report(
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
async fn webhook_report(
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
    Ok(
        axum::Json(serde_json::json!({ "effect": effects.first().map(|e| e.as_str()) }))
            .into_response(),
    )
}
