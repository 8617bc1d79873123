//! The `webhook` gateway, for schools with a gateway of their own: a JSON POST
//! `{"id", "to", "text", "encoding", "segments", "sender", "report_url"}` with the headers
//! `Idempotency-Key` (the same for every attempt of a message, so the receiver can
//! drop a retry it already took) and `X-Herald-Signature: sha256=HEX`, an
//! HMAC-SHA256 of the body with the shared secret, so the receiver can tell Herald
//! from anyone else. 2xx accepts (an optional `{"id": "…"}` is kept as the provider's
//! id); 429 and 5xx are passing; any other 4xx refuses, and
//! `{"error": "invalid_number"}` marks the number failing.
//!
//! When `http.public_url` is set, the body carries `report_url`: the receiver posts
//! delivery reports there, signed the same way (see [`report`]).

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::smsapi::clip;
use super::{Gateway, OutgoingSms, classify_status, classify_transport};
use crate::channels::SendOutcome;
use crate::domain::report::{DeliveryReport, MessageKey, ReportState};

/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "X-Herald-Signature";

/// The generic webhook gateway.
pub struct Webhook {
    client: reqwest::Client,
    url: reqwest::Url,
    secret: SecretString,
    report_url: Option<reqwest::Url>,
}

impl Webhook {
    /// A gateway posting to `url`, signing with `secret`, and telling the receiver to
    /// report deliveries to `report_url` where there is one.
    pub fn new(
        client: reqwest::Client,
        url: reqwest::Url,
        secret: SecretString,
        report_url: Option<reqwest::Url>,
    ) -> Webhook {
        Webhook {
            client,
            url,
            secret,
            report_url,
        }
    }
}

/// Whether `given` (the `X-Herald-Signature` header) signs `body` with `secret`,
/// compared in constant time.
pub fn signed(secret: &[u8], body: &[u8], given: &str) -> bool {
    use subtle::ConstantTimeEq;
    // Hex is case-insensitive; receivers in some languages print it upper-case.
    signature(secret, body)
        .as_bytes()
        .ct_eq(given.trim().to_ascii_lowercase().as_bytes())
        .into()
}

/// A delivery report to `POST /hooks/webhook`, signed like Herald's own requests.
/// Fields a receiver adds are ignored, so its own bookkeeping does not get its
/// reports refused.
#[derive(Debug, serde::Deserialize)]
struct Report {
    /// The `id` Herald sent (its key of the message).
    id: String,
    /// `delivered`, `undelivered`, `failed`, or a state on the way.
    status: String,
    /// The receiver's own id of the message, if it gave one.
    provider_id: Option<String>,
    /// When it happened.
    at: Option<chrono::DateTime<chrono::Utc>>,
    /// The receiver's words on a failure.
    error: Option<String>,
}

/// Reads a webhook delivery report: JSON `{"id", "status", "provider_id"?, "at"?,
/// "error"?}`, where `id` is the one Herald sent and `status` is `delivered`,
/// `undelivered` or `failed` (final), or `queued`, `accepted` or `sent` (on the way).
pub fn report(body: &[u8]) -> Result<DeliveryReport, String> {
    let r: Report = serde_json::from_slice(body).map_err(|e| {
        format!("expected JSON {{\"id\", \"status\", \"provider_id\"?, \"at\"?, \"error\"?}}: {e}")
    })?;
    let key = MessageKey::parse(&r.id).ok_or_else(|| {
        format!(
            "id: expected the id Herald sent (herald-…), found {:?}",
            r.id
        )
    })?;
    let state = match r.status.as_str() {
        "delivered" => ReportState::Delivered,
        "undelivered" | "failed" => ReportState::Undelivered,
        "queued" | "accepted" | "sent" => ReportState::InFlight,
        other => {
            return Err(format!(
                "status: expected delivered, undelivered, failed, queued, accepted or sent, \
                 found {other:?}"
            ));
        }
    };
    Ok(DeliveryReport {
        gateway: "webhook",
        key: Some(key),
        provider_id: r.provider_id,
        state,
        status: match r.error {
            Some(e) => format!("{} ({e})", r.status),
            None => r.status,
        },
        at: r.at,
    })
}

/// `sha256=HEX` of HMAC-SHA256(secret, body).
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[async_trait]
impl Gateway for Webhook {
    fn recognises_repeats(&self) -> bool {
        // `Idempotency-Key`: the receiver is asked to send a key once.
        true
    }

    async fn probe(&self) -> crate::channels::Probe {
        crate::channels::Probe::Unchecked(format!(
            "a webhook has no harmless call; messages are posted to {}",
            self.url
        ))
    }
    async fn send(&self, sms: &OutgoingSms<'_>) -> SendOutcome {
        let key = sms.idempotency_key();
        let body = serde_json::json!({
            "id": key,
            "to": sms.to.e164(),
            "text": sms.text,
            "encoding": sms.size.encoding,
            "segments": sms.size.segments,
            "sender": sms.sender,
            "report_url": self.report_url.as_ref().map(reqwest::Url::as_str),
        })
        .to_string();
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", &key)
            .header(
                SIGNATURE_HEADER,
                signature(self.secret.expose_secret().as_bytes(), body.as_bytes()),
            )
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            // The receiver promises to honour Idempotency-Key: a retry is safe.
            Err(e) => return classify_transport(&e, true),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return SendOutcome::Sent {
                code: Some(status.as_u16()),
                detail: format!("accepted: HTTP {status}"),
                provider_id: json
                    .as_ref()
                    .and_then(|j| j.get("id"))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
            };
        }
        let detail = format!("HTTP {status}: {}", clip(&text));
        let invalid_number = json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(|e| e.as_str())
            == Some("invalid_number");
        match classify_status(status, &headers, detail) {
            SendOutcome::Permanent { code, detail, .. } => SendOutcome::Permanent {
                code,
                detail,
                address_failing: invalid_number,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body_in_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
