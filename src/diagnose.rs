//! Diagnosis: "why didn't this parent get our message?" answered from what Herald
//! knows (design §11).
//!
//! Everything here is gathered into plain structures with a stable code, a verdict
//! and words for a school secretary on each line; the CLI prints them, `--json`
//! serialises them as they are. Nothing here changes anything. The lines ([`Check`])
//! and the timing and dispatcher checks are shared with `herald doctor`
//! ([`crate::doctor`]).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::channels::email::message_id;
use crate::config::Settings;
use crate::domain::contact::{EmailAddress, PhoneNumber};
use crate::domain::directory::{ContractConsent, ContractStatus, Role};
use crate::domain::{Audience, Channel, EligibilityFacts, MessageId, MessageStatus, Reach, Reason};
use crate::store::{
    Attempt, AttemptOutcome, ChannelHealth, Hold, MessageEvent, MessageFilter, MessageView, Store,
    StoreError,
};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Fine.
    Ok,
    /// Worth a look; nothing is stopped by it.
    Warning,
    /// Stops messages (or the installation) until fixed.
    Error,
}

/// One line of a diagnosis: a stable code, a verdict, and words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// A stable code, e.g. `email.consent` or `smtp.reachable`.
    pub code: String,
    /// How it came out.
    pub verdict: Verdict,
    /// The reason code, when a check of eligibility failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// What it means, in plain words.
    pub text: String,
    /// What to do about it, when something is to be done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A line with no reason code and no fix.
    pub(crate) fn new(code: &str, verdict: Verdict, text: impl Into<String>) -> Check {
        Check {
            code: code.to_owned(),
            verdict,
            reason: None,
            text: text.into(),
            fix: None,
        }
    }

    /// A line that is fine.
    pub(crate) fn ok(code: &str, text: impl Into<String>) -> Check {
        Check::new(code, Verdict::Ok, text)
    }

    /// A failed check of eligibility, with its reason code.
    fn failed(code: &str, reason: Reason, text: impl Into<String>) -> Check {
        Check {
            reason: Some(reason),
            ..Check::new(code, Verdict::Error, text)
        }
    }

    /// The same line, with what to do about it.
    pub(crate) fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// Who the recipient is to others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Related {
    /// The platform's id.
    pub external_id: String,
    /// Their name.
    pub name: String,
    /// `student` or `guardian`.
    pub relation: String,
}

/// One channel's eligibility, check by check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelDiagnosis {
    /// The channel.
    pub channel: Channel,
    /// Whether every check passed.
    pub eligible: bool,
    /// Every check of the design, in order.
    pub checks: Vec<Check>,
}

/// One of the recipient's recent messages with what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageDiagnosis {
    /// The message.
    pub message: MessageView,
    /// Its reason in words.
    pub status_text: String,
    /// Every attempt with the server's answer.
    pub attempts: Vec<Attempt>,
    /// For email: the Message-ID to search for in the receiving mailbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// For SMS: the gateway's delivery reports, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub delivery_reports: Vec<crate::store::ReportRecord>,
    /// What to check outside Herald.
    pub advice: Vec<String>,
}

/// Everything about one recipient.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecipientDiagnosis {
    /// The recipient as the directory holds them.
    pub recipient: crate::domain::directory::Recipient,
    /// Their students (for a guardian) or guardians (for a student).
    pub related: Vec<Related>,
    /// Per channel, every eligibility check.
    pub channels: Vec<ChannelDiagnosis>,
    /// The send window, today's calendar and the hold switch.
    pub timing: Vec<Check>,
    /// The dispatcher and the channels' servers.
    pub dispatcher: Vec<Check>,
    /// Recent messages, newest first.
    pub messages: Vec<MessageDiagnosis>,
}

/// A message's whole story.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageTimeline {
    /// The message.
    pub message: MessageDiagnosis,
    /// Every transition, oldest first, with who did it.
    pub events: Vec<MessageEvent>,
    /// Its batch's decision, if it has a batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<crate::store::BatchSummary>,
}

/// What `diagnose` found for a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "found", rename_all = "snake_case")]
pub enum Lookup {
    /// Nobody matches.
    None {
        /// What was looked for.
        query: String,
    },
    /// Several people match: say which.
    Ambiguous {
        /// What was looked for.
        query: String,
        /// Who matches.
        matches: Vec<crate::domain::directory::Recipient>,
    },
    /// One person.
    One(Box<RecipientDiagnosis>),
}

/// Looks `query` up (Herald's id, the platform's id, an email address or a phone
/// number; failing those, a part of a name) and diagnoses the one person it names.
pub async fn diagnose_recipient(
    store: &dyn Store,
    settings: &Settings,
    query: &str,
    now: DateTime<Utc>,
) -> Result<Lookup, StoreError> {
    let phone = PhoneNumber::parse(query, settings.school.phone_region)
        .ok()
        .map(|p| p.e164().to_owned());
    let mut found = store.find_recipients(query, phone.as_deref()).await?;
    // The platform's own id wins over a number that is also someone's Herald id.
    if found.len() > 1
        && found
            .iter()
            .any(|f| f.recipient.external_id == query.trim())
    {
        found.retain(|f| f.recipient.external_id == query.trim());
    }
    // Nobody by an id, an address or a number: a secretary types a name, or part
    // of one ("Nowak"), so look for it in names (and the other fields) too.
    if found.is_empty() && query.trim().chars().count() >= 2 {
        found = store
            .recipients(&crate::store::RecipientFilter {
                search: Some(query.trim().to_owned()),
                ..Default::default()
            })
            .await?;
    }
    match found.len() {
        0 => Ok(Lookup::None {
            query: query.to_owned(),
        }),
        1 => {
            let facts = found.remove(0);
            Ok(Lookup::One(Box::new(
                diagnose_facts(store, settings, facts, now).await?,
            )))
        }
        _ => Ok(Lookup::Ambiguous {
            query: query.to_owned(),
            matches: found.into_iter().map(|f| f.recipient).collect(),
        }),
    }
}

async fn diagnose_facts(
    store: &dyn Store,
    settings: &Settings,
    facts: EligibilityFacts,
    now: DateTime<Utc>,
) -> Result<RecipientDiagnosis, StoreError> {
    let r = &facts.recipient;
    let mut related = Vec::new();
    match r.role {
        Role::Student => {
            for g in store
                .audience(
                    &Audience::Recipient(r.external_id.clone()),
                    Reach::Guardians,
                )
                .await?
            {
                related.push(Related {
                    external_id: g.recipient.external_id,
                    name: g.recipient.name,
                    relation: "guardian".into(),
                });
            }
        }
        Role::Guardian => {
            let mut seen = std::collections::BTreeSet::new();
            for c in &facts.contracts {
                if seen.insert(c.student.clone())
                    && let Some(s) = store.recipient(&c.student).await?
                {
                    related.push(Related {
                        external_id: s.recipient.external_id,
                        name: s.recipient.name,
                        relation: "student".into(),
                    });
                }
            }
        }
        _ => {}
    }
    let channels = Channel::ALL
        .into_iter()
        .map(|channel| {
            let checks = eligibility_checks(&facts, channel, settings);
            ChannelDiagnosis {
                channel,
                eligible: checks.iter().all(|c| c.verdict != Verdict::Error),
                checks,
            }
        })
        .collect();
    let timing = timing(store, settings, now).await?;
    let dispatcher = dispatcher_checks(store, settings, now).await?;
    let recent = store
        .messages(&MessageFilter {
            recipient: Some(r.external_id.clone()),
            since: Some(now - Duration::days(i64::from(settings.diagnose.recent_days))),
            limit: Some(settings.diagnose.recent_messages),
            ..MessageFilter::default()
        })
        .await?;
    let mut messages = Vec::with_capacity(recent.len());
    for m in recent {
        messages.push(message_diagnosis(store, settings, m).await?);
    }
    Ok(RecipientDiagnosis {
        recipient: facts.recipient.clone(),
        related,
        channels,
        timing,
        dispatcher,
        messages,
    })
}

/// Every eligibility check of the design for `channel`, passed or failed, with the
/// detail that lets a secretary fix it.
pub fn eligibility_checks(
    facts: &EligibilityFacts,
    channel: Channel,
    settings: &Settings,
) -> Vec<Check> {
    let r = &facts.recipient;
    let mut checks = Vec::new();
    match channel {
        Channel::Email => match r.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
            None => checks.push(
                Check::failed(
                    "email.present",
                    Reason::MissingEmail,
                    "no email address on record",
                )
                .fix("ask the family for an address and update it in the school's platform"),
            ),
            Some(raw) => {
                checks.push(Check::ok(
                    "email.present",
                    format!("email address on record: {raw}"),
                ));
                match EmailAddress::parse(raw) {
                    Ok(_) => checks.push(Check::ok("email.valid", "the address is well formed")),
                    Err(e) => checks.push(
                        Check::failed(
                            "email.valid",
                            Reason::InvalidEmail,
                            format!("{raw:?} is not a valid address: {e}"),
                        )
                        .fix("correct the address in the school's platform"),
                    ),
                }
                match &r.email_failure {
                    None => checks.push(Check::ok(
                        "email.not_failing",
                        "the receiving server has not refused this address",
                    )),
                    Some(why) => checks.push(
                        Check::failed(
                            "email.not_failing",
                            Reason::InvalidEmail,
                            format!("the receiving server refused this address for good: {why}"),
                        )
                        .fix("check the address with the family; a new address clears the mark"),
                    ),
                }
            }
        },
        Channel::Sms => match r.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            None => checks.push(
                Check::failed(
                    "sms.present",
                    Reason::MissingPhone,
                    "no mobile phone number on record",
                )
                .fix("ask the family for a mobile number and update it in the school's platform"),
            ),
            Some(raw) => {
                checks.push(Check::ok(
                    "sms.present",
                    format!("phone number on record: {raw}"),
                ));
                match PhoneNumber::parse(raw, settings.school.phone_region) {
                    Ok(p) => checks.push(Check::ok(
                        "sms.valid_mobile",
                        format!("a valid mobile number: {}", p.e164()),
                    )),
                    Err(e) => checks.push(
                        Check::failed(
                            "sms.valid_mobile",
                            Reason::InvalidPhone,
                            format!("{raw:?} is not a valid mobile number: {e}"),
                        )
                        .fix("correct the number in the school's platform (a landline cannot take SMS)"),
                    ),
                }
                match &r.phone_failure {
                    None => checks.push(Check::ok(
                        "sms.not_failing",
                        "the gateway has not reported this number as invalid",
                    )),
                    Some(why) => checks.push(
                        Check::failed(
                            "sms.not_failing",
                            Reason::InvalidPhone,
                            format!("the SMS gateway reported this number as invalid: {why}"),
                        )
                        .fix("check the number with the family; a new number clears the mark"),
                    ),
                }
                if r.sms_enabled {
                    checks.push(Check::ok(
                        "sms.enabled",
                        "the number is marked as receiving SMS",
                    ));
                } else {
                    checks.push(
                        Check::failed(
                            "sms.enabled",
                            Reason::PhoneNotSmsEnabled,
                            format!(
                                "no phone number marked for SMS: {raw} is stored but 'receives SMS' is off"
                            ),
                        )
                        .fix("switch 'receives SMS' on for this number in the school's platform"),
                    );
                }
            }
        },
    }
    let code = match channel {
        Channel::Email => "email.consent",
        Channel::Sms => "sms.consent",
    };
    if !facts.needs_consent(settings.eligibility) {
        checks.push(Check::ok(
            code,
            format!("a {} needs no contract consent", r.role),
        ));
    } else if let Some(c) = facts.consenting_contract(channel) {
        checks.push(Check::ok(code, consent_words(c, channel)));
    } else if facts.contracts.is_empty() {
        checks.push(
            Check::failed(
                code,
                Reason::NoConsent,
                match r.role {
                    Role::Guardian => "no student in their care has a contract".to_owned(),
                    _ => "no contract".to_owned(),
                },
            )
            .fix("the contract (with consent) is recorded in the school's platform"),
        );
    } else {
        checks.push(
            Check::failed(
                code,
                Reason::NoConsent,
                facts
                    .contracts
                    .iter()
                    .map(|c| consent_words(c, channel))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
            .fix("consent is given in the contract, in the school's platform"),
        );
    }
    checks
}

/// Where consent on `channel` comes from, or why one contract gives none.
fn consent_words(c: &ContractConsent, channel: Channel) -> String {
    let name = c.number.clone().unwrap_or_else(|| c.contract.clone());
    let consent = match channel {
        Channel::Email => &c.email,
        Channel::Sms => &c.sms,
    };
    let when = consent
        .changed_at
        .map(|t| format!(" on {}", t.format("%Y-%m-%d")))
        .unwrap_or_default();
    let source = c
        .source
        .as_deref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    if c.status != ContractStatus::Active {
        return format!("contract {name} (student {}) is {}", c.student, c.status);
    }
    if consent.given {
        format!(
            "consent from contract {name} (student {}), given{when}{source}",
            c.student
        )
    } else {
        format!(
            "contract {name} (student {}): consent withdrawn or never given{when}{source}",
            c.student
        )
    }
}

/// The send window now, today's calendar, the next opening, the hold switch and the
/// wallet.
pub(crate) async fn timing(
    store: &dyn Store,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Vec<Check>, StoreError> {
    let tz = settings.school.time_zone;
    let today = now.with_timezone(&tz).date_naive();
    let calendar = store.calendar(today).await?;
    let mut out = Vec::new();
    let local = now.with_timezone(&tz).format("%a %d %b %H:%M");
    match settings.send_window.hold_reason(now, &calendar) {
        None => out.push(Check::ok(
            "window.open",
            format!("the send window is open now ({local} school time)"),
        )),
        Some(reason) => {
            let next = settings
                .send_window
                .next_opening(now, &calendar)
                .map(|t| t.format("%a %d %b %H:%M").to_string())
                .unwrap_or_else(|| "not within a year".into());
            out.push(Check {
                reason: Some(reason),
                ..Check::new(
                    "window.open",
                    Verdict::Warning,
                    format!(
                        "{} ({local} school time): announcements and reminders wait until {next}; system messages go at once",
                        reason.describe()
                    ),
                )
            });
        }
    }
    if let Some(h) = calendar.holiday_on(today) {
        out.push(Check::new(
            "calendar.today",
            Verdict::Warning,
            format!(
                "today is a day off: {} ({} to {})",
                h.name, h.first_day, h.last_day
            ),
        ));
    } else {
        out.push(Check::ok("calendar.today", "today is not a day off"));
    }
    if let Some(Hold { since, reason, by }) = store.hold().await? {
        out.push(
            Check::new(
                "hold",
                Verdict::Error,
                format!(
                    "dispatch is ON HOLD since {} by {by}: {reason}; nothing is sent",
                    since.with_timezone(&tz).format("%a %d %b %H:%M")
                ),
            )
            .fix("`herald hold off --as LOGIN` when the incident is over"),
        );
    }
    let wallet = store.wallet().await?;
    let low = wallet.low_since.is_some() || wallet.balance < settings.sms.low_balance_threshold;
    out.push(if wallet.balance == 0 {
        Check::new(
            "wallet",
            Verdict::Warning,
            "the SMS wallet is empty: SMS wait (insufficient_sms_credit) until it is topped up",
        )
        .fix("`herald wallet top-up POINTS --as LOGIN --note …`")
    } else if low {
        Check::new(
            "wallet",
            Verdict::Warning,
            format!("the SMS wallet is low: {} points", wallet.balance),
        )
        .fix("`herald wallet top-up POINTS --as LOGIN --note …`")
    } else {
        Check::ok(
            "wallet",
            format!("the SMS wallet holds {} points", wallet.balance),
        )
    });
    Ok(out)
}

/// The dispatcher's last pass and each channel's recent health.
pub(crate) async fn dispatcher_checks(
    store: &dyn Store,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Vec<Check>, StoreError> {
    let tz = settings.school.time_zone;
    let at = |t: DateTime<Utc>| t.with_timezone(&tz).format("%a %d %b %H:%M").to_string();
    let mut out = Vec::new();
    let held = store.hold().await?.is_some();
    match store.last_pass().await? {
        None => out.push(
            Check::new(
                "dispatcher.last_pass",
                Verdict::Warning,
                "no dispatch pass has run yet",
            )
            .fix("start the daemon: `herald run` (or the systemd unit)"),
        ),
        Some(last) => {
            // Overdue: the tick after the last pass has come and gone, with a minute
            // of grace for a long pass.
            // (On hold, passes stop on purpose; the hold line says so.)
            let expected = settings
                .dispatch
                .schedule
                .after(&last.with_timezone(&tz))
                .next()
                .map(|t| t.with_timezone(&Utc));
            let overdue = !held && expected.is_some_and(|t| now > t + Duration::minutes(1));
            out.push(if overdue {
                Check::new(
                    "dispatcher.last_pass",
                    Verdict::Error,
                    format!(
                        "the last dispatch pass was at {}: overdue, is the daemon running?",
                        at(last)
                    ),
                )
                .fix("check `systemctl status herald` and its log")
            } else {
                Check::ok(
                    "dispatcher.last_pass",
                    format!("the last dispatch pass was at {}", at(last)),
                )
            });
        }
    }
    for channel in Channel::ALL {
        let h: ChannelHealth = store.channel_health(channel).await?;
        let server = match channel {
            Channel::Email => "the SMTP server",
            Channel::Sms => "the SMS gateway",
        };
        let code = format!("{channel}.health");
        let last = h
            .last_sent
            .map(|t| format!("last accepted at {}", at(t)))
            .unwrap_or_else(|| "nothing sent yet".into());
        out.push(if h.failures > 0 {
            Check::new(
                &code,
                Verdict::Warning,
                format!(
                    "{server} has been failing since {} ({} failed attempts, last: {}); {} message(s) waiting{}; {last}",
                    h.failing_since.map(at).unwrap_or_default(),
                    h.failures,
                    h.last_failure.as_deref().unwrap_or("?"),
                    h.waiting_retry,
                    h.next_retry
                        .map(|t| format!(", next retry {}", at(t)))
                        .unwrap_or_default()
                ),
            )
            .fix("`herald doctor` checks the connection and the credentials")
        } else {
            Check::ok(&code, format!("{}: {last}", channel_title(channel)))
        });
    }
    Ok(out)
}

fn channel_title(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "email",
        Channel::Sms => "SMS",
    }
}

/// One message with its attempts, its Message-ID and advice.
async fn message_diagnosis(
    store: &dyn Store,
    settings: &Settings,
    m: MessageView,
) -> Result<MessageDiagnosis, StoreError> {
    let attempts = store.attempts(m.id).await?;
    let message_id = (m.channel == Channel::Email && !attempts.is_empty())
        .then(|| message_id(&settings.email.from, m.id, m.created_at));
    let delivery_reports = match m.channel {
        Channel::Sms => store.reports(m.id).await?,
        Channel::Email => Vec::new(),
    };
    let mut advice = Vec::new();
    for a in &attempts {
        if a.outcome != AttemptOutcome::Permanent {
            continue;
        }
        let full = a.code == Some(552) || a.detail.contains("5.2.2");
        if full {
            advice.push(
                "the recipient's mailbox is full (552): the family has to make room; then `herald resend`"
                    .to_owned(),
            );
        } else if m.channel == Channel::Email {
            advice.push(format!(
                "the recipient's mail server refused the message ({} {}): check the address with the family; if their provider blocks the school, they can allow-list {}",
                a.code.map(|c| c.to_string()).unwrap_or_default(),
                a.detail,
                settings.email.from.email
            ));
        } else {
            advice.push(format!(
                "the gateway refused the message ({}): check the number with the family",
                a.detail
            ));
        }
    }
    match (m.status, m.channel) {
        (MessageStatus::Sent | MessageStatus::Delivered, Channel::Email) => advice.push(format!(
            "accepted by the receiving server; if it did not arrive, look in the spam folder, search the mailbox for Message-ID {}, ask the family to allow-list {}, and check the sending domain's SPF, DKIM and DMARC records",
            message_id.as_deref().unwrap_or("?"),
            settings.email.from.email
        )),
        (MessageStatus::Sent, Channel::Sms) => advice.push(format!(
            "accepted by the SMS gateway, no delivery report yet; if it did not arrive, the phone may be off or out of range, or the number may belong to someone else now{}",
            match (&settings.sms.gateway, &settings.sms.public_url) {
                // The file gateway has no phone behind it and never reports.
                (crate::config::SmsGateway::File { .. }, _) => "",
                (_, None) => {
                    "; Herald asks the gateway for delivery reports once http.public_url is set"
                }
                _ => "",
            }
        )),
        (MessageStatus::Delivered, Channel::Sms) => advice.push(
            "the gateway reported it delivered to the phone; if the family did not see it, check that the number on record is theirs".to_owned(),
        ),
        (MessageStatus::Failed, Channel::Sms) if m.reason == Some(Reason::Undelivered) => {
            advice.push(format!(
                "the gateway took it but could not deliver it ({}): the phone may have been off for days, or the number is no longer in use; check the number with the family, then `herald resend {}`",
                delivery_reports
                    .iter()
                    .rev()
                    .find(|r| r.effect == crate::domain::report::ReportEffect::Applied)
                    .map(|r| r.status.as_str())
                    .unwrap_or("no detail"),
                m.id
            ))
        }
        (MessageStatus::Unknown, _) => advice.push(format!(
            "it may have arrived: ask the family, then `herald resend {}` or `herald cancel {}`",
            m.id, m.id
        )),
        _ => {}
    }
    let status_text = match m.reason {
        Some(reason) => format!("{} ({}: {})", m.status, reason, reason.describe()),
        None => m.status.to_string(),
    };
    Ok(MessageDiagnosis {
        message: m,
        status_text,
        attempts,
        message_id,
        delivery_reports,
        advice,
    })
}

/// A message's whole story: created, checked, approved, held, tried, and how it ended,
/// with who did what.
pub async fn message_timeline(
    store: &dyn Store,
    settings: &Settings,
    id: MessageId,
) -> Result<Option<MessageTimeline>, StoreError> {
    let Some(recipient) = store.message_recipient(id).await? else {
        return Ok(None);
    };
    let view = store
        .messages(&MessageFilter {
            recipient: Some(recipient),
            ..MessageFilter::default()
        })
        .await?
        .into_iter()
        .find(|m| m.id == id);
    let Some(view) = view else {
        return Ok(None);
    };
    let batch = match view.batch_id {
        Some(b) => store.batches(None).await?.into_iter().find(|x| x.id == b),
        None => None,
    };
    let events = store.events(id).await?;
    Ok(Some(MessageTimeline {
        message: message_diagnosis(store, settings, view).await?,
        events,
        batch,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::directory::{Consent, Recipient, RecipientId};

    fn settings() -> Settings {
        Settings::load_from(None, Vec::new()).unwrap()
    }

    fn facts(phone: &str, sms_enabled: bool) -> EligibilityFacts {
        EligibilityFacts {
            recipient: Recipient {
                id: RecipientId(1),
                external_id: "gd-1".into(),
                role: Role::Guardian,
                name: "Anna Nowak".into(),
                locale: None,
                email: None,
                phone: Some(phone.into()),
                sms_enabled,
                email_failure: None,
                phone_failure: None,
            },
            contracts: vec![ContractConsent {
                contract: "c-1".into(),
                number: Some("UM/1".into()),
                student: "s-1".into(),
                status: ContractStatus::Active,
                email: Consent {
                    given: true,
                    changed_at: None,
                },
                sms: Consent {
                    given: false,
                    changed_at: None,
                },
                source: Some("enrolment form".into()),
            }],
        }
    }

    #[test]
    fn every_check_is_listed_with_its_verdict_and_the_words_say_what_to_fix() {
        let s = settings();
        let f = facts("+48 600 100 200", false);
        let email = eligibility_checks(&f, Channel::Email, &s);
        let codes: Vec<(&str, Verdict)> =
            email.iter().map(|c| (c.code.as_str(), c.verdict)).collect();
        assert_eq!(
            codes,
            [
                ("email.present", Verdict::Error),
                ("email.consent", Verdict::Ok)
            ]
        );
        assert!(
            email[1].text.contains("consent from contract UM/1"),
            "{}",
            email[1].text
        );
        let sms = eligibility_checks(&f, Channel::Sms, &s);
        let codes: Vec<&str> = sms.iter().map(|c| c.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "sms.present",
                "sms.valid_mobile",
                "sms.not_failing",
                "sms.enabled",
                "sms.consent"
            ]
        );
        let enabled = &sms[3];
        assert_eq!(enabled.reason, Some(Reason::PhoneNotSmsEnabled));
        assert_eq!(
            enabled.text,
            "no phone number marked for SMS: +48 600 100 200 is stored but 'receives SMS' is off"
        );
        assert!(sms[4].text.contains("consent withdrawn or never given"));
        let landline = eligibility_checks(&facts("22 628 10 10", true), Channel::Sms, &s);
        assert_eq!(landline[1].reason, Some(Reason::InvalidPhone));
    }
}
