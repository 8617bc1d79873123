//! The OpenAPI document against the router it describes: fetched from a real server,
//! it must describe exactly the routes the router serves (so a route added without
//! its description fails here), say truly which need a token, and hold together
//! (every reference resolves, the error shape and the bearer scheme are there).

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::sqlite;
use crate::http::Server;

/// The methods an OpenAPI path item can hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The (method, path) of every operation in the document.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((method.to_ascii_uppercase(), path.clone(), op));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_describes_exactly_the_routes_the_router_serves() {
    let app = sqlite().await;
    let server = Server::start(&app, 1 << 20).await;
    let (status, doc) = server
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "served without a token: {doc}");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );

    let served: BTreeSet<(String, String)> = herald::http::routes()
        .into_iter()
        .map(|(method, path)| (method.as_str().to_owned(), path.to_owned()))
        .collect();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in the document (add a #[utoipa::path] and list it in \
         src/http/openapi.rs): {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        unserved.is_empty(),
        "in the document but not served: {unserved:?}"
    );
    for required in [
        "/healthz",
        "/readyz",
        "/api/v1/openapi.json",
        "/api/v1/notifications",
    ] {
        assert!(
            served.iter().any(|(_, p)| p == required),
            "{required} is a route"
        );
    }

    // The router serves each one, and a token is needed exactly where the document
    // says so: without one, a secured route answers 401 and an open one does not.
    for (method, path, op) in operations(&doc) {
        let secured = op["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        let concrete = path.replace("{id}", "1").replace("{secret}", "s");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, answer) = server.call(method.clone(), &concrete, None, None).await;
        if path.starts_with("/hooks/") {
            // The test's gateway is the file: every hook is served, and closed.
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("are not taken here"),
                "{method} {path}: {answer}"
            );
            assert!(
                op["security"].is_null(),
                "{method} {path} takes no API token"
            );
            continue;
        }
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is not served: {status} {answer}"
        );
        assert_eq!(
            status == StatusCode::UNAUTHORIZED,
            secured,
            "{method} {path}: {status} {answer}; the document says secured = {secured}"
        );
        if secured {
            assert!(
                op["responses"]["401"].is_object() && op["responses"]["403"].is_object(),
                "{method} {path} lists 401 and 403"
            );
        }
        assert!(
            op["responses"]["500"]["content"]["application/json"]["schema"]["$ref"]
                == "#/components/schemas/Error",
            "{method} {path}: failures have the error shape"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_holds_together() {
    let app = sqlite().await;
    let server = Server::start(&app, 1 << 20).await;
    let (_, doc) = server
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    // Every reference names a schema the document has.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("a schema reference: {r}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
    // The error shape, with its stable codes.
    let error = &doc["components"]["schemas"]["ErrorDetail"];
    let codes: Vec<&str> = error["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in ["invalid", "unauthenticated", "not_found", "timeout"] {
        assert!(codes.contains(&code), "{codes:?}");
    }
    assert_eq!(
        doc["components"]["schemas"]["Error"]["required"],
        serde_json::json!(["error"])
    );
    // The bearer scheme.
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(bearer["type"], "http");
    assert_eq!(bearer["scheme"], "bearer");
    // The Idempotency-Key on notifications.
    let notify = &doc["paths"]["/api/v1/notifications"]["post"];
    let params = notify["parameters"].as_array().unwrap();
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
        "{params:?}"
    );
    assert!(notify["responses"]["200"]["headers"]["Idempotent-Replayed"].is_object());
    // The import document's sections come from the import itself.
    let import = &doc["components"]["schemas"]["ImportDocument"]["properties"];
    for kind in herald::import::ImportKind::ALL {
        assert!(import[kind.as_str()].is_object(), "{kind}");
    }
}

fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}
