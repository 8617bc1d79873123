//! The HTTP API for the school's platform: `/api/v1`, JSON, bearer tokens that act as
//! an operator, and one error shape. The only place with HTTP types. Each handler
//! turns a request into one `App` call and its result into JSON; it decides nothing.
//!
//! Served by `herald run` beside the dispatcher on the same shutdown token: when the
//! daemon stops, the listener closes and requests in flight finish. `/metrics` is
//! served here behind its own token, or alone on a second address
//! ([`metrics_router`]).
//!
//! The router is built from one list of routes ([`routes`] gives its methods and
//! paths), and the OpenAPI document (`openapi.rs`) describes each of them.

mod api;
mod console;
mod error;
mod hooks;
mod limit;
mod metrics;
mod openapi;
mod sessions;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::response::IntoResponse;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::app::{Actor, App};
use crate::config::HttpSettings;

pub use error::ApiError;
pub use metrics::metrics_router;
pub use openapi::document as openapi_document;
pub use sessions::ConsoleSessions;

/// The header that carries each request's id, set when the caller sent none, and
/// echoed in the answer so a platform developer can quote it.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every route the router serves, from the modules that own them. The router is built
/// from this list, so that [`routes`] is what it serves; only `/metrics`, which exists
/// when configured and is an operator's endpoint rather than the API, is added beside.
fn table() -> Vec<api::Route> {
    let mut routes = api::routes();
    routes.extend(hooks::routes());
    routes
}

/// The method and path of every route the router serves (a path parameter written
/// `{name}`, as in the OpenAPI document). The integration tests check that the
/// document describes exactly these.
pub fn routes() -> Vec<(Method, &'static str)> {
    table().into_iter().map(|r| (r.method, r.path)).collect()
}

/// Every route, with the limits of `settings`.
pub fn router(app: App, settings: &HttpSettings) -> Router {
    let layers = ServiceBuilder::new()
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
        ]))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the request could not be completed; the server's log says why",
            )
            .into_response()
        }))
        // 503, not 408: a 408 invites clients to retry, and the request may have
        // done its work before the clock ran out.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            settings.request_timeout,
        ))
        .layer(CompressionLayer::new());
    // Routes on one path merge into one method router (axum refuses the same method
    // twice on a path, so a route listed twice fails at start-up).
    table()
        .into_iter()
        .fold(Router::new(), |router, r| router.route(r.path, r.handler))
        .merge(metrics::routes(settings))
        .merge(console::routes(&app, settings))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "there is no such route")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the route does not take this method",
            )
        })
        .layer(DefaultBodyLimit::max(settings.body_limit))
        // Read by `Caller`, once it knows the token.
        .layer(axum::Extension(limit::RateLimit::new(settings.rate_limit)))
        .layer(layers)
        .layer(axum::middleware::map_response(in_the_api_shape))
        // Outermost, so the status counted is the one the caller got (a timeout's
        // 503, a panic's 500); still inside the routing, which names the route.
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(app)
}

/// The span each request is traced in: its method and its route as declared
/// (`/hooks/smsapi/{secret}`), never the path as sent, which can carry a secret.
fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("(no route)", |p| p.as_str());
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!("request", method = %request.method(), route, request_id = id)
}

/// Answers that a layer produced without a body (the timeout's 503) get the API's
/// error shape like every other failure.
async fn in_the_api_shape(response: axum::response::Response) -> axum::response::Response {
    let bare = response.status() == StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(header::CONTENT_TYPE);
    if bare {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took longer than http.request_timeout; it may or may not have taken \
             effect: look before repeating it",
        )
        .into_response();
    }
    response
}

/// Serves `router` on `listener` until `shutdown`: then the listener closes and the
/// requests in flight finish (for at most `grace`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let stopping = shutdown.clone();
    // The peer's address reaches handlers (the console throttles sign-ins by it).
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { stopping.cancelled().await });
    tokio::select! {
        served = server => served,
        // Past the grace period the daemon stops waiting for requests in flight;
        // their connections end with the process.
        _ = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => Ok(()),
    }
}

/// The operator a request's bearer token acts as; a token over its rate limit is
/// refused here (429).
pub struct Caller(pub Actor);

impl FromRequestParts<App> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Caller, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            // The scheme is case-insensitive (RFC 9110 §11.1).
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or_else(|| {
                ApiError::unauthenticated(
                    "expected an API token: Authorization: Bearer hrd_… (`herald tokens create`)",
                )
            })?;
        let caller = app.authenticate_token(token).await?;
        // Counted only now that the token proved good (see `limit`).
        if let Some(limit) = parts.extensions.get::<limit::RateLimit>() {
            limit.check(caller.token)?;
        }
        Ok(Caller(caller.actor))
    }
}

/// A path parameter, refused in the API's error shape (404) when it does not parse.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<PathParam, ApiError> {
        let axum::extract::Path(value) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "not_found", e.body_text()))?;
        Ok(PathParam(value))
    }
}

/// Query parameters, refused in the API's error shape (400) when they do not parse.
pub struct Params<T>(pub T);

impl<T, S> FromRequestParts<S> for Params<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Params<T>, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state)
                .await
                .map_err(|e| {
                    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text())
                })?;
        Ok(Params(value))
    }
}

/// A JSON body, refused in the API's error shape (400, 413, 415) when it is not one;
/// a body over `http.body_limit_kib` is refused naming the limit.
pub struct Body<T>(pub T);

impl<T> FromRequest<App> for Body<T>
where
    axum::Json<T>: FromRequest<App, Rejection = axum::extract::rejection::JsonRejection>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &App) -> Result<Body<T>, ApiError> {
        match axum::Json::<T>::from_request(req, app).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(too_large(app)),
            Err(e) => Err(e.into()),
        }
    }
}

/// The answer to a body over `http.body_limit_kib`, naming the limit.
pub fn too_large(app: &App) -> ApiError {
    let limit = app.settings().http.body_limit / 1024;
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "the request body is over the limit of {limit} KiB (http.body_limit_kib); \
             send less at once, e.g. an import in parts"
        ),
    )
}
