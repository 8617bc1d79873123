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
