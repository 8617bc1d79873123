//! Messages – All: every message, filtered by status, reason, kind, channel, dates,
//! recipient and batch, with counts per status and paging; and one message's page
//! with its timeline, attempts and delivery reports, where an approver resends or
//! cancels it.

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, Utc};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{Ctx, Done, done_at, number_in_path, v, with_status};
use crate::app::{App, AppError};
use crate::domain::{BatchId, MessageId};
use crate::store::{MessageAction, MessageFilter};

/// Messages on one page.
const PAGE: i64 = 50;

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/console/messages", get(list))
        .route("/console/messages/{id}", get(message))
        .route("/console/messages/{id}/{action}", post(act))
}

/// The filters as the form sends them (empty fields mean "any").
#[derive(Deserialize, Serialize, Default, Clone)]
#[serde(default)]
struct Filters {
    status: String,
    reason: String,
    kind: String,
    channel: String,
    from: String,
    to: String,
    recipient: String,
    batch: String,
    before: String,
}

/// A code field: empty for any, else one of its codes.
fn code<T: std::str::FromStr<Err = crate::domain::codes::UnknownCode>>(
    field: &'static str,
    text: &str,
) -> Result<Option<T>, AppError> {
    match text.trim() {
        "" => Ok(None),
        t => t
            .parse()
            .map(Some)
            .map_err(|e: crate::domain::codes::UnknownCode| {
                AppError::invalid(field, e.to_string())
            }),
    }
}

impl Filters {
    /// The filter for the store, the day fields taken in the school's time zone
    /// (`to` inclusive).
    fn filter(&self, app: &App) -> Result<MessageFilter, AppError> {
        let tz = app.settings().school.time_zone;
        let day = |field: &'static str,
                   text: &str,
                   after: bool|
         -> Result<Option<DateTime<Utc>>, AppError> {
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                AppError::invalid(
                    field,
                    format!("{field}: {text:?} is not a date (YYYY-MM-DD)"),
                )
            })?;
            let date = if after {
                date.succ_opt().unwrap_or(date)
            } else {
                date
            };
            Ok(Some(crate::domain::window::start_of_day(tz, date)))
        };
        let number = |field: &'static str, text: &str| -> Result<Option<i64>, AppError> {
            match text.trim() {
                "" => Ok(None),
                t => t.trim_start_matches('#').parse().map(Some).map_err(|_| {
                    AppError::invalid(field, format!("{field}: {t:?} is not a number"))
                }),
            }
        };
        Ok(MessageFilter {
            batch: number("batch", &self.batch)?.map(BatchId),
            recipient: Some(self.recipient.trim().to_owned()).filter(|r| !r.is_empty()),
            status: code("status", &self.status)?,
            kind: code("kind", &self.kind)?,
            channel: code("channel", &self.channel)?,
            reason: code("reason", &self.reason)?,
            since: day("from", &self.from, false)?,
            until: day("to", &self.to, true)?,
            before: number("before", &self.before)?.map(MessageId),
            limit: Some(PAGE),
        })
    }

    /// The query string of these filters with another cursor.
    fn query_before(&self, before: Option<i64>) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, val) in [
            ("status", &self.status),
            ("reason", &self.reason),
            ("kind", &self.kind),
            ("channel", &self.channel),
            ("from", &self.from),
            ("to", &self.to),
            ("recipient", &self.recipient),
            ("batch", &self.batch),
        ] {
            if !val.trim().is_empty() {
                q.append_pair(k, val.trim());
            }
        }
        if let Some(b) = before {
            q.append_pair("before", &b.to_string());
        }
        q.finish()
    }
}

/// The codes the filter's lists offer.
fn codes() -> minijinja::Value {
    use crate::domain::{Channel, MessageKind, MessageStatus, Reason};
    let names = |all: &[&str]| all.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    context! {
        statuses => names(&MessageStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
        kinds => names(&MessageKind::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
        channels => names(&Channel::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
        reasons => names(&Reason::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
    }
}

async fn list(ctx: Ctx, Query(f): Query<Filters>) -> Response {
    let filter = match f.filter(&ctx.app) {
        Ok(filter) => filter,
        Err(e) => {
            let page = ctx.page(
                "messages.html",
                ctx.t.w("messages"),
                context! { f => v(&f), problem => e.to_string(), messages => (),
                counts => (), total => 0, next => (), first => (), ..codes() },
            );
            return with_status(StatusCode::UNPROCESSABLE_ENTITY, page);
        }
    };
    let read = async {
        let listing = ctx.app.messages(&ctx.actor, &filter).await?;
        let counts = ctx
            .app
            .message_counts(
                &ctx.actor,
                &MessageFilter {
                    before: None,
                    limit: None,
                    ..filter.clone()
                },
            )
            .await?;
        Ok::<_, AppError>((listing.messages, counts))
    };
    let (messages, counts) = match read.await {
        Ok(found) => found,
        Err(e) => return ctx.problem(e),
    };
    // Per status, the reasons summed: the tiles on top.
    let mut per_status: Vec<(String, i64)> = Vec::new();
    for c in &counts {
        let status = c.status.to_string();
        match per_status.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += c.count,
            None => per_status.push((status, c.count)),
        }
    }
    let total: i64 = per_status.iter().map(|(_, n)| n).sum();
    // Each tile narrows the list to its status, the other filters kept.
    let tiles: Vec<(String, i64, String)> = per_status
        .into_iter()
        .map(|(status, n)| {
            let narrowed = Filters {
                status: status.clone(),
                ..f.clone()
            };
            let link = narrowed.query_before(None);
            (status, n, link)
        })
        .collect();
    let next = (messages.len() as i64 == PAGE)
        .then(|| messages.last().map(|m| f.query_before(Some(m.id.0))))
        .flatten();
    let first = (!f.before.trim().is_empty()).then(|| f.query_before(None));
    ctx.page(
        "messages.html",
        ctx.t.w("messages"),
        context! { f => v(&f), messages => v(&messages), counts => v(&tiles),
        reasons_counted => v(&counts), total => total, next => next, first => first,
        problem => (), ..codes() },
    )
}

async fn message(ctx: Ctx, Path(id): Path<String>, Query(q): Query<Done>) -> Response {
    let id = match number_in_path("message", &id) {
        Ok(id) => id,
        Err(e) => return ctx.problem(e),
    };
    let done = ctx.done(q.done.as_deref());
    match ctx.app.diagnose_message(&ctx.actor, MessageId(id)).await {
        Ok(timeline) => ctx.page(
            "message.html",
            &format!("{} {}", ctx.t.w("message"), id),
            context! { m => v(&timeline), done => done },
        ),
        Err(e) => ctx.problem(e),
    }
}

/// `resend` or `cancel` one message.
async fn act(ctx: Ctx, Path((id, action)): Path<(String, String)>) -> Response {
    let id = match number_in_path("message", &id) {
        Ok(id) => id,
        Err(e) => return ctx.problem(e),
    };
    let action = match action.as_str() {
        "resend" => MessageAction::Resend,
        "cancel" => MessageAction::Cancel,
        _ => {
            return ctx.problem(AppError::NotFound {
                what: "action",
                id: action,
            });
        }
    };
    let word = match action {
        MessageAction::Resend => "resent",
        MessageAction::Cancel => "cancelled",
    };
    match ctx
        .app
        .act_on_message(&ctx.actor, MessageId(id), action)
        .await
    {
        Ok(_) => done_at(&format!("/console/messages/{id}"), word),
        Err(e) => ctx.problem(e),
    }
}
