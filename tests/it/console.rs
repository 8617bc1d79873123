//! The console over HTTP, on both backends: sign-in with a password (refused,
//! throttled, accepted), the session cookie's protections, the start page as the
//! signed-in operator, sign-out, and a cross-origin POST refused by the CSRF check.

use herald::app::Actor;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use secrecy::SecretString;

use crate::conformance;
use crate::helpers::{OWNER, TestApp, now};
use crate::http::Server;

conformance!(
    why_did_they_not_get_it_finds_a_person_and_shows_each_check,
    a_secretary_approves_the_version_she_saw_and_a_teacher_cannot_approve_at_all,
    a_secretary_signs_in_sees_the_start_page_and_signs_out,
    wrong_passwords_are_refused_then_throttled_and_cross_origin_posts_refused,
);

/// A client that follows no redirect, so each answer can be looked at.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn with_anna(app: &TestApp) -> Server {
    app.owner().await;
    app.operator_with("anna", "secretary", &[]).await;
    app.app_at(now())
        .set_password(
            &Actor::operator(OWNER),
            "anna",
            &SecretString::from("zebranie w czwartek"),
        )
        .await
        .unwrap();
    Server::start_with(std::sync::Arc::clone(&app.store), app.settings.clone()).await
}

/// `method path` with the session cookie `pair` (`name=value`) and these headers.
async fn call(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    pair: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = client()
        .request(method, format!("{}{path}", server.base))
        .header(COOKIE, pair);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// A form posted to `path` with the session cookie `pair` and these headers.
async fn post_form(
    server: &Server,
    path: &str,
    pair: &str,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}{path}", server.base))
        .header(COOKIE, pair)
        .form(form);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn sign_in(server: &Server, login: &str, password: &str) -> reqwest::Response {
    client()
        .post(format!("{}/console/sign-in", server.base))
        .form(&[("login", login), ("password", password)])
        .send()
        .await
        .unwrap()
}

async fn a_secretary_signs_in_sees_the_start_page_and_signs_out(app: TestApp) {
    let server = with_anna(&app).await;
    // Not signed in: sent to the sign-in page, which asks in the browser's language.
    let start = call(&server, reqwest::Method::GET, "/console/", "", &[]).await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    assert_eq!(start.headers()[LOCATION], "/console/sign-in");
    let polish = [("accept-language", "pl-PL,pl;q=0.9,en;q=0.5")];
    let page = call(
        &server,
        reqwest::Method::GET,
        "/console/sign-in",
        "",
        &polish,
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        page.contains("Zaloguj się") && page.contains(r#"type="password""#),
        "{page}"
    );

    let signed = sign_in(&server, "anna", "zebranie w czwartek").await;
    assert_eq!(
        signed.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        signed.headers()
    );
    assert_eq!(signed.headers()[LOCATION], "/console/");
    let cookie = signed.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for property in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(property), "{property}: {cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_owned();
    assert!(pair.starts_with("herald_session="), "{pair}");
    // The database keeps no session id in clear.
    let id = pair.trim_start_matches("herald_session=");
    assert_eq!(app.store.load_session(id, now()).await.unwrap(), None);

    let start = call(&server, reqwest::Method::GET, "/console/", &pair, &[]).await;
    assert_eq!(start.status(), StatusCode::OK);
    let page = start.text().await.unwrap();
    assert!(
        page.contains("anna") && page.contains("secretary"),
        "{page}"
    );
    assert!(
        page.contains("Awaiting approval") && page.contains("SMS wallet"),
        "{page}"
    );

    let out = call(
        &server,
        reqwest::Method::POST,
        "/console/sign-out",
        &pair,
        &[],
    )
    .await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = call(&server, reqwest::Method::GET, "/console/", &pair, &[]).await;
    assert_eq!(
        after.status(),
        StatusCode::SEE_OTHER,
        "the old cookie signs nobody in"
    );
}

async fn wrong_passwords_are_refused_then_throttled_and_cross_origin_posts_refused(app: TestApp) {
    let server = with_anna(&app).await;
    // An unknown login and a wrong password get the same answer.
    let unknown = sign_in(&server, "nobody", "zebranie w czwartek").await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let unknown = unknown.text().await.unwrap();
    let wrong = sign_in(&server, "anna", "zebranie w piątek").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let wrong = wrong.text().await.unwrap();
    assert!(wrong.contains("does not match") && unknown.contains("does not match"));
    assert!(
        wrong.contains(r#"value="anna""#),
        "the login is kept: {wrong}"
    );
    // Four more wrong tries, then even the right password waits.
    for _ in 0..4 {
        sign_in(&server, "anna", "zebranie w piątek").await;
    }
    let held = sign_in(&server, "anna", "zebranie w czwartek").await;
    assert_eq!(held.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(held.text().await.unwrap().contains("Too many attempts"));
    // Another operator on the same address is not held up by Anna's login.
    app.app_at(now())
        .set_password(
            &Actor::operator(OWNER),
            OWNER,
            &SecretString::from("dyrektor szkoły 2026"),
        )
        .await
        .unwrap();
    let owner = sign_in(&server, OWNER, "dyrektor szkoły 2026").await;
    assert_eq!(owner.status(), StatusCode::SEE_OTHER);

    // A form posted from another site is refused before it is read.
    let forged = client()
        .post(format!("{}/console/sign-in", server.base))
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .form(&[("login", OWNER), ("password", "dyrektor szkoły 2026")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(forged.headers().get(SET_COOKIE).is_none());
}

/// The session cookie (`name=value`) of `login` signed in with `password`.
async fn session_of(server: &Server, login: &str, password: &str) -> String {
    let signed = sign_in(server, login, password).await;
    assert_eq!(signed.status(), StatusCode::SEE_OTHER, "{login} signs in");
    let cookie = signed.headers()[SET_COOKIE].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// The value of the hidden `seen` field on a batch page.
fn seen_on(page: &str) -> String {
    let at = page
        .find(r#"name="seen" value=""#)
        .expect("an approve form")
        + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

async fn a_secretary_approves_the_version_she_saw_and_a_teacher_cannot_approve_at_all(
    app: TestApp,
) {
    app.import_examples(now()).await;
    let server = with_anna(&app).await;
    app.operator_with("tomek", "teacher", &[]).await;
    let herald = app.app_at(now());
    herald
        .set_password(
            &Actor::operator(OWNER),
            "tomek",
            &SecretString::from("lekcja numer siedem"),
        )
        .await
        .unwrap();
    let trip = herald::app::SendRequest {
        audience: herald::domain::Audience::AllGroups,
        reach: herald::domain::Reach::Both,
        channel: herald::domain::ChannelChoice::Email,
        content: herald::app::SendContent::Text {
            subject: Some("Wycieczka".into()),
            body: "W piątek jedziemy do Krakowa.".into(),
            html: None,
        },
        transliterate: false,
    };
    let batch = herald
        .send(&Actor::operator(OWNER), &trip, false)
        .await
        .unwrap()
        .batch
        .unwrap();
    let anna = session_of(&server, "anna", "zebranie w czwartek").await;
    let get = |path: String, pair: String| {
        let server = &server;
        async move {
            let r = call(server, reqwest::Method::GET, &path, &pair, &[]).await;
            (r.status(), r.text().await.unwrap())
        }
    };
    let (status, outbox) = get("/console/outbox".into(), anna.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        outbox.contains(&format!("/console/outbox/{}", batch.0)),
        "{outbox}"
    );
    let (_, page) = get(format!("/console/outbox/{}", batch.0), anna.clone()).await;
    assert!(
        page.contains("W piątek jedziemy do Krakowa.") && page.contains("Approve"),
        "{page}"
    );
    let seen = seen_on(&page);
    let approve_path = format!("/console/outbox/{}/approve", batch.0);

    // A teacher sees the batch but no button, and a forged approval is refused.
    let tomek = session_of(&server, "tomek", "lekcja numer siedem").await;
    let (_, theirs) = get(format!("/console/outbox/{}", batch.0), tomek.clone()).await;
    assert!(
        !theirs.contains("/approve") && theirs.contains("You may not approve"),
        "{theirs}"
    );
    let forged = post_form(
        &server,
        &approve_path,
        &tomek,
        &[("seen", seen.as_str())],
        &[],
    )
    .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    // So is an approval posted from another site, even with Anna's cookie.
    let cross = post_form(
        &server,
        &approve_path,
        &anna,
        &[("seen", seen.as_str())],
        &[
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
    )
    .await;
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let status_of = || async {
        herald
            .batch_view(&Actor::operator(OWNER), batch)
            .await
            .unwrap()
            .batch
            .status
    };
    assert_eq!(
        status_of().await,
        herald::domain::BatchStatus::AwaitingApproval
    );

    // The text changes after Anna opened the page: her approval is refused (409) and
    // the page shows what is there now.
    herald
        .edit_batch(
            &Actor::operator(OWNER),
            batch,
            &herald::app::BatchText {
                channel: None,
                subject: None,
                body: "W sobotę jedziemy do Krakowa.".into(),
                html: None,
                transliterate: false,
            },
        )
        .await
        .unwrap();
    let stale = post_form(
        &server,
        &approve_path,
        &anna,
        &[("seen", seen.as_str())],
        &[],
    )
    .await;
    assert_eq!(stale.status(), StatusCode::CONFLICT);
    let page = stale.text().await.unwrap();
    assert!(
        page.contains("changed since you opened it") && page.contains("W sobotę"),
        "{page}"
    );
    assert_eq!(
        status_of().await,
        herald::domain::BatchStatus::AwaitingApproval
    );

    // Approving the version on screen works and says so.
    let fresh = seen_on(&page);
    let approved = post_form(
        &server,
        &approve_path,
        &anna,
        &[("seen", fresh.as_str())],
        &[],
    )
    .await;
    assert_eq!(approved.status(), StatusCode::SEE_OTHER);
    let to = approved.headers()[LOCATION].to_str().unwrap().to_owned();
    let (_, after) = get(to, anna.clone()).await;
    assert!(
        after.contains("Approved; the messages go on the next pass."),
        "{after}"
    );
    assert_eq!(status_of().await, herald::domain::BatchStatus::Approved);
    let log = app
        .store
        .audit_log(&herald::store::AuditFilter::default())
        .await
        .unwrap();
    assert!(
        log.iter()
            .any(|e| e.actor == "anna" && e.action == herald::domain::audit::AuditAction::Approve),
        "the console's approval is audited as Anna's"
    );
}

async fn why_did_they_not_get_it_finds_a_person_and_shows_each_check(app: TestApp) {
    app.import_examples(now()).await;
    let server = with_anna(&app).await;
    let anna = session_of(&server, "anna", "zebranie w czwartek").await;
    let page = |q: &str| {
        let path = format!("/console/why?q={q}");
        let (server, anna) = (&server, anna.clone());
        async move {
            let r = call(server, reqwest::Method::GET, &path, &anna, &[]).await;
            (r.status(), r.text().await.unwrap())
        }
    };
    let (status, found) = page("gd-2001").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        found.contains("gd-2001") && found.contains("class=\"checks\""),
        "{found}"
    );
    let (_, nobody) = page("nikt-taki").await;
    assert!(nobody.contains("Nobody matches"), "{nobody}");
    // Not signed in: sent to sign in, nothing shown.
    let out = call(
        &server,
        reqwest::Method::GET,
        "/console/why?q=gd-2001",
        "",
        &[],
    )
    .await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
}
