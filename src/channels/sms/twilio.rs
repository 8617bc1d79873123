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

/// The Twilio gateway.
pub struct Twilio {
    client: reqwest::Client,
    url: reqwest::Url,
    account_sid: String,
    auth_token: SecretString,
    messaging_service_sid: Option<String>,
}

impl Twilio {
    /// A gateway on the API at `url` (normally `https://api.twilio.com`).
    pub fn new(
        client: reqwest::Client,
        url: reqwest::Url,
        account_sid: String,
        auth_token: SecretString,
        messaging_service_sid: Option<String>,
    ) -> Twilio {
        Twilio {
            client,
            url,
            account_sid,
            auth_token,
            messaging_service_sid,
        }
    }
}

const INVALID_NUMBER: [i64; 3] = [21211, 21217, 21614];
const PASSING: [i64; 2] = [20003, 20429];

#[async_trait]
impl Gateway for Twilio {
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
            _ => classify_status(status, detail),
        }
    }
}
