//! "Why didn't they get it?": find a person by name, email, phone or id, and show
//! every check with its verdict and what to fix, and their recent messages with
//! advice.

use axum::Router;
use axum::extract::Query;
use axum::response::Response;
use axum::routing::get;
use minijinja::context;
use serde::Deserialize;

use super::{Ctx, v};
use crate::app::App;
use crate::diagnose::Lookup;

pub(super) fn routes() -> Router<App> {
    Router::new().route("/console/why", get(why))
}

#[derive(Deserialize)]
struct Search {
    q: Option<String>,
}

async fn why(ctx: Ctx, Query(search): Query<Search>) -> Response {
    let query = search.q.unwrap_or_default().trim().to_owned();
    let title = ctx.t.w("why");
    if query.is_empty() {
        return ctx.page("why.html", title, context! { query => "" });
    }
    let found = match ctx.app.diagnose_recipient(&ctx.actor, &query).await {
        Ok(found) => found,
        Err(e) => return ctx.problem(e),
    };
    let more = match found {
        Lookup::None { .. } => context! { nobody => true },
        Lookup::Ambiguous { matches, .. } => context! { matches => v(&matches) },
        Lookup::One(d) => context! { d => v(&d) },
    };
    ctx.page("why.html", title, context! { query => &query, ..more })
}
