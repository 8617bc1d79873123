//! `[sms.*]`: how SMS leave Herald and what they cost — the gateway and its
//! credentials, the sender name, the price, length and rate limits. Secrets are
//! checked for presence only; their values never appear in an error.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::Problems;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSms {
    pub(super) gateway: String,
    pub(super) sender: String,
    pub(super) price_per_segment: u32,
    pub(super) max_segments: u32,
    pub(super) timeout: String,
    pub(super) segments_per_second: u32,
    pub(super) low_balance_threshold: i64,
    pub(super) unknown_charged_after: String,
    pub(super) allow_loopback_http: bool,
    pub(super) file: RawSmsFile,
    pub(super) smsapi: RawSmsapi,
    pub(super) twilio: RawTwilio,
    pub(super) webhook: RawWebhook,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmsFile {
    pub(super) path: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmsapi {
    pub(super) url: String,
    pub(super) token: SecretString,
    pub(super) report_secret: SecretString,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTwilio {
    pub(super) url: String,
    pub(super) account_sid: String,
    pub(super) auth_token: SecretString,
    pub(super) messaging_service_sid: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    pub(super) url: String,
    pub(super) secret: SecretString,
}

/// `[sms]`: how SMS leave Herald and what they cost.
#[derive(Debug, Clone)]
pub struct SmsSettings {
    /// The gateway.
    pub gateway: SmsGateway,
    /// The sender name (or number) recipients see; it cannot be replied to.
    pub sender: String,
    /// Wallet points per segment.
    pub price_per_segment: u32,
    /// The longest message, in segments; longer texts are refused when composed.
    pub max_segments: u32,
    /// The longest one send may take.
    pub timeout: Duration,
    /// The gateway's rate limit, in segments per second.
    pub segments_per_second: u32,
    /// Below this balance the wallet is reported low.
    pub low_balance_threshold: i64,
    /// An SMS whose outcome stayed unknown this long without a person deciding is
    /// charged (it was handed to the gateway): its reservation does not hold the
    /// wallet for ever.
    pub unknown_charged_after: Duration,
    /// `http.public_url`: where the gateways are asked to send delivery reports;
    /// `None`: they are not asked.
    pub public_url: Option<reqwest::Url>,
}

/// An SMS gateway and its settings.
#[derive(Debug, Clone)]
pub enum SmsGateway {
    /// Each SMS becomes a JSON line in this file.
    File {
        /// The file.
        path: PathBuf,
    },
    /// SMSAPI.pl.
    Smsapi {
        /// The endpoint, `https://api.smsapi.pl/sms.do`.
        url: reqwest::Url,
        /// The OAuth bearer token.
        token: SecretString,
        /// The secret in the path of the delivery-report URL; `None`: no reports.
        report_secret: Option<SecretString>,
    },
    /// Twilio Programmable Messaging.
    Twilio {
        /// The API base, `https://api.twilio.com`.
        url: reqwest::Url,
        /// The account SID.
        account_sid: String,
        /// The auth token.
        auth_token: SecretString,
        /// A messaging service to send from instead of the sender number.
        messaging_service_sid: Option<String>,
    },
    /// A school's own gateway: a signed JSON POST.
    Webhook {
        /// Where to POST.
        url: reqwest::Url,
        /// The HMAC-SHA256 key of the signature header.
        secret: SecretString,
    },
}

impl SmsGateway {
    /// The gateway's name in the configuration.
    pub fn name(&self) -> &'static str {
        match self {
            SmsGateway::File { .. } => "file",
            SmsGateway::Smsapi { .. } => "smsapi",
            SmsGateway::Twilio { .. } => "twilio",
            SmsGateway::Webhook { .. } => "webhook",
        }
    }
}

/// Checks `[sms.*]` with its timeout already parsed (it is checked with the
/// dispatcher's durations); `None` when the gateway is bad (already reported).
pub(super) fn check(raw: &RawSms, timeout: Duration, bad: &mut Problems) -> Option<SmsSettings> {
    let gateway = check_gateway(raw, bad);
    let sender = raw.sender.trim().to_owned();
    // SMSAPI and the operators take alphanumeric sender names of at most 11
    // characters; a number may be longer (Twilio sends from a number).
    let is_number = sender.starts_with('+') && sender[1..].chars().all(|c| c.is_ascii_digit());
    if sender.is_empty() || (!is_number && (sender.chars().count() > 11 || !sender.is_ascii())) {
        bad.add(
            "sms.sender",
            &raw.sender,
            "a sender name of 1 to 11 ASCII characters (as registered with the gateway) or a \
             number such as +48500100200",
        );
    }
    if raw.price_per_segment == 0 {
        bad.add(
            "sms.price_per_segment",
            "0",
            "points per segment, at least 1",
        );
    }
    if raw.max_segments == 0 {
        bad.add(
            "sms.max_segments",
            "0",
            "a number of segments of at least 1",
        );
    }
    if raw.segments_per_second == 0 {
        bad.add(
            "sms.segments_per_second",
            "0",
            "a rate of at least 1 segment per second",
        );
    }
    if raw.low_balance_threshold < 0 {
        bad.add(
            "sms.low_balance_threshold",
            &raw.low_balance_threshold.to_string(),
            "a number of points of at least 0",
        );
    }
    let unknown_charged_after = match super::parse_duration(&raw.unknown_charged_after) {
        Some(d) if d >= Duration::from_secs(3600) => d,
        _ => {
            bad.add(
                "sms.unknown_charged_after",
                &raw.unknown_charged_after,
                "a duration of at least 1h, such as 72h",
            );
            Duration::from_secs(72 * 3600)
        }
    };
    Some(SmsSettings {
        gateway: gateway?,
        sender,
        price_per_segment: raw.price_per_segment.max(1),
        max_segments: raw.max_segments.max(1),
        timeout,
        segments_per_second: raw.segments_per_second.max(1),
        low_balance_threshold: raw.low_balance_threshold.max(0),
        unknown_charged_after,
        // Filled in from `[http]` once that section is checked.
        public_url: None,
    })
}

/// Checks `sms.gateway` and the settings of the gateway it names; the others'
/// settings are not read.
fn check_gateway(raw: &RawSms, bad: &mut Problems) -> Option<SmsGateway> {
    match raw.gateway.trim().to_ascii_lowercase().as_str() {
        "file" => {
            required(
                bad,
                "sms.file.path",
                &raw.file.path,
                "a file for the SMS lines",
            );
            Some(SmsGateway::File {
                path: PathBuf::from(raw.file.path.trim()),
            })
        }
        "smsapi" => {
            required(
                bad,
                "sms.smsapi.token",
                present(&raw.smsapi.token),
                "the OAuth token from the SMSAPI panel",
            );
            let report_secret = check_report_secret(bad, &raw.smsapi.report_secret);
            check_url(
                bad,
                "sms.smsapi.url",
                &raw.smsapi.url,
                raw.allow_loopback_http,
            )
            .map(|url| SmsGateway::Smsapi {
                url,
                token: raw.smsapi.token.clone(),
                report_secret,
            })
        }
        "twilio" => {
            let t = &raw.twilio;
            required(
                bad,
                "sms.twilio.account_sid",
                &t.account_sid,
                "the account SID (AC…)",
            );
            required(
                bad,
                "sms.twilio.auth_token",
                present(&t.auth_token),
                "the account's auth token",
            );
            check_url(bad, "sms.twilio.url", &t.url, raw.allow_loopback_http).map(|url| {
                SmsGateway::Twilio {
                    url,
                    account_sid: t.account_sid.trim().to_owned(),
                    auth_token: t.auth_token.clone(),
                    messaging_service_sid: Some(t.messaging_service_sid.trim().to_owned())
                        .filter(|s| !s.is_empty()),
                }
            })
        }
        "webhook" => {
            required(
                bad,
                "sms.webhook.secret",
                present(&raw.webhook.secret),
                "a secret to sign requests with (HMAC-SHA256)",
            );
            check_url(
                bad,
                "sms.webhook.url",
                &raw.webhook.url,
                raw.allow_loopback_http,
            )
            .map(|url| SmsGateway::Webhook {
                url,
                secret: raw.webhook.secret.clone(),
            })
        }
        _ => {
            bad.add(
                "sms.gateway",
                &raw.gateway,
                "\"file\", \"smsapi\", \"twilio\" or \"webhook\"",
            );
            None
        }
    }
}

/// `sms.smsapi.report_secret`: SMSAPI signs nothing, so the secret in the report URL's
/// path is what tells SMSAPI from anyone else; it must be long and fit in a path.
fn check_report_secret(bad: &mut Problems, secret: &SecretString) -> Option<SecretString> {
    let text = secret.expose_secret().trim();
    if text.is_empty() {
        return None;
    }
    let fits = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if text.chars().count() < 24 || !fits {
        bad.add(
            "sms.smsapi.report_secret",
            "***",
            "at least 24 letters, digits, - or _ (e.g. `openssl rand -hex 16`), or \"\" for no \
             delivery reports",
        );
        return None;
    }
    Some(SecretString::from(text.to_owned()))
}

/// A gateway's endpoint: an https URL, so the credentials and the texts never cross a
/// network in the clear; plain http only to this machine, and only when
/// `sms.allow_loopback_http` says so (tests and development).
fn check_url(
    bad: &mut Problems,
    key: &str,
    text: &str,
    loopback_http: bool,
) -> Option<reqwest::Url> {
    let url = reqwest::Url::parse(text.trim()).ok();
    match url {
        Some(u) if u.scheme() == "https" && u.host().is_some() => Some(u),
        Some(u)
            if u.scheme() == "http"
                && loopback_http
                && u.host_str().is_some_and(super::is_loopback) =>
        {
            Some(u)
        }
        Some(u) if u.scheme() == "http" && u.host_str().is_some_and(super::is_loopback) => {
            bad.add(
                key,
                text,
                "an https:// URL; plain http:// to this machine needs sms.allow_loopback_http = \
                 true (tests and development only)",
            );
            None
        }
        _ => {
            bad.add(
                key,
                text,
                "an https:// URL (the gateway's credentials and the texts must not cross a \
                 network in plain http)",
            );
            None
        }
    }
}

fn required(bad: &mut Problems, key: &str, value: &str, what: &str) {
    if value.trim().is_empty() {
        bad.add(key, value, what);
    }
}

/// A secret as `required` sees it: `***` when given, so its value is never echoed.
fn present(secret: &SecretString) -> &'static str {
    if secret.expose_secret().is_empty() {
        ""
    } else {
        "***"
    }
}
