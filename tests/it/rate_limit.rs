//! The rate limit per API token through a real server, on both backends: a burst
//! over the allowance is refused 429 in the API's error shape with `Retry-After`,
//! another token is unaffected, and requests with a bad secret count against nobody.

use std::num::NonZeroU32;
use std::sync::Arc;

use herald::clock::FixedClock;
use herald::config::RateLimitSettings;
use reqwest::{Method, StatusCode};

use crate::conformance;
use crate::helpers::{TestApp, now};
use crate::http::Server;

conformance!(a_token_over_its_rate_limit_waits_and_the_others_do_not,);

async fn a_token_over_its_rate_limit_waits_and_the_others_do_not(app: TestApp) {
    let tokens = crate::http::tokens(&app).await;
    let (owner, secretary) = (tokens[0].1.clone(), tokens[1].1.clone());
    let mut settings = app.settings.clone();
    // One a second after a burst of three: slow enough that the test's requests
    // outrun it on any machine.
    settings.http.rate_limit = Some(RateLimitSettings {
        per_second: NonZeroU32::new(1).unwrap(),
        burst: NonZeroU32::new(3).unwrap(),
    });
    let herald = herald::app::App::new(
        Arc::clone(&app.store),
        Arc::new(settings.clone()),
        Arc::new(FixedClock::new(now())),
    );
    let server = Server::serve(herald::http::router(herald, &settings.http)).await;
    let wallet = |token: &str| {
        server
            .client
            .request(Method::GET, format!("{}/api/v1/wallet", server.base))
            .bearer_auth(token)
            .send()
    };

    // The secretary's id with a wrong secret: refused, and counted against nobody.
    let id = secretary.split('_').nth(1).unwrap();
    let forged = format!("hrd_{id}_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    for _ in 0..5 {
        assert_eq!(
            wallet(&forged).await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }

    // The owner's burst goes through, then the owner is told to wait.
    let mut passed = 0;
    let refused = loop {
        let res = wallet(&owner).await.unwrap();
        if res.status() != StatusCode::OK {
            break res;
        }
        passed += 1;
        assert!(passed <= 10, "the limit never refused a request");
    };
    assert!(
        passed >= 3,
        "only {passed} requests passed before the limit"
    );
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "1");
    let answer: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "rate_limited", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 1 a second"),
        "{answer}"
    );

    // The secretary's whole burst is still there.
    for _ in 0..3 {
        assert_eq!(wallet(&secretary).await.unwrap().status(), StatusCode::OK);
    }
    // Health checks take no token and are never limited.
    for _ in 0..5 {
        let (status, _) = server.call(Method::GET, "/healthz", None, None).await;
        assert_eq!(status, StatusCode::OK);
    }

    // Waiting as told lets the owner through again.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(wallet(&owner).await.unwrap().status(), StatusCode::OK);
}
