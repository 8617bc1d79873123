//! Templates: the list, one template's variants each with a preview (sample
//! values, or rendered for a chosen recipient exactly as a send would render it),
//! and an edit form whose save is refused, with why, unless the variant renders.

use std::collections::BTreeMap;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{Ctx, done_at, v, with_status};
use crate::app::{App, AppError, SendContent, SendRequest};
use crate::domain::{Audience, Channel, ChannelChoice, Reach};
use crate::templates::{self, Variant};

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/console/templates", get(list).post(save))
        .route("/console/templates/{name}", get(one))
}

async fn list(ctx: Ctx, Query(q): Query<super::Done>) -> Response {
    let done = ctx.done(q.done.as_deref());
    match ctx.app.templates(&ctx.actor, None).await {
        Ok(variants) => ctx.page(
            "templates.html",
            ctx.t.w("templates"),
            context! { variants => v(&variants), done => done },
        ),
        Err(e) => ctx.problem(e),
    }
}

/// One variant as the page shows it: the variant, and its preview or why there is
/// none.
#[derive(Serialize)]
struct Shown {
    variant: Variant,
    subject: Option<String>,
    body: Option<String>,
    problem: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OneQuery {
    done: Option<String>,
    preview_for: Option<String>,
    vars: String,
}

async fn one(ctx: Ctx, Path(name): Path<String>, Query(q): Query<OneQuery>) -> Response {
    let done = ctx.done(q.done.as_deref());
    show(&ctx, &name, &q, done, None, None, StatusCode::OK).await
}

/// The template's page; `draft` keeps what was typed when a save was refused.
async fn show(
    ctx: &Ctx,
    name: &str,
    q: &OneQuery,
    done: Option<&str>,
    problem: Option<String>,
    draft: Option<&Variant>,
    status: StatusCode,
) -> Response {
    let variants = match ctx.app.templates(&ctx.actor, Some(name)).await {
        Ok(v) => v,
        Err(e) => return ctx.problem(e),
    };
    let wanted = q.preview_for.as_deref().map(str::trim).unwrap_or_default();
    let mut shown = Vec::new();
    for variant in &variants {
        let (subject, body, why) = if wanted.is_empty() {
            match templates::preview(variant) {
                Ok(r) => (r.subject, Some(r.body), None),
                Err(e) => (None, None, Some(e.to_string())),
            }
        } else {
            for_recipient(ctx, variant, wanted, &q.vars).await
        };
        shown.push(Shown {
            variant: variant.clone(),
            subject,
            body,
            problem: why,
        });
    }
    with_status(
        status,
        ctx.page(
            "template.html",
            &format!("{} {name}", ctx.t.w("template")),
            context! { name => name, shown => v(&shown), done => done, problem => problem,
            preview_for => wanted, vars => &q.vars, draft => v(&draft),
            channels => ["email", "sms"] },
        ),
    )
}

/// The variant rendered for one person as a send would render it (their locale
/// chooses the variant, so the one shown may be another locale's): a dry run to
/// that person alone, which stores nothing.
async fn for_recipient(
    ctx: &Ctx,
    variant: &Variant,
    who: &str,
    vars: &str,
) -> (Option<String>, Option<String>, Option<String>) {
    let vars: BTreeMap<String, String> = vars
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let request = SendRequest {
        audience: Audience::Recipient(who.to_owned()),
        reach: Reach::Students,
        channel: match variant.channel {
            Channel::Email => ChannelChoice::Email,
            Channel::Sms => ChannelChoice::Sms,
        },
        content: SendContent::Template {
            name: variant.name.clone(),
            vars,
        },
        transliterate: false,
    };
    match ctx.app.send(&ctx.actor, &request, true).await {
        Ok(composed) => match composed.send.messages.into_iter().next() {
            Some(m) => (
                m.subject.as_deref().map(str::to_owned),
                Some(m.body.to_string()),
                None,
            ),
            None => (None, None, Some(format!("{who}: no message"))),
        },
        Err(e) => (None, None, Some(e.to_string())),
    }
}

// Every field may be missing: the handler (or `App`) says which one is wanted.
#[derive(Deserialize, Default)]
#[serde(default)]
struct SaveForm {
    name: String,
    locale: String,
    channel: String,
    subject: String,
    body: String,
    html: String,
}

async fn save(ctx: Ctx, Form(form): Form<SaveForm>) -> Response {
    let channel = match form.channel.parse::<Channel>() {
        Ok(c) => c,
        Err(e) => return ctx.problem(AppError::invalid("channel", e.to_string())),
    };
    let some = |s: &str| Some(s.to_owned()).filter(|s| !s.trim().is_empty());
    let variant = Variant {
        name: form.name.trim().to_owned(),
        locale: form.locale.trim().to_owned(),
        channel,
        subject: some(&form.subject),
        body: form.body.clone(),
        html: some(&form.html),
    };
    match ctx.app.save_template(&ctx.actor, &variant).await {
        Ok(saved) => {
            let path = format!("/console/templates/{}", super::segment(&saved.name));
            done_at(&path, "template_saved")
        }
        Err(e @ AppError::Invalid { .. }) => {
            let text = e.to_string();
            show(
                &ctx,
                &variant.name,
                &OneQuery::default(),
                None,
                Some(text),
                Some(&variant),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => ctx.problem(e),
    }
}
