//! The calendar: the weekly send window, the days off, adding a day or a range
//! (with how many waiting messages it would hold back, shown before saving) and
//! removing one.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{NaiveDate, Weekday};
use minijinja::context;
use serde::Deserialize;

use super::{Ctx, done_at, number_in_path, render, v, with_status};
use crate::app::{App, AppError};

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/console/calendar", get(calendar))
        .route("/console/calendar/held", get(held))
        .route("/console/calendar/add", post(add))
        .route("/console/calendar/{id}/remove", post(remove))
}

#[derive(Deserialize, Default)]
struct CalendarQuery {
    done: Option<String>,
    held: Option<String>,
    all: Option<String>,
}

async fn calendar(ctx: Ctx, Query(q): Query<CalendarQuery>) -> Response {
    let done = ctx.done(q.done.as_deref());
    // Only a number the add put there is shown; anything else is ignored.
    let held = q.held.and_then(|h| h.parse().ok());
    show(&ctx, done, held, q.all.is_some(), None, StatusCode::OK).await
}

async fn show(
    ctx: &Ctx,
    done: Option<&str>,
    held: Option<i64>,
    all: bool,
    problem: Option<String>,
    status: StatusCode,
) -> Response {
    let days = match ctx.app.holidays(&ctx.actor, all).await {
        Ok(days) => days,
        Err(e) => return ctx.problem(e),
    };
    let window = &ctx.app.settings().send_window;
    let week: Vec<(String, String)> = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ]
    .into_iter()
    .map(|d| {
        (
            format!("day_{}", d.to_string().to_lowercase()),
            window.describe_day(d),
        )
    })
    .collect();
    with_status(
        status,
        ctx.page(
            "calendar.html",
            ctx.t.w("calendar"),
            context! { days => v(&days), week => week, done => done, held_now => held,
            all => all, problem => problem },
        ),
    )
}

// Every field may be missing: the handler (or `App`) says which one is wanted.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Range {
    first_day: String,
    last_day: String,
}

impl Range {
    /// The two days, the last one defaulting to the first.
    fn days(&self) -> Result<(NaiveDate, NaiveDate), AppError> {
        let day = |field: &'static str, text: &str| {
            NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
                AppError::invalid(
                    field,
                    format!("{field}: {:?} is not a date (YYYY-MM-DD)", text.trim()),
                )
            })
        };
        let first = day("first_day", &self.first_day)?;
        let last = if self.last_day.trim().is_empty() {
            first
        } else {
            day("last_day", &self.last_day)?
        };
        Ok((first, last))
    }
}

/// While the days are being chosen: how many waiting messages they would hold.
async fn held(ctx: Ctx, Query(range): Query<Range>) -> Response {
    let count = match range.days() {
        Ok((first, last)) if first <= last => {
            ctx.app.held_by_days_off(&ctx.actor, first, last).await.ok()
        }
        _ => None,
    };
    render("held.html", context! { t => v(ctx.t), held => count })
}

// Every field may be missing: the handler (or `App`) says which one is wanted.
#[derive(Deserialize, Default)]
#[serde(default)]
struct AddForm {
    name: String,
    #[serde(flatten)]
    range: Range,
}

async fn add(ctx: Ctx, Form(form): Form<AddForm>) -> Response {
    let added = async {
        let (first, last) = form.range.days()?;
        ctx.app
            .add_holiday(&ctx.actor, form.name.trim(), first, last)
            .await?;
        ctx.app.held_by_days_off(&ctx.actor, first, last).await
    };
    match added.await {
        Ok(held) => done_at(&format!("/console/calendar?held={held}"), "day_off_added"),
        Err(e @ AppError::Invalid { .. }) => {
            show(
                &ctx,
                None,
                None,
                false,
                Some(e.to_string()),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => ctx.problem(e),
    }
}

async fn remove(ctx: Ctx, Path(id): Path<String>) -> Response {
    let id = match number_in_path("holiday", &id) {
        Ok(id) => id,
        Err(e) => return ctx.problem(e),
    };
    match ctx.app.remove_holiday(&ctx.actor, id).await {
        Ok(()) => done_at("/console/calendar", "day_off_removed"),
        Err(e) => ctx.problem(e),
    }
}
