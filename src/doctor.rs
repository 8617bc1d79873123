//! `herald doctor`: the installation checked line by line — the configuration, the
//! database, the SMTP server and the SMS gateway (probed without sending anything),
//! DKIM, the send window, the coming days off, the hold switch, the wallet, the
//! dispatcher and the periodic rules' templates.
//!
//! Its lines are the diagnosis's [`Check`]s, so the CLI prints and serialises both
//! alike; the hold, wallet and dispatcher lines are the very ones `herald diagnose`
//! shows. Nothing here changes anything.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::channels::Probe;
use crate::channels::email::EmailChannel;
use crate::channels::sms::SmsChannel;
use crate::config::{EmailTransport, Settings};
use crate::diagnose::{Check, Verdict, dispatcher_checks, timing};
use crate::domain::Channel;
use crate::store::Store;

/// `herald doctor`: the installation, line by line.
pub async fn doctor(settings: &Settings, now: DateTime<Utc>) -> Vec<Check> {
    let mut out = vec![Check::ok(
        "config.valid",
        "the configuration loads and every value is valid",
    )];
    let store = open_store(settings, &mut out).await;
    email_checks(settings, &mut out).await;
    out.push(sms_check(settings).await);
    out.push(window_check(settings));
    let Some(store) = store else {
        return out;
    };
    out.push(calendar_check(&*store, settings, now).await);
    if let Ok(timing) = timing(&*store, settings, now).await {
        out.extend(
            timing
                .into_iter()
                .filter(|c| c.code == "hold" || c.code == "wallet"),
        );
    }
    if let Ok(checks) = dispatcher_checks(&*store, settings, now).await {
        out.extend(checks);
    }
    rule_checks(&*store, settings, &mut out).await;
    out
}

/// Opens the database as configured and says whether it answers; `None` when it
/// does not, and the checks that need it are skipped.
async fn open_store(settings: &Settings, out: &mut Vec<Check>) -> Option<Arc<dyn Store>> {
    // Doctor changes nothing: it does not migrate, it says whether a migration is due.
    let mut database = settings.database.clone();
    database.migrate_on_start = false;
    match crate::store::open(&database).await {
        Ok(s) => {
            out.push(Check::ok(
                "database.reachable",
                format!(
                    "the database {} answers and its schema is up to date",
                    settings.database.redacted_url()
                ),
            ));
            Some(s)
        }
        Err(e) => {
            out.push(
                Check::new("database.reachable", Verdict::Error, format!("{e}"))
                    .fix("check database.url; `herald migrate` creates or upgrades the schema"),
            );
            None
        }
    }
}

/// The email channel: whether it builds (the DKIM key loads), whether mail is signed,
/// the sender's domain, and a harmless call to the transport.
async fn email_checks(settings: &Settings, out: &mut Vec<Check>) {
    let email = match EmailChannel::build(&settings.email) {
        Ok(email) => email,
        Err(e) => {
            out.push(
                Check::new("email.channel", Verdict::Error, e.to_string())
                    .fix("check [email] and [email.dkim] in the configuration"),
            );
            return;
        }
    };
    if settings.email.dkim.is_some() {
        out.push(Check::ok(
            "email.dkim",
            "the DKIM key loads; email is signed",
        ));
    } else if matches!(settings.email.transport, EmailTransport::Smtp(_)) {
        out.push(
            Check::new(
                "email.dkim",
                Verdict::Warning,
                "email is not DKIM-signed: receiving servers trust it less",
            )
            .fix("set [email.dkim] and publish the key in DNS"),
        );
    }
    out.push(Check::ok(
        "email.sender",
        format!(
            "email goes from {}; publish SPF and DMARC records for {}",
            settings.email.from,
            settings.email.from.email.domain()
        ),
    ));
    out.push(probe_check(
        "email.transport",
        email.probe().await,
        "check [email.smtp]: host, port, tls, credentials",
    ));
}

/// The SMS channel: whether it builds, and a harmless call to the gateway.
async fn sms_check(settings: &Settings) -> Check {
    match SmsChannel::build(&settings.sms) {
        Err(e) => Check::new("sms.gateway", Verdict::Error, e.to_string())
            .fix("check [sms] in the configuration"),
        Ok(sms) => {
            let fix = format!("check [sms.{}] in the configuration", sms.gateway_name());
            probe_check("sms.gateway", sms.probe().await, &fix)
        }
    }
}

/// The send window, day by day, in the school's time zone.
fn window_check(settings: &Settings) -> Check {
    let tz = settings.school.time_zone;
    let open_days: Vec<String> = [
        chrono::Weekday::Mon,
        chrono::Weekday::Tue,
        chrono::Weekday::Wed,
        chrono::Weekday::Thu,
        chrono::Weekday::Fri,
        chrono::Weekday::Sat,
        chrono::Weekday::Sun,
    ]
    .into_iter()
    .filter(|d| !settings.send_window.spans(*d).is_empty())
    .map(|d| format!("{d} {}", settings.send_window.describe_day(d)))
    .collect();
    Check::ok(
        "window",
        format!("the send window ({}): {}", tz.name(), open_days.join(", ")),
    )
}

/// The days off in the next 30 days.
async fn calendar_check(store: &dyn Store, settings: &Settings, now: DateTime<Utc>) -> Check {
    let today = now.with_timezone(&settings.school.time_zone).date_naive();
    match store.holidays(Some(today)).await {
        Ok(holidays) => {
            let soon: Vec<String> = holidays
                .iter()
                .filter(|h| h.first_day <= today + Duration::days(30))
                .map(|h| format!("{} ({} to {})", h.name, h.first_day, h.last_day))
                .collect();
            Check::ok(
                "calendar.upcoming",
                if soon.is_empty() {
                    "no day off in the next 30 days".to_owned()
                } else {
                    format!("days off in the next 30 days: {}", soon.join(", "))
                },
            )
        }
        Err(e) => Check::new("calendar.upcoming", Verdict::Error, e.to_string()),
    }
}

/// Each periodic rule that is on: whether its template exists for every channel it
/// sends on.
async fn rule_checks(store: &dyn Store, settings: &Settings, out: &mut Vec<Check>) {
    for rule in crate::rules::Rule::ALL {
        let common = rule.settings(settings);
        if !common.enabled {
            continue;
        }
        let code = format!("rules.{rule}");
        match store.templates(Some(&common.template)).await {
            Ok(variants) => {
                let missing: Vec<&Channel> = common
                    .channel
                    .channels()
                    .iter()
                    .filter(|c| !variants.iter().any(|v| v.channel == **c))
                    .collect();
                out.push(if missing.is_empty() {
                    Check::ok(
                        &code,
                        format!("rule {rule} is on, with template {:?}", common.template),
                    )
                } else {
                    Check::new(
                        &code,
                        Verdict::Error,
                        format!(
                            "rule {rule} has no template {:?} for {}",
                            common.template,
                            missing
                                .iter()
                                .map(|c| c.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                    .fix(format!("`herald templates add {} …`", common.template))
                });
            }
            Err(e) => out.push(Check::new(&code, Verdict::Error, e.to_string())),
        }
    }
}

/// A probe's answer as a line: fine, unchecked (a warning), or failed with its fix.
fn probe_check(code: &str, probe: Probe, fix: &str) -> Check {
    match probe {
        Probe::Ok(text) => Check::ok(code, text),
        Probe::Unchecked(text) => Check::new(code, Verdict::Warning, text),
        Probe::Failed(text) => Check::new(code, Verdict::Error, text).fix(fix),
    }
}
