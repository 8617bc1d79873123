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
    the_start_page_shows_what_waits_for_a_decision_on_an_unknown_outcome,
    odd_input_gets_a_page_and_changes_nothing,
    a_day_off_says_how_many_waiting_messages_it_will_hold,
    every_page_shows_to_each_role_in_both_languages,
    each_form_refuses_whom_it_must_and_any_post_from_another_origin,
    the_compose_form_checks_sends_nothing_then_submits_and_names_a_bad_field,
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

/// GET `path` with the session `pair`, asking for `lang`: the status and the page.
async fn page_of(server: &Server, path: &str, pair: &str, lang: &str) -> (StatusCode, String) {
    let r = call(
        server,
        reqwest::Method::GET,
        path,
        pair,
        &[("accept-language", lang)],
    )
    .await;
    (r.status(), r.text().await.unwrap())
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

/// The fingerprint of the check a compose page shows (its hidden `checked` field).
fn checked_on(page: &str) -> String {
    let at = page
        .find(r#"name="checked" value=""#)
        .expect("a checked form")
        + 22;
    page[at..].split('"').next().unwrap().to_owned()
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
    let batch = a_batch(&app, herald::domain::ChannelChoice::Email).await;
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

/// The owner (`owner`), a secretary (`anna`) and a teacher of no group (`tomek`),
/// each signed in: their session cookies.
async fn three_signed_in(app: &TestApp, server: &Server) -> (String, String, String) {
    app.operator_with("tomek", "teacher", &[]).await;
    let herald = app.app_at(now());
    for (login, password) in [
        (OWNER, "dyrektor szkoły 2026"),
        ("tomek", "lekcja numer siedem"),
    ] {
        herald
            .set_password(
                &Actor::operator(OWNER),
                login,
                &SecretString::from(password),
            )
            .await
            .unwrap();
    }
    (
        session_of(server, OWNER, "dyrektor szkoły 2026").await,
        session_of(server, "anna", "zebranie w czwartek").await,
        session_of(server, "tomek", "lekcja numer siedem").await,
    )
}

/// A batch to all groups by `channel` awaiting approval, composed by the owner.
async fn a_batch(app: &TestApp, channel: herald::domain::ChannelChoice) -> herald::domain::BatchId {
    let trip = herald::app::SendRequest {
        audience: herald::domain::Audience::AllGroups,
        reach: herald::domain::Reach::Both,
        channel,
        content: herald::app::SendContent::Text {
            subject: Some("Wycieczka".into()),
            body: "W piątek jedziemy do Krakowa.".into(),
            html: None,
        },
        transliterate: true,
    };
    app.app_at(now())
        .send(&Actor::operator(OWNER), &trip, false)
        .await
        .unwrap()
        .batch
        .unwrap()
}

/// The version of `batch` the approver's view shows now.
async fn version_of(app: &TestApp, batch: herald::domain::BatchId) -> String {
    let herald = app.app_at(now());
    let view = herald.batch_view(&Actor::operator(OWNER), batch).await;
    view.unwrap().version
}

/// Christmas Eve as a day off, added by the owner: its id.
async fn christmas_eve(app: &TestApp) -> i64 {
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 24).unwrap();
    let added = app
        .app_at(now())
        .add_holiday(&Actor::operator(OWNER), "Wigilia", day, day)
        .await;
    added.unwrap().id.unwrap()
}

async fn audit_lines(app: &TestApp) -> usize {
    app.store
        .audit_log(&herald::store::AuditFilter::default())
        .await
        .unwrap()
        .len()
}

/// Every page renders for every role, in Polish and in English (a word a page
/// names but the console lacks fails the render), and the operators' page is the
/// owner's alone.
async fn every_page_shows_to_each_role_in_both_languages(app: TestApp) {
    app.import_examples(now()).await;
    let server = with_anna(&app).await;
    let (owner, anna, tomek) = three_signed_in(&app, &server).await;
    let batch = a_batch(&app, herald::domain::ChannelChoice::Both).await;
    let herald = app.app_at(now());
    herald
        .save_template(
            &Actor::operator(OWNER),
            &herald::templates::Variant {
                name: "zebranie".into(),
                locale: "pl".into(),
                channel: herald::domain::Channel::Email,
                subject: Some("Zebranie".into()),
                body: "Dzień dobry {{ recipient.name }}, zebranie {{ vars.date }}.".into(),
                html: None,
            },
        )
        .await
        .unwrap();
    christmas_eve(&app).await;
    let message = app.messages_to("gd-2001").await[0].id.0;
    let pages = [
        "/console/".to_owned(),
        "/console/outbox".into(),
        format!("/console/outbox/{}", batch.0),
        "/console/compose".into(),
        "/console/compose/count?body=Za%C5%BC%C3%B3%C5%82%C4%87".into(),
        "/console/compose/people?find=Nowak".into(),
        "/console/messages".into(),
        "/console/messages?status=blocked&channel=sms&from=2026-11-01&to=2026-11-30".into(),
        format!("/console/messages/{message}"),
        "/console/why?q=gd-2002".into(),
        "/console/why?q=Nowak".into(),
        "/console/why?q=nikt".into(),
        "/console/wallet".into(),
        "/console/calendar".into(),
        "/console/calendar?all=1".into(),
        "/console/calendar/held?first_day=2026-11-24&last_day=2026-11-25".into(),
        "/console/templates".into(),
        "/console/templates/zebranie".into(),
        "/console/templates/zebranie?preview_for=gd-2001&vars=date%3Djutro".into(),
        "/console/audit".into(),
        "/console/audit?action=send&since=2026-11-01".into(),
    ];
    for (who, pair) in [("owner", &owner), ("anna", &anna), ("tomek", &tomek)] {
        for lang in ["pl", "en"] {
            for path in &pages {
                let (status, page) = page_of(&server, path, pair, lang).await;
                assert_eq!(status, StatusCode::OK, "{who} {lang} {path}: {page}");
                if !path.contains("/count") && !path.contains("/people") && !path.contains("/held")
                {
                    assert!(
                        page.contains(&format!(r#"<html lang="{lang}">"#)),
                        "{who} {lang} {path}"
                    );
                }
            }
            let (operators, _) = page_of(&server, "/console/operators", pair, lang).await;
            let expected = if who == "owner" {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(operators, expected, "{who} {lang} operators");
        }
    }
    // Bad filters name the field and what was expected.
    let (status, bad) = page_of(&server, "/console/messages?from=24.11.2026", &anna, "en").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.contains("from: &quot;24.11.2026&quot; is not a date"),
        "{bad}"
    );
    let (status, _) = page_of(&server, "/console/messages?status=lost", &anna, "en").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // The template preview for a person renders it as a send would, for them.
    let preview = "/console/templates/zebranie?preview_for=gd-2001&vars=date%3Djutro";
    let (_, page) = page_of(&server, preview, &anna, "en").await;
    assert!(
        page.contains("Dzień dobry Anna Nowak, zebranie jutro."),
        "{page}"
    );
    // The SMS counter counts segments as the gateway bills them.
    let count = format!("/console/compose/count?body={}", "a".repeat(161));
    let (_, counter) = page_of(&server, &count, &anna, "en").await;
    assert!(
        counter.contains("<strong>2</strong> segments") && counter.contains("gsm7"),
        "{counter}"
    );
}

/// A form: its path, its fields, and whether only the owner may post it.
type FormCase<'a> = (String, Vec<(&'a str, &'a str)>, bool);

/// Each form, posted by someone its permission refuses, answers 403 and changes
/// nothing; posted from another origin with a good session, 403 and nothing; posted
/// by someone allowed, it is done (303) with its audit line.
async fn each_form_refuses_whom_it_must_and_any_post_from_another_origin(app: TestApp) {
    app.import_examples(now()).await;
    let server = with_anna(&app).await;
    let (owner, anna, tomek) = three_signed_in(&app, &server).await;
    let batch = a_batch(&app, herald::domain::ChannelChoice::Both).await;
    let herald = app.app_at(now());
    let seen = version_of(&app, batch).await;
    app.operator_with("ola", "teacher", &[]).await;
    let holiday = christmas_eve(&app).await;
    let message = app.messages_to("gd-2001").await[0].id.0;
    let other_site = [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ];
    let batch_path = format!("/console/outbox/{}", batch.0);
    // (path, fields, only the owner may): the others the secretary may and the
    // teacher may not.
    #[rustfmt::skip]
    let cases: Vec<FormCase> = vec![
        ("/console/wallet/top-up".into(), vec![("points", "10"), ("note", "FV 1")], false),
        ("/console/calendar/add".into(), vec![("name", "Wolne"), ("first_day", "2026-12-31"), ("last_day", "")], false),
        (format!("/console/calendar/{holiday}/remove"), vec![], false),
        ("/console/hold".into(), vec![("switch", "on"), ("reason", "przegląd")], false),
        ("/console/hold".into(), vec![("switch", "off")], false),
        ("/console/templates".into(), vec![("name", "nowy"), ("locale", "pl"), ("channel", "sms"), ("body", "Dzień dobry")], false),
        ("/console/operators".into(), vec![("login", "nowy"), ("role", "teacher")], true),
        ("/console/operators/ola/role".into(), vec![("role", "secretary")], true),
        ("/console/compose".into(), vec![("audience", "groups"), ("group", "g-1a"), ("reach", "both"), ("channel", "email"), ("content", "text"), ("subject", "Basen"), ("body", "Jutro basen."), ("step", "submit")], false),
        (format!("{batch_path}/edit"), vec![("channel", "sms"), ("body", "W sobote jedziemy.")], false),
        (format!("/console/messages/{message}/cancel"), vec![], false),
        (format!("{batch_path}/reject"), vec![("seen", "stale"), ("reason", "termin")], false),
    ];
    for (path, form, owners_only) in &cases {
        let (allowed, refused) = if *owners_only {
            (&owner, &anna)
        } else {
            (&anna, &tomek)
        };
        let before = audit_lines(&app).await;
        let forged = post_form(&server, path, allowed, form, &other_site).await;
        assert_eq!(
            forged.status(),
            StatusCode::FORBIDDEN,
            "{path} from another origin"
        );
        let denied = post_form(&server, path, refused, form, &[]).await;
        assert_eq!(
            denied.status(),
            StatusCode::FORBIDDEN,
            "{path} by one without the permission"
        );
        assert_eq!(audit_lines(&app).await, before, "{path}: nothing changed");
        let done = if path == "/console/compose" {
            // A submit goes only with the fingerprint of its check.
            let mut check = form.clone();
            check.retain(|(k, _)| *k != "step");
            check.push(("step", "check"));
            let page = post_form(&server, path, allowed, &check, &[]).await;
            let checked = checked_on(&page.text().await.unwrap());
            let mut submit = form.clone();
            submit.push(("checked", &checked));
            post_form(&server, path, allowed, &submit, &[])
                .await
                .status()
        } else if path.ends_with("/reject") {
            // A version from before the edit: refused as stale, then on the fresh one.
            let server = &server;
            let reject = |seen: String| async move {
                let form = [("seen", seen.as_str()), ("reason", "termin")];
                post_form(server, path, allowed, &form, &[]).await.status()
            };
            assert_eq!(reject(seen.clone()).await, StatusCode::CONFLICT);
            let view = herald.batch_view(&Actor::operator(OWNER), batch).await;
            reject(view.unwrap().version).await
        } else {
            post_form(&server, path, allowed, form, &[]).await.status()
        };
        assert_eq!(done, StatusCode::SEE_OTHER, "{path}");
        assert!(audit_lines(&app).await > before, "{path}: audited");
    }
    assert_eq!(app.store.wallet().await.unwrap().balance, 10);
    assert_eq!(app.store.hold().await.unwrap(), None);
    assert_eq!(
        app.store.operator("ola").await.unwrap().unwrap().role,
        "secretary"
    );
    let status_of = |id| {
        let herald = &herald;
        async move {
            let view = herald.batch_view(&Actor::operator(OWNER), id).await;
            view.unwrap().batch.status
        }
    };
    assert_eq!(
        status_of(batch).await,
        herald::domain::BatchStatus::Rejected
    );
    // The language switch is a form too: refused from another origin, and it never
    // sends anyone off the console.
    let forged = post_form(
        &server,
        "/console/language",
        &anna,
        &[("lang", "en")],
        &other_site,
    )
    .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    for elsewhere in ["https://evil.example/", "//evil.example/console/"] {
        let form = [("lang", "en"), ("back", elsewhere)];
        let away = post_form(&server, "/console/language", &anna, &form, &[]).await;
        assert_eq!(away.headers()[LOCATION], "/console/", "{elsewhere}");
    }
    // The choice is kept with the operator: it wins over the browser's language.
    let anna_now = app.store.operator("anna").await.unwrap().unwrap();
    assert_eq!(anna_now.locale.as_deref(), Some("en"));
    let (_, page) = page_of(&server, "/console/", &anna, "pl").await;
    assert!(page.contains(r#"<html lang="en">"#), "{page}");
    // Approving "the ticked ones" with none ticked approves nothing.
    let second = a_batch(&app, herald::domain::ChannelChoice::Both).await;
    let view = herald.batch_view(&Actor::operator(OWNER), second).await;
    let fresh = view.unwrap().version;
    let none = post_form(
        &server,
        &format!("/console/outbox/{}/approve", second.0),
        &anna,
        &[("seen", fresh.as_str()), ("ticked", "1")],
        &[],
    )
    .await;
    assert_eq!(none.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        status_of(second).await,
        herald::domain::BatchStatus::AwaitingApproval
    );
}

/// Compose: "check" stores nothing and shows the dry run; a bad field is named and
/// the form keeps what was typed; "submit" stores the batch in the outbox.
async fn the_compose_form_checks_sends_nothing_then_submits_and_names_a_bad_field(app: TestApp) {
    app.import_examples(now()).await;
    let server = with_anna(&app).await;
    let anna = session_of(&server, "anna", "zebranie w czwartek").await;
    let en = [("accept-language", "en")];
    let mut form = vec![
        ("audience", "people"),
        ("person", "gd-2001"),
        ("people", "gd-2002, s-1003"),
        ("reach", "both"),
        ("channel", "sms_if_no_email"),
        ("content", "text"),
        ("subject", "Zebranie"),
        ("body", "Zebranie w czwartek o 18:00."),
        ("preview_for", "gd-2002"),
        ("step", "check"),
    ];
    let checked = post_form(&server, "/console/compose", &anna, &form, &en).await;
    assert_eq!(checked.status(), StatusCode::OK);
    let page = checked.text().await.unwrap();
    assert!(
        page.contains(r#"id="dry-run""#) && page.contains("gd-2002"),
        "{page}"
    );
    let fingerprint = checked_on(&page);
    assert!(
        app.store.batches(None).await.unwrap().is_empty(),
        "a dry run stores nothing"
    );

    let mut bad = form.clone();
    bad.retain(|(k, _)| *k != "person" && *k != "people");
    let refused = post_form(&server, "/console/compose", &anna, &bad, &en).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("people: choose or type at least one person"),
        "{page}"
    );
    assert!(
        page.contains("Zebranie w czwartek o 18:00."),
        "what was typed stays"
    );

    form.retain(|(k, _)| *k != "step");
    form.push(("step", "submit"));
    form.push(("checked", &fingerprint));
    let submitted = post_form(&server, "/console/compose", &anna, &form, &en).await;
    assert_eq!(submitted.status(), StatusCode::SEE_OTHER);
    let batches = app.store.batches(None).await.unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(
        submitted.headers()[LOCATION],
        format!("/console/outbox/{}?done=submitted", batches[0].id.0)
    );
    assert_eq!(batches[0].created_by, "anna");
}

/// The calendar's "it will hold N waiting messages": those due on the days, and,
/// for days starting today, everything already due; none for days far ahead.
async fn a_day_off_says_how_many_waiting_messages_it_will_hold(app: TestApp) {
    app.import_examples(now()).await;
    let server = with_anna(&app).await;
    let anna = session_of(&server, "anna", "zebranie w czwartek").await;
    let batch = a_batch(&app, herald::domain::ChannelChoice::Both).await;
    let herald = app.app_at(now());
    herald
        .decide(
            &Actor::operator(OWNER),
            batch,
            &[],
            herald::store::Decision::Approve,
            None,
        )
        .await
        .unwrap();
    let queued = app.count(herald::domain::MessageStatus::Queued).await;
    assert!(queued > 0);
    let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
    let owner = Actor::operator(OWNER);
    for (first, last, held) in [(24, 24, queued), (20, 25, queued), (26, 27, 0)] {
        let counted = herald.held_by_days_off(&owner, day(first), day(last));
        assert_eq!(counted.await.unwrap(), held, "{first}..{last}");
    }
    let path = "/console/calendar/held?first_day=2026-11-24";
    let (_, held) = page_of(&server, path, &anna, "en").await;
    assert!(
        held.contains(&format!("<strong>{queued}</strong>")),
        "{held}"
    );
}

/// What a slip of the keyboard or a hand-made request sends: a page saying what is
/// wrong, and nothing changed.
async fn odd_input_gets_a_page_and_changes_nothing(app: TestApp) {
    app.import_examples(now()).await;
    let server = with_anna(&app).await;
    let (_, anna, _) = three_signed_in(&app, &server).await;
    let en = [("accept-language", "en")];
    let batch = a_batch(&app, herald::domain::ChannelChoice::Email).await;
    let seen = version_of(&app, batch).await;
    let before = audit_lines(&app).await;

    // Enter in the "reject the ticked ones" reason presses the form's hidden first
    // button, which decides nothing.
    let message = app.messages_to("gd-2001").await[0].id.0.to_string();
    let approve = format!("/console/outbox/{}/approve", batch.0);
    let form = [
        ("seen", seen.as_str()),
        ("ticked", "1"),
        ("enter", "1"),
        ("message", message.as_str()),
        ("reason", "zły termin"),
    ];
    let enter = post_form(&server, &approve, &anna, &form, &en).await;
    assert_eq!(enter.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(enter.text().await.unwrap().contains("Nothing done"));

    // Ids that are not numbers, and a hold switch that is neither on nor off.
    for path in ["/console/outbox/abc", "/console/messages/1x"] {
        let (status, page) = page_of(&server, path, &anna, "en").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.contains("<html"), "a page: {page}");
    }
    let hold = post_form(&server, "/console/hold", &anna, &[("switch", "maybe")], &en).await;
    assert_eq!(hold.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A form with its fields missing is answered by the page, naming what is wanted.
    let empty = post_form(&server, "/console/wallet/top-up", &anna, &[], &en).await;
    assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.text().await.unwrap().contains("points:"));
    let (status, _) = page_of(&server, "/console/calendar?held=x", &anna, "en").await;
    assert_eq!(status, StatusCode::OK);

    // A submit whose form changed since its check is checked again, not sent.
    #[rustfmt::skip]
    let mut compose = vec![
        ("audience", "groups"), ("group", "g-1a"), ("reach", "both"), ("channel", "email"),
        ("content", "text"), ("subject", "Basen"), ("body", "Jutro basen."), ("step", "submit"),
        ("checked", "0000"),
    ];
    let changed = post_form(&server, "/console/compose", &anna, &compose, &en).await;
    assert_eq!(changed.status(), StatusCode::OK);
    let page = changed.text().await.unwrap();
    assert!(
        page.contains("changed since it was checked") && page.contains(r#"id="dry-run""#),
        "{page}"
    );
    assert_eq!(audit_lines(&app).await, before, "nothing changed");
    // The fingerprint the check gave makes the submit go.
    let checked = checked_on(&page);
    compose.retain(|(k, _)| *k != "checked");
    compose.push(("checked", &checked));
    let sent = post_form(&server, "/console/compose", &anna, &compose, &en).await;
    let status = sent.status();
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "{}",
        sent.text().await.unwrap()
    );

    // A template named with a space and a slash keeps its name in its address.
    let form = [
        ("name", "Wycieczka 2/b"),
        ("locale", "pl"),
        ("channel", "sms"),
        ("body", "Dzień dobry"),
    ];
    let saved = post_form(&server, "/console/templates", &anna, &form, &en).await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let to = saved.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(
        to.starts_with("/console/templates/Wycieczka%202%2Fb?"),
        "{to}"
    );
    let (status, page) = page_of(&server, &to, &anna, "en").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Dzień dobry"), "{page}");

    // A new password ends the sessions signed in before it.
    app.app_at(now() + chrono::Duration::minutes(1))
        .set_password(
            &Actor::operator(OWNER),
            "anna",
            &SecretString::from("nowe hasło anny"),
        )
        .await
        .unwrap();
    let after = call(&server, reqwest::Method::GET, "/console/", &anna, &[]).await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    assert_eq!(after.headers()[LOCATION], "/console/sign-in");
}

/// A message handed over with no answer is counted on the start page for a person.
async fn the_start_page_shows_what_waits_for_a_decision_on_an_unknown_outcome(app: TestApp) {
    app.import_examples(now()).await;
    let server = with_anna(&app).await;
    let anna = session_of(&server, "anna", "zebranie w czwartek").await;
    let batch = a_batch(&app, herald::domain::ChannelChoice::Email).await;
    let herald = app.app_at(now());
    let owner = Actor::operator(OWNER);
    let approve = herald::store::Decision::Approve;
    herald
        .decide(&owner, batch, &[], approve, None)
        .await
        .unwrap();
    // A dispatcher claims one, hands it over and dies; no channel here knows a repeat.
    let lease = now() + chrono::Duration::seconds(15);
    let kinds = herald::domain::MessageKind::ALL;
    let claimed = app.store.claim_due(now(), &kinds, "dead", lease, 1).await;
    let m = claimed.unwrap().remove(0);
    assert!(
        app.store
            .hand_over(m.id, m.claim, now(), now())
            .await
            .unwrap()
    );
    let later = lease + chrono::Duration::seconds(1);
    app.store.reclaim_expired(later, 5, &[]).await.unwrap();
    let (status, page) = page_of(&server, "/console/", &anna, "en").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(r#"id="unknown""#) && page.contains("for you to decide"),
        "{page}"
    );
}
