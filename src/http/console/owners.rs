//! What owners manage: the operators and their roles, the hold switch that pauses
//! all dispatch, and the audit log of every change with its filters.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::NaiveDate;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{Ctx, Done, done_at, v, with_status};
use crate::app::{App, AppError, OperatorRequest};
use crate::domain::audit::AuditAction;
use crate::store::AuditFilter;

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/console/operators", get(operators).post(add_operator))
        .route("/console/operators/{login}/role", post(set_role))
        .route("/console/hold", post(hold))
        .route("/console/audit", get(audit))
}

async fn operators(ctx: Ctx, Query(q): Query<Done>) -> Response {
    let done = ctx.done(q.done.as_deref());
    show(&ctx, done, None, StatusCode::OK).await
}

async fn show(
    ctx: &Ctx,
    done: Option<&str>,
    problem: Option<String>,
    status: StatusCode,
) -> Response {
    match ctx.app.operators(&ctx.actor).await {
        Ok((operators, roles)) => with_status(
            status,
            ctx.page(
                "operators.html",
                ctx.t.w("operators"),
                context! { operators => v(&operators), roles => v(&roles), done => done,
                problem => problem },
            ),
        ),
        Err(e) => ctx.problem(e),
    }
}

// Every field may be missing: the handler (or `App`) says which one is wanted.
#[derive(Deserialize, Default)]
#[serde(default)]
struct NewOperator {
    login: String,
    name: String,
    role: String,
    teacher: String,
}

async fn add_operator(ctx: Ctx, Form(form): Form<NewOperator>) -> Response {
    let some = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let request = OperatorRequest {
        login: form.login.trim().to_owned(),
        name: some(&form.name),
        role: form.role.trim().to_owned(),
        teacher: some(&form.teacher),
    };
    match ctx.app.add_operator(Some(&ctx.actor), &request).await {
        Ok(_) => done_at("/console/operators", "operator_added"),
        Err(e @ (AppError::Invalid { .. } | AppError::Conflict(_))) => {
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

// Every field may be missing: the handler (or `App`) says which one is wanted.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RoleForm {
    role: String,
}

async fn set_role(ctx: Ctx, Path(login): Path<String>, Form(form): Form<RoleForm>) -> Response {
    match ctx.app.set_role(&ctx.actor, &login, form.role.trim()).await {
        Ok(_) => done_at("/console/operators", "role_changed"),
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

// Every field may be missing: the handler (or `App`) says which one is wanted.
#[derive(Deserialize, Default)]
#[serde(default)]
struct HoldForm {
    /// `on` or `off`.
    switch: String,
    reason: String,
}

/// Pauses or resumes all dispatch; back to the start page, where the switch is.
async fn hold(ctx: Ctx, Form(form): Form<HoldForm>) -> Response {
    let reason = match form.switch.as_str() {
        "on" => Some(form.reason.as_str()),
        "off" => None,
        other => {
            let e = AppError::invalid("switch", format!("switch: {other:?} is not on or off"));
            return ctx.problem(e);
        }
    };
    match ctx.app.set_hold(&ctx.actor, reason).await {
        Ok(_) => done_at(
            "/console/",
            if reason.is_some() {
                "hold_on"
            } else {
                "hold_off"
            },
        ),
        Err(e) => ctx.problem(e),
    }
}

/// The audit log's filters as the form sends them.
#[derive(Deserialize, Serialize, Default)]
#[serde(default)]
struct AuditQuery {
    actor: String,
    action: String,
    since: String,
}

async fn audit(ctx: Ctx, Query(q): Query<AuditQuery>) -> Response {
    let filter = async {
        let action = match q.action.trim() {
            "" => None,
            a => Some(
                a.parse::<AuditAction>()
                    .map_err(|e| AppError::invalid("action", e.to_string()))?,
            ),
        };
        let since = match q.since.trim() {
            "" => None,
            d => {
                let day = NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
                    AppError::invalid("since", format!("since: {d:?} is not a date (YYYY-MM-DD)"))
                })?;
                let tz = ctx.app.settings().school.time_zone;
                Some(crate::domain::window::start_of_day(tz, day))
            }
        };
        Ok::<_, AppError>(AuditFilter {
            actor: Some(q.actor.trim().to_owned()).filter(|a| !a.is_empty()),
            action,
            since,
            limit: Some(200),
        })
    };
    let actions: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
    let (entries, problem, status) = match filter.await {
        Ok(filter) => match ctx.app.audit_log(&ctx.actor, &filter).await {
            Ok(entries) => (entries, None, StatusCode::OK),
            Err(e) => return ctx.problem(e),
        },
        Err(e) => (
            Vec::new(),
            Some(e.to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    };
    with_status(
        status,
        ctx.page(
            "audit.html",
            ctx.t.w("audit"),
            context! { entries => v(&entries), q => v(&q), actions => actions,
            problem => problem },
        ),
    )
}
