//! Compose: the audience (people found by name, groups, all groups, every active
//! contract; students, guardians or both), the channel, a template or a text, a
//! live SMS segment and cost counter, the dry run with a preview for a chosen
//! recipient, then the batch itself (into the outbox, or approved at once for those
//! who send without approval).

use std::collections::BTreeMap;

use axum::Form;
use axum::Router;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use minijinja::value::merge_maps;
use minijinja::{Value, context};
use serde::Serialize;

use super::{Ctx, done_at, render, v, with_status};
use crate::app::{App, AppError, Composed, SendContent, SendRequest};
use crate::domain::sms;
use crate::domain::{Audience, BatchStatus, ChannelChoice, MessageStatus, Reach};
use crate::store::RecipientFilter;

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/console/compose", get(blank).post(compose))
        .route("/console/compose/count", get(count))
        .route("/console/compose/people", get(people))
}

/// The form's single-valued fields.
const FIELDS: &[&str] = &[
    "audience",
    "reach",
    "channel",
    "content",
    "subject",
    "body",
    "transliterate",
    "template",
    "vars",
    "people",
    "find",
    "preview_for",
];

/// The form's fields as posted: repeated names (`group`, `person`) kept.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn one(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    fn on(&self, name: &str) -> bool {
        !self.one(name).is_empty()
    }

    /// The people chosen: those ticked in the search and those typed as ids.
    fn people(&self) -> Vec<String> {
        let mut ids = self.all("person");
        for id in self
            .one("people")
            .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        {
            let id = id.trim();
            if !id.is_empty() && !ids.iter().any(|known| known == id) {
                ids.push(id.to_owned());
            }
        }
        ids
    }

    /// The form as a map for the template to fill the fields in again.
    fn echo(&self) -> Value {
        // Every field the template reads, empty unless posted.
        let map: BTreeMap<&str, &str> = FIELDS.iter().map(|&k| (k, self.one(k))).collect();
        context! { fields => v(&map), groups_chosen => self.all("group"),
        people_chosen => self.all("person") }
    }

    /// The send the form asks for, or which field is wrong and why.
    fn request(&self) -> Result<SendRequest, AppError> {
        let audience = match self.one("audience") {
            "people" => match &self.people()[..] {
                [] => {
                    return Err(AppError::invalid(
                        "people",
                        "people: choose or type at least one person",
                    ));
                }
                [one] => Audience::Recipient(one.clone()),
                many => Audience::List(many.to_vec()),
            },
            "groups" => match &self.all("group")[..] {
                [] => {
                    return Err(AppError::invalid(
                        "group",
                        "group: choose at least one group",
                    ));
                }
                [one] => Audience::Group(one.clone()),
                many => Audience::Groups(many.to_vec()),
            },
            "all_groups" => Audience::AllGroups,
            "active_contracts" => Audience::ActiveContracts,
            other => {
                return Err(AppError::invalid(
                    "audience",
                    format!(
                        "audience: {other:?} is not one of people, groups, all_groups, \
                         active_contracts"
                    ),
                ));
            }
        };
        let reach = match self.one("reach") {
            "students" => Reach::Students,
            "guardians" => Reach::Guardians,
            "both" | "" => Reach::Both,
            other => {
                return Err(AppError::invalid(
                    "reach",
                    format!("reach: {other:?} is not one of students, guardians, both"),
                ));
            }
        };
        let channel: ChannelChoice =
            self.one("channel")
                .parse()
                .map_err(|e: crate::domain::codes::UnknownCode| {
                    AppError::invalid("channel", e.to_string())
                })?;
        let content = match self.one("content") {
            "template" => {
                let name = self.one("template").trim();
                if name.is_empty() {
                    return Err(AppError::invalid("template", "template: choose a template"));
                }
                let mut vars = BTreeMap::new();
                for line in self.one("vars").lines().filter(|l| !l.trim().is_empty()) {
                    let Some((k, value)) = line.split_once('=') else {
                        return Err(AppError::invalid(
                            "vars",
                            format!("vars: {line:?} is not name=value"),
                        ));
                    };
                    vars.insert(k.trim().to_owned(), value.trim().to_owned());
                }
                SendContent::Template {
                    name: name.to_owned(),
                    vars,
                }
            }
            _ => SendContent::Text {
                subject: Some(self.one("subject").to_owned()).filter(|s| !s.trim().is_empty()),
                body: self.one("body").to_owned(),
                html: None,
            },
        };
        Ok(SendRequest {
            audience,
            reach,
            channel,
            content,
            transliterate: self.on("transliterate"),
        })
    }
}

/// The SMS counter: segments, encoding and cost of one SMS of `text`.
#[derive(Serialize)]
struct Counter {
    characters: usize,
    segments: usize,
    encoding: &'static str,
    cost: u64,
    max: u32,
    too_long: bool,
    /// What transliteration would bring it down to, when it would.
    transliterated: Option<usize>,
}

fn counter(app: &App, text: &str, transliterate: bool) -> Counter {
    let text = text.trim();
    let sent = if transliterate {
        sms::transliterate(text)
    } else {
        text.to_owned()
    };
    let size = sms::measure(&sent);
    let smaller = sms::measure(&sms::transliterate(text)).segments;
    let settings = &app.settings().sms;
    Counter {
        characters: sent.chars().count(),
        segments: size.segments,
        encoding: size.encoding.as_str(),
        cost: size.segments as u64 * u64::from(settings.price_per_segment),
        max: settings.max_segments,
        too_long: size.segments > settings.max_segments as usize,
        transliterated: (!transliterate && smaller < size.segments).then_some(smaller),
    }
}

/// What the form needs beside the fields: the groups and the templates.
async fn choices(ctx: &Ctx) -> Result<Value, AppError> {
    let groups = ctx.app.groups(&ctx.actor).await?;
    let mut names: Vec<String> = ctx
        .app
        .templates(&ctx.actor, None)
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    names.dedup();
    Ok(context! { groups => v(&groups), template_names => names })
}

async fn blank(ctx: Ctx) -> Response {
    let defaults = Fields(vec![
        ("audience".into(), "groups".into()),
        ("reach".into(), "both".into()),
        ("channel".into(), "email".into()),
        ("content".into(), "text".into()),
    ]);
    show(&ctx, &defaults, context! {}, StatusCode::OK).await
}

/// The form, filled with `fields`, and `more` (a dry run's result, a problem).
async fn show(ctx: &Ctx, fields: &Fields, more: Value, status: StatusCode) -> Response {
    let lists = match choices(ctx).await {
        Ok(lists) => lists,
        Err(e) => return ctx.problem(e),
    };
    let count = counter(&ctx.app, fields.one("body"), fields.on("transliterate"));
    let found = chosen_people(ctx, fields).await;
    with_status(
        status,
        ctx.page(
            "compose.html",
            ctx.t.w("compose"),
            merge_maps([
                context! { counter => v(&count), found => v(&found), query => "" },
                more,
                fields.echo(),
                lists,
            ]),
        ),
    )
}

/// One person the search found, as the form lists them.
#[derive(Serialize)]
struct Person {
    external_id: String,
    name: String,
    role: String,
    chosen: bool,
}

/// The people already ticked, so a new search keeps them.
async fn chosen_people(ctx: &Ctx, fields: &Fields) -> Vec<Person> {
    let mut out = Vec::new();
    for id in fields.all("person") {
        let filter = RecipientFilter {
            external_id: Some(id.clone()),
            ..Default::default()
        };
        if let Ok(found) = ctx.app.recipients(&ctx.actor, &filter, None, false).await {
            out.extend(found.into_iter().map(|r| Person {
                external_id: r.external_id,
                name: r.name,
                role: r.role.to_string(),
                chosen: true,
            }));
        }
    }
    out
}

/// The live person search: those ticked stay, the matches for `find` follow.
async fn people(ctx: Ctx, Query(fields): Query<Vec<(String, String)>>) -> Response {
    let fields = Fields(fields);
    let mut found = chosen_people(&ctx, &fields).await;
    let query = fields.one("find").trim().to_owned();
    if query.chars().count() >= 2 {
        let filter = RecipientFilter {
            search: Some(query.clone()),
            ..Default::default()
        };
        match ctx.app.recipients(&ctx.actor, &filter, None, false).await {
            Ok(matches) => {
                for r in matches.into_iter().take(20) {
                    if !found.iter().any(|p| p.external_id == r.external_id) {
                        found.push(Person {
                            external_id: r.external_id,
                            name: r.name,
                            role: r.role.to_string(),
                            chosen: false,
                        });
                    }
                }
            }
            Err(e) => return ctx.problem(e),
        }
    }
    render(
        "people.html",
        context! { t => v(ctx.t), found => v(&found), query => query },
    )
}

/// The live SMS counter for the text being typed.
async fn count(ctx: Ctx, Query(fields): Query<Vec<(String, String)>>) -> Response {
    let fields = Fields(fields);
    let count = counter(&ctx.app, fields.one("body"), fields.on("transliterate"));
    render(
        "counter.html",
        context! { t => v(ctx.t), counter => v(&count) },
    )
}

/// One message of the dry run as the preview shows it.
#[derive(Serialize)]
struct Preview {
    channel: String,
    recipient: String,
    address: Option<String>,
    subject: Option<String>,
    body: String,
    status: String,
    reason: Option<String>,
}

/// A fingerprint of the send a form asks for: the submit must carry the one its
/// check showed.
fn fingerprint(request: &SendRequest) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(format!("{request:?}").as_bytes()))
}

/// `step=check`: the dry run; `step=submit`: the batch, if the form is still what
/// was checked.
async fn compose(ctx: Ctx, Form(fields): Form<Vec<(String, String)>>) -> Response {
    let fields = Fields(fields);
    let request = match fields.request() {
        Ok(r) => r,
        Err(e) => return refused(&ctx, &fields, e).await,
    };
    let checked = fingerprint(&request);
    let mut submit = fields.one("step") == "submit";
    let mut changed = None;
    // What goes is what was checked: a form changed since its check is checked
    // again instead of sent.
    if submit && fields.one("checked") != checked {
        submit = false;
        changed = Some(ctx.t.w("changed_since_check"));
    }
    match ctx.app.send(&ctx.actor, &request, !submit).await {
        Ok(Composed {
            batch: Some(id),
            send,
            ..
        }) => {
            let word = if send.batch.status == BatchStatus::Approved {
                "submitted_approved"
            } else {
                "submitted"
            };
            done_at(&format!("/console/outbox/{}", id.0), word)
        }
        Ok(composed) => {
            let previews = previews(&composed, fields.one("preview_for").trim());
            let mut counts: BTreeMap<String, i64> = BTreeMap::new();
            for m in &composed.send.messages {
                *counts.entry(m.status.to_string()).or_default() += 1;
            }
            let more = context! {
                dry => v(&composed.summary), previews => v(&previews),
                audience_words => composed.send.batch.audience,
                messages_total => composed.send.messages.len(),
                goes_to_outbox => composed.send.batch.status == BatchStatus::AwaitingApproval,
                checked => checked, problem => changed,
            };
            show(&ctx, &fields, more, StatusCode::OK).await
        }
        Err(e) => refused(&ctx, &fields, e).await,
    }
}

/// The rendered message per channel for the person asked for (or the first one
/// each channel would reach).
fn previews(composed: &Composed, wanted: &str) -> Vec<Preview> {
    let mut out: Vec<Preview> = Vec::new();
    let messages = &composed.send.messages;
    let picked = messages
        .iter()
        .filter(|m| !wanted.is_empty() && m.recipient_external_id == wanted)
        .chain(
            messages
                .iter()
                .filter(|m| m.status != MessageStatus::Blocked),
        )
        .chain(messages.iter());
    for m in picked {
        if out.iter().any(|p| p.channel == m.channel.as_str()) {
            continue;
        }
        out.push(Preview {
            channel: m.channel.to_string(),
            recipient: m.recipient_external_id.clone(),
            address: m.address.clone(),
            subject: m.subject.as_deref().map(str::to_owned),
            body: m.body.to_string(),
            status: m.status.to_string(),
            reason: m.reason.map(|r| r.to_string()),
        });
    }
    out
}

/// The form again with what is wrong on top: 422 for input, 403 for a permission
/// or an audience outside the operator's groups.
async fn refused(ctx: &Ctx, fields: &Fields, e: AppError) -> Response {
    let status = match &e {
        AppError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        AppError::NotFound { .. } => StatusCode::NOT_FOUND,
        AppError::Forbidden { .. } | AppError::OutsideGroups { .. } => StatusCode::FORBIDDEN,
        _ => return ctx.problem(e),
    };
    let field = match &e {
        AppError::Invalid { field, .. } => Some(field.to_string()),
        _ => None,
    };
    show(
        ctx,
        fields,
        context! { problem => e.to_string(), problem_field => field },
        status,
    )
    .await
}
