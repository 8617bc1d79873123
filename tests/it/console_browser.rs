//! The console in a real browser (headless Chromium over WebDriver), against Herald's
//! own HTTP server on loopback and a fresh SQLite database with the example school:
//! what a secretary, a teacher and an owner do, each page saved as a screenshot
//! under `target/screenshots/<test>/`. The browser asks for Polish, as the school's
//! staff's browsers do, so the pages are read by their ids and by the data they show.
//! The same forms' permission and CSRF checks run on both backends in `console.rs`.

use std::sync::Arc;

use herald::app::{Actor, OperatorRequest};
use herald::domain::{BatchStatus, MessageKind, MessageStatus};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::browser::Browser;
use crate::helpers::{OWNER, TestApp, now};
use crate::http::Server;

/// The example school, with an owner, a secretary (`anna`) and a teacher of 1A
/// (`barbara`, the platform's teacher t-3001), each with a password.
async fn school(app: &TestApp) {
    app.import_examples(now()).await;
    app.owner().await;
    let herald = app.app_at(now());
    let owner = Actor::operator(OWNER);
    for (login, role, teacher) in [
        ("anna", "secretary", None),
        ("barbara", "teacher", Some("t-3001")),
    ] {
        herald
            .add_operator(
                Some(&owner),
                &OperatorRequest {
                    login: login.into(),
                    name: None,
                    role: role.into(),
                    teacher: teacher.map(str::to_owned),
                },
            )
            .await
            .unwrap();
    }
    for login in [OWNER, "anna", "barbara"] {
        herald
            .set_password(&owner, login, &password_of(login))
            .await
            .unwrap();
    }
}

fn password_of(login: &str) -> SecretString {
    SecretString::from(format!("{login} ma dobre hasło"))
}

/// Signs `login` in through the form and waits for the start page.
async fn sign_in(browser: &Browser, base: &str, login: &str) {
    browser.goto(&format!("{base}/console/sign-in")).await;
    browser.fill("#login", login).await;
    browser
        .fill("#password", &format!("{login} ma dobre hasło"))
        .await;
    browser.click_to_next_page("button.primary").await;
    browser.wait_for("#awaiting").await;
}

async fn sign_out(browser: &Browser) {
    browser
        .click_to_next_page("form[action='/console/sign-out'] button")
        .await;
    browser.wait_for("#password").await;
}

/// The HTTP status of a POST the page itself makes (same origin, with its cookie),
/// as a forged form or a script on the page would.
async fn post_from_page(browser: &Browser, path: &str, body: &str) -> u64 {
    let script = format!(
        "const done = arguments[0];
         fetch({path:?}, {{method: 'POST', credentials: 'same-origin',
           headers: {{'Content-Type': 'application/x-www-form-urlencoded'}},
           body: {body:?}, redirect: 'manual'}})
           .then(r => done(r.status)).catch(e => done(String(e)));"
    );
    let answer = browser
        .client()
        .execute_async(&script, vec![])
        .await
        .unwrap_or_else(|e| panic!("POST {path} from the page: {e}"));
    answer
        .as_u64()
        .unwrap_or_else(|| panic!("POST {path}: {answer}"))
}

/// Sign-in refused and throttled; a teacher composes, checks the dry run and
/// submits; she cannot approve, and her forged approval changes nothing; the
/// secretary approves the version she saw; after a dispatch pass the message is
/// "sent" in Messages – All; a form posted from another origin is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teacher_composes_a_secretary_approves_and_the_pass_sends_it() {
    let app = crate::helpers::sqlite().await;
    school(&app).await;
    let smtp = crate::smtp::SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    let server = Server::start_with(Arc::clone(&app.store), settings.clone()).await;
    let base = server.base.clone();
    let Some(mut browser) =
        Browser::start("a_teacher_composes_a_secretary_approves_and_the_pass_sends_it").await
    else {
        return;
    };

    // A wrong password is refused, with the login kept.
    browser.goto(&format!("{base}/console/sign-in")).await;
    browser.screenshot("sign-in").await;
    browser.fill("#login", "anna").await;
    browser.fill("#password", "nie to hasło").await;
    browser.click_to_next_page("button.primary").await;
    let refused = browser.text_of("p.error").await;
    assert!(refused.contains("nie zgadza"), "{refused}");
    browser.screenshot("sign-in-refused").await;
    // Guessing at one login is throttled after five tries: the sixth waits.
    for _ in 0..6 {
        browser.fill("#login", "zgadywany").await;
        browser.fill("#password", "jeszcze inne").await;
        browser.click_to_next_page("button.primary").await;
        browser.wait_for("p.error").await;
    }
    let throttled = browser.text_of("p.error").await;
    assert!(throttled.contains("Zbyt wiele prób"), "{throttled}");
    browser.screenshot("sign-in-throttled").await;

    // The teacher composes to her group: the dry run first, then the batch.
    sign_in(&browser, &base, "barbara").await;
    browser.screenshot("teacher-start").await;
    browser.goto(&format!("{base}/console/compose")).await;
    browser.click("input[name=group][value='g-1a']").await;
    browser.click("input[name=channel][value=email]").await;
    browser.fill("#subject", "Wycieczka do Krakowa").await;
    browser
        .fill("#body", "W piątek jedziemy do Krakowa. Zbiórka o 8:00.")
        .await;
    // The counter follows the text as it is typed (htmx asks the server).
    let counter = browser.wait_for_text("#counter", "SMS: 1 ").await;
    assert!(
        counter.contains("UCS-2") || counter.contains("ucs2"),
        "{counter}"
    );
    browser.screenshot("compose").await;
    browser.click_to_next_page("#check").await;
    let dry = browser.text_of("#dry-run").await;
    assert!(
        dry.contains("Wycieczka do Krakowa") && dry.contains("g-1a"),
        "{dry}"
    );
    assert_eq!(
        app.store.batches(None).await.unwrap().len(),
        0,
        "a dry run stores nothing"
    );
    browser.screenshot("compose-dry-run").await;
    browser.click_to_next_page("#submit").await;
    let notice = browser.text_of("p.notice").await;
    assert!(notice.contains("do zatwierdzenia"), "{notice}");
    let batches = app.store.batches(None).await.unwrap();
    assert_eq!(batches.len(), 1);
    let batch = batches[0].id;
    assert_eq!(batches[0].status, BatchStatus::AwaitingApproval);
    assert_eq!(batches[0].created_by, "barbara");
    // She has no approve button, and an approval posted from her page is refused.
    assert!(
        browser
            .client()
            .find(fantoccini::Locator::Css("#approve"))
            .await
            .is_err()
    );
    browser.wait_for("#cannot-approve").await;
    browser.screenshot("teacher-batch").await;
    let seen = app
        .app_at(now())
        .batch_view(&Actor::operator(OWNER), batch)
        .await
        .unwrap()
        .version;
    let forged = post_from_page(
        &browser,
        &format!("/console/outbox/{}/approve", batch.0),
        &format!("seen={seen}"),
    )
    .await;
    assert_eq!(forged, 403);
    assert_eq!(
        app.store.batches(None).await.unwrap()[0].status,
        BatchStatus::AwaitingApproval,
        "nothing changed"
    );
    sign_out(&browser).await;

    // The secretary finds it in the outbox and approves what she sees.
    sign_in(&browser, &base, "anna").await;
    browser.goto(&format!("{base}/console/outbox")).await;
    browser
        .click_to_next_page(&format!("a[href='/console/outbox/{}']", batch.0))
        .await;
    let will_go = browser.text_of("#will-go").await;
    let view = app
        .app_at(now())
        .batch_view(&Actor::operator(OWNER), batch)
        .await
        .unwrap();
    assert!(view.summary.will_go >= 1);
    assert_eq!(will_go, view.summary.will_go.to_string());
    browser.screenshot("secretary-batch").await;
    browser.click_to_next_page("#approve").await;
    browser.wait_for("p.notice").await;
    browser.screenshot("secretary-approved").await;
    assert_eq!(
        app.store.batches(None).await.unwrap()[0].status,
        BatchStatus::Approved
    );

    // A dispatch pass sends it over SMTP; Messages – All shows it sent.
    let clock = Arc::new(herald::clock::FixedClock::new(now()));
    let dispatcher = app.dispatcher_with(settings.clone(), &clock);
    dispatcher
        .run_pass(&MessageKind::ALL, &CancellationToken::new())
        .await
        .unwrap();
    let sent = app.count(MessageStatus::Sent).await;
    assert!(sent >= 1, "{sent} sent");
    assert!(!smtp.received().is_empty());
    browser
        .goto(&format!(
            "{base}/console/messages?status=sent&batch={}",
            batch.0
        ))
        .await;
    let listed = browser.text_of("#messages").await;
    assert!(listed.contains("wysłana"), "{listed}");
    browser.screenshot("messages-sent").await;
    browser
        .click_to_next_page("#messages tbody tr:first-child td:first-child a")
        .await;
    let timeline = browser.text_of("ol.timeline").await;
    assert!(timeline.contains("wysłana"), "{timeline}");
    browser.screenshot("message-timeline").await;

    // A form on another site posting to the console is refused before it is read.
    let evil = format!(
        "data:text/html;charset=utf-8,<form method=post action='{base}/console/hold'>\
         <input name=switch value=on><input name=reason value=forged></form>\
         <script>document.forms[0].submit()</script>"
    );
    browser.goto(&evil).await;
    browser.wait_for("body").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    browser.screenshot("cross-origin-refused").await;
    assert_eq!(app.store.hold().await.unwrap(), None, "the hold stayed off");
}

/// The owner answers "why didn't this parent get it?", tops the wallet up, adds a
/// day off and switches the hold on: its banner shows on every page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_diagnoses_a_parent_tops_up_adds_a_day_off_and_holds_dispatch() {
    let app = crate::helpers::sqlite().await;
    school(&app).await;
    let server = Server::start_with(Arc::clone(&app.store), app.settings.clone()).await;
    let base = server.base.clone();
    let Some(mut browser) =
        Browser::start("the_owner_diagnoses_a_parent_tops_up_adds_a_day_off_and_holds_dispatch")
            .await
    else {
        return;
    };
    sign_in(&browser, &base, OWNER).await;
    browser.screenshot("owner-start").await;

    // Piotr Wiśniewski's daughter's contract is suspended: no consent, and the fix.
    browser.goto(&format!("{base}/console/why")).await;
    browser.fill("#q", "Wiśniewski").await;
    browser.click_to_next_page("form[role=search] button").await;
    browser.wait_for("ul.checks").await;
    let found = browser.text_of("main").await;
    assert!(
        found.contains("Piotr Wiśniewski") && found.contains("no_consent"),
        "{found}"
    );
    assert!(found.contains("Co zrobić"), "a fix is offered: {found}");
    browser.screenshot("why-no-consent").await;

    // A top-up changes the balance and adds a ledger line.
    browser.goto(&format!("{base}/console/wallet")).await;
    let before = browser.text_of("#balance").await;
    browser.screenshot("wallet-before").await;
    browser.fill("#points", "500").await;
    browser.fill("#note", "FV 2026/12/07").await;
    browser.click_to_next_page("#top-up button").await;
    browser.wait_for("p.notice").await;
    let after = browser.text_of("#balance").await;
    assert_ne!(before, after);
    assert!(after.starts_with("500"), "{after}");
    let ledger = browser.text_of("#ledger tbody tr:first-child").await;
    assert!(
        ledger.contains("FV 2026/12/07") && ledger.contains("500"),
        "{ledger}"
    );
    assert_eq!(app.store.wallet().await.unwrap().balance, 500);
    browser.screenshot("wallet-topped-up").await;

    // A day off: the form says how many waiting messages it will hold, then adds it.
    browser.goto(&format!("{base}/console/calendar")).await;
    browser.fill("#name", "Dzień Edukacji").await;
    browser
        .client()
        .execute(
            "for (const [id, day] of [['first_day', '2026-12-21'], ['last_day', '2026-12-23']]) {
               const f = document.getElementById(id);
               f.value = day;
               f.dispatchEvent(new Event('change', {bubbles: true}));
             }",
            vec![],
        )
        .await
        .unwrap();
    browser.wait_for("#held strong").await;
    browser.screenshot("calendar-day-off-form").await;
    browser
        .click_to_next_page("#add-day-off button.primary")
        .await;
    browser.wait_for("p.notice").await;
    let days = browser.text_of("#days-off").await;
    assert!(
        days.contains("Dzień Edukacji") && days.contains("2026-12-21"),
        "{days}"
    );
    assert_eq!(app.store.holidays(None).await.unwrap().len(), 1);
    browser.screenshot("calendar-day-off-added").await;

    // The hold: on from the start page, its banner on every page, then off.
    browser.goto(&format!("{base}/console/")).await;
    browser
        .fill("#hold-reason", "Sprawdzamy listę adresów")
        .await;
    browser.click_to_next_page("#hold-on").await;
    let banner = browser.text_of("#hold-banner").await;
    assert!(banner.contains("Sprawdzamy listę adresów"), "{banner}");
    for page in ["outbox", "messages", "wallet", "calendar", "why", "audit"] {
        browser.goto(&format!("{base}/console/{page}")).await;
        browser.wait_for("#hold-banner").await;
    }
    browser.screenshot("hold-banner-on-audit").await;
    assert!(app.store.hold().await.unwrap().is_some());
    browser.goto(&format!("{base}/console/")).await;
    browser.click_to_next_page("#hold-off").await;
    browser.wait_for("p.notice").await;
    assert!(
        browser
            .client()
            .find(fantoccini::Locator::Css("#hold-banner"))
            .await
            .is_err()
    );
    assert_eq!(app.store.hold().await.unwrap(), None);
    browser.screenshot("hold-off").await;

    // On a tablet held upright the pages still read: the menu wraps, tiles stack.
    browser.client().set_window_size(800, 1100).await.unwrap();
    for (page, name) in [("", "tablet-start"), ("messages", "tablet-messages")] {
        browser.goto(&format!("{base}/console/{page}")).await;
        browser.wait_for("main h1").await;
        let overflow = browser
            .client()
            .execute(
                "return document.documentElement.scrollWidth > window.innerWidth",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            overflow,
            serde_json::json!(false),
            "{page} scrolls sideways"
        );
        browser.screenshot(name).await;
    }
}
