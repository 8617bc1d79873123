//! SMSAPI.pl: `POST /sms.do?format=json`, bearer token, form fields `to` (digits with
//! the country code, no `+`), `message`, `from` (a registered sender name),
//! `encoding=utf-8`, and `idx` with `check_idx=1`: SMSAPI refuses a second message
//! with the same `idx`, which makes a retry after a lost answer safe.
//!
//! SMSAPI answers errors with HTTP 200 too: a JSON body with `error` (a number) and
//! `message` is a failure whatever the status. Codes from its documentation
//! (smsapi.pl/docs, "statusy-wiadomosci"): 13 no valid number (invalid, landline,
//! blacklisted), 11 text too long or empty, 12 over 160 characters with `single`, 14
//! bad sender, 17 flash with special characters, 18 wrong parameters, 20/27 idx too
//! long, 25 normalize with datacoding, 28 bad time restriction; 101–103 are
//! authorisation and the account's own points; 8 is a malformed request. An answer
//! that `idx` was used already means the first attempt went through.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::{Gateway, OutgoingSms, classify_status, classify_transport};
use crate::channels::SendOutcome;
use crate::domain::report::{DeliveryReport, MessageKey, ReportState};

/// The SMSAPI.pl gateway.
pub struct Smsapi {
    client: reqwest::Client,
    url: reqwest::Url,
    token: SecretString,
    notify_url: Option<reqwest::Url>,
}

impl Smsapi {
    /// A gateway posting to `url` (normally `https://api.smsapi.pl/sms.do`), asking
    /// for delivery reports at `notify_url` where there is one.
    pub fn new(
        client: reqwest::Client,
        url: reqwest::Url,
        token: SecretString,
        notify_url: Option<reqwest::Url>,
    ) -> Smsapi {
        Smsapi {
            client,
            url,
            token,
            notify_url,
        }
    }
}

/// The codes that say "this idx was used already" (the message went before).
const IDX_USED: [i64; 1] = [53];

/// Codes that refuse the message for good.
const PERMANENT: [i64; 10] = [8, 11, 12, 13, 14, 17, 18, 20, 25, 27];

/// Codes about the number itself.
const INVALID_NUMBER: [i64; 1] = [13];

#[async_trait]
impl Gateway for Smsapi {
    fn recognises_repeats(&self) -> bool {
        // `idx` with `check_idx=1`: SMSAPI refuses a second message with the same key.
        true
    }

    async fn probe(&self) -> crate::channels::Probe {
        use crate::channels::Probe;
        // The account's profile (with its points) sits beside /sms.do.
        let mut url = self.url.clone();
        url.set_path(&self.url.path().replace("sms.do", "profile"));
        url.query_pairs_mut().append_pair("format", "json");
        let response = self
            .client
            .get(url)
            .bearer_auth(self.token.expose_secret())
            .send()
            .await;
        match response {
            Err(e) => Probe::Failed(format!("SMSAPI cannot be reached: {e}")),
            Ok(r) if r.status().is_success() => {
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                match body.get("points") {
                    Some(points) => Probe::Ok(format!(
                        "SMSAPI accepts the token; the account has {points} points"
                    )),
                    None => Probe::Failed(format!(
                        "SMSAPI answered without an account: {}",
                        body.get("message").unwrap_or(&body)
                    )),
                }
            }
            Ok(r) => Probe::Failed(format!(
                "SMSAPI refused the token (HTTP {}): check sms.smsapi.token",
                r.status().as_u16()
            )),
        }
    }

    async fn send(&self, sms: &OutgoingSms<'_>) -> SendOutcome {
        let mut url = self.url.clone();
        url.query_pairs_mut().append_pair("format", "json");
        let key = sms.idempotency_key();
        let to = sms.to.e164().trim_start_matches('+').to_owned();
        let mut form = vec![
            ("to", to.as_str()),
            ("message", sms.text),
            ("from", sms.sender),
            ("encoding", "utf-8"),
            ("idx", key.as_str()),
            ("check_idx", "1"),
        ];
        // Overrides the callback address set in SMSAPI's panel, for this message.
        if let Some(url) = &self.notify_url {
            form.push(("notify_url", url.as_str()));
        }
        let response = self
            .client
            .post(url)
            .bearer_auth(self.token.expose_secret())
            .form(&form)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            // idx makes a retry safe even when the request may have arrived.
            Err(e) => return classify_transport(&e, true),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match response.text().await {
            Ok(b) => b,
            Err(e) => return classify_transport(&e, true),
        };
        // Asked to wait (429/503 with Retry-After): that comes first, whatever the body.
        let busy = classify_status(status, &headers, format!("HTTP {status}: {}", clip(&body)));
        if matches!(busy, SendOutcome::Throttled { .. }) {
            return busy;
        }
        let json: Option<serde_json::Value> = serde_json::from_str(&body).ok();
        if let Some(error) = json.as_ref().and_then(|j| j.get("error")) {
            let message = json
                .as_ref()
                .and_then(|j| j.get("message"))
                .and_then(|m| m.as_str())
                .unwrap_or_default();
            let detail = format!("SMSAPI error {error}: {message}");
            return match error.as_i64() {
                Some(code) if IDX_USED.contains(&code) => SendOutcome::Sent {
                    code: Some(status.as_u16()),
                    detail: format!("already accepted under idx {key} ({detail})"),
                    provider_id: None,
                },
                Some(code) if PERMANENT.contains(&code) => SendOutcome::Permanent {
                    code: Some(status.as_u16()),
                    detail,
                    address_failing: INVALID_NUMBER.contains(&code),
                },
                // 101–103 (authorisation, the account's points), 28, unknown codes
                // and the newer string codes: worth another try later.
                _ => SendOutcome::Transient {
                    code: Some(status.as_u16()),
                    detail,
                },
            };
        }
        if !status.is_success() {
            return classify_status(status, &headers, format!("HTTP {status}: {}", clip(&body)));
        }
        let first = json
            .as_ref()
            .and_then(|j| j.get("list"))
            .and_then(|l| l.get(0));
        match first {
            Some(item) => {
                let id = item.get("id").map(|v| match v.as_str() {
                    Some(s) => s.to_owned(),
                    None => v.to_string(),
                });
                SendOutcome::Sent {
                    code: Some(status.as_u16()),
                    detail: format!(
                        "accepted: status {}, {} part(s), {} points",
                        item.get("status").and_then(|s| s.as_str()).unwrap_or("?"),
                        item.get("parts").map(|p| p.to_string()).unwrap_or_default(),
                        item.get("points")
                            .map(|p| p.to_string())
                            .unwrap_or_default()
                    ),
                    provider_id: id,
                }
            }
            // A 2xx without the expected list: it may well have been sent.
            None => SendOutcome::Unknown {
                detail: format!("unexpected answer HTTP {status}: {}", clip(&body)),
            },
        }
    }
}

/// The start of a response body, for the attempt's record.
pub(crate) fn clip(body: &str) -> String {
    body.chars().take(300).collect()
}

/// SMSAPI's report codes, their names, and what they mean for Herald (from SMSAPI's
/// "statusy wiadomości" and its client libraries: 402–407 and 412 are final failures,
/// 403/409/410/411 on the way, 401/408 unknown to SMSAPI itself). A code not listed
/// here is kept as unknown rather than refusing the callback, which carries up to
/// five reports that would all be retried for it.
const REPORT_CODES: [(&str, &str, ReportState); 12] = [
    ("401", "NOT_FOUND", ReportState::Unknown),
    ("402", "EXPIRED", ReportState::Undelivered),
    ("403", "SENT", ReportState::InFlight),
    ("404", "DELIVERED", ReportState::Delivered),
    ("405", "UNDELIVERED", ReportState::Undelivered),
    ("406", "FAILED", ReportState::Undelivered),
    ("407", "REJECTED", ReportState::Undelivered),
    ("408", "UNKNOWN", ReportState::Unknown),
    ("409", "QUEUE", ReportState::InFlight),
    ("410", "ACCEPTED", ReportState::InFlight),
    ("411", "RENEWAL", ReportState::InFlight),
    ("412", "STOP", ReportState::Undelivered),
];

/// Reads SMSAPI's delivery-report callback: one to five reports per request, as
/// parallel comma-separated lists `MsgId`, `status`, `idx` and `donedate` (Unix
/// seconds), sent as a query (GET) or a form (POST). Says which field is wrong when
/// the request is not one.
pub fn reports(fields: &[(String, String)]) -> Result<Vec<DeliveryReport>, String> {
    let list = |name: &str| -> Option<Vec<&str>> {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.split(',').map(str::trim).collect())
    };
    let ids = list("MsgId").ok_or("MsgId: expected the message ids, comma-separated")?;
    let statuses = list("status").ok_or("status: expected the status codes, comma-separated")?;
    if statuses.len() != ids.len() {
        return Err(format!(
            "status: expected {} codes, one per MsgId, found {}",
            ids.len(),
            statuses.len()
        ));
    }
    let idx = list("idx").unwrap_or_default();
    let done = list("donedate").unwrap_or_default();
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let code = statuses[i];
            let (name, state) = REPORT_CODES
                .iter()
                .find(|(c, n, _)| *c == code || n.eq_ignore_ascii_case(code))
                .map_or(
                    ("(not a code Herald knows)", ReportState::Unknown),
                    |(_, n, s)| (*n, *s),
                );
            let at = done
                .get(i)
                .and_then(|d| d.parse::<i64>().ok())
                .and_then(|s| chrono::DateTime::from_timestamp(s, 0));
            Ok(DeliveryReport {
                gateway: "smsapi",
                key: idx.get(i).and_then(|k| MessageKey::parse(k)),
                provider_id: Some((*id).to_owned()).filter(|id| !id.is_empty()),
                state,
                status: format!("{code} {name}"),
                at,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn up_to_five_reports_come_as_parallel_lists() {
        let r = reports(&fields(&[
            ("MsgId", "1001,1002,1003"),
            ("status", "404,405,403"),
            ("idx", "herald-1-1795510800,,herald-3-1795510800"),
            ("donedate", "1795510900,1795510901,1795510902"),
            ("username", "szkola,szkola,szkola"),
        ]))
        .unwrap();
        let states: Vec<_> = r.iter().map(|r| r.state).collect();
        assert_eq!(
            states,
            [
                ReportState::Delivered,
                ReportState::Undelivered,
                ReportState::InFlight
            ]
        );
        assert_eq!(r[0].status, "404 DELIVERED");
        assert_eq!(r[0].key.map(|k| k.id.0), Some(1));
        assert_eq!(r[1].key, None, "an empty idx names no key");
        assert_eq!(r[1].provider_id.as_deref(), Some("1002"));
        assert_eq!(r[2].at.map(|t| t.timestamp()), Some(1_795_510_902));
    }

    #[test]
    fn a_report_that_is_not_one_names_its_field() {
        let missing = reports(&fields(&[("status", "404")])).unwrap_err();
        assert!(missing.starts_with("MsgId:"), "{missing}");
        let short = reports(&fields(&[("MsgId", "1,2"), ("status", "404")])).unwrap_err();
        assert!(short.starts_with("status: expected 2 codes"), "{short}");
        // A code SMSAPI adds later is kept as unknown, not a reason to refuse the rest.
        let odd = reports(&fields(&[("MsgId", "1,2"), ("status", "499,404")])).unwrap();
        assert_eq!(odd[0].state, ReportState::Unknown);
        assert_eq!(odd[1].state, ReportState::Delivered);
    }
}
