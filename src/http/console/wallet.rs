//! The SMS wallet: balance, reserved points, the low-balance state, the 24-hour
//! need, the ledger, and a top-up for those allowed to make one.

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use minijinja::context;
use serde::Deserialize;

use super::{Ctx, Done, done_at, v, with_status};
use crate::app::{App, AppError};

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/console/wallet", get(wallet))
        .route("/console/wallet/top-up", post(top_up))
}

async fn wallet(ctx: Ctx, Query(q): Query<Done>) -> Response {
    let done = ctx.done(q.done.as_deref());
    show(&ctx, done, None, StatusCode::OK).await
}

async fn show(
    ctx: &Ctx,
    done: Option<&str>,
    problem: Option<String>,
    status: StatusCode,
) -> Response {
    match ctx.app.wallet_view(&ctx.actor, 100).await {
        Ok(w) => with_status(
            status,
            ctx.page(
                "wallet.html",
                ctx.t.w("wallet"),
                context! { w => v(&w), done => done, problem => problem },
            ),
        ),
        Err(e) => ctx.problem(e),
    }
}

// Every field may be missing: the handler (or `App`) says which one is wanted.
#[derive(Deserialize, Default)]
#[serde(default)]
struct TopUp {
    points: String,
    note: String,
}

async fn top_up(ctx: Ctx, Form(form): Form<TopUp>) -> Response {
    let points = match form.points.trim().parse::<i64>() {
        Ok(p) => p,
        Err(_) => {
            let e = AppError::invalid(
                "points",
                format!(
                    "points: {:?} is not a whole number of points",
                    form.points.trim()
                ),
            );
            return show(
                &ctx,
                None,
                Some(e.to_string()),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    match ctx.app.top_up(&ctx.actor, points, form.note.trim()).await {
        Ok(_) => done_at("/console/wallet", "topped_up"),
        Err(e @ AppError::Invalid { .. }) => {
            show(
                &ctx,
                None,
                Some(e.to_string()),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => ctx.problem(e),
    }
}
