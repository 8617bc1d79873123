//! One error shape for every answer that is not a success:
//! `{"error": {"code": "stable_code", "message": "…", "field": "…"}}`, with the HTTP
//! status that says what kind of failure it is. Codes are a contract with the
//! platform's developers; messages are for people.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppError;

/// Every code the API answers with, for the OpenAPI document's list; a code used
/// without being listed here fails the tests that reach it (`ApiError::new`).
pub const CODES: &[&str] = &[
    "bad_request",
    "unauthenticated",
    "unsigned",
    "forbidden",
    "outside_groups",
    "not_found",
    "method_not_allowed",
    "conflict",
    "ambiguous",
    "too_large",
    "unsupported_media_type",
    "invalid",
    "rate_limited",
    "internal",
    "timeout",
];

/// What every failure answers: `{"error": {code, message, field}}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// The failure.
    error: ErrorDetail,
}

/// One failure: a stable code for programs, a message for people, and the input
/// field at fault when there is one.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The stable code (the table in the README); programs branch on this.
    #[schema(schema_with = code_schema)]
    code: &'static str,
    /// What went wrong and what was expected, in words.
    message: String,
    /// The input at fault (a body's or query's field, `idempotency_key`, `document`);
    /// absent when the failure is not about one input.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    field: Option<String>,
}

/// The `code` as a closed list of strings.
fn code_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(CODES.iter().copied()))
        .build()
}

/// An error as the API answers it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    /// Seconds to wait before trying again (`Retry-After`).
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        debug_assert!(CODES.contains(&code), "{code:?} is not in error::CODES");
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// The same error, telling the caller to wait `seconds` before trying again.
    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    /// The same error about one input field.
    pub fn on(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    /// No usable bearer token.
    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> ApiError {
        let message = e.to_string();
        match e {
            AppError::Unauthenticated | AppError::UnknownOperator(_) => {
                ApiError::unauthenticated(message)
            }
            AppError::Forbidden { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            AppError::OutsideGroups { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "outside_groups", message)
            }
            AppError::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            AppError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            AppError::Invalid { field, .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message).on(field)
            }
            AppError::Store(_) | AppError::Internal(_) => {
                // The cause goes to the log, not to the caller.
                tracing::error!(error = %message, "a request failed inside Herald");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the request could not be completed; the server's log says why",
                )
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> ApiError {
        match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.body_text())
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a JSON body (Content-Type: application/json)",
            ),
            _ => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        // The delivery-report hooks' 401 (`unsigned`) asks for a signature, not a token.
        if self.status == StatusCode::UNAUTHORIZED && self.code == "unauthenticated" {
            // RFC 6750: a 401 says which scheme would do.
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
