//! The `webhook` gateway, for schools with a gateway of their own: a JSON POST
//! `{"id", "to", "text", "encoding", "segments", "sender"}` with the headers
//! `Idempotency-Key` (the same for every attempt of a message, so the receiver can
//! drop a retry it already took) and `X-Herald-Signature: sha256=HEX`, an
//! HMAC-SHA256 of the body with the shared secret, so the receiver can tell Herald
//! from anyone else. 2xx accepts (an optional `{"id": "…"}` is kept as the provider's
//! id); 429 and 5xx are passing; any other 4xx refuses, and
//! `{"error": "invalid_number"}` marks the number failing.

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::smsapi::clip;
use super::{Gateway, OutgoingSms, classify_status, classify_transport};
use crate::channels::SendOutcome;

/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "X-Herald-Signature";

/// The generic webhook gateway.
pub struct Webhook {
    client: reqwest::Client,
    url: reqwest::Url,
    secret: SecretString,
}

impl Webhook {
    /// A gateway posting to `url`, signing with `secret`.
    pub fn new(client: reqwest::Client, url: reqwest::Url, secret: SecretString) -> Webhook {
        Webhook {
            client,
            url,
            secret,
        }
    }
}

/// `sha256=HEX` of HMAC-SHA256(secret, body).
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[async_trait]
impl Gateway for Webhook {
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
        match classify_status(status, detail) {
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
