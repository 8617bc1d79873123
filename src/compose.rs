//! Composing: turning "write this to these people" into stored messages, one per
//! person and channel, each already judged by eligibility (ineligible ones are kept
//! as `blocked` with their reason, so "why didn't they get it" always has an answer).

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Settings;
use crate::domain::access::{AccessError, Operator, Permission};
use crate::domain::sms::{self, SmsSize};
use crate::domain::{
    Audience, BatchStatus, Channel, ChannelChoice, EligibilityFacts, MessageKind, MessageStatus,
    Reach, Reason, RecipientId,
};
use crate::store::{NewBatch, NewMessage, Store, StoreError};
use crate::templates::{self, Context, Person, TemplateError, Variant};

/// Why a message or batch cannot be composed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// The operator may not send this.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// A text field is unusable.
    #[error("{field} {problem}")]
    BadText {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// The SMS text is longer than `sms.max_segments` allows.
    #[error(
        "the SMS text is too long: {characters} characters, {units} {encoding} units, \
         {segments} segments; the limit is sms.max_segments = {max} (GSM-7 holds 153 \
         characters a segment, UCS-2 67{hint})"
    )]
    TooLong {
        /// Characters in the text.
        characters: usize,
        /// Units in its encoding.
        units: usize,
        /// Its encoding.
        encoding: &'static str,
        /// Segments it would take.
        segments: usize,
        /// The limit.
        max: u32,
        /// A suggestion.
        hint: &'static str,
    },
    /// The audience names a group that does not exist.
    #[error("no group with id {0:?}")]
    UnknownGroup(String),
    /// The audience is empty.
    #[error("the audience {0} has nobody in it")]
    EmptyAudience(String),
    /// No variant of the template for the channel.
    #[error("there is no template {name:?} for {channel}")]
    NoTemplate {
        /// The name.
        name: String,
        /// The channel.
        channel: Channel,
    },
    /// The template does not render.
    #[error("template {0:?}: {1}")]
    Template(String, TemplateError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The text of a message, checked for its channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// The subject (email).
    pub subject: Option<Arc<str>>,
    /// The body as it will be sent; each message made from it shares it.
    pub body: Arc<str>,
    /// Its SMS size (SMS only).
    pub sms: Option<SmsSize>,
    /// An HTML body sent beside the plain text (email only).
    pub html: Option<Arc<str>>,
}

impl Content {
    /// An email: a subject on one line (a CR or LF in a header would let the text add
    /// headers of its own) and a body that is not empty.
    pub fn email(subject: &str, body: &str) -> Result<Content, ComposeError> {
        let subject = subject.trim();
        if subject.is_empty() {
            return Err(ComposeError::BadText {
                field: "the subject",
                problem: "is empty (an email needs one)",
            });
        }
        if subject.contains(char::is_control) {
            return Err(ComposeError::BadText {
                field: "the subject",
                problem: "must be one line, without CR, LF or other control characters",
            });
        }
        Ok(Content {
            subject: Some(subject.into()),
            body: non_empty(body)?.into(),
            sms: None,
            html: None,
        })
    }

    /// An SMS: transliterated when asked (to stay in GSM-7), measured, and refused
    /// when longer than `sms.max_segments`.
    pub fn sms(
        body: &str,
        transliterate: bool,
        max_segments: u32,
    ) -> Result<Content, ComposeError> {
        let body = non_empty(body)?.trim();
        let text = if transliterate {
            sms::transliterate(body)
        } else {
            body.to_owned()
        };
        let size = sms::measure(&text);
        if size.segments > max_segments as usize {
            return Err(ComposeError::TooLong {
                characters: text.chars().count(),
                units: size.units,
                encoding: size.encoding.as_str(),
                segments: size.segments,
                max: max_segments,
                hint: if size.encoding == sms::Encoding::Ucs2 && !transliterate {
                    "; transliteration may bring a Polish text back to GSM-7"
                } else {
                    ""
                },
            });
        }
        Ok(Content {
            subject: None,
            body: text.into(),
            sms: Some(size),
            html: None,
        })
    }

    /// The text for `channel`: an email needs a subject; an SMS is measured.
    pub fn for_channel(
        settings: &Settings,
        kind: MessageKind,
        channel: Channel,
        subject: Option<&str>,
        body: &str,
        transliterate: bool,
    ) -> Result<Content, ComposeError> {
        match channel {
            Channel::Email => Content::email(subject.unwrap_or_default(), body),
            Channel::Sms => Content::sms(
                body,
                transliterate || settings.kinds.of(kind).transliterate_sms,
                settings.sms.max_segments,
            ),
        }
    }

    /// Adds an HTML body beside the plain text: email only, and not empty (the plain
    /// text stays, for clients that show no HTML and for filters that want both).
    pub fn with_html(mut self, html: Option<&str>) -> Result<Content, ComposeError> {
        let Some(html) = html else {
            self.html = None;
            return Ok(self);
        };
        if self.sms.is_some() {
            return Err(ComposeError::BadText {
                field: "the HTML body",
                problem: "is for email only (an SMS is plain text)",
            });
        }
        self.html = Some(readable("the HTML body", html)?.into());
        Ok(self)
    }

    fn channel(&self) -> Channel {
        if self.sms.is_some() {
            Channel::Sms
        } else {
            Channel::Email
        }
    }
}

fn non_empty(body: &str) -> Result<&str, ComposeError> {
    readable("the body", body)
}

/// `body` (the text or the HTML) is not empty and has no control characters but
/// line breaks and tabs.
fn readable<'a>(field: &'static str, body: &'a str) -> Result<&'a str, ComposeError> {
    if body.trim().is_empty() {
        return Err(ComposeError::BadText {
            field,
            problem: "is empty",
        });
    }
    // A NUL or another control character has no place in a message a person reads,
    // and some mail and SMS systems cut or misread the text at it. Line ends are
    // left alone here: the email channel sends every one as CRLF, and a line with a
    // lone "." is dot-stuffed on the wire, so no text can end the SMTP DATA early.
    if body
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ComposeError::BadText {
            field,
            problem: "contains a control character (such as NUL); only line breaks and tabs \
                      are allowed",
        });
    }
    Ok(body)
}

/// A message to `facts` (or to an unknown platform id), judged by eligibility: blocked
/// with the first failed check, or in `status` (with `awaiting_approval` as reason
/// while it waits for approval).
pub fn judge(
    settings: &Settings,
    external_id: &str,
    facts: Option<&EligibilityFacts>,
    kind: MessageKind,
    content: &Content,
    status: MessageStatus,
) -> NewMessage {
    let channel = content.channel();
    let failed = match facts {
        Some(f) => f.check(channel, settings.school.phone_region, settings.eligibility),
        None => vec![Reason::RecipientUnknown],
    };
    let address = facts.and_then(|f| match channel {
        Channel::Email => f.recipient.email.as_ref().map(|e| e.trim().to_owned()),
        Channel::Sms => f.recipient.phone.as_ref().map(|p| p.trim().to_owned()),
    });
    let (status, reason) = match failed.first() {
        Some(reason) => (MessageStatus::Blocked, Some(*reason)),
        None if status == MessageStatus::AwaitingApproval => {
            (status, Some(Reason::AwaitingApproval))
        }
        None => (status, None),
    };
    NewMessage {
        kind,
        channel,
        recipient_id: facts.map(|f| f.recipient.id),
        recipient_external_id: external_id.to_owned(),
        address,
        subject: content.subject.clone(),
        body: content.body.clone(),
        html: content.html.clone(),
        occurrence_key: None,
        relevance: None,
        expires_at: None,
        status,
        reason,
        segments: content.sms.map(|s| s.segments as i64),
    }
}

/// A system message to one recipient, judged (blocked with its reason when they
/// cannot be reached) but not stored: no approval, it goes on the next pass (at once
/// when the daemon watches for system messages).
pub async fn system_message(
    store: &dyn Store,
    settings: &Settings,
    recipient: &str,
    content: &Content,
) -> Result<NewMessage, ComposeError> {
    let facts = store.recipient(recipient).await?;
    Ok(judge(
        settings,
        recipient,
        facts.as_ref(),
        MessageKind::System,
        content,
        MessageStatus::Queued,
    ))
}

/// A system message to one recipient with `template` rendered for them (the variant
/// for their locale, then the school's, on `channel`), judged like
/// [`system_message`]. Someone Herald does not know gets the school's variant with
/// sample names: the message is blocked (`recipient_unknown`) and never goes, but it
/// shows what was asked for.
pub async fn templated_system_message(
    store: &dyn Store,
    settings: &Settings,
    recipient: &str,
    channel: Channel,
    template: &str,
    vars: &std::collections::BTreeMap<String, String>,
    transliterate: bool,
) -> Result<NewMessage, ComposeError> {
    let variants = variants_for(&store.templates(Some(template)).await?, template, channel)?;
    let facts = store.recipient(recipient).await?;
    let (ctx, locale) = match &facts {
        Some(f) => (
            context(store, settings, f, vars).await?,
            f.recipient.locale.clone(),
        ),
        None => (templates::sample(vars.clone()), None),
    };
    let kind = MessageKind::System;
    let content = render_content(
        settings,
        kind,
        channel,
        template,
        &variants,
        locale.as_deref(),
        ctx,
        transliterate,
    )?;
    Ok(judge(
        settings,
        recipient,
        facts.as_ref(),
        kind,
        &content,
        MessageStatus::Queued,
    ))
}

/// The variants of `template` (out of `all`, its variants) for `channel`; refused
/// when it has none.
fn variants_for(
    all: &[Variant],
    template: &str,
    channel: Channel,
) -> Result<Vec<Variant>, ComposeError> {
    let variants: Vec<Variant> = all
        .iter()
        .filter(|v| v.channel == channel)
        .cloned()
        .collect();
    if variants.is_empty() {
        return Err(ComposeError::NoTemplate {
            name: template.to_owned(),
            channel,
        });
    }
    Ok(variants)
}

/// One of `variants` (the one for `locale`, else the school's) rendered with `ctx`,
/// as the checked text of a `kind` message on `channel`.
#[allow(clippy::too_many_arguments)]
fn render_content(
    settings: &Settings,
    kind: MessageKind,
    channel: Channel,
    template: &str,
    variants: &[Variant],
    locale: Option<&str>,
    ctx: Context,
    transliterate: bool,
) -> Result<Content, ComposeError> {
    let variant = templates::pick(variants, locale, &settings.school.default_locale)
        .expect("variants_for refuses an empty list");
    let rendered = templates::render(
        variant,
        &Context {
            locale: variant.locale.clone(),
            ..ctx
        },
    )
    .map_err(|e| ComposeError::Template(template.to_owned(), e))?;
    Content::for_channel(
        settings,
        kind,
        channel,
        rendered.subject.as_deref(),
        &rendered.body,
        transliterate,
    )?
    .with_html(rendered.html.as_deref())
}

/// An informational send, composed but not stored: what `--dry-run` shows and what
/// `App::send` stores.
#[derive(Debug, Clone)]
pub struct Send {
    /// The batch.
    pub batch: NewBatch,
    /// One message per person.
    pub messages: Vec<NewMessage>,
}

/// Refuses an audience outside what `op` may reach: without `send_any_audience`,
/// only the groups they teach, their students and those students' guardians.
pub async fn check_reach(
    store: &dyn Store,
    op: &Operator,
    audience: &Audience,
) -> Result<(), ComposeError> {
    if op.may(Permission::SendAnyAudience) {
        return Ok(());
    }
    let mut taught = Vec::new();
    if let Some(teacher) = &op.teacher {
        for g in store.groups().await? {
            let teachers = store
                .audience(
                    &Audience::TeachersOf(g.external_id.clone()),
                    Reach::Students,
                )
                .await?;
            if teachers.iter().any(|t| &t.recipient.external_id == teacher) {
                taught.push(g.external_id);
            }
        }
    }
    let outside = |what: String| AccessError::OutsideGroups {
        login: op.login.clone(),
        groups: if taught.is_empty() {
            "none".into()
        } else {
            taught.join(", ")
        },
        outside: what,
    };
    match audience {
        Audience::Group(g) | Audience::TeachersOf(g) if !taught.contains(g) => {
            Err(outside(format!("group {g}")).into())
        }
        Audience::Groups(gs) => match gs.iter().find(|g| !taught.contains(g)) {
            Some(g) => Err(outside(format!("group {g}")).into()),
            None => Ok(()),
        },
        Audience::AllGroups => Err(outside("all groups".into()).into()),
        Audience::ActiveContracts => Err(outside("everyone with an active contract".into()).into()),
        Audience::Recipient(_) | Audience::List(_) => {
            let named: Vec<&String> = match audience {
                Audience::Recipient(id) => vec![id],
                Audience::List(ids) => ids.iter().collect(),
                _ => Vec::new(),
            };
            let reachable = if taught.is_empty() {
                Vec::new()
            } else {
                store
                    .audience(&Audience::Groups(taught.clone()), Reach::Both)
                    .await?
            };
            match named
                .into_iter()
                .find(|id| !reachable.iter().any(|f| &&f.recipient.external_id == id))
            {
                Some(id) => Err(outside(format!("recipient {id}")).into()),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// The texts of a send per channel, and which channels it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    /// Email, SMS, both, or SMS where there is no usable email.
    pub choice: ChannelChoice,
    /// The email text (needed unless SMS only).
    pub email: Option<Content>,
    /// The SMS text (needed unless email only).
    pub sms: Option<Content>,
}

impl From<&Content> for Contents {
    fn from(c: &Content) -> Self {
        let channel = c.channel();
        Contents {
            choice: channel.into(),
            email: (channel == Channel::Email).then(|| c.clone()),
            sms: (channel == Channel::Sms).then(|| c.clone()),
        }
    }
}

impl Contents {
    fn of(&self, channel: Channel) -> Result<&Content, ComposeError> {
        match channel {
            Channel::Email => self.email.as_ref(),
            Channel::Sms => self.sms.as_ref(),
        }
        .ok_or(ComposeError::BadText {
            field: "the send",
            problem: "has no text for one of its channels",
        })
    }

    /// The messages to one person (or to an unknown id): one per channel, or for
    /// "SMS where there is no email" the email when it can go, else the SMS when it
    /// can, else both as blocked, so each channel's reason is kept.
    pub fn judge(
        &self,
        settings: &Settings,
        external_id: &str,
        facts: Option<&EligibilityFacts>,
        kind: MessageKind,
        status: MessageStatus,
    ) -> Result<Vec<NewMessage>, ComposeError> {
        let one = |channel| -> Result<NewMessage, ComposeError> {
            Ok(judge(
                settings,
                external_id,
                facts,
                kind,
                self.of(channel)?,
                status,
            ))
        };
        Ok(match self.choice {
            ChannelChoice::Email => vec![one(Channel::Email)?],
            ChannelChoice::Sms => vec![one(Channel::Sms)?],
            ChannelChoice::Both => vec![one(Channel::Email)?, one(Channel::Sms)?],
            ChannelChoice::SmsIfNoEmail => {
                let email = one(Channel::Email)?;
                if email.status != MessageStatus::Blocked || facts.is_none() {
                    vec![email]
                } else {
                    let sms = one(Channel::Sms)?;
                    if sms.status != MessageStatus::Blocked {
                        vec![sms]
                    } else {
                        vec![email, sms]
                    }
                }
            }
        })
    }
}

/// Composes an informational message to an audience on the content's channel: one
/// message per person, each judged; awaiting approval unless the operator may send
/// without it.
pub async fn compose_send(
    store: &dyn Store,
    settings: &Settings,
    op: &Operator,
    audience: &Audience,
    reach: Reach,
    content: &Content,
) -> Result<Send, ComposeError> {
    compose_send_to(store, settings, op, audience, reach, &content.into()).await
}

/// Composes an informational send on one channel or two: one message per person and
/// channel, each judged; awaiting approval unless the operator may send without it.
pub async fn compose_send_to(
    store: &dyn Store,
    settings: &Settings,
    op: &Operator,
    audience: &Audience,
    reach: Reach,
    contents: &Contents,
) -> Result<Send, ComposeError> {
    Ok(plan(store, settings, op, audience, reach, contents, false)
        .await?
        .0)
}

/// [`compose_send_to`]; with `keep_people`, also giving back the people the audience
/// named, as the directory described them, for a caller that renders a text per
/// person (otherwise the list is empty).
async fn plan(
    store: &dyn Store,
    settings: &Settings,
    op: &Operator,
    audience: &Audience,
    reach: Reach,
    contents: &Contents,
    keep_people: bool,
) -> Result<(Send, Vec<EligibilityFacts>), ComposeError> {
    op.require(Permission::Send, "compose messages")?;
    check_reach(store, op, audience).await?;
    let named_groups: Vec<&String> = match audience {
        Audience::Group(g) | Audience::TeachersOf(g) => vec![g],
        Audience::Groups(gs) => gs.iter().collect(),
        _ => Vec::new(),
    };
    if !named_groups.is_empty() {
        let known = store.groups().await?;
        if let Some(g) = named_groups
            .into_iter()
            .find(|g| !known.iter().any(|x| &x.external_id == *g))
        {
            return Err(ComposeError::UnknownGroup(g.clone()));
        }
    }
    let described = audience.describe(reach);
    let people = store.audience(audience, reach).await?;
    let (batch_status, status) = if op.may(Permission::SendWithoutApproval) {
        (BatchStatus::Approved, MessageStatus::Queued)
    } else {
        (
            BatchStatus::AwaitingApproval,
            MessageStatus::AwaitingApproval,
        )
    };
    let kind = MessageKind::Informational;
    let mut messages: Vec<NewMessage> = Vec::with_capacity(people.len());
    let mut kept = Vec::new();
    // Each person is let go of once judged (unless kept), so in a send to a whole
    // school the messages take the memory the people held instead of adding to it.
    for f in people {
        messages.extend(contents.judge(
            settings,
            &f.recipient.external_id,
            Some(&f),
            kind,
            status,
        )?);
        if keep_people {
            kept.push(f);
        }
    }
    // The platform named someone Herald does not know: keep the message, blocked.
    let named: Vec<&String> = match audience {
        Audience::Recipient(id) => vec![id],
        Audience::List(ids) => ids.iter().collect(),
        _ => Vec::new(),
    };
    for id in named {
        if store.recipient(id).await?.is_none() {
            messages.extend(contents.judge(settings, id, None, kind, status)?);
        }
    }
    if messages.is_empty() {
        return Err(ComposeError::EmptyAudience(described));
    }
    let record = contents.of(contents.choice.primary())?;
    let send = Send {
        batch: NewBatch {
            kind,
            channel: contents.choice.primary(),
            channels: contents.choice,
            status: batch_status,
            audience: described,
            subject: record.subject.as_deref().map(str::to_owned),
            body: record.body.to_string(),
            html: record.html.as_deref().map(str::to_owned),
            created_by: op.login.clone(),
        },
        messages,
    };
    Ok((send, kept))
}

#[allow(clippy::too_many_arguments)]
/// A send rendered from a named template: each person gets the variant for their
/// locale (then the school's) and the message's channel, rendered with their own
/// names.
pub async fn compose_templated_send(
    store: &dyn Store,
    settings: &Settings,
    op: &Operator,
    audience: &Audience,
    reach: Reach,
    choice: ChannelChoice,
    template: &str,
    vars: &std::collections::BTreeMap<String, String>,
    transliterate: bool,
) -> Result<Send, ComposeError> {
    let all: Vec<Variant> = store.templates(Some(template)).await?;
    let variants_of = |channel: Channel| variants_for(&all, template, channel);
    // Composed once with each channel's first variant, for the batch's record and
    // the checks; then every message takes its own rendering.
    let mut contents = Contents {
        choice,
        email: None,
        sms: None,
    };
    for &channel in choice.channels() {
        let variants = variants_of(channel)?;
        let first = templates::render(&variants[0], &templates::sample(vars.clone()))
            .map_err(|e| ComposeError::Template(template.to_owned(), e))?;
        let content = Content::for_channel(
            settings,
            MessageKind::Informational,
            channel,
            first.subject.as_deref(),
            &first.body,
            transliterate,
        )?
        .with_html(first.html.as_deref())?;
        match channel {
            Channel::Email => contents.email = Some(content),
            Channel::Sms => contents.sms = Some(content),
        }
    }
    let (mut send, people) = plan(store, settings, op, audience, reach, &contents, true).await?;
    // Everything a template needs comes from the audience as it was read, and the
    // students' names from one query: a send to a whole school renders without a
    // query per person.
    let facts: HashMap<RecipientId, &EligibilityFacts> =
        people.iter().map(|f| (f.recipient.id, f)).collect();
    let names = store.names(&wards(people.iter())).await?;
    for message in &mut send.messages {
        let Some(facts) = message.recipient_id.and_then(|id| facts.get(&id)) else {
            continue;
        };
        let ctx = context_named(settings, facts, vars, &names);
        let content = render_content(
            settings,
            MessageKind::Informational,
            message.channel,
            template,
            &variants_of(message.channel)?,
            facts.recipient.locale.as_deref(),
            ctx,
            transliterate,
        )?;
        message.subject = content.subject;
        message.body = content.body;
        message.html = content.html;
        message.segments = content.sms.map(|s| s.segments as i64);
    }
    Ok(send)
}

/// What a template sees for one recipient: their names, and the students the
/// message is about (a student's own; for a guardian, every student whose contract
/// speaks for them).
pub async fn context(
    store: &dyn Store,
    settings: &Settings,
    facts: &EligibilityFacts,
    vars: &std::collections::BTreeMap<String, String>,
) -> Result<Context, ComposeError> {
    let names = store.names(&wards([facts])).await?;
    Ok(context_named(settings, facts, vars, &names))
}

/// The students whose contracts speak for these people, when they are not students
/// themselves (their platform ids; a student is their own).
fn wards<'a>(people: impl IntoIterator<Item = &'a EligibilityFacts>) -> Vec<&'a str> {
    let mut ids: Vec<&str> = people
        .into_iter()
        .filter(|f| f.recipient.role != crate::domain::Role::Student)
        .flat_map(|f| f.contracts.iter().map(|c| c.student.as_str()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// [`context`] with the students' names already looked up (`names`, by platform id;
/// one missing from it is left out, as a student no longer in the directory).
fn context_named(
    settings: &Settings,
    facts: &EligibilityFacts,
    vars: &std::collections::BTreeMap<String, String>,
    names: &HashMap<String, String>,
) -> Context {
    let r = &facts.recipient;
    let mut students = Vec::new();
    if r.role == crate::domain::Role::Student {
        students.push(Person::new(&r.name, r.role.as_str()));
    } else {
        let mut seen = std::collections::BTreeSet::new();
        for c in &facts.contracts {
            if seen.insert(c.student.as_str())
                && let Some(name) = names.get(&c.student)
            {
                students.push(Person::new(name, "student"));
            }
        }
    }
    context_about(settings, facts, vars, students)
}

/// What a template sees for one recipient when the caller knows which students the
/// message is about (a rule's occurrence is about one), so nothing is looked up.
pub fn context_about(
    settings: &Settings,
    facts: &EligibilityFacts,
    vars: &std::collections::BTreeMap<String, String>,
    students: Vec<Person>,
) -> Context {
    let r = &facts.recipient;
    Context {
        recipient: Person::new(&r.name, r.role.as_str()),
        school: templates::School {
            name: settings.school.name.clone(),
        },
        student: students.first().cloned(),
        students,
        contract: facts.contracts.first().map(|c| templates::Contract {
            number: c.number.clone().unwrap_or_else(|| c.contract.clone()),
        }),
        locale: r
            .locale
            .clone()
            .unwrap_or_else(|| settings.school.default_locale.clone()),
        vars: vars.clone(),
        instalment: None,
        arrears: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_one_line_and_bodies_are_not_empty() {
        assert!(Content::email("Closed tomorrow", "The school is closed.").is_ok());
        assert!(Content::email("Closed\r\nBcc: everyone@example.pl", "x").is_err());
        let tab = Content::email("Closed\ttomorrow", "x")
            .unwrap_err()
            .to_string();
        assert!(
            tab.contains("the subject") && tab.contains("control"),
            "{tab}"
        );
        assert!(Content::email("  ", "x").is_err());
        assert!(Content::email("Subject", " \n ").is_err());
        let html = Content::email("Subject", "x")
            .unwrap()
            .with_html(Some("<p>a\0b</p>"))
            .unwrap_err()
            .to_string();
        assert!(
            html.contains("the HTML body") && html.contains("NUL"),
            "{html}"
        );
        let nul = Content::email("Subject", "a\0b").unwrap_err().to_string();
        assert!(nul.contains("control character"), "{nul}");
        assert!(Content::sms("a\u{1b}[31mred", false, 6).is_err());
        assert!(Content::email("Subject", "line\r\n.\r\nnext\ttabbed").is_ok());
    }

    #[test]
    fn an_sms_longer_than_the_limit_is_refused_with_its_length() {
        let text = "Zażółć gęślą jaźń. ".repeat(8);
        let err = Content::sms(&text, false, 2).unwrap_err().to_string();
        assert!(err.contains("151 characters"), "{err}");
        assert!(err.contains("3 segments"), "{err}");
        assert!(err.contains("sms.max_segments = 2"), "{err}");
        assert!(err.contains("transliteration"), "{err}");
        let ok = Content::sms(&text, true, 2).unwrap();
        assert_eq!(ok.sms.unwrap().segments, 1);
        assert!(ok.body.starts_with("Zazolc gesla jazn."));
    }
}
