//! `[school]`, `[send_window]` and `[eligibility]`: who the school is and where, when
//! it may message people, and whom it needs consent from. The send window is here
//! because it is read in the school's time zone.

use std::str::FromStr;

use chrono::Weekday;
use chrono_tz::Tz;
use serde::Deserialize;

use super::Problems;
use crate::domain::ConsentRules;
use crate::domain::contact::{PhoneRegion, parse_region};
use crate::domain::window::{SendWindow, Span, parse_hours};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSchool {
    pub(super) name: String,
    pub(super) time_zone: String,
    pub(super) default_locale: String,
    pub(super) phone_region: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSendWindow {
    pub(super) monday: String,
    pub(super) tuesday: String,
    pub(super) wednesday: String,
    pub(super) thursday: String,
    pub(super) friday: String,
    pub(super) saturday: String,
    pub(super) sunday: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEligibility {
    pub(super) teachers_need_consent: bool,
    pub(super) staff_need_consent: bool,
}

/// `[school]`: who the school is and where.
#[derive(Debug, Clone)]
pub struct SchoolSettings {
    /// The name shown in messages and reports.
    pub name: String,
    /// The time zone of the send window, holidays and schedules.
    pub time_zone: Tz,
    /// The locale used when a recipient has none.
    pub default_locale: String,
    /// The region phone numbers without a country code are read in.
    pub phone_region: PhoneRegion,
}

/// Checks `[school]`. A bad time zone or region is reported and stands in as UTC or
/// PL, so that the checks after it still run and report their own problems.
pub(super) fn check(raw: &RawSchool, bad: &mut Problems) -> SchoolSettings {
    let name = raw.name.trim().to_owned();
    if name.is_empty() {
        bad.add("school.name", &raw.name, "the school's name, not empty");
    }
    let time_zone = Tz::from_str(raw.time_zone.trim()).unwrap_or_else(|_| {
        bad.add(
            "school.time_zone",
            &raw.time_zone,
            "an IANA time zone name such as \"Europe/Warsaw\"",
        );
        Tz::UTC
    });
    let default_locale = raw.default_locale.trim().to_owned();
    if !is_locale(&default_locale) {
        bad.add(
            "school.default_locale",
            &raw.default_locale,
            "a language tag such as \"pl\" or \"en-GB\"",
        );
    }
    let phone_region = parse_region(&raw.phone_region).unwrap_or_else(|| {
        bad.add(
            "school.phone_region",
            &raw.phone_region,
            "a two-letter country code such as \"PL\"",
        );
        PhoneRegion::PL
    });
    SchoolSettings {
        name,
        time_zone,
        default_locale,
        phone_region,
    }
}

/// Checks `[send_window]`: each day's hours, then that some day is open at all.
pub(super) fn check_send_window(
    raw: &RawSendWindow,
    time_zone: Tz,
    bad: &mut Problems,
) -> SendWindow {
    let mut days: [Vec<Span>; 7] = Default::default();
    for (day, key, text) in [
        (Weekday::Mon, "monday", &raw.monday),
        (Weekday::Tue, "tuesday", &raw.tuesday),
        (Weekday::Wed, "wednesday", &raw.wednesday),
        (Weekday::Thu, "thursday", &raw.thursday),
        (Weekday::Fri, "friday", &raw.friday),
        (Weekday::Sat, "saturday", &raw.saturday),
        (Weekday::Sun, "sunday", &raw.sunday),
    ] {
        match parse_hours(text) {
            Ok(spans) => days[day.num_days_from_monday() as usize] = spans,
            Err(e) => bad.add(
                &format!("send_window.{key}"),
                text,
                &format!(
                    "opening hours \"HH:MM-HH:MM\", several separated by commas, or \
                     \"closed\" ({})",
                    e.why
                ),
            ),
        }
    }
    let send_window = SendWindow::new(time_zone, days);
    // A day that failed to parse counts as closed; only a window that was really
    // written closed every day deserves this complaint.
    if send_window.is_empty() && !bad.mentions("send_window") {
        bad.add(
            "send_window",
            "closed every day",
            "at least one weekday with open hours (otherwise informational and \
             periodic messages would never go)",
        );
    }
    send_window
}

/// `[eligibility]` as the consent rules; two switches, nothing to check.
pub(super) fn eligibility(raw: &RawEligibility) -> ConsentRules {
    ConsentRules {
        teachers_need_consent: raw.teachers_need_consent,
        staff_need_consent: raw.staff_need_consent,
    }
}

fn is_locale(tag: &str) -> bool {
    let mut parts = tag.split(['-', '_']);
    let lang = parts.next().unwrap_or_default();
    (2..=3).contains(&lang.len())
        && lang.chars().all(|c| c.is_ascii_alphabetic())
        && parts
            .all(|p| !p.is_empty() && p.len() <= 8 && p.chars().all(|c| c.is_ascii_alphanumeric()))
}
