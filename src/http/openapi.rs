//! The OpenAPI 3.1 document of the HTTP API, served without a token at
//! `GET /api/v1/openapi.json`.
//!
//! It is generated from the code (utoipa): each handler's `#[utoipa::path]` gives its
//! method, path, parameters, body and answers; the bodies' and answers' types give
//! the schemas; this file adds what every route shares — the bearer scheme, the error
//! shape and the failures any route can answer — and the schemas of types that
//! serialise by hand (stable codes, ids, the import document). The integration tests
//! check that the document describes exactly the routes the router serves.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::schema::{AdditionalProperties, KnownFormat, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ArrayBuilder, ContentBuilder, ObjectBuilder, Ref, RefOr, Response, ResponseBuilder, Schema,
};
use utoipa::{IntoResponses, Modify, OpenApi, PartialSchema, ToSchema};

use super::error::ErrorBody;
use super::{api, hooks};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald HTTP API",
        description = "The school platform's interface to Herald: notifications, sends, \
            the outbox, messages, the directory import, the calendar, the wallet and \
            diagnosis. Every call under `/api/v1` (but this document) takes an API token \
            (`Authorization: Bearer hrd_…`, from `herald tokens create`) that acts as its \
            operator with that operator's permissions at the time of the call. Bodies \
            are JSON. Every answer carries an `x-request-id` header; every failure is \
            `{\"error\": {\"code\", \"message\", \"field\"}}`."
    ),
    paths(
        api::healthz,
        api::readyz,
        serve_document,
        api::wallet,
        api::top_up,
        api::hold,
        api::set_hold,
        api::holidays,
        api::add_holiday,
        api::remove_holiday,
        api::import,
        api::notify,
        api::send,
        api::batches,
        api::batch,
        api::approve,
        api::reject,
        api::messages,
        api::message,
        api::resend,
        api::cancel,
        api::message_diagnosis,
        api::recipient_diagnosis,
        hooks::smsapi_report,
        hooks::twilio_report,
        hooks::webhook_report,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Shared),
    tags(
        (name = "health", description = "Liveness and readiness, without a token"),
        (name = "meta", description = "This document"),
        (name = "messages", description = "Notifications, sends and the messages they made"),
        (name = "outbox", description = "Batches and their approval"),
        (name = "directory", description = "The platform's feed of people, groups and contracts"),
        (name = "calendar", description = "Days off and the hold switch"),
        (name = "wallet", description = "The prepaid SMS wallet"),
        (name = "diagnosis", description = "Why someone did (not) get a message"),
        (name = "delivery reports", description = "The SMS gateways' callbacks: no token; \
            each proves its sender the gateway's way"),
    )
)]
struct Document;

/// The document as a value.
pub fn document() -> utoipa::openapi::OpenApi {
    Document::openapi()
}

/// Built once: the document does not change while the process runs.
static DOCUMENT_JSON: LazyLock<String> = LazyLock::new(|| {
    document()
        .to_pretty_json()
        .expect("the OpenAPI document serialises")
});

/// This document: the API's routes, parameters, bodies and answers (no token).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", responses(
    (status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json",
        body = Object),
))]
pub(super) async fn serve_document() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT_JSON.as_str(),
    )
}

/// The bearer scheme, and the failures every route shares, added to each operation
/// so the handlers' annotations list only their own.
struct Shared;

impl Modify for Shared {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("hrd_<id>_<secret>")
                        .description(Some(
                            "An API token from `herald tokens create NAME --operator LOGIN`; \
                             it acts as its operator, with that operator's permissions at \
                             the time of each call. A revoked token fails at its next call.",
                        ))
                        .build(),
                ),
            );
        for item in doc.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                let answers = &mut op.responses.responses;
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let mut shared = vec![
                    (
                        "500",
                        "The server failed (`internal`); its log, by request id, says why",
                    ),
                    (
                        "503",
                        "The request took longer than `http.request_timeout` (`timeout`); it \
                         may or may not have taken effect: look before repeating it",
                    ),
                ];
                if secured {
                    shared.push((
                        "429",
                        "The token made more requests than `http.rate_limit_per_second` \
                         allows (`rate_limited`); `Retry-After` says when to try again",
                    ));
                    shared.push((
                        "401",
                        "No token, or a malformed, unknown or revoked one (`unauthenticated`)",
                    ));
                    shared.push((
                        "403",
                        "The token's operator lacks the permission, named in the message \
                         (`forbidden`), or a teacher writes outside their groups \
                         (`outside_groups`)",
                    ));
                }
                for (status, description) in shared {
                    answers
                        .entry(status.to_owned())
                        .or_insert_with(|| error_response(description));
                }
            }
        }
    }
}

/// An answer in the API's error shape.
fn error_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                .build(),
        )
        .build()
        .into()
}

/// The failures of a route that takes a JSON body.
pub(super) struct BodyErrors;

impl IntoResponses for BodyErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [
            (
                "400",
                "The body is not the JSON this route takes (`bad_request`)",
            ),
            (
                "413",
                "The body is over `http.body_limit_kib` (`too_large`)",
            ),
            (
                "415",
                "The body is not sent as `Content-Type: application/json` \
                 (`unsupported_media_type`)",
            ),
        ]
        .into_iter()
        .map(|(status, description)| (status.to_owned(), error_response(description)))
        .collect()
    }
}

/// The JSON import document of `herald import`: a list of records per section, each
/// record an object with the section's keys. Its schema is made from the import's own
/// list of keys, so the document cannot drift from what the import reads.
pub(super) struct ImportDocument;

impl PartialSchema for ImportDocument {
    fn schema() -> RefOr<Schema> {
        let mut document = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Sections in any order, each optional; they are applied recipients first, \
                 then groups, guardianships, memberships, contracts, instalments. Values \
                 may be strings, numbers or booleans (they are read as text). A bad record \
                 is reported with its section, index, line and field; the others are \
                 applied.",
            ))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        for kind in crate::import::ImportKind::ALL {
            let (required, optional) = kind.columns();
            let mut record = ObjectBuilder::new()
                .schema_type(Type::Object)
                .additional_properties(Some(AdditionalProperties::FreeForm(false)));
            for key in required.iter().chain(optional) {
                let scalar = ObjectBuilder::new().schema_type(
                    utoipa::openapi::schema::SchemaType::from_iter([
                        Type::String,
                        Type::Number,
                        Type::Boolean,
                        Type::Null,
                    ]),
                );
                record = record.property(*key, scalar);
            }
            for key in required {
                record = record.required(*key);
            }
            document = document.property(
                kind.as_str(),
                ArrayBuilder::new().items(record).description(Some(format!(
                    "{kind}: records with the keys {} (required) and {}",
                    required.join(", "),
                    if optional.is_empty() {
                        "no others".to_owned()
                    } else {
                        format!("{} (optional)", optional.join(", "))
                    }
                ))),
            );
        }
        document.into()
    }
}

impl ToSchema for ImportDocument {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ImportDocument")
    }
}

/// Enums with stable codes serialise as their code: their schema is the list of
/// codes, taken from the enum itself.
macro_rules! code_schemas {
    ($($ty:path => $name:literal: $description:literal,)+) => {
        $(
            impl PartialSchema for $ty {
                fn schema() -> RefOr<Schema> {
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(<$ty>::ALL.map(|v| v.as_str())))
                        .description(Some($description))
                        .into()
                }
            }

            impl ToSchema for $ty {
                fn name() -> Cow<'static, str> {
                    Cow::Borrowed($name)
                }
            }
        )+
    };
}

code_schemas! {
    crate::domain::Reason => "Reason": "A reason code: why a message is blocked, held or failed",
    crate::domain::MessageKind => "MessageKind": "What a message is for",
    crate::domain::Channel => "Channel": "How a message goes",
    crate::domain::ChannelChoice => "ChannelChoice": "The channels a send uses",
    crate::domain::MessageStatus => "MessageStatus": "Where a message stands",
    crate::domain::BatchStatus => "BatchStatus": "Where a batch stands",
    crate::import::ImportKind => "ImportKind": "A section of the import document",
}

/// Ids serialise as their number.
macro_rules! id_schemas {
    ($($ty:path => $name:literal: $description:literal,)+) => {
        $(
            impl PartialSchema for $ty {
                fn schema() -> RefOr<Schema> {
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                        .description(Some($description))
                        .into()
                }
            }

            impl ToSchema for $ty {
                fn name() -> Cow<'static, str> {
                    Cow::Borrowed($name)
                }
            }
        )+
    };
}

id_schemas! {
    crate::domain::MessageId => "MessageId": "Herald's id of a message",
    crate::domain::BatchId => "BatchId": "Herald's id of a batch",
    crate::domain::RecipientId => "RecipientId": "Herald's id of a person",
}

impl PartialSchema for crate::domain::Reach {
    fn schema() -> RefOr<Schema> {
        use clap::ValueEnum;
        let names: Vec<String> = crate::domain::Reach::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|v| v.get_name().to_owned())
            .collect();
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(names))
            .description(Some(
                "For students: write to them, to their guardians, or to both",
            ))
            .into()
    }
}

impl ToSchema for crate::domain::Reach {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Reach")
    }
}
