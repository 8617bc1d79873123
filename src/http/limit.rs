//! The rate limit per API token (`http.rate_limit_per_second`, `http.rate_limit_burst`):
//! a runaway script on the platform slows itself down, not the other tokens, the
//! console or the dispatcher sharing the database.
//!
//! The key is the token's id, never the client's address: the platform may call from
//! one address for every school office, or from many behind a proxy. A request is
//! counted only once its token proved good, so nobody can spend another token's
//! allowance by sending its id with a wrong secret, and the limiter holds an entry
//! per live token only. The limit is per instance: several instances behind one
//! address each allow as much.

use std::sync::Arc;

use axum::http::StatusCode;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::ApiError;
use crate::config::RateLimitSettings;

/// Each token's allowance, shared by every request on one router; no limit at all
/// when the settings turn it off.
#[derive(Clone)]
pub(super) struct RateLimit(Option<Arc<Limiter>>);

struct Limiter {
    tokens: DefaultKeyedRateLimiter<i64>,
    settings: RateLimitSettings,
}

impl RateLimit {
    /// A limiter with `settings`' allowance for every token (`None`: no limit).
    pub(super) fn new(settings: Option<RateLimitSettings>) -> RateLimit {
        RateLimit(settings.map(|settings| {
            let quota = Quota::per_second(settings.per_second).allow_burst(settings.burst);
            Arc::new(Limiter {
                tokens: RateLimiter::keyed(quota),
                settings,
            })
        }))
    }

    /// Counts one request of token `token`; over its allowance, 429 (`rate_limited`)
    /// with the whole seconds until the next request would pass (`Retry-After`).
    pub(super) fn check(&self, token: i64) -> Result<(), ApiError> {
        let Some(limiter) = &self.0 else {
            return Ok(());
        };
        let Err(not_until) = limiter.tokens.check_key(&token) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(limiter.tokens.clock().now());
        // Rounded up: a client that waits what it is told must get through.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let seconds = seconds.max(1);
        Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many requests with this token: at most {} a second (bursts of {}); \
                 try again in {seconds} s",
                limiter.settings.per_second, limiter.settings.burst
            ),
        )
        .retry_after(seconds))
    }
}
