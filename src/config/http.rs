//! `[http]`: where Herald's HTTP API listens, the address the world knows it by, and
//! the limits every request is held to.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::{Problems, parse_duration};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) listen: String,
    pub(super) public_url: String,
    pub(super) body_limit_kib: u64,
    pub(super) request_timeout: String,
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
    /// How long a request may take before it is answered 408.
    pub request_timeout: Duration,
}

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
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Some(url)
            }
            _ => {
                bad.add(
                    "http.public_url",
                    text,
                    "an http(s) URL such as https://herald.school.example, or \"\"",
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
    HttpSettings {
        listen,
        public_url,
        body_limit: (raw.body_limit_kib.clamp(1, 65_536) * 1024) as usize,
        request_timeout,
    }
}
