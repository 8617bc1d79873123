//! `GET /metrics` (Prometheus' text format) and the layer that counts every request.
//!
//! Metrics say how much the school sends and to whom it fails to, so they are not
//! public: on the main listener `/metrics` takes its own bearer token
//! (`http.metrics_token`, not an API token: a scraper acts as no operator), and
//! without one it is not served there at all (404). `http.metrics_listen` serves it
//! alone on a second address, without a token, for a scraper on loopback or an
//! admin network.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::app::App;
use crate::config::HttpSettings;

/// Prometheus' text exposition format.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `/metrics` on the main listener, as `settings` allow it.
pub(super) fn routes(settings: &HttpSettings) -> Router<App> {
    // Installed now, so the requests before the first scrape are counted too.
    crate::metrics::recorder();
    let token = settings.metrics_token.clone().map(Arc::new);
    let elsewhere = settings.metrics_listen.is_some();
    Router::new().route(
        "/metrics",
        get(
            move |State(app): State<App>, headers: HeaderMap| async move {
                let Some(token) = token else {
                    return not_served_here(elsewhere).into_response();
                };
                match bearer(&headers) {
                    Some(given) if same_secret(given, &token) => exposition(&app).await,
                    _ => ApiError::unauthenticated(
                        "expected the metrics token: Authorization: Bearer <http.metrics_token>",
                    )
                    .into_response(),
                }
            },
        ),
    )
}

/// The router of `http.metrics_listen`: `/metrics` and nothing else, without a token
/// (whoever reaches the address may read it).
pub fn metrics_router(app: App) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(app): State<App>| async move { exposition(&app).await }),
        )
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "this address serves only /metrics",
            )
        })
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(app)
}

/// The page: what this process counted, and what the database holds now.
async fn exposition(app: &App) -> Response {
    let page = crate::metrics::render(crate::metrics::recorder(), &**app.store()).await;
    ([(header::CONTENT_TYPE, EXPOSITION)], page).into_response()
}

fn not_served_here(elsewhere: bool) -> ApiError {
    let message = if elsewhere {
        "metrics are served on http.metrics_listen (or here, once http.metrics_token is set)"
    } else {
        "metrics are not served on this address: set http.metrics_token or http.metrics_listen"
    };
    ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// Compares digests in constant time, so neither the token's bytes nor its length
/// can be found by timing answers.
fn same_secret(given: &str, token: &SecretString) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(token.expose_secret().as_bytes());
    given.ct_eq(&expected).into()
}

/// Counts a request by method, route and status, and times it. The route is the
/// template that matched (`/api/v1/messages/{id}`), never the path itself: ids in
/// label values would make a series per message.
pub(super) async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    crate::metrics::http_request(method, route, response.status().as_u16(), started.elapsed());
    response
}

/// The method as a label: the standard ones by name, anything else as `other`, so a
/// client inventing methods cannot invent series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
