//! Twilio Programmable Messaging: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`,
//! HTTP Basic (account SID, auth token), form fields `To` (E.164), `From` (or
//! `MessagingServiceSid`) and `Body`; 201 with the message's `sid`.
//!
//! Twilio has no idempotency key for this call, so a send whose answer is lost is
//! `unknown` and waits for an operator (per the design) instead of being retried.
//! Errors come as JSON `{"code", "message", "status"}` (twilio.com/docs/api/errors):
//! 21211 invalid To, 21614 To is not a mobile number, 21217 not a valid phone number
//! (all three mark the number failing), 21408 region not enabled, 21610 the recipient
//! unsubscribed (STOP), 21617 body too long; 20003 authentication and 20429 / HTTP 429
//! too many requests are passing.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::smsapi::clip;
use super::{Gateway, OutgoingSms, classify_status, classify_transport};
use crate::channels::SendOutcome;
use crate::domain::report::{DeliveryReport, MessageKey, ReportState};

/// The Twilio gateway.
pub struct Twilio {
    client: reqwest::Client,
    url: reqwest::Url,
    account_sid: String,
    auth_token: SecretString,
    messaging_service_sid: Option<String>,
    status_callback: Option<reqwest::Url>,
}

/// Twilio's settings as the gateway needs them.
pub struct TwilioAccount {
    /// The account SID.
    pub account_sid: String,
    /// The auth token (also the key of the callbacks' signature).
    pub auth_token: SecretString,
    /// A messaging service to send from instead of the sender number.
    pub messaging_service_sid: Option<String>,
}

impl Twilio {
    /// A gateway on the API at `url` (normally `https://api.twilio.com`), asking for
    /// delivery reports at `status_callback` where there is one.
    pub fn new(
        client: reqwest::Client,
        url: reqwest::Url,
        account: TwilioAccount,
        status_callback: Option<reqwest::Url>,
    ) -> Twilio {
        Twilio {
            client,
            url,
            account_sid: account.account_sid,
            auth_token: account.auth_token,
            messaging_service_sid: account.messaging_service_sid,
            status_callback,
        }
    }
}

const INVALID_NUMBER: [i64; 3] = [21211, 21217, 21614];
const PASSING: [i64; 2] = [20003, 20429];

#[async_trait]
impl Gateway for Twilio {
    fn recognises_repeats(&self) -> bool {
        // Twilio's Messages API takes no idempotency key: a repeat is a second SMS.
        false
    }

    async fn probe(&self) -> crate::channels::Probe {
        use crate::channels::Probe;
        let mut url = self.url.clone();
        url.set_path(&format!("/2010-04-01/Accounts/{}.json", self.account_sid));
        let response = self
            .client
            .get(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .send()
            .await;
        match response {
            Err(e) => Probe::Failed(format!("Twilio cannot be reached: {e}")),
            Ok(r) if r.status().is_success() => {
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                let status = body.get("status").and_then(|s| s.as_str()).unwrap_or("?");
                if status == "active" {
                    Probe::Ok(format!("Twilio accepts the credentials; account {status}"))
                } else {
                    Probe::Failed(format!("the Twilio account is {status}"))
                }
            }
            Ok(r) => Probe::Failed(format!(
                "Twilio refused the credentials (HTTP {}): check sms.twilio.account_sid and auth_token",
                r.status().as_u16()
            )),
        }
    }

    async fn send(&self, sms: &OutgoingSms<'_>) -> SendOutcome {
        let mut url = self.url.clone();
        url.set_path(&format!(
            "/2010-04-01/Accounts/{}/Messages.json",
            self.account_sid
        ));
        let mut form = vec![
            ("To", sms.to.e164().to_owned()),
            ("Body", sms.text.to_owned()),
        ];
        match &self.messaging_service_sid {
            Some(service) => form.push(("MessagingServiceSid", service.clone())),
            None => form.push(("From", sms.sender.to_owned())),
        }
        if let Some(callback) = &self.status_callback {
            // Herald's key in the callback's address names the message even when the
            // report comes before Herald recorded the sid Twilio answered with.
            let mut callback = callback.clone();
            callback
                .query_pairs_mut()
                .append_pair("ref", &sms.idempotency_key());
            form.push(("StatusCallback", callback.into()));
        }
        let response = self
            .client
            .post(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .form(&form)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => return classify_transport(&e, false),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match response.text().await {
            Ok(b) => b,
            Err(e) => return classify_transport(&e, false),
        };
        let json: Option<serde_json::Value> = serde_json::from_str(&body).ok();
        if status.is_success() {
            let sid = json
                .as_ref()
                .and_then(|j| j.get("sid"))
                .and_then(|s| s.as_str())
                .map(str::to_owned);
            return match sid {
                Some(sid) => SendOutcome::Sent {
                    code: Some(status.as_u16()),
                    detail: format!(
                        "accepted: status {}, {} segment(s)",
                        json.as_ref()
                            .and_then(|j| j.get("status"))
                            .and_then(|s| s.as_str())
                            .unwrap_or("?"),
                        json.as_ref()
                            .and_then(|j| j.get("num_segments"))
                            .and_then(|s| s.as_str())
                            .unwrap_or("?"),
                    ),
                    provider_id: Some(sid),
                },
                None => SendOutcome::Unknown {
                    detail: format!("unexpected answer HTTP {status}: {}", clip(&body)),
                },
            };
        }
        let code = json
            .as_ref()
            .and_then(|j| j.get("code"))
            .and_then(|c| c.as_i64());
        let message = json
            .as_ref()
            .and_then(|j| j.get("message"))
            .and_then(|m| m.as_str())
            .unwrap_or_default();
        let detail = match code {
            Some(c) => format!("Twilio error {c}: {message}"),
            None => format!("HTTP {status}: {}", clip(&body)),
        };
        // Asked to wait (429/503 with Retry-After): that comes first, whatever the code.
        let busy = classify_status(status, &headers, detail.clone());
        if matches!(busy, SendOutcome::Throttled { .. }) {
            return busy;
        }
        match code {
            Some(c) if PASSING.contains(&c) => SendOutcome::Transient {
                code: Some(status.as_u16()),
                detail,
            },
            Some(c)
                if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS =>
            {
                SendOutcome::Permanent {
                    code: Some(status.as_u16()),
                    detail,
                    address_failing: INVALID_NUMBER.contains(&c),
                }
            }
            _ => classify_status(status, &headers, detail),
        }
    }
}

/// The signature Twilio puts in `X-Twilio-Signature`: Base64 of HMAC-SHA1, keyed with
/// the auth token, over the full URL Twilio called followed by each form field's name
/// and value, sorted by name (twilio.com/docs/usage/security#validating-requests).
pub fn signature(auth_token: &[u8], url: &str, fields: &[(String, String)]) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let mut sorted: Vec<&(String, String)> = fields.iter().collect();
    sorted.sort();
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(auth_token).expect("HMAC takes a key of any length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `given` is Twilio's signature of the request, compared in constant time.
/// Twilio may sign an https URL with or without its default port, so both are tried.
pub fn signed_by_twilio(
    auth_token: &[u8],
    url: &reqwest::Url,
    fields: &[(String, String)],
    given: &str,
) -> bool {
    use subtle::ConstantTimeEq;
    let mut candidates = vec![url.to_string()];
    // `Url` never spells out a default port, so the variant with one is built here.
    if let (None, Some(port), Some(host)) =
        (url.port(), url.port_or_known_default(), url.host_str())
    {
        let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
        candidates.push(format!(
            "{}://{host}:{port}{}{query}",
            url.scheme(),
            url.path()
        ));
    }
    candidates.iter().fold(false, |ok, candidate| {
        let expected = signature(auth_token, candidate, fields);
        ok | bool::from(expected.as_bytes().ct_eq(given.trim().as_bytes()))
    })
}

/// Reads Twilio's status callback (form fields `MessageSid`, `MessageStatus`,
/// `ErrorCode`), with Herald's key from the callback URL's `ref` where it is there.
/// Statuses from Twilio's message resource: `delivered` and `read` reached the phone;
/// `undelivered`, `failed` and `canceled` will not; the rest are on the way, and a
/// status Twilio adds later is kept as unknown.
pub fn report(
    fields: &[(String, String)],
    reference: Option<&str>,
) -> Result<DeliveryReport, String> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let sid = field("MessageSid").ok_or("MessageSid: expected the message's sid")?;
    let status = field("MessageStatus").ok_or("MessageStatus: expected the message's status")?;
    let state = match status {
        "delivered" | "read" => ReportState::Delivered,
        "undelivered" | "failed" | "canceled" => ReportState::Undelivered,
        "accepted" | "scheduled" | "queued" | "sending" | "sent" | "partially_delivered" => {
            ReportState::InFlight
        }
        // A status Twilio adds later: kept, and it changes nothing.
        _ => ReportState::Unknown,
    };
    let words = match field("ErrorCode") {
        Some(code) => format!("{status} (error {code})"),
        None => status.to_owned(),
    };
    Ok(DeliveryReport {
        gateway: "twilio",
        key: reference.and_then(MessageKey::parse),
        provider_id: Some(sid.to_owned()),
        state,
        status: words,
        at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Twilio's own request validator tests (twilio-python,
    /// `tests/unit/test_request_validator.py`).
    fn twilio_example() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
            ("Caller", "+14158675309"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec()
    }

    #[test]
    fn the_signature_matches_twilios_published_example() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            signature(b"12345", url, &twilio_example()),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        let url: reqwest::Url = url.parse().unwrap();
        let fields = twilio_example();
        assert!(signed_by_twilio(
            b"12345",
            &url,
            &fields,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        // Twilio may sign the URL with its default port spelled out.
        assert!(signed_by_twilio(
            b"12345",
            &url,
            &fields,
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        ));
        assert!(!signed_by_twilio(
            b"12346",
            &url,
            &fields,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        let mut changed = fields.clone();
        changed[1].1 = "1235".to_owned();
        assert!(!signed_by_twilio(
            b"12345",
            &url,
            &changed,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn statuses_map_to_what_herald_does_with_them() {
        let form = |status: &str| {
            vec![
                ("MessageSid".to_owned(), "SM1".to_owned()),
                ("MessageStatus".to_owned(), status.to_owned()),
                ("ErrorCode".to_owned(), "30003".to_owned()),
            ]
        };
        let r = report(&form("undelivered"), Some("herald-7-1795510800")).unwrap();
        assert_eq!(r.state, ReportState::Undelivered);
        assert_eq!(r.status, "undelivered (error 30003)");
        assert_eq!(r.key.map(|k| k.id.0), Some(7));
        assert_eq!(
            report(&form("delivered"), None).unwrap().state,
            ReportState::Delivered
        );
        assert_eq!(
            report(&form("sent"), None).unwrap().state,
            ReportState::InFlight
        );
        // A status Twilio adds later is kept, not refused.
        assert_eq!(
            report(&form("exploded"), None).unwrap().state,
            ReportState::Unknown
        );
        assert!(report(&[], None).unwrap_err().starts_with("MessageSid:"));
    }
}
