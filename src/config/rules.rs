//! `[rules.*]`: the periodic rules (instalment reminders, arrears notices, birthday
//! greetings). Owns what every rule has in common and checks it once for all three,
//! then each rule's own settings.

use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use super::{Problems, parse_duration};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRules {
    pub(super) catch_up_days: u32,
    pub(super) instalment_due: RawInstalmentRule,
    pub(super) arrears: RawArrearsRule,
    pub(super) birthday: RawBirthdayRule,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInstalmentRule {
    pub(super) enabled: bool,
    pub(super) schedule: String,
    pub(super) days_before: Vec<u32>,
    pub(super) channel: String,
    pub(super) template: String,
    pub(super) requires_approval: bool,
    pub(super) reach: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArrearsRule {
    pub(super) enabled: bool,
    pub(super) schedule: String,
    pub(super) min_days: u32,
    pub(super) min_amount: String,
    pub(super) repeat_every_days: u32,
    pub(super) channel: String,
    pub(super) template: String,
    pub(super) requires_approval: bool,
    pub(super) reach: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBirthdayRule {
    pub(super) enabled: bool,
    pub(super) schedule: String,
    pub(super) whom: String,
    pub(super) max_lateness: String,
    pub(super) channel: String,
    pub(super) template: String,
    pub(super) requires_approval: bool,
}

/// What every periodic rule has.
#[derive(Debug, Clone)]
pub struct RuleCommon {
    /// Whether it runs.
    pub enabled: bool,
    /// When it runs, in the school's time zone.
    pub schedule: cron::Schedule,
    /// Email, SMS, both, or SMS where there is no email.
    pub channel: crate::domain::ChannelChoice,
    /// The template its messages are rendered from.
    pub template: String,
    /// Whether its messages wait in the outbox for a person.
    pub requires_approval: bool,
    /// The students, their guardians, or both.
    pub reach: crate::domain::Reach,
}

/// `[rules]`
#[derive(Debug, Clone)]
pub struct RulesSettings {
    /// How many days back a run that was missed (downtime) still creates occurrences.
    pub catch_up_days: u32,
    /// `[rules.instalment_due]`
    pub instalment_due: RuleCommon,
    /// Days before the due date a reminder goes.
    pub days_before: Vec<u32>,
    /// `[rules.arrears]`
    pub arrears: RuleCommon,
    /// Days in arrears before the first notice.
    pub arrears_min_days: u32,
    /// The smallest balance (grosze) that gets a notice.
    pub arrears_min_amount_cents: i64,
    /// Days between notices while the balance stays unpaid.
    pub arrears_repeat_every_days: u32,
    /// `[rules.birthday]`
    pub birthday: RuleCommon,
    /// How long after the end of the birthday a greeting may still go.
    pub birthday_max_lateness: Duration,
}

/// The common keys of one rule as given, borrowed from its raw table.
struct RawCommon<'a> {
    /// The rule's table under `[rules]`, e.g. `arrears`.
    name: &'a str,
    enabled: bool,
    schedule: &'a str,
    channel: &'a str,
    template: &'a str,
    requires_approval: bool,
    /// `reach`, which the birthday rule calls `whom`.
    reach: &'a str,
}

/// Checks `[rules]`, naming every bad key; `None` when any was bad.
pub(super) fn check(r: &RawRules, bad: &mut Problems) -> Option<RulesSettings> {
    let before = bad.count();
    let i = &r.instalment_due;
    let instalment_due = check_common(
        RawCommon {
            name: "instalment_due",
            enabled: i.enabled,
            schedule: &i.schedule,
            channel: &i.channel,
            template: &i.template,
            requires_approval: i.requires_approval,
            reach: &i.reach,
        },
        bad,
    );
    let a = &r.arrears;
    let arrears = check_common(
        RawCommon {
            name: "arrears",
            enabled: a.enabled,
            schedule: &a.schedule,
            channel: &a.channel,
            template: &a.template,
            requires_approval: a.requires_approval,
            reach: &a.reach,
        },
        bad,
    );
    let b = &r.birthday;
    let birthday = check_common(
        RawCommon {
            name: "birthday",
            enabled: b.enabled,
            schedule: &b.schedule,
            channel: &b.channel,
            template: &b.template,
            requires_approval: b.requires_approval,
            reach: &b.whom,
        },
        bad,
    );
    if i.days_before.is_empty() || i.days_before.iter().any(|d| *d > 90) {
        bad.add(
            "rules.instalment_due.days_before",
            &format!("{:?}", i.days_before),
            "a list of days before the due date, each 0 to 90, such as [7, 1]",
        );
    }
    if a.repeat_every_days == 0 {
        bad.add(
            "rules.arrears.repeat_every_days",
            "0",
            "a number of days of at least 1",
        );
    }
    let min_amount = parse_cents(&a.min_amount);
    if min_amount.is_none() {
        bad.add(
            "rules.arrears.min_amount",
            &a.min_amount,
            "an amount in złoty of zero or more, such as \"50.00\"",
        );
    }
    let max_lateness = parse_duration(&b.max_lateness);
    if max_lateness.is_none() {
        bad.add(
            "rules.birthday.max_lateness",
            &b.max_lateness,
            "a duration such as \"0s\" (only on the day) or \"12h\"",
        );
    }
    if r.catch_up_days > 366 {
        bad.add(
            "rules.catch_up_days",
            &r.catch_up_days.to_string(),
            "a number of days from 0 to 366",
        );
    }
    if bad.count() > before {
        return None;
    }
    let mut days_before = i.days_before.clone();
    days_before.sort_unstable_by(|x, y| y.cmp(x));
    days_before.dedup();
    Some(RulesSettings {
        catch_up_days: r.catch_up_days,
        instalment_due: instalment_due?,
        days_before,
        arrears: arrears?,
        arrears_min_days: a.min_days,
        arrears_min_amount_cents: min_amount?,
        arrears_repeat_every_days: a.repeat_every_days,
        birthday: birthday?,
        birthday_max_lateness: max_lateness?,
    })
}

/// Checks the keys every rule has, named under `rules.{name}`.
fn check_common(raw: RawCommon<'_>, bad: &mut Problems) -> Option<RuleCommon> {
    let RawCommon {
        name,
        enabled,
        schedule,
        channel,
        template,
        requires_approval,
        reach,
    } = raw;
    let key = |k: &str| format!("rules.{name}.{k}");
    let parsed = cron::Schedule::from_str(schedule.trim());
    let schedule = match parsed {
        // An expression that never fires would make the rule do nothing, silently.
        Ok(s) if s.upcoming(chrono_tz::UTC).next().is_some() => Some(s),
        _ => {
            bad.add(
                &key("schedule"),
                schedule,
                "a cron expression with seconds, \"sec min hour day month weekday\", such as \"0 0 7 * * *\" (07:00 every day)",
            );
            None
        }
    };
    let channel = match channel.parse::<crate::domain::ChannelChoice>() {
        Ok(c) => Some(c),
        Err(_) => {
            bad.add(
                &key("channel"),
                channel,
                "email, sms, both or sms_if_no_email",
            );
            None
        }
    };
    let reach = match reach.trim().to_ascii_lowercase().as_str() {
        "students" | "student" => Some(crate::domain::Reach::Students),
        "guardians" | "guardian" => Some(crate::domain::Reach::Guardians),
        "both" => Some(crate::domain::Reach::Both),
        _ => {
            let field = if name == "birthday" { "whom" } else { "reach" };
            bad.add(&key(field), reach, "students, guardians or both");
            None
        }
    };
    if enabled && template.trim().is_empty() {
        bad.add(
            &key("template"),
            template,
            "the name of a template (`herald templates add`) when the rule is enabled",
        );
    }
    Some(RuleCommon {
        enabled,
        schedule: schedule?,
        channel: channel?,
        template: template.trim().to_owned(),
        requires_approval,
        reach: reach?,
    })
}

/// An amount in złoty ("50", "50.00", "50,5") as grosze, zero or more.
fn parse_cents(text: &str) -> Option<i64> {
    let t = text.trim().replace(',', ".");
    let (whole, frac) = t.split_once('.').unwrap_or((&t, ""));
    if whole.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 2
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let frac = format!("{frac:0<2}");
    Some(whole.parse::<i64>().ok()? * 100 + frac.parse::<i64>().ok()?)
}
