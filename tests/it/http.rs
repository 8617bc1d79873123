//! The HTTP API through a real server on a loopback port, on both backends: who may
//! call what (no token, a malformed, unknown or revoked one, a teacher's, a
//! secretary's, an owner's), the one error shape, the body limit, and the endpoints'
//! answers.

use std::time::Duration;

use herald::app::Actor;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::conformance;
use crate::helpers::{OWNER, TestApp, now};

conformance!(
    each_route_answers_each_kind_of_caller_as_expected,
    errors_have_one_shape_and_an_oversized_body_writes_nothing,
    holidays_the_hold_and_the_wallet_round_trip,
    an_approval_names_the_version_it_saw_and_a_stale_one_is_409,
    messages_page_newest_first_with_a_cursor_and_filters,
    a_send_is_composed_or_dry_run_and_refused_when_its_audience_or_text_is_unclear,
    one_idempotency_key_makes_one_message_under_a_hundred_concurrent_requests_to_two_servers,
    a_notification_from_a_template_is_rendered_for_its_recipient_and_an_unclear_one_refused,
    a_repeated_key_answers_the_first_message_without_composing_again,
    the_platform_feeds_the_directory_good_records_applied_bad_ones_reported,
);

/// A running API over the test's store: its base URL, and the token that stops it.
pub(crate) struct Server {
    pub(crate) base: String,
    stop: CancellationToken,
    pub(crate) client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Server {
    pub(crate) async fn start(app: &TestApp, body_limit: usize) -> Server {
        Server::start_on(app, std::sync::Arc::clone(&app.store), body_limit).await
    }

    /// A server over its own handle on the test's database: another instance.
    async fn start_on(
        app: &TestApp,
        store: std::sync::Arc<dyn herald::store::Store>,
        body_limit: usize,
    ) -> Server {
        let mut settings = app.settings.clone();
        settings.http.body_limit = body_limit;
        Server::start_with(store, settings).await
    }

    /// A server over `store` with `settings`, on a loopback port, its clock at `now()`.
    pub(crate) async fn start_with(
        store: std::sync::Arc<dyn herald::store::Store>,
        settings: herald::config::Settings,
    ) -> Server {
        let herald = herald::app::App::new(
            store,
            std::sync::Arc::new(settings.clone()),
            std::sync::Arc::new(herald::clock::FixedClock::new(now())),
        );
        Server::serve(herald::http::router(herald, &settings.http)).await
    }

    /// Serves `router` (the API's or another) on a loopback port.
    pub(crate) async fn serve(router: axum::Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        tokio::spawn(herald::http::serve(
            listener,
            router,
            stop.clone(),
            Duration::from_secs(1),
        ));
        Server {
            base,
            stop,
            client: reqwest::Client::new(),
        }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// Operators of each role, and a token for each; plus a revoked token.
pub(crate) async fn tokens(app: &TestApp) -> [(&'static str, String); 4] {
    app.import_examples(now()).await;
    app.owner().await;
    app.operator_with("anna", "secretary", &[]).await;
    app.operator_with("tomek", "teacher", &[]).await;
    let herald = app.app_at(now());
    let owner = Actor::operator(OWNER);
    let mut out = Vec::new();
    for (who, login) in [
        ("owner", OWNER),
        ("secretary", "anna"),
        ("teacher", "tomek"),
    ] {
        let t = herald
            .create_token(&owner, &format!("{who}-token"), login)
            .await
            .unwrap();
        out.push((who, t.token));
    }
    let revoked = herald
        .create_token(&owner, "revoked-token", OWNER)
        .await
        .unwrap();
    herald.revoke_token(&owner, "revoked-token").await.unwrap();
    out.push(("revoked", revoked.token));
    out.try_into().unwrap()
}

/// A batch to group 1A awaiting approval: its id, a waiting message's id, its version.
async fn awaiting_batch(app: &TestApp) -> (i64, i64, String) {
    let owner = app.owner().await;
    let content = herald::compose::Content::email("Trip", "On Friday.").unwrap();
    let send = herald::compose::compose_send(
        &*app.store,
        &app.settings,
        &owner,
        &herald::domain::Audience::Group("g-1a".into()),
        herald::domain::Reach::Both,
        &content,
    )
    .await
    .unwrap();
    let id = app.store_send(&send, now()).await;
    let message = app
        .store
        .messages(&herald::store::MessageFilter {
            batch: Some(id),
            status: Some(herald::domain::MessageStatus::AwaitingApproval),
            ..Default::default()
        })
        .await
        .unwrap()[0]
        .id;
    let view = app
        .app_at(now())
        .batch_view(&Actor::operator(OWNER), id)
        .await
        .unwrap();
    (id.0, message.0, view.version)
}

async fn each_route_answers_each_kind_of_caller_as_expected(app: TestApp) {
    let tokens = tokens(&app).await;
    let server = Server::start(&app, 1 << 20).await;
    let token = |who: &str| tokens.iter().find(|(w, _)| *w == who).unwrap().1.clone();
    let malformed = "not-a-token".to_owned();
    let unknown = "hrd_9999_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned();
    let callers: [(&str, Option<String>); 7] = [
        ("none", None),
        ("malformed", Some(malformed)),
        ("unknown", Some(unknown)),
        ("revoked", Some(token("revoked"))),
        ("teacher", Some(token("teacher"))),
        ("secretary", Some(token("secretary"))),
        ("owner", Some(token("owner"))),
    ];
    let hold = json!({"on": false});
    let top_up = json!({"points": 5, "note": "FV 1"});
    let holiday = json!({"name": "Day", "first_day": "2099-05-02"});
    // (method, path, body, expected for teacher, secretary, owner); every route
    // answers 401 to the first four callers.
    let routes: Vec<(Method, &str, Option<Value>, [u16; 3])> = vec![
        (Method::GET, "/api/v1/wallet", None, [200, 200, 200]),
        (
            Method::POST,
            "/api/v1/wallet/top-ups",
            Some(top_up),
            [403, 201, 201],
        ),
        (Method::GET, "/api/v1/hold", None, [200, 200, 200]),
        (Method::PUT, "/api/v1/hold", Some(hold), [403, 200, 200]),
        (Method::GET, "/api/v1/holidays", None, [200, 200, 200]),
        (
            Method::POST,
            "/api/v1/holidays",
            Some(holiday),
            [403, 201, 201],
        ),
        (
            Method::DELETE,
            "/api/v1/holidays/{holiday}",
            None,
            [403, 204, 204],
        ),
        (
            Method::GET,
            "/api/v1/batches?status=awaiting_approval",
            None,
            [200, 200, 200],
        ),
        (
            Method::GET,
            "/api/v1/batches/{batch}",
            None,
            [200, 200, 200],
        ),
        (
            Method::POST,
            "/api/v1/batches/{batch}/approve",
            Some(json!({"seen": "{version}"})),
            [403, 200, 200],
        ),
        (
            Method::POST,
            "/api/v1/batches/{batch}/reject",
            Some(json!({"seen": "{version}", "reason": "no"})),
            [403, 200, 200],
        ),
        (
            Method::POST,
            "/api/v1/messages/{message}/cancel",
            None,
            [403, 200, 200],
        ),
        (
            Method::GET,
            "/api/v1/messages/{message}/diagnosis",
            None,
            [200, 200, 200],
        ),
        (
            Method::GET,
            "/api/v1/recipients/s-1001/diagnosis",
            None,
            [200, 200, 200],
        ),
        (
            Method::POST,
            "/api/v1/import",
            Some(
                json!({"recipients": [{"external_id": "s-9001", "role": "student", "name": "Nowa Uczennica"}]}),
            ),
            [403, 200, 200],
        ),
        (
            Method::POST,
            "/api/v1/notifications",
            Some(json!({"recipient": "s-1001", "subject": "S", "body": "B"})),
            [403, 201, 201],
        ),
        (
            Method::POST,
            "/api/v1/sends",
            Some(json!({"groups": ["g-1a"], "subject": "S", "body": "B"})),
            [403, 201, 201],
        ),
        (
            Method::GET,
            "/api/v1/messages?limit=5",
            None,
            [200, 200, 200],
        ),
        (
            Method::GET,
            "/api/v1/messages/{message}",
            None,
            [200, 200, 200],
        ),
    ];
    for (method, path, body, expected) in &routes {
        for (i, (who, t)) in callers.iter().enumerate() {
            // A fresh day off for each DELETE, so the allowed ones have one to remove.
            let owner = Actor::operator(OWNER);
            let day = app
                .app_at(now())
                .add_holiday(
                    &owner,
                    "X",
                    "2099-06-01".parse().unwrap(),
                    "2099-06-01".parse().unwrap(),
                )
                .await
                .unwrap();
            let (batch, message, version) = awaiting_batch(&app).await;
            let path = path
                .replace("{holiday}", &day.id.unwrap().to_string())
                .replace("{batch}", &batch.to_string())
                .replace("{message}", &message.to_string());
            let body = body.as_ref().map(|b| {
                serde_json::from_str(&b.to_string().replace("{version}", &version)).unwrap()
            });
            let want = if i < 4 { 401 } else { expected[i - 4] };
            let (status, answer) = server.call(method.clone(), &path, t.as_deref(), body).await;
            assert_eq!(status.as_u16(), want, "{method} {path} as {who}: {answer}");
            if want >= 400 {
                let code = answer["error"]["code"].as_str().unwrap_or_default();
                let expected_code: &[&str] = if want == 401 {
                    &["unauthenticated"]
                } else {
                    // A teacher writing outside their groups is refused as such.
                    &["forbidden", "outside_groups"]
                };
                assert!(
                    expected_code.contains(&code),
                    "{method} {path} as {who}: {answer}"
                );
            }
        }
    }
    // Health needs no token.
    let (status, _) = server.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = server.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

async fn errors_have_one_shape_and_an_oversized_body_writes_nothing(app: TestApp) {
    let tokens = tokens(&app).await;
    let owner = tokens[0].1.clone();
    let server = Server::start(&app, 1024).await;
    // (method, path, body, status, code, field)
    type Case<'a> = (
        Method,
        &'a str,
        Option<Value>,
        u16,
        &'a str,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            Method::GET,
            "/api/v1/nothing-here",
            None,
            404,
            "not_found",
            None,
        ),
        (
            Method::GET,
            "/api/v1/wallet?ledger=abc",
            None,
            400,
            "bad_request",
            None,
        ),
        (
            Method::DELETE,
            "/api/v1/holidays/abc",
            None,
            404,
            "not_found",
            None,
        ),
        (
            Method::GET,
            "/api/v1/recipients/%FF/diagnosis",
            None,
            404,
            "not_found",
            None,
        ),
        (
            Method::PATCH,
            "/api/v1/hold",
            None,
            405,
            "method_not_allowed",
            None,
        ),
        (
            Method::POST,
            "/api/v1/wallet/top-ups",
            Some(json!({"points": "x"})),
            400,
            "bad_request",
            None,
        ),
        (
            Method::POST,
            "/api/v1/wallet/top-ups",
            Some(json!({"points": -1, "note": "x"})),
            422,
            "invalid",
            Some("points"),
        ),
        (
            Method::POST,
            "/api/v1/wallet/top-ups",
            Some(json!({"points": 1, "note": " "})),
            422,
            "invalid",
            Some("note"),
        ),
        (
            Method::PUT,
            "/api/v1/hold",
            Some(json!({"on": true})),
            422,
            "invalid",
            Some("reason"),
        ),
        (
            Method::DELETE,
            "/api/v1/holidays/424242",
            None,
            404,
            "not_found",
            None,
        ),
        (
            Method::POST,
            "/api/v1/holidays",
            Some(json!({"name": "Back", "first_day": "2099-05-02", "last_day": "2099-05-01"})),
            422,
            "invalid",
            Some("holiday"),
        ),
    ];
    for (method, path, body, want, code, field) in cases {
        let (status, answer) = server.call(method.clone(), path, Some(&owner), body).await;
        assert_eq!(status.as_u16(), want, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{method} {path}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert_eq!(
            answer["error"]["field"].as_str(),
            field,
            "{method} {path}: {answer}"
        );
    }
    // A 401 says which scheme would do.
    let res = server
        .client
        .get(format!("{}/api/v1/wallet", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    // A route that cannot honour an Idempotency-Key refuses one instead of ignoring it.
    let res = server
        .client
        .post(format!("{}/api/v1/wallet/top-ups", server.base))
        .bearer_auth(&owner)
        .header("Idempotency-Key", "fv-1")
        .json(&json!({"points": 5, "note": "FV 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.store.wallet().await.unwrap().balance,
        0,
        "nothing credited"
    );
    // Over the limit: 413 in the same shape, and nothing written.
    let big = json!({"name": "x".repeat(4000), "first_day": "2099-05-02"});
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/holidays",
            Some(&owner).map(|s| s.as_str()),
            Some(big),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["error"]["code"], "too_large");
    let said = answer["error"]["message"].as_str().unwrap();
    assert!(said.contains("KiB (http.body_limit_kib)"), "{said}");
    assert!(app.store.holidays(None).await.unwrap().is_empty());
    let many: Vec<Value> = (0..100)
        .map(|i| json!({"external_id": format!("s-8{i:03}"), "role": "student", "name": "Uczeń"}))
        .collect();
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/import",
            Some(&owner),
            Some(json!({"recipients": many})),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["error"]["code"], "too_large");
    let said = answer["error"]["message"].as_str().unwrap();
    assert!(said.contains("KiB (http.body_limit_kib)"), "{said}");
    assert!(app.store.recipient("s-8000").await.unwrap().is_none());
}

async fn holidays_the_hold_and_the_wallet_round_trip(app: TestApp) {
    let tokens = tokens(&app).await;
    let secretary = tokens[1].1.clone();
    let server = Server::start(&app, 1 << 20).await;
    let t = Some(secretary.as_str());
    let (status, added) = server
        .call(
            Method::POST,
            "/api/v1/holidays",
            t,
            Some(json!({"name": "Ferie", "first_day": "2027-01-18", "last_day": "2027-01-31"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    let (_, list) = server
        .call(Method::GET, "/api/v1/holidays?all=true", t, None)
        .await;
    assert_eq!(list[0]["name"], "Ferie", "{list}");
    let path = format!("/api/v1/holidays/{}", added["id"]);
    assert_eq!(
        server.call(Method::DELETE, &path, t, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        server.call(Method::DELETE, &path, t, None).await.0,
        StatusCode::NOT_FOUND
    );

    let (status, hold) = server
        .call(
            Method::PUT,
            "/api/v1/hold",
            t,
            Some(json!({"on": true, "reason": "wrong date"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{hold}");
    assert_eq!(hold["on"], true);
    assert_eq!(hold["hold"]["by"], "anna", "the token acts as its operator");
    assert_eq!(
        app.store.hold().await.unwrap().unwrap().reason,
        "wrong date"
    );

    let (status, wallet) = server
        .call(
            Method::POST,
            "/api/v1/wallet/top-ups",
            t,
            Some(json!({"points": 250, "note": "FV 12/2026"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{wallet}");
    assert_eq!(wallet["balance"], 250);
    let (_, view) = server
        .call(Method::GET, "/api/v1/wallet?ledger=5", t, None)
        .await;
    assert_eq!(view["balance"], 250);
    assert_eq!(view["ledger"][0]["note"], "FV 12/2026");
    // The scheme is case-insensitive.
    let lower = server
        .client
        .get(format!("{}/api/v1/wallet", server.base))
        .header("Authorization", format!("bearer {secretary}"))
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status(), StatusCode::OK);
    // Each change is in the audit log under the token's operator.
    let lines = app
        .store
        .audit_log(&herald::store::AuditFilter {
            actor: Some("anna".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(lines.len(), 4, "{lines:?}");
}

async fn an_approval_names_the_version_it_saw_and_a_stale_one_is_409(app: TestApp) {
    let tokens = tokens(&app).await;
    let secretary = tokens[1].1.clone();
    let t = Some(secretary.as_str());
    let server = Server::start(&app, 1 << 20).await;
    let (batch, _, _) = awaiting_batch(&app).await;
    let (status, view) = server
        .call(Method::GET, &format!("/api/v1/batches/{batch}"), t, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let seen = view["version"].as_str().unwrap().to_owned();
    assert_eq!(view["batch"]["status"], "awaiting_approval");
    // Without the version: refused, naming the field.
    let approve = format!("/api/v1/batches/{batch}/approve");
    let (status, answer) = server
        .call(Method::POST, &approve, t, Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["field"], "seen");
    // Edited since it was shown: 409, and nothing decided.
    let edit = herald::app::BatchText {
        body: "On Saturday.".into(),
        ..Default::default()
    };
    app.app_at(now())
        .edit_batch(
            &Actor::operator(OWNER),
            herald::domain::BatchId(batch),
            &edit,
        )
        .await
        .unwrap();
    let (status, answer) = server
        .call(Method::POST, &approve, t, Some(json!({"seen": seen})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"]["code"], "conflict");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the text was edited"),
        "{answer}"
    );
    let (_, view) = server
        .call(Method::GET, &format!("/api/v1/batches/{batch}"), t, None)
        .await;
    assert_eq!(view["batch"]["status"], "awaiting_approval");
    let (status, answer) = server
        .call(
            Method::POST,
            &approve,
            t,
            Some(json!({"seen": view["version"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["messages"].as_u64().unwrap() > 0);
    // Ids and codes in the path and the query are checked too.
    let (status, answer) = server
        .call(Method::GET, "/api/v1/batches/abc", t, None)
        .await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );
    let (status, answer) = server
        .call(Method::GET, "/api/v1/batches?status=pending", t, None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["field"], "status");
}

async fn messages_page_newest_first_with_a_cursor_and_filters(app: TestApp) {
    let tokens = tokens(&app).await;
    let owner = tokens[0].1.clone();
    let t = Some(owner.as_str());
    let server = Server::start(&app, 1 << 20).await;
    for _ in 0..3 {
        awaiting_batch(&app).await;
    }
    let all = app
        .store
        .messages(&herald::store::MessageFilter::default())
        .await
        .unwrap();
    assert!(all.len() > 4, "{}", all.len());
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/messages?limit=2&cursor={c}"),
            None => "/api/v1/messages?limit=2".to_owned(),
        };
        let (status, page) = server.call(Method::GET, &path, t, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|m| m["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<i64> = all.iter().map(|m| m.id.0).collect();
    assert_eq!(seen, expected, "every message once, newest first");
    // Filters: the blocked ones for want of an email address.
    let (_, page) = server
        .call(
            Method::GET,
            "/api/v1/messages?status=blocked&reason=missing_email",
            t,
            None,
        )
        .await;
    let items = page["items"].as_array().unwrap();
    assert!(!items.is_empty(), "{page}");
    assert!(
        items
            .iter()
            .all(|m| m["status"] == "blocked" && m["reason"] == "missing_email")
    );
    for bad in [
        "limit=0",
        "limit=5000",
        "cursor=xyz",
        "reason=lost",
        "status=gone",
    ] {
        let (status, answer) = server
            .call(Method::GET, &format!("/api/v1/messages?{bad}"), t, None)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid", "{bad}");
    }
    // One message with its story.
    let id = expected[0];
    let (status, one) = server
        .call(Method::GET, &format!("/api/v1/messages/{id}"), t, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["message"]["message"]["id"], id, "{one}");
    assert!(
        one["events"].as_array().is_some_and(|e| !e.is_empty()),
        "{one}"
    );
}

async fn a_send_is_composed_or_dry_run_and_refused_when_its_audience_or_text_is_unclear(
    app: TestApp,
) {
    let tokens = tokens(&app).await;
    let secretary = tokens[1].1.clone();
    let t = Some(secretary.as_str());
    let server = Server::start(&app, 1 << 20).await;
    let trip = json!({"all_groups": true, "reach": "guardians", "subject": "Trip", "body": "On Friday.", "dry_run": true});
    let (status, dry) = server
        .call(Method::POST, "/api/v1/sends", t, Some(trip.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert!(dry["summary"]["will_go"].as_i64().unwrap() > 0, "{dry}");
    assert!(
        app.store.batches(None).await.unwrap().is_empty(),
        "a dry run stores nothing"
    );
    let mut real = trip;
    real["dry_run"] = json!(false);
    let (status, sent) = server
        .call(Method::POST, "/api/v1/sends", t, Some(real))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert_eq!(sent["status"], "awaiting_approval");
    let (status, view) = server
        .call(Method::GET, sent["uri"].as_str().unwrap(), t, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["summary"]["will_go"], dry["summary"]["will_go"]);
    for (body, field) in [
        (
            json!({"all_groups": true, "groups": ["g-1a"], "subject": "S", "body": "B"}),
            "audience",
        ),
        (json!({"subject": "S", "body": "B"}), "audience"),
        (json!({"all_groups": true, "subject": "S"}), "body"),
        (
            json!({"all_groups": true, "subject": "S", "body": "B", "channel": "pigeon"}),
            "channel",
        ),
        (json!({"all_groups": true, "body": "B"}), "subject"),
    ] {
        let (status, answer) = server
            .call(Method::POST, "/api/v1/sends", t, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    assert_eq!(
        app.store.batches(None).await.unwrap().len(),
        1,
        "refusals store nothing"
    );
}

async fn one_idempotency_key_makes_one_message_under_a_hundred_concurrent_requests_to_two_servers(
    app: TestApp,
) {
    let tokens = tokens(&app).await;
    let secretary = tokens[1].1.clone();
    let first = Server::start(&app, 1 << 20).await;
    // A second instance: its own pool on the same database.
    let other = herald::store::open(&app.settings.database).await.unwrap();
    let second = Server::start_on(&app, other, 1 << 20).await;
    let body =
        json!({"recipient": "t-3001", "subject": "Password reset", "body": "Your code is 1234."});
    let mut calls = Vec::new();
    for i in 0..100 {
        let server = if i % 2 == 0 { &first } else { &second };
        let request = server
            .client
            .post(format!("{}/api/v1/notifications", server.base))
            .bearer_auth(&secretary)
            .header("Idempotency-Key", "reset-t-3001-0001")
            .json(&body)
            .send();
        calls.push(request);
    }
    let answers = futures_join_all(calls).await;
    let mut ids = std::collections::BTreeSet::new();
    let mut created = 0;
    for res in answers {
        let res = res.unwrap();
        let status = res.status();
        let answer: Value = res.json().await.unwrap();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status}: {answer}"
        );
        created += usize::from(status == StatusCode::CREATED);
        ids.insert(answer["id"].as_i64().unwrap());
    }
    assert_eq!(created, 1, "one request created it, the others found it");
    assert_eq!(ids.len(), 1, "every answer carries its id: {ids:?}");
    assert_eq!(app.messages_to("t-3001").await.len(), 1, "one message");
    // The same request with its defaults spelt out is the same request.
    let spelt_out = json!({"recipient": "t-3001", "channel": "email", "subject": "Password reset",
        "body": "Your code is 1234.", "transliterate": false});
    let (status, answer) = call_with_key(&first, &secretary, "reset-t-3001-0001", &spelt_out).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // The same key with another request is refused; a request without a key is new.
    let other_body =
        json!({"recipient": "t-3001", "subject": "Password reset", "body": "Your code is 9999."});
    let (status, answer) =
        call_with_key(&first, &secretary, "reset-t-3001-0001", &other_body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["field"], "idempotency_key");
    let (status, _) = first
        .call(
            Method::POST,
            "/api/v1/notifications",
            Some(&secretary),
            Some(other_body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(app.messages_to("t-3001").await.len(), 2);
}

async fn call_with_key(
    server: &Server,
    token: &str,
    key: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let res = server
        .client
        .post(format!("{}/api/v1/notifications", server.base))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap())
}

/// Runs the requests at once and waits for all of them.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: Vec<F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

async fn the_platform_feeds_the_directory_good_records_applied_bad_ones_reported(app: TestApp) {
    let tokens = tokens(&app).await;
    let secretary = tokens[1].1.clone();
    let t = Some(secretary.as_str());
    let server = Server::start(&app, 1 << 20).await;
    let document = json!({
        "recipients": [
            {"external_id": "s-9001", "role": "student", "name": "Nowa Uczennica", "email": "nowa@example.pl"},
            {"external_id": "s-9002", "role": "janitor", "name": "Zły Wiersz"},
        ],
        "memberships": [
            {"group_id": "g-1a", "member_id": "s-9001"},
            {"group_id": "g-1a"},
        ],
    });
    let (status, report) = server
        .call(Method::POST, "/api/v1/import", t, Some(document.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{report}");
    // Each refused record by its array and its index there, the field and what was
    // expected.
    let found: Vec<(&str, i64, &str)> = errors
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["index"].as_i64().unwrap(),
                e["field"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [("recipients", 1, "role"), ("memberships", 1, "member_id")],
        "{report}"
    );
    assert!(
        errors[0]["expected"]
            .as_str()
            .unwrap()
            .contains("student, guardian"),
        "{report}"
    );
    assert!(app.store.recipient("s-9001").await.unwrap().is_some());
    assert!(app.store.recipient("s-9002").await.unwrap().is_none());
    // Again: nothing changes.
    let (_, again) = server
        .call(Method::POST, "/api/v1/import", t, Some(document))
        .await;
    let counts = again["counts"].to_string();
    assert!(!counts.contains("\"created\":1"), "{again}");
    // Not a document: 422 about it, nothing written.
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/import",
            t,
            Some(json!({"pupils": []})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["field"], "document");
}

/// A saved email template for system messages, in Polish.
async fn account_template(app: &TestApp, body: &str) {
    let variant = herald::templates::Variant {
        name: "account-created".into(),
        locale: "pl".into(),
        channel: herald::domain::Channel::Email,
        subject: Some("Konto: {{ recipient.name }}".into()),
        body: body.into(),
        html: None,
    };
    app.app_at(now())
        .save_template(&Actor::operator(OWNER), &variant)
        .await
        .unwrap();
}

/// The queued system messages, with their text, as the dispatcher would claim them.
async fn queued_system_messages(app: &TestApp) -> Vec<herald::store::Claimed> {
    app.store
        .claim_due(
            now() + chrono::Duration::days(1),
            &[herald::domain::MessageKind::System],
            "test",
            now() + chrono::Duration::days(2),
            100,
        )
        .await
        .unwrap()
}

async fn a_notification_from_a_template_is_rendered_for_its_recipient_and_an_unclear_one_refused(
    app: TestApp,
) {
    let tokens = tokens(&app).await;
    let secretary = tokens[1].1.clone();
    let t = Some(secretary.as_str());
    let server = Server::start(&app, 1 << 20).await;
    account_template(
        &app,
        "Dzień dobry {{ recipient.name }}, kod: {{ vars.code }}.",
    )
    .await;
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/notifications",
            t,
            Some(
                json!({"recipient": "gd-2001", "template": "account-created",
                "vars": {"code": "X-17"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["status"], "queued", "{answer}");
    let queued = queued_system_messages(&app).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].id.0, answer["id"].as_i64().unwrap());
    assert_eq!(queued[0].subject.as_deref(), Some("Konto: Anna Nowak"));
    assert_eq!(queued[0].body, "Dzień dobry Anna Nowak, kod: X-17.");

    // Someone Herald does not know: a blocked message that says so.
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/notifications",
            t,
            Some(
                json!({"recipient": "gd-9999", "template": "account-created",
                "vars": {"code": "X-18"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        (&answer["status"], &answer["reason"]),
        (&json!("blocked"), &json!("recipient_unknown"))
    );

    let before = app.messages_to("gd-2001").await.len();
    for (body, field) in [
        (
            json!({"recipient": "gd-2001", "template": "no-such-template"}),
            "template",
        ),
        (
            json!({"recipient": "gd-2001", "template": "account-created", "channel": "sms",
                "vars": {"code": "1"}}),
            "template",
        ),
        (
            json!({"recipient": "gd-2001", "template": "account-created"}),
            "template",
        ),
        (
            json!({"recipient": "gd-2001", "template": "account-created", "subject": "S",
                "body": "B"}),
            "body",
        ),
        (
            json!({"recipient": "gd-2001", "template": "account-created", "body": "B"}),
            "body",
        ),
        (json!({"recipient": "gd-2001", "subject": "S"}), "body"),
        (
            json!({"recipient": "gd-2001", "template": "account-created", "subject": "S",
                "vars": {"code": "1"}}),
            "subject",
        ),
        (
            json!({"recipient": "gd-2001", "subject": "S", "body": "B", "vars": {"code": "1"}}),
            "vars",
        ),
    ] {
        let (status, answer) = server
            .call(Method::POST, "/api/v1/notifications", t, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid", "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    assert_eq!(
        app.messages_to("gd-2001").await.len(),
        before,
        "refusals store nothing"
    );
}

async fn a_repeated_key_answers_the_first_message_without_composing_again(app: TestApp) {
    let tokens = tokens(&app).await;
    let secretary = tokens[1].1.clone();
    let server = Server::start(&app, 1 << 20).await;
    account_template(&app, "Kod: {{ vars.code }}.").await;
    let request = json!({"recipient": "gd-2001", "template": "account-created",
        "vars": {"code": "A-1"}});
    let (status, first) = call_with_key(&server, &secretary, "account-gd-2001", &request).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    // The template now needs a variable the request does not give: composing again
    // would fail, so a repeat that answers 200 did not compose.
    account_template(&app, "Kod: {{ vars.code }}, login: {{ vars.login }}.").await;
    let (status, again) = call_with_key(&server, &secretary, "account-gd-2001", &request).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], first["id"]);
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/notifications",
            Some(&secretary),
            Some(request.clone()),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "without a key: {answer}"
    );
    assert_eq!(answer["error"]["field"], "template");
    // The fingerprint covers the template and its values: other values are another
    // request.
    let other = json!({"recipient": "gd-2001", "template": "account-created",
        "vars": {"code": "A-2"}});
    let (status, answer) = call_with_key(&server, &secretary, "account-gd-2001", &other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["field"], "idempotency_key");
    // A text under a template's key is another request too.
    let text = json!({"recipient": "gd-2001", "subject": "Kod", "body": "Kod: A-1."});
    let (status, answer) = call_with_key(&server, &secretary, "account-gd-2001", &text).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let queued = queued_system_messages(&app).await;
    assert_eq!(queued.len(), 1, "one message");
    assert_eq!(queued[0].body, "Kod: A-1.");
}
