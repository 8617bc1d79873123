//! The SMS channel: one module per gateway behind [`Gateway`], a rate limit counted in
//! segments per second, and the error classes the dispatcher acts on.

use std::num::NonZeroU32;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use super::SendOutcome;
use crate::config::{SmsGateway, SmsSettings};
use crate::domain::sms::SmsSize;
use crate::domain::{MessageId, PhoneNumber};

pub mod file;
pub mod smsapi;
pub mod twilio;
pub mod webhook;

/// Why the channel cannot be built (at start-up).
#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client for the SMS gateway: {0}")]
    Client(#[from] reqwest::Error),
}

/// One SMS to send.
#[derive(Debug, Clone)]
pub struct OutgoingSms<'a> {
    /// Herald's id of the message: with `created_at`, its stable identity.
    pub id: MessageId,
    /// When the message was created.
    pub created_at: DateTime<Utc>,
    /// How many times an operator has sent it again after it failed.
    pub generation: i64,
    /// The recipient's number.
    pub to: &'a PhoneNumber,
    /// The text, as it will be sent.
    pub text: &'a str,
    /// Its encoding and segments.
    pub size: SmsSize,
    /// The sender name or number.
    pub sender: &'a str,
}

impl OutgoingSms<'_> {
    /// The key a gateway uses to recognise a retry of the same message: the same for
    /// every attempt, new when an operator sends a failed message again.
    pub fn idempotency_key(&self) -> String {
        crate::domain::report::MessageKey::resent(self.id, self.created_at, self.generation)
            .to_string()
    }
}

/// An SMS gateway.
#[async_trait]
pub trait Gateway: Send + Sync {
    /// Sends one SMS and classifies the answer.
    async fn send(&self, sms: &OutgoingSms<'_>) -> SendOutcome;

    /// Whether the gateway knows a repeat of a message by its key and does not send
    /// it twice: a send whose answer was lost may then be made again.
    fn recognises_repeats(&self) -> bool;

    /// A harmless call that shows the gateway is reachable and accepts Herald's
    /// credentials (a balance or account endpoint), where the API has one.
    async fn probe(&self) -> crate::channels::Probe;
}

/// The SMS channel: the configured gateway behind the rate limit.
pub struct SmsChannel {
    gateway: Box<dyn Gateway>,
    limiter: governor::DefaultDirectRateLimiter,
    sender: String,
    name: &'static str,
    timeout: Duration,
    /// Until when the gateway asked Herald to send nothing (`Retry-After`).
    paused_until: std::sync::Mutex<Option<std::time::Instant>>,
}

impl SmsChannel {
    /// Builds the configured gateway.
    pub fn build(settings: &SmsSettings) -> Result<SmsChannel, SmsError> {
        let client = || {
            reqwest::Client::builder()
                .timeout(settings.timeout)
                .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
                .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
                // A redirect would carry the credentials and the text elsewhere (and a
                // 301 turns the POST into a GET that "succeeds"): never followed.
                .redirect(reqwest::redirect::Policy::none())
                .build()
        };
        let hook = |tail: &str| settings.public_url.as_ref().map(|p| hook_url(p, tail));
        let gateway: Box<dyn Gateway> = match &settings.gateway {
            SmsGateway::File { path } => Box::new(file::FileGateway::new(path.clone())),
            SmsGateway::Smsapi {
                url,
                token,
                report_secret,
            } => Box::new(smsapi::Smsapi::new(
                client()?,
                url.clone(),
                token.clone(),
                report_secret
                    .as_ref()
                    .and_then(|s| hook(&format!("smsapi/{}", s.expose_secret()))),
            )),
            SmsGateway::Twilio {
                url,
                account_sid,
                auth_token,
                messaging_service_sid,
            } => Box::new(twilio::Twilio::new(
                client()?,
                url.clone(),
                twilio::TwilioAccount {
                    account_sid: account_sid.clone(),
                    auth_token: auth_token.clone(),
                    messaging_service_sid: messaging_service_sid.clone(),
                },
                hook("twilio"),
            )),
            SmsGateway::Webhook { url, secret } => Box::new(webhook::Webhook::new(
                client()?,
                url.clone(),
                secret.clone(),
                hook("webhook"),
            )),
        };
        let rate = NonZeroU32::new(settings.segments_per_second).unwrap_or(NonZeroU32::MIN);
        // A burst as large as the longest message, so one message is never refused
        // for being longer than a second's worth of segments.
        let burst = NonZeroU32::new(settings.segments_per_second.max(settings.max_segments))
            .unwrap_or(NonZeroU32::MIN);
        let limiter =
            governor::RateLimiter::direct(governor::Quota::per_second(rate).allow_burst(burst));
        Ok(SmsChannel {
            gateway,
            limiter,
            sender: settings.sender.clone(),
            name: settings.gateway.name(),
            timeout: settings.timeout,
            paused_until: std::sync::Mutex::new(None),
        })
    }

    /// The configured sender.
    pub fn sender(&self) -> &str {
        &self.sender
    }

    /// The gateway's name (`file`, `smsapi`, …).
    pub fn gateway_name(&self) -> &'static str {
        self.name
    }

    /// Checks the gateway without sending anything.
    pub async fn probe(&self) -> crate::channels::Probe {
        self.gateway.probe().await
    }

    /// Whether the gateway knows a repeat by its key (see [`Gateway::recognises_repeats`]).
    pub fn recognises_repeats(&self) -> bool {
        self.gateway.recognises_repeats()
    }

    /// The longest one gateway call may take (the rate limit's wait comes before).
    pub fn send_budget(&self) -> Duration {
        self.timeout
    }

    /// Waits for the rate limit, then sends.
    pub async fn send(&self, sms: &OutgoingSms<'_>) -> SendOutcome {
        match self.wait_turn(sms).await {
            Some(refused) => refused,
            None => self.send_now(sms).await,
        }
    }

    /// Waits until the rate limit lets `sms` go; `Some` answer when it never will.
    pub async fn wait_turn(&self, sms: &OutgoingSms<'_>) -> Option<SendOutcome> {
        let segments = u32::try_from(sms.size.segments.max(1)).unwrap_or(u32::MAX);
        let n = NonZeroU32::new(segments).unwrap_or(NonZeroU32::MIN);
        if self.limiter.until_n_ready(n).await.is_err() {
            // Longer than the burst allows: it can never pass the limit.
            return Some(SendOutcome::Permanent {
                code: None,
                detail: format!("{segments} segments exceed the gateway's rate limit burst"),
                address_failing: false,
            });
        }
        None
    }

    /// Sends at once, its turn under the rate limit taken. A gateway that asks for a
    /// wait (`Retry-After`) pauses the channel for that long: see [`Self::paused_for`].
    pub async fn send_now(&self, sms: &OutgoingSms<'_>) -> SendOutcome {
        let sent = self.gateway.send(sms).await;
        if let SendOutcome::Throttled { retry_after, .. } = &sent {
            let until = std::time::Instant::now() + *retry_after;
            let mut paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
            *paused = Some(paused.map_or(until, |p| p.max(until)));
        }
        sent
    }

    /// How much longer the gateway asked Herald to wait; `None` when it may be
    /// called. Messages due meanwhile are held, not sent and not counted as attempts.
    pub fn paused_for(&self) -> Option<Duration> {
        let paused = *self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        paused
            .and_then(|until| until.checked_duration_since(std::time::Instant::now()))
            .filter(|d| !d.is_zero())
    }
}

/// The address of a delivery-report hook under Herald's public URL (which may have a
/// path of its own, behind a reverse proxy): `<public_url>/hooks/<tail>`.
pub fn hook_url(public_url: &reqwest::Url, tail: &str) -> reqwest::Url {
    let mut url = public_url.clone();
    let base = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{base}/hooks/{tail}"));
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// What a transport error means: a connection that never opened is safe to retry;
/// any later failure may have reached the gateway, so the result is unknown unless
/// the gateway deduplicates (`idempotent`), when a retry under the same key is safe.
pub(crate) fn classify_transport(e: &reqwest::Error, idempotent: bool) -> SendOutcome {
    let detail = format!("request failed: {e}");
    if e.is_connect() || e.is_builder() || idempotent {
        SendOutcome::Transient { code: None, detail }
    } else {
        SendOutcome::Unknown { detail }
    }
}

/// The class of a plain HTTP status with no more specific answer: 429 and 5xx are
/// passing (and, with `Retry-After`, a request to wait); other 4xx are the request's
/// fault.
pub(crate) fn classify_status(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    detail: String,
) -> SendOutcome {
    let code = Some(status.as_u16());
    if status.is_redirection() {
        // Not followed: the gateway's address in the settings is not where it answers.
        // The configuration's fault, not the message's: retried once it is fixed.
        return SendOutcome::Transient {
            code,
            detail: format!("{detail} (a redirect, not followed: correct the gateway's URL)"),
        };
    }
    let busy = status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::SERVICE_UNAVAILABLE;
    if let Some(retry_after) = busy.then(|| retry_after(headers)).flatten() {
        return SendOutcome::Throttled {
            code,
            detail: format!("{detail} (asked to wait {}s)", retry_after.as_secs()),
            retry_after,
        };
    }
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
        || status == reqwest::StatusCode::UNAUTHORIZED
        || status == reqwest::StatusCode::FORBIDDEN
    {
        // 401/403 are the configuration's fault, not the message's: retry once fixed.
        SendOutcome::Transient { code, detail }
    } else {
        SendOutcome::Permanent {
            code,
            detail,
            address_failing: false,
        }
    }
}

/// A `Retry-After` header (RFC 9110 §10.2.3): seconds, or an HTTP date; capped at
/// [`crate::channels::MAX_RETRY_AFTER`]. A date in the past is no wait at all, and
/// neither is a header that says nothing readable.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(text)
            .ok()?
            .duration_since(std::time::SystemTime::now())
            .ok()?,
    };
    (!wait.is_zero()).then(|| wait.min(crate::channels::MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_caps_them() {
        assert_eq!(retry_after(&with("120")), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(&with("0")), None);
        assert_eq!(retry_after(&with("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
        assert_eq!(
            retry_after(&with("999999999")),
            Some(crate::channels::MAX_RETRY_AFTER)
        );
        let later = std::time::SystemTime::now() + Duration::from_secs(600);
        let wait = retry_after(&with(&httpdate::fmt_http_date(later))).unwrap();
        assert!(wait > Duration::from_secs(590) && wait <= Duration::from_secs(600));
        assert_eq!(retry_after(&with("Sun, 06 Nov 1994 08:49:37 GMT")), None);
    }

    #[test]
    fn a_busy_gateway_with_retry_after_throttles_and_without_it_is_passing() {
        let busy = reqwest::StatusCode::TOO_MANY_REQUESTS;
        assert!(matches!(
            classify_status(busy, &with("30"), "busy".into()),
            SendOutcome::Throttled { retry_after, .. } if retry_after == Duration::from_secs(30)
        ));
        assert!(matches!(
            classify_status(busy, &HeaderMap::new(), "busy".into()),
            SendOutcome::Transient { .. }
        ));
        // Only "busy" answers ask for a wait: a 400 with the header is still refused.
        assert!(matches!(
            classify_status(reqwest::StatusCode::BAD_REQUEST, &with("30"), "bad".into()),
            SendOutcome::Permanent { .. }
        ));
    }
}
