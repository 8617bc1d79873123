//! `[dispatch]`, `[kinds.*]` and `[approval]`: when and how messages go. Owns the
//! durations the dispatcher and the channels share (the channels' timeouts are
//! parsed with the dispatcher's because the lease is measured against them) and the
//! floors below which a duration can only do harm.

use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use super::email::RawSmtp;
use super::sms::RawSms;
use super::{Problems, parse_duration};
use crate::domain::MessageKind;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDispatch {
    pub(super) schedule: String,
    pub(super) lease: String,
    pub(super) max_attempts: u32,
    pub(super) retry_base: String,
    pub(super) retry_max: String,
    pub(super) shutdown_grace: String,
    pub(super) wake_poll: String,
    pub(super) informational_daily_cap: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKinds {
    pub(super) system: RawSystemKind,
    pub(super) informational: RawKind,
    pub(super) periodic: RawKind,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKind {
    pub(super) respect_send_window: bool,
    pub(super) transliterate_sms: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSystemKind {
    pub(super) respect_send_window: bool,
    pub(super) immediate: bool,
    pub(super) transliterate_sms: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApproval {
    pub(super) expires_after: String,
}

/// `[dispatch]`: when and how the dispatcher runs.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// The dispatch tick, in the school's time zone.
    pub schedule: cron::Schedule,
    /// How long a claimed message belongs to the dispatcher that claimed it; longer
    /// than the channel's timeout, so a slow send is never taken for a crash.
    pub lease: Duration,
    /// Attempts before a transient failure becomes final.
    pub max_attempts: u32,
    /// The delay before the first retry; doubles with each attempt.
    pub retry_base: Duration,
    /// The longest delay between two attempts.
    pub retry_max: Duration,
    /// How long a stopping daemon lets in-flight sends finish.
    pub shutdown_grace: Duration,
    /// How often the daemon looks for new system messages between ticks.
    pub wake_poll: Duration,
    /// At most this many informational messages per recipient and channel a school
    /// day; the excess waits for the next day. `None`: no cap.
    pub informational_daily_cap: Option<u32>,
}

/// `[kinds.*]`: per-kind behaviour.
#[derive(Debug, Clone, Copy)]
pub struct KindsSettings {
    /// `[kinds.system]`
    pub system: KindSettings,
    /// `[kinds.informational]`
    pub informational: KindSettings,
    /// `[kinds.periodic]`
    pub periodic: KindSettings,
}

/// One kind's behaviour.
#[derive(Debug, Clone, Copy)]
pub struct KindSettings {
    /// Hold messages of this kind outside the send window and on holidays.
    pub respect_send_window: bool,
    /// Wake the dispatcher as soon as a message of this kind is created, instead of
    /// waiting for the tick (system messages only).
    pub immediate: bool,
    /// Transliterate SMS texts of this kind to stay in GSM-7.
    pub transliterate_sms: bool,
}

impl KindsSettings {
    /// The settings of `kind`.
    pub fn of(&self, kind: MessageKind) -> KindSettings {
        match kind {
            MessageKind::System => self.system,
            MessageKind::Informational => self.informational,
            MessageKind::Periodic => self.periodic,
        }
    }
}

/// `[approval]`: how long an approval stays good.
#[derive(Debug, Clone, Copy)]
pub struct ApprovalSettings {
    /// An approved batch with messages still unsent after this long goes back to
    /// the outbox (`approval_expired`).
    pub expires_after: Duration,
}

/// How much longer than a channel's timeout a lease must be.
const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// The durations of `[dispatch]` and the channels' timeouts, parsed. One that does
/// not parse is reported and stands in as a second, so the comparisons between them
/// still run.
#[derive(Debug, Clone, Copy)]
pub(super) struct Durations {
    pub(super) lease: Duration,
    pub(super) retry_base: Duration,
    pub(super) retry_max: Duration,
    pub(super) shutdown_grace: Duration,
    pub(super) wake_poll: Duration,
    /// `email.smtp.timeout`
    pub(super) smtp_timeout: Duration,
    /// `email.smtp.idle_timeout`
    pub(super) smtp_idle_timeout: Duration,
    /// `sms.timeout`
    pub(super) sms_timeout: Duration,
}

/// Checks `dispatch.schedule`: a cron expression that fires at some point.
pub(super) fn check_schedule(raw: &RawDispatch, bad: &mut Problems) -> Option<cron::Schedule> {
    cron::Schedule::from_str(raw.schedule.trim())
        .map_err(|e| e.to_string())
        .and_then(|s| {
            // An expression that never fires (30 February) would send nothing.
            match s.upcoming(chrono_tz::UTC).next() {
                Some(_) => Ok(s),
                None => Err("it never fires".to_owned()),
            }
        })
        .map_err(|e| {
            bad.add(
                "dispatch.schedule",
                &raw.schedule,
                &format!(
                    "a cron expression with seconds, \"sec min hour day month weekday\", \
                     such as \"0 */5 * * * *\" ({e})"
                ),
            )
        })
        .ok()
}

/// Parses the dispatcher's durations and the channels' timeouts, then holds each
/// that has a floor to it.
pub(super) fn check_durations(
    d: &RawDispatch,
    smtp: &RawSmtp,
    sms: &RawSms,
    bad: &mut Problems,
) -> Durations {
    let mut duration = |key: &str, text: &str| {
        parse_duration(text).unwrap_or_else(|| {
            bad.add(key, text, "a duration such as \"30s\", \"2m\" or \"1h\"");
            Duration::from_secs(1)
        })
    };
    let t = Durations {
        lease: duration("dispatch.lease", &d.lease),
        retry_base: duration("dispatch.retry_base", &d.retry_base),
        retry_max: duration("dispatch.retry_max", &d.retry_max),
        shutdown_grace: duration("dispatch.shutdown_grace", &d.shutdown_grace),
        wake_poll: duration("dispatch.wake_poll", &d.wake_poll),
        smtp_timeout: duration("email.smtp.timeout", &smtp.timeout),
        smtp_idle_timeout: duration("email.smtp.idle_timeout", &smtp.idle_timeout),
        sms_timeout: duration("sms.timeout", &sms.timeout),
    };
    // Floors below which a setting can only do harm: a poll of zero is a busy
    // loop, a zero timeout fails every send, a zero retry burns every attempt
    // within one pass.
    for (key, value, text, floor) in [
        (
            "dispatch.wake_poll",
            t.wake_poll,
            &d.wake_poll,
            Duration::from_millis(100),
        ),
        (
            "dispatch.retry_base",
            t.retry_base,
            &d.retry_base,
            Duration::from_secs(1),
        ),
        (
            "email.smtp.timeout",
            t.smtp_timeout,
            &smtp.timeout,
            Duration::from_secs(1),
        ),
        (
            "sms.timeout",
            t.sms_timeout,
            &sms.timeout,
            Duration::from_secs(1),
        ),
    ] {
        if value < floor {
            bad.add(
                key,
                text,
                &format!(
                    "a duration of at least {}",
                    humantime::format_duration(floor)
                ),
            );
        }
    }
    t
}

/// Checks the rest of `[dispatch]` and puts it together with its schedule and
/// durations; `None` when the schedule was bad (already reported).
pub(super) fn check(
    d: &RawDispatch,
    schedule: Option<cron::Schedule>,
    t: &Durations,
    bad: &mut Problems,
) -> Option<DispatchSettings> {
    if d.max_attempts == 0 {
        bad.add(
            "dispatch.max_attempts",
            "0",
            "a number of attempts of at least 1",
        );
    }
    if t.retry_max < t.retry_base {
        bad.add(
            "dispatch.retry_max",
            &d.retry_max,
            &format!("a duration at least dispatch.retry_base ({})", d.retry_base),
        );
    }
    Some(DispatchSettings {
        schedule: schedule?,
        lease: t.lease,
        max_attempts: d.max_attempts,
        retry_base: t.retry_base,
        retry_max: t.retry_max,
        shutdown_grace: t.shutdown_grace,
        wake_poll: t.wake_poll,
        informational_daily_cap: (d.informational_daily_cap > 0)
            .then_some(d.informational_daily_cap),
    })
}

/// Checks that `dispatch.lease` outlasts one channel's send: `channel_key` names the
/// channel's timeout, `channel_text` is its value as given.
///
/// A lease shorter than a send would let a second dispatcher take a message that is
/// still being sent: the margin covers the database round trips.
pub(super) fn check_lease(
    d: &RawDispatch,
    lease: Duration,
    channel_key: &str,
    channel_text: &str,
    channel_timeout: Duration,
    bad: &mut Problems,
) {
    if lease < channel_timeout + LEASE_MARGIN {
        bad.add(
            "dispatch.lease",
            &d.lease,
            &format!(
                "a duration longer than {channel_key} ({channel_text}) by at least {}s",
                LEASE_MARGIN.as_secs()
            ),
        );
    }
}

/// `[kinds.*]` as they are; only system messages may be `immediate`.
pub(super) fn kinds(raw: &RawKinds) -> KindsSettings {
    let kind = |k: &RawKind| KindSettings {
        respect_send_window: k.respect_send_window,
        immediate: false,
        transliterate_sms: k.transliterate_sms,
    };
    KindsSettings {
        system: KindSettings {
            respect_send_window: raw.system.respect_send_window,
            immediate: raw.system.immediate,
            transliterate_sms: raw.system.transliterate_sms,
        },
        informational: kind(&raw.informational),
        periodic: kind(&raw.periodic),
    }
}

/// Checks `[approval]`: the expiry is a duration of at least a minute.
pub(super) fn check_approval(raw: &RawApproval, bad: &mut Problems) -> ApprovalSettings {
    let expires_after = parse_duration(&raw.expires_after)
        .filter(|d| *d >= Duration::from_secs(60))
        .unwrap_or_else(|| {
            bad.add(
                "approval.expires_after",
                &raw.expires_after,
                "a duration of at least a minute, such as \"7d\"",
            );
            Duration::from_secs(7 * 86_400)
        });
    ApprovalSettings { expires_after }
}
