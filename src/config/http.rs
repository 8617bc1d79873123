//! `[http]`: where Herald's HTTP API listens, the address the world knows it by, the
//! limits every request is held to (size, time, rate per token), and who may read the
//! metrics.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{Problems, parse_duration};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) listen: String,
    pub(super) public_url: String,
    pub(super) body_limit_kib: u64,
    pub(super) request_timeout: String,
    pub(super) metrics_listen: String,
    pub(super) metrics_token: SecretString,
    pub(super) rate_limit_per_second: u32,
    pub(super) rate_limit_burst: u32,
    pub(super) console_idle: String,
    pub(super) console_longest: String,
}

/// `[http]`: the HTTP API.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Where `herald run` serves HTTP; `None` turns it off.
    pub listen: Option<SocketAddr>,
    /// The address the world uses (links, delivery-report URLs, Twilio's signature).
    pub public_url: Option<reqwest::Url>,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// How long a request may take before it is answered 503 (`timeout`).
    pub request_timeout: Duration,
    /// A second address that serves only `/metrics`, to anyone who reaches it;
    /// `None`: no such listener.
    pub metrics_listen: Option<SocketAddr>,
    /// The bearer token `/metrics` takes on the main listener; `None`: the main
    /// listener does not serve it.
    pub metrics_token: Option<SecretString>,
    /// How many requests each API token may make; `None`: no limit.
    pub rate_limit: Option<RateLimitSettings>,
    /// A console session unused this long ends.
    pub console_idle: Duration,
    /// A console session ends this long after sign-in, however busy.
    pub console_longest: Duration,
}

/// The requests one API token may make on one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Requests a second, sustained.
    pub per_second: NonZeroU32,
    /// Requests at once after a quiet spell.
    pub burst: NonZeroU32,
}

/// The shortest metrics token accepted: anything shorter can be guessed.
const METRICS_TOKEN_MIN: usize = 16;

/// Checks `[http]`.
pub(super) fn check(raw: &RawHttp, bad: &mut Problems) -> HttpSettings {
    let listen = match raw.listen.trim() {
        "" => None,
        text => match text.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                bad.add(
                    "http.listen",
                    text,
                    "an address and port such as 127.0.0.1:8080, or \"\" to turn HTTP off",
                );
                None
            }
        },
    };
    let public_url = match raw.public_url.trim() {
        "" => None,
        text => match reqwest::Url::parse(text) {
            // Gateways send their reports there, SMSAPI's with its secret in the path:
            // plain http only where it never leaves this machine (development).
            Ok(url)
                if url.host().is_some()
                    && (url.scheme() == "https"
                        || (url.scheme() == "http"
                            && url.host_str().is_some_and(super::is_loopback))) =>
            {
                Some(url)
            }
            _ => {
                bad.add(
                    "http.public_url",
                    text,
                    "an https:// URL such as https://herald.school.example (http:// only to \
                     this machine), or \"\"",
                );
                None
            }
        },
    };
    // Below 1 KiB not even a small import fits; above 64 MiB a request is a mistake.
    if !(1..=65_536).contains(&raw.body_limit_kib) {
        bad.add(
            "http.body_limit_kib",
            &raw.body_limit_kib.to_string(),
            "a size in KiB from 1 to 65536",
        );
    }
    let request_timeout = match parse_duration(&raw.request_timeout) {
        Some(d) if d >= Duration::from_secs(1) => d,
        _ => {
            bad.add(
                "http.request_timeout",
                &raw.request_timeout,
                "a duration of at least 1s, such as 30s",
            );
            Duration::from_secs(30)
        }
    };
    let metrics_listen = match raw.metrics_listen.trim() {
        "" => None,
        text => match text.parse::<SocketAddr>() {
            // One port cannot be bound twice; the second bind would stop start-up
            // with a less helpful error.
            Ok(addr) if Some(addr) == listen => {
                bad.add(
                    "http.metrics_listen",
                    text,
                    "an address other than http.listen (or \"\" to serve /metrics there, with \
                     http.metrics_token)",
                );
                None
            }
            Ok(addr) => Some(addr),
            Err(_) => {
                bad.add(
                    "http.metrics_listen",
                    text,
                    "an address and port such as 127.0.0.1:9464, or \"\" for none",
                );
                None
            }
        },
    };
    let token = raw.metrics_token.expose_secret().trim();
    let metrics_token = if token.is_empty() {
        None
    } else if token.chars().count() < METRICS_TOKEN_MIN
        || token.chars().any(|c| !c.is_ascii_graphic())
    {
        // The value is a secret: it is not repeated in the error.
        bad.add(
            "http.metrics_token",
            "***",
            "at least 16 printable ASCII characters without spaces (e.g. `openssl rand -hex 32`), \
             or \"\" for none",
        );
        None
    } else {
        Some(SecretString::from(token.to_owned()))
    };
    let rate_limit = check_rate_limit(raw, bad);
    let (console_idle, console_longest) = check_console(raw, bad);
    HttpSettings {
        listen,
        public_url,
        body_limit: (raw.body_limit_kib.clamp(1, 65_536) * 1024) as usize,
        request_timeout,
        metrics_listen,
        metrics_token,
        rate_limit,
        console_idle,
        console_longest,
    }
}

/// Checks the console's session lifetimes: a minute idle at least (less signs a
/// secretary out while she reads a batch), at most a day; the longest at least the
/// idle time and at most a week.
fn check_console(raw: &RawHttp, bad: &mut Problems) -> (Duration, Duration) {
    let minute = Duration::from_secs(60);
    let idle = match parse_duration(&raw.console_idle) {
        Some(d) if (minute..=Duration::from_secs(86_400)).contains(&d) => d,
        _ => {
            bad.add(
                "http.console_idle",
                &raw.console_idle,
                "a duration from 1m to 24h, such as 30m",
            );
            Duration::from_secs(30 * 60)
        }
    };
    let longest = match parse_duration(&raw.console_longest) {
        Some(d) if d >= idle && d <= Duration::from_secs(7 * 86_400) => d,
        _ => {
            bad.add(
                "http.console_longest",
                &raw.console_longest,
                "a duration from http.console_idle to 7d, such as 12h",
            );
            Duration::from_secs(12 * 3600)
        }
    };
    (idle, longest)
}

/// Checks the rate limit: 0 requests a second turns it off; otherwise both numbers
/// must allow at least one request, and neither may be so large it limits nothing.
fn check_rate_limit(raw: &RawHttp, bad: &mut Problems) -> Option<RateLimitSettings> {
    const MAX: u32 = 100_000;
    let per_second = NonZeroU32::new(raw.rate_limit_per_second)?;
    if per_second.get() > MAX {
        bad.add(
            "http.rate_limit_per_second",
            &per_second.to_string(),
            "requests a second per token from 1 to 100000, or 0 for no limit",
        );
    }
    let burst = NonZeroU32::new(raw.rate_limit_burst).filter(|b| b.get() <= MAX);
    if burst.is_none() {
        bad.add(
            "http.rate_limit_burst",
            &raw.rate_limit_burst.to_string(),
            "requests at once per token from 1 to 100000 (when http.rate_limit_per_second \
             is not 0)",
        );
    }
    Some(RateLimitSettings {
        per_second,
        burst: burst?,
    })
}
