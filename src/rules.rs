//! Periodic rules: instalment reminders, arrears notices and birthday greetings,
//! written by Herald itself on each rule's schedule (design §6).
//!
//! A rule's run creates messages and never sends them: they take the same path as
//! everything else (eligibility, approval, the wallet, the dispatch tick). Every
//! occurrence has a unique key (`instalment_due/<instalment>/<days_before>`,
//! `arrears/<contract>/<since>/<period>`, `birthday/<student>/<year>`) that the store
//! inserts first, in the transaction that writes the messages: a run repeated,
//! restarted or raced by another instance creates each message once. Occurrences
//! are written a few hundred to a transaction, their people read together before
//! it, so a large school's run costs a few round trips per hundred reminders, not
//! a dozen per reminder; a run that dies leaves whole occurrences. A run covers
//! the school days since the last covered one (at most `rules.catch_up_days` back),
//! so a run missed during downtime is caught up once, by the next run.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use crate::compose::{self, ComposeError, Content, Contents};
use crate::config::{RuleCommon, Settings};
use crate::domain::codes::stable_codes;
use crate::domain::schedule::next_fire;
use crate::domain::window::start_of_day;
use crate::domain::{BatchStatus, Channel, EligibilityFacts, MessageKind, MessageStatus, Reason};
use crate::store::{NewBatch, NewOccurrence, RuleRun, Store, StoreError, StudentPeople};
use crate::templates::{self, Compiled, Person, Variant};

stable_codes! {
    /// The periodic rules.
    pub enum Rule("rule") {
        /// A reminder some days before an instalment falls due.
        InstalmentDue = "instalment_due",
        /// A notice while a contract's balance is overdue.
        Arrears = "arrears",
        /// A greeting on a student's birthday.
        Birthday = "birthday",
    }
}

impl Rule {
    /// The rule's shared settings.
    pub fn settings(self, settings: &Settings) -> &RuleCommon {
        match self {
            Rule::InstalmentDue => &settings.rules.instalment_due,
            Rule::Arrears => &settings.rules.arrears,
            Rule::Birthday => &settings.rules.birthday,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Rule::InstalmentDue => "instalment reminders",
            Rule::Arrears => "arrears notices",
            Rule::Birthday => "birthday greetings",
        }
    }
}

/// Why a rule could not run.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The rule's template is missing a variant it needs.
    #[error("rule {rule}: there is no template {template:?} for {channel}")]
    NoTemplate {
        /// The rule.
        rule: Rule,
        /// The template.
        template: String,
        /// The channel without a variant.
        channel: Channel,
    },
    /// A message could not be composed.
    #[error("rule {0}: {1}")]
    Compose(Rule, ComposeError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one run of a rule did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunReport {
    /// The rule.
    pub rule: Rule,
    /// The school days it covered.
    pub days: Vec<NaiveDate>,
    /// Occurrences created by this run.
    pub occurrences: u64,
    /// Messages created (some blocked or expired, with their reason).
    pub messages: u64,
    /// Occurrences that existed already (an earlier run, another instance).
    pub existing: u64,
    /// Occurrences that could not be written (a template that does not render for
    /// someone, an SMS too long): each with its key and why; tried again next run.
    pub failed: Vec<String>,
}

/// How many occurrences a run writes per transaction. Each write is all or nothing,
/// so a run killed half-way leaves whole occurrences behind and the next run writes
/// the rest; one transaction per occurrence made the commits (and the look-ups
/// before them) most of a run's time. 500 keeps a transaction short enough that
/// the dispatcher, waiting on SQLite's one writer, is not held up noticeably, and
/// its statements far under the bound-parameter limits.
pub const OCCURRENCES_PER_WRITE: usize = 500;

/// When `rule` runs next, after its last run (or today's first fire if it never ran).
pub fn next_run(
    settings: &Settings,
    rule: Rule,
    last: Option<&RuleRun>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let tz = settings.school.time_zone;
    let after = match last {
        Some(run) => run.last_run_at,
        // Never run: due from today's first fire on, not from the beginning of time.
        None => start_of_day(tz, now.with_timezone(&tz).date_naive()) - Duration::seconds(1),
    };
    next_fire(&rule.settings(settings).schedule, tz, after)
}

/// Runs every enabled rule whose time has come; one failing rule does not stop the
/// others (its error is logged and returned in its place).
pub async fn run_due(
    store: &dyn Store,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Vec<Result<RunReport, RuleError>> {
    let mut out = Vec::new();
    for rule in Rule::ALL {
        if !rule.settings(settings).enabled {
            continue;
        }
        let last = match store.rule_run(rule.as_str()).await {
            Ok(last) => last,
            Err(e) => {
                out.push(Err(e.into()));
                continue;
            }
        };
        if next_run(settings, rule, last.as_ref(), now).is_some_and(|t| t <= now) {
            let result = run_rule(store, settings, rule, now).await;
            if let Err(e) = &result {
                tracing::error!(rule = %rule, error = %e, "a periodic rule failed");
            }
            out.push(result);
        }
    }
    out
}

/// Runs `rule` now, whatever its schedule says: creates the occurrences of the days
/// since its last covered day (and today) that do not exist yet, then records the run.
pub async fn run_rule(
    store: &dyn Store,
    settings: &Settings,
    rule: Rule,
    now: DateTime<Utc>,
) -> Result<RunReport, RuleError> {
    let tz = settings.school.time_zone;
    let today = now.with_timezone(&tz).date_naive();
    let last = store.rule_run(rule.as_str()).await?;
    let days = days_to_cover(last.as_ref(), today, settings.rules.catch_up_days);
    let common = rule.settings(settings);
    let variants = store.templates(Some(&common.template)).await?;
    for &channel in common.channel.channels() {
        if !variants.iter().any(|v| v.channel == channel) {
            return Err(RuleError::NoTemplate {
                rule,
                template: common.template.clone(),
                channel,
            });
        }
    }
    let mut report = RunReport {
        rule,
        days: days.clone(),
        occurrences: 0,
        messages: 0,
        existing: 0,
        failed: Vec::new(),
    };
    let run = Run {
        store,
        settings,
        rule,
        common,
        templates: ChannelTemplates::compile(&variants, common),
        now,
        today,
    };
    // Newest day first: when a catch-up covers several days, an instalment or a
    // contract gets the latest of its occurrences only (the 1-day reminder, not the
    // 7-day one as well; one arrears notice, not one per missed period).
    let mut covered_subjects = std::collections::HashSet::new();
    let mut first_failed_day: Option<NaiveDate> = None;
    for day in days.iter().rev().copied() {
        let occurrences = run.occurrences(day).await?;
        let keys: Vec<String> = occurrences.iter().map(|o| o.key.clone()).collect();
        let existing: std::collections::HashSet<String> = store
            .existing_occurrences(&keys)
            .await?
            .into_iter()
            .collect();
        let mut todo = Vec::new();
        for occurrence in occurrences {
            if !covered_subjects.insert(occurrence.subject.clone()) {
                continue;
            }
            if existing.contains(&occurrence.key) {
                report.existing += 1;
                continue;
            }
            todo.push(occurrence);
        }
        for chunk in todo.chunks(OCCURRENCES_PER_WRITE) {
            let students: Vec<String> = chunk.iter().map(|o| o.student.clone()).collect();
            let people = store.students_with_people(&students, common.reach).await?;
            let mut built = Vec::with_capacity(chunk.len());
            for (occurrence, people) in chunk.iter().zip(people) {
                let occurrence = match run.build(day, occurrence, people).await {
                    Ok(b) => b,
                    // One person's bad data must not stop everyone else's reminders.
                    Err(RuleError::Compose(_, e)) => {
                        tracing::error!(rule = %rule, key = %occurrence.key, error = %e, "an occurrence could not be written");
                        report.failed.push(format!("{}: {e}", occurrence.key));
                        first_failed_day = Some(first_failed_day.map_or(day, |d| d.min(day)));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                // Nobody to write to (yet): no occurrence, so someone imported later
                // still gets it.
                if !occurrence.messages.is_empty() {
                    built.push(occurrence);
                }
            }
            let created = store.create_occurrences(&built, now).await?;
            for (occurrence, created) in built.iter().zip(created) {
                if created {
                    report.occurrences += 1;
                    report.messages += occurrence.messages.len() as u64;
                } else {
                    report.existing += 1;
                }
            }
        }
    }
    // A day with a failed occurrence stays uncovered, so the next run tries it again.
    let covered_through = match first_failed_day {
        Some(day) => day - Duration::days(1),
        None => today,
    };
    store
        .record_rule_run(
            rule.as_str(),
            &RuleRun {
                last_run_at: now,
                covered_through,
            },
        )
        .await?;
    tracing::info!(
        rule = %rule,
        occurrences = report.occurrences,
        messages = report.messages,
        existing = report.existing,
        "a periodic rule ran"
    );
    Ok(report)
}

/// The school days a run covers: from the day after the last covered one (today
/// again if it was today, for data imported since), at most `catch_up` days back.
pub fn days_to_cover(last: Option<&RuleRun>, today: NaiveDate, catch_up: u32) -> Vec<NaiveDate> {
    let earliest = today - Duration::days(i64::from(catch_up));
    let first = match last {
        None => today,
        Some(run) if run.covered_through >= today => today,
        Some(run) => (run.covered_through + Duration::days(1)).max(earliest),
    };
    first.iter_days().take_while(|d| *d <= today).collect()
}

/// Whether someone born on `born` has their birthday on `day`. Born on 29 February:
/// on 28 February in years without one (the day people usually celebrate, and
/// still in February).
pub fn is_birthday(born: NaiveDate, day: NaiveDate) -> bool {
    if born.month() == 2 && born.day() == 29 && !is_leap(day.year()) {
        return day.month() == 2 && day.day() == 28;
    }
    born.month() == day.month() && born.day() == day.day()
}

fn is_leap(year: i32) -> bool {
    NaiveDate::from_ymd_opt(year, 2, 29).is_some()
}

/// One occurrence before its messages are written.
struct Occurrence {
    key: String,
    /// What it is about (an instalment, a contract, a student's birthday): one per
    /// subject in a run.
    subject: String,
    /// The student it is about.
    student: String,
    relevance: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    about: About,
}

enum About {
    Instalment {
        amount_cents: i64,
        due_date: NaiveDate,
        contract: String,
    },
    Arrears {
        balance_cents: i64,
        since: NaiveDate,
        days: i64,
        contract: String,
    },
    Birthday,
}

struct Run<'a> {
    store: &'a dyn Store,
    settings: &'a Settings,
    rule: Rule,
    common: &'a RuleCommon,
    templates: Vec<ChannelTemplates>,
    now: DateTime<Utc>,
    today: NaiveDate,
}

/// The variants of the rule's template for one of its channels, each parsed once for
/// the whole run rather than once per message.
struct ChannelTemplates {
    channel: Channel,
    variants: Vec<Variant>,
    compiled: Vec<Compiled>,
}

impl ChannelTemplates {
    fn compile(variants: &[Variant], common: &RuleCommon) -> Vec<ChannelTemplates> {
        common
            .channel
            .channels()
            .iter()
            .map(|&channel| {
                let variants: Vec<Variant> = variants
                    .iter()
                    .filter(|v| v.channel == channel)
                    .cloned()
                    .collect();
                let compiled = variants.iter().map(Compiled::new).collect();
                ChannelTemplates {
                    channel,
                    variants,
                    compiled,
                }
            })
            .collect()
    }
}

impl Run<'_> {
    /// The occurrences of the rule on `day`.
    async fn occurrences(&self, day: NaiveDate) -> Result<Vec<Occurrence>, RuleError> {
        let rules = &self.settings.rules;
        let mut out = Vec::new();
        match self.rule {
            Rule::InstalmentDue => {
                let (min, max) = (
                    *rules.days_before.iter().min().unwrap_or(&0),
                    *rules.days_before.iter().max().unwrap_or(&0),
                );
                let due = self
                    .store
                    .unpaid_instalments_due(
                        day + Duration::days(i64::from(min)),
                        day + Duration::days(i64::from(max)),
                    )
                    .await?;
                for i in due {
                    let before = (i.due_date - day).num_days();
                    // A catch-up never reminds of a date already past.
                    if i.due_date < self.today
                        || !rules.days_before.iter().any(|d| i64::from(*d) == before)
                    {
                        continue;
                    }
                    out.push(Occurrence {
                        key: format!("instalment_due/{}/{before}", i.external_id),
                        subject: format!("instalment:{}", i.id),
                        student: i.student,
                        relevance: Some(format!("instalment:{}", i.id)),
                        // A reminder never goes after the due date.
                        expires_at: Some(start_of_day(
                            self.settings.school.time_zone,
                            i.due_date + Duration::days(1),
                        )),
                        about: About::Instalment {
                            amount_cents: i.amount_cents,
                            due_date: i.due_date,
                            contract: i.contract,
                        },
                    });
                }
            }
            Rule::Arrears => {
                for c in self.store.contracts_in_arrears().await? {
                    let days = (day - c.arrears_since).num_days();
                    let min = i64::from(rules.arrears_min_days);
                    let every = i64::from(rules.arrears_repeat_every_days.max(1));
                    if days < min
                        || c.balance_cents < rules.arrears_min_amount_cents
                        || (days - min) % every != 0
                    {
                        continue;
                    }
                    let period = (days - min) / every;
                    out.push(Occurrence {
                        key: format!("arrears/{}/{}/{period}", c.external_id, c.arrears_since),
                        subject: format!("arrears:{}", c.id),
                        student: c.student,
                        relevance: Some(format!("arrears:{}", c.id)),
                        expires_at: None,
                        about: About::Arrears {
                            balance_cents: c.balance_cents,
                            since: c.arrears_since,
                            days,
                            contract: c.number,
                        },
                    });
                }
            }
            Rule::Birthday => {
                let tz = self.settings.school.time_zone;
                let end_of_day = start_of_day(tz, day + Duration::days(1));
                let lateness = Duration::from_std(rules.birthday_max_lateness)
                    .unwrap_or_else(|_| Duration::zero());
                for (student, born) in self.store.birth_dates().await? {
                    if !is_birthday(born, day) {
                        continue;
                    }
                    out.push(Occurrence {
                        key: format!("birthday/{student}/{}", day.year()),
                        subject: format!("birthday:{student}:{day}"),
                        student,
                        relevance: None,
                        expires_at: Some(end_of_day + lateness),
                        about: About::Birthday,
                    });
                }
            }
        }
        Ok(out)
    }

    /// The occurrence with its messages, in the batch of the rule and day, written to
    /// `people` (read for a whole chunk of occurrences at once).
    async fn build(
        &self,
        day: NaiveDate,
        o: &Occurrence,
        people: StudentPeople,
    ) -> Result<NewOccurrence, RuleError> {
        let approval = self.common.requires_approval;
        let (batch_status, status) = if approval {
            (
                BatchStatus::AwaitingApproval,
                MessageStatus::AwaitingApproval,
            )
        } else {
            (BatchStatus::Approved, MessageStatus::Queued)
        };
        let StudentPeople {
            student,
            mut people,
        } = people;
        // An adult student has no guardians: they are written to themselves.
        if people.is_empty() && self.common.reach == crate::domain::Reach::Guardians {
            people = student.iter().cloned().collect();
        }
        let mut messages = Vec::new();
        for person in &people {
            let contents = self.contents(person, student.as_ref(), o).await?;
            let judged = contents
                .judge(
                    self.settings,
                    &person.recipient.external_id,
                    Some(person),
                    MessageKind::Periodic,
                    status,
                )
                .map_err(|e| RuleError::Compose(self.rule, e))?;
            for mut m in judged {
                m.occurrence_key = Some(o.key.clone());
                m.relevance = o.relevance.clone();
                m.expires_at = o.expires_at;
                // Written after its time (a catch-up): recorded as skipped, not sent.
                if let Some(expires) = o.expires_at
                    && expires <= self.now
                    && m.status != MessageStatus::Blocked
                {
                    m.status = MessageStatus::Expired;
                    m.reason = Some(Reason::TooLate);
                }
                messages.push(m);
            }
        }
        let (subject, body, html) = messages
            .first()
            .map(|m| {
                (
                    m.subject.as_deref().map(str::to_owned),
                    m.body.to_string(),
                    m.html.as_deref().map(str::to_owned),
                )
            })
            .unwrap_or_else(|| {
                (
                    None,
                    format!("no one to write to about {}", o.student),
                    None,
                )
            });
        Ok(NewOccurrence {
            key: o.key.clone(),
            rule: self.rule.as_str().to_owned(),
            periodic_key: format!("{}/{day}", self.rule),
            batch: NewBatch {
                kind: MessageKind::Periodic,
                channel: self.common.channel.primary(),
                channels: self.common.channel,
                status: batch_status,
                audience: format!("{} for {day}", self.rule.describe()),
                subject,
                body,
                html,
                created_by: format!("rule:{}", self.rule),
            },
            messages,
        })
    }

    /// The texts for one person, rendered from the rule's template in their locale.
    async fn contents(
        &self,
        person: &EligibilityFacts,
        student: Option<&EligibilityFacts>,
        o: &Occurrence,
    ) -> Result<Contents, RuleError> {
        let ctx = match student {
            // The message is about this student (and contract), whoever else the
            // guardian cares for.
            Some(s) => compose::context_about(
                self.settings,
                person,
                &BTreeMap::new(),
                vec![Person::new(&s.recipient.name, "student")],
            ),
            None => compose::context(self.store, self.settings, person, &BTreeMap::new())
                .await
                .map_err(|e| RuleError::Compose(self.rule, e))?,
        };
        let mut contents = Contents {
            choice: self.common.channel,
            email: None,
            sms: None,
        };
        for t in &self.templates {
            let channel = t.channel;
            let (variant, compiled) = templates::pick_index(
                &t.variants,
                person.recipient.locale.as_deref(),
                &self.settings.school.default_locale,
            )
            .map(|i| (&t.variants[i], &t.compiled[i]))
            .ok_or_else(|| RuleError::NoTemplate {
                rule: self.rule,
                template: self.common.template.clone(),
                channel,
            })?;
            let mut ctx = templates::Context {
                locale: variant.locale.clone(),
                ..ctx.clone()
            };
            match &o.about {
                About::Instalment {
                    amount_cents,
                    due_date,
                    contract,
                } => {
                    ctx.contract = Some(templates::Contract {
                        number: contract.clone(),
                    });
                    ctx.instalment = Some(templates::Instalment {
                        amount: *amount_cents as f64 / 100.0,
                        due_date: templates::local_date(*due_date, &ctx.locale),
                    });
                }
                About::Arrears {
                    balance_cents,
                    since,
                    days,
                    contract,
                } => {
                    ctx.contract = Some(templates::Contract {
                        number: contract.clone(),
                    });
                    ctx.arrears = Some(templates::Arrears {
                        amount: *balance_cents as f64 / 100.0,
                        since: templates::local_date(*since, &ctx.locale),
                        days: *days,
                    });
                }
                About::Birthday => {}
            }
            let rendered = compiled.render(&ctx).map_err(|e| {
                RuleError::Compose(self.rule, ComposeError::Template(variant.name.clone(), e))
            })?;
            let content = Content::for_channel(
                self.settings,
                MessageKind::Periodic,
                channel,
                rendered.subject.as_deref(),
                &rendered.body,
                false,
            )
            .and_then(|c| c.with_html(rendered.html.as_deref()))
            .map_err(|e| RuleError::Compose(self.rule, e))?;
            match channel {
                Channel::Email => contents.email = Some(content),
                Channel::Sms => contents.sms = Some(content),
            }
        }
        Ok(contents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_leap_day_birthday_is_on_28_february_in_other_years() {
        let born = d("2016-02-29");
        assert!(is_birthday(born, d("2027-02-28")));
        assert!(!is_birthday(born, d("2027-03-01")));
        assert!(is_birthday(born, d("2028-02-29")));
        assert!(!is_birthday(born, d("2028-02-28")));
        assert!(is_birthday(d("2014-11-26"), d("2026-11-26")));
    }

    #[test]
    fn a_run_covers_the_days_it_missed_once_and_not_too_far_back() {
        let run = |covered: &str| RuleRun {
            last_run_at: Utc::now(),
            covered_through: d(covered),
        };
        let today = d("2026-11-26");
        assert_eq!(days_to_cover(None, today, 7), [today]);
        assert_eq!(days_to_cover(Some(&run("2026-11-26")), today, 7), [today]);
        assert_eq!(
            days_to_cover(Some(&run("2026-11-23")), today, 7),
            [d("2026-11-24"), d("2026-11-25"), today]
        );
        assert_eq!(
            days_to_cover(Some(&run("2026-10-01")), today, 2),
            [d("2026-11-24"), d("2026-11-25"), today]
        );
    }
}
