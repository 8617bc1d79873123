//! The web console for secretaries and owners: pages rendered on the server from
//! templates compiled into the binary, signed in with a password, on a session kept
//! in Herald's database. Every page is one or more `App` calls as the signed-in
//! operator, with the same permission checks as the CLI and the API.
//!
//! Protection: the session cookie is `HttpOnly; SameSite=Strict` (plus `Secure` and
//! the `__Host-` prefix when `http.public_url` is https), its id changes at sign-in,
//! it ends after [`IDLE`] without use and [`LONGEST`] after sign-in; every request
//! that changes something passes tower-http's `CsrfLayer` (Origin and
//! Sec-Fetch-Site); sign-in attempts are throttled per login and per address.

mod words;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock};

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use minijinja::{Environment, Value, context};
use secrecy::SecretString;
use serde::Deserialize;
use tower_sessions::cookie::SameSite;
use tower_sessions::cookie::time::Duration as CookieDuration;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use super::ConsoleSessions;
use crate::app::{Actor, App, AppError};
use crate::config::HttpSettings;
use crate::diagnose::Lookup;
use crate::domain::access::{Operator, Permission};
use crate::domain::{BatchId, BatchStatus};
use crate::store::Decision;
use words::Words;

/// A session unused this long ends (the secretary walked away from the desk).
const IDLE: CookieDuration = CookieDuration::minutes(30);

/// A session ends this long after sign-in however busy it is, so a stolen cookie
/// does not live for ever.
const LONGEST: chrono::Duration = chrono::Duration::hours(12);

/// Session keys.
const OPERATOR: &str = "operator";
const SIGNED_IN_AT: &str = "signed_in_at";

/// The templates, compiled into the binary and parsed once.
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("sign_in.html", include_str!("templates/sign_in.html")),
        ("start.html", include_str!("templates/start.html")),
        ("outbox.html", include_str!("templates/outbox.html")),
        ("batch.html", include_str!("templates/batch.html")),
        ("problem.html", include_str!("templates/problem.html")),
        ("why.html", include_str!("templates/why.html")),
    ] {
        env.add_template(name, source)
            .expect("the console's templates parse (a test renders each)");
    }
    env
});

/// Sign-in attempts allowed per login and per address before they wait.
struct Throttle {
    per_login: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
}

impl Throttle {
    fn new() -> Throttle {
        // Five tries a login, then one more a minute: a person who mistyped gets
        // in; a script guessing one account gets nowhere. An address (a school's
        // whole network may share one) gets twenty, then one every ten seconds.
        let login = Quota::per_minute(NonZeroU32::MIN).allow_burst(NonZeroU32::new(5).unwrap());
        let address = Quota::per_minute(NonZeroU32::new(6).unwrap())
            .allow_burst(NonZeroU32::new(20).unwrap());
        Throttle {
            per_login: RateLimiter::keyed(login),
            per_address: RateLimiter::keyed(address),
        }
    }

    /// Whether one more attempt for `login` from `address` may be checked.
    fn allows(&self, login: &str, address: IpAddr) -> bool {
        let by_address = self.per_address.check_key(&address).is_ok();
        let by_login = self.per_login.check_key(&login.to_lowercase()).is_ok();
        by_address && by_login
    }
}

/// The console's routes under `/console`, with their session and CSRF layers.
pub(super) fn routes(app: &App, settings: &HttpSettings) -> Router<App> {
    let https = settings
        .public_url
        .as_ref()
        .is_some_and(|u| u.scheme() == "https");
    // `__Host-` makes browsers refuse the cookie unless it is Secure, for this host
    // only and the whole path: no subdomain can plant or read it.
    let name = if https {
        "__Host-herald_session"
    } else {
        "herald_session"
    };
    let sessions = SessionManagerLayer::new(ConsoleSessions::new(app.clone()))
        .with_name(name)
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_secure(https)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(IDLE));
    let mut csrf = tower_http::csrf::CsrfLayer::new();
    if let Some(origin) = settings
        .public_url
        .as_ref()
        .map(|u| u.origin().ascii_serialization())
        && let Ok(trusting) = tower_http::csrf::CsrfLayer::new().add_trusted_origin(&origin)
    {
        csrf = trusting;
    }
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(start))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/outbox", get(outbox))
        .route("/console/why", get(why))
        .route("/console/outbox/{id}", get(batch_page))
        .route("/console/outbox/{id}/{decision}", post(decision))
        .route("/console/static/console.css", get(stylesheet))
        .layer(Extension(Arc::new(Throttle::new())))
        .layer(csrf)
        .layer(sessions)
}

/// A value for a template from anything serialisable.
fn v<T: serde::Serialize>(value: &T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

/// The page's language: Polish when the browser prefers it, English otherwise.
fn words(headers: &HeaderMap) -> &'static Words {
    let polish = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|first| first.trim().to_ascii_lowercase().starts_with("pl"));
    if polish { &words::PL } else { &words::EN }
}

/// A page from its template, or a plain 500 when rendering fails (the log says why).
fn render(name: &str, ctx: minijinja::Value) -> Response {
    match TEMPLATES.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, template = name, "a console page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be shown",
            )
                .into_response()
        }
    }
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("static/console.css"),
    )
}

/// The operator of a live session; anyone else is sent to sign in.
pub struct SignedIn(pub Operator);

impl FromRequestParts<App> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<SignedIn, Response> {
        let to_sign_in = || Redirect::to("/console/sign-in").into_response();
        let session = Session::from_request_parts(parts, app)
            .await
            .map_err(|_| to_sign_in())?;
        let login: Option<String> = session.get(OPERATOR).await.ok().flatten();
        let since: Option<i64> = session.get(SIGNED_IN_AT).await.ok().flatten();
        let (Some(login), Some(since)) = (login, since) else {
            return Err(to_sign_in());
        };
        if app.now().timestamp() - since > LONGEST.num_seconds() {
            let _ = session.flush().await;
            return Err(to_sign_in());
        }
        // Read at every request: a removed operator or a changed role counts now.
        match app.store().operator(&login).await {
            Ok(Some(op)) => Ok(SignedIn(op)),
            _ => {
                let _ = session.flush().await;
                Err(to_sign_in())
            }
        }
    }
}

async fn sign_in_page(headers: HeaderMap) -> Response {
    let t = words(&headers);
    render(
        "sign_in.html",
        context! { lang => t.lang, title => t.sign_in, t => v(t), login => "" },
    )
}

#[derive(Deserialize)]
struct SignInForm {
    login: String,
    password: String,
}

async fn sign_in(
    State(app): State<App>,
    Extension(throttle): Extension<Arc<Throttle>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let t = words(&headers);
    let login = form.login.trim().to_owned();
    let refuse = |status: StatusCode, problem: &str| {
        let page = render(
            "sign_in.html",
            context! { lang => t.lang, title => t.sign_in, t => v(t), login => &login,
            problem => problem },
        );
        (status, page).into_response()
    };
    if !throttle.allows(&login, peer.ip()) {
        tracing::warn!(login, address = %peer.ip(), "sign-in attempts throttled");
        return refuse(StatusCode::TOO_MANY_REQUESTS, t.throttled);
    }
    let password = SecretString::from(form.password);
    match app.check_password(&login, &password).await {
        Ok(op) => {
            // A new id at sign-in: an id planted before it is worth nothing after.
            if let Err(e) = session.cycle_id().await {
                tracing::error!(error = %e, "the session could not be renewed");
                return refuse(StatusCode::INTERNAL_SERVER_ERROR, t.failed);
            }
            let stored = async {
                session.insert(OPERATOR, &op.login).await?;
                session.insert(SIGNED_IN_AT, app.now().timestamp()).await
            };
            if let Err(e) = stored.await {
                tracing::error!(error = %e, "the session could not be stored");
                return refuse(StatusCode::INTERNAL_SERVER_ERROR, t.failed);
            }
            tracing::info!(login = op.login, "signed in to the console");
            Redirect::to("/console/").into_response()
        }
        Err(AppError::Unauthenticated) => {
            tracing::info!(login, address = %peer.ip(), "a sign-in was refused");
            refuse(StatusCode::UNAUTHORIZED, t.wrong)
        }
        Err(e) => {
            tracing::error!(error = %e, "a sign-in failed");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, t.failed)
        }
    }
}

async fn sign_out(session: Session) -> Response {
    let _ = session.flush().await;
    Redirect::to("/console/sign-in").into_response()
}

/// A page saying why the operator's request was not done: 403 for a permission, 404
/// for what does not exist, 500 (and the log) for Herald's own failures.
fn problem(t: &'static Words, op: &Operator, e: AppError) -> Response {
    let status = match &e {
        AppError::Forbidden { .. } | AppError::OutsideGroups { .. } => StatusCode::FORBIDDEN,
        AppError::NotFound { .. } => StatusCode::NOT_FOUND,
        AppError::Conflict(_) => StatusCode::CONFLICT,
        AppError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        AppError::Unauthenticated | AppError::UnknownOperator(_) => StatusCode::UNAUTHORIZED,
        AppError::Store(_) | AppError::Internal(_) => {
            tracing::error!(error = %e, "a console request failed");
            let page = render(
                "problem.html",
                context! { lang => t.lang, title => t.failed, t => v(t), operator => v(op),
                problem => t.failed },
            );
            return (StatusCode::INTERNAL_SERVER_ERROR, page).into_response();
        }
    };
    let page = render(
        "problem.html",
        context! { lang => t.lang, title => t.start, t => v(t), operator => v(op),
        problem => e.to_string() },
    );
    (status, page).into_response()
}

/// The batches waiting for a decision.
async fn outbox(State(app): State<App>, SignedIn(op): SignedIn, headers: HeaderMap) -> Response {
    let t = words(&headers);
    let actor = Actor::operator(op.login.clone());
    match app
        .batches(&actor, Some(BatchStatus::AwaitingApproval))
        .await
    {
        Ok(batches) => render(
            "outbox.html",
            context! { lang => t.lang, title => t.outbox, t => v(t), operator => v(&op),
            batches => v(&batches), hold => v(&app.hold(&actor).await.ok().flatten()) },
        ),
        Err(e) => problem(t, &op, e),
    }
}

#[derive(Deserialize)]
struct Done {
    done: Option<String>,
}

/// The approver's view of one batch, with approve and reject bound to its version.
async fn batch_page(
    State(app): State<App>,
    SignedIn(op): SignedIn,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<i64>,
    axum::extract::Query(q): axum::extract::Query<Done>,
) -> Response {
    let t = words(&headers);
    let done = match q.done.as_deref() {
        Some("approved") => Some(t.approved),
        Some("rejected") => Some(t.rejected),
        _ => None,
    };
    show_batch(&app, &op, t, BatchId(id), done, None, StatusCode::OK).await
}

async fn show_batch(
    app: &App,
    op: &Operator,
    t: &'static Words,
    id: BatchId,
    done: Option<&str>,
    problem_text: Option<&str>,
    status: StatusCode,
) -> Response {
    let actor = Actor::operator(op.login.clone());
    match app.batch_view(&actor, id).await {
        Ok(view) => {
            let page = render(
                "batch.html",
                context! { lang => t.lang, title => t.batch, t => v(t), operator => v(op),
                view => v(&view), hold => v(&view.hold), done => done,
                problem => problem_text,
                may_approve => op.may(Permission::Approve) },
            );
            (status, page).into_response()
        }
        Err(e) => problem(t, op, e),
    }
}

#[derive(Deserialize)]
struct DecisionForm {
    seen: String,
    reason: Option<String>,
}

/// `approve` or `reject`, on the version the approver saw.
async fn decision(
    State(app): State<App>,
    SignedIn(op): SignedIn,
    headers: HeaderMap,
    axum::extract::Path((id, what)): axum::extract::Path<(i64, String)>,
    Form(form): Form<DecisionForm>,
) -> Response {
    let t = words(&headers);
    let decision = match what.as_str() {
        "approve" => Decision::Approve,
        "reject" => Decision::Reject(form.reason.unwrap_or_default()),
        _ => {
            let e = AppError::NotFound {
                what: "decision",
                id: what,
            };
            return problem(t, &op, e);
        }
    };
    decide(&app, &op, t, BatchId(id), decision, &form.seen).await
}

/// Takes the decision on the version the approver saw, then shows the batch again
/// (Post/Redirect/Get); a batch that changed since is shown afresh with why.
async fn decide(
    app: &App,
    op: &Operator,
    t: &'static Words,
    id: BatchId,
    decision: Decision,
    seen: &str,
) -> Response {
    let actor = Actor::operator(op.login.clone());
    let word = match decision {
        Decision::Approve => "approved",
        Decision::Reject(_) => "rejected",
    };
    match app.decide(&actor, id, &[], decision, Some(seen)).await {
        Ok(_) => Redirect::to(&format!("/console/outbox/{}?done={word}", id.0)).into_response(),
        Err(AppError::Conflict(why)) => {
            let text = format!("{} {why}", t.stale);
            show_batch(app, op, t, id, None, Some(&text), StatusCode::CONFLICT).await
        }
        Err(e) => problem(t, op, e),
    }
}

#[derive(Deserialize)]
struct Search {
    q: Option<String>,
}

/// "Why didn't they get it?": find a person by name, email, phone or id, and show
/// every check with its verdict and what to fix, and their recent messages.
async fn why(
    State(app): State<App>,
    SignedIn(op): SignedIn,
    headers: HeaderMap,
    axum::extract::Query(search): axum::extract::Query<Search>,
) -> Response {
    let t = words(&headers);
    let query = search.q.unwrap_or_default().trim().to_owned();
    let base = context! { lang => t.lang, title => t.why, t => v(t), operator => v(&op),
    query => &query };
    if query.is_empty() {
        return render("why.html", base);
    }
    let actor = Actor::operator(op.login.clone());
    let found = match app.diagnose_recipient(&actor, &query).await {
        Ok(found) => found,
        Err(e) => return problem(t, &op, e),
    };
    let more = match found {
        Lookup::None { .. } => context! { nobody => true },
        Lookup::Ambiguous { matches, .. } => context! { matches => v(&matches) },
        Lookup::One(d) => context! { d => v(&d) },
    };
    render("why.html", context! { ..base, ..more })
}

/// The start page: what waits for approval, the wallet, the hold switch.
async fn start(State(app): State<App>, SignedIn(op): SignedIn, headers: HeaderMap) -> Response {
    let t = words(&headers);
    let actor = Actor::operator(op.login.clone());
    let page = async {
        let awaiting = app
            .batches(&actor, Some(BatchStatus::AwaitingApproval))
            .await?;
        let wallet = app.wallet_view(&actor, 0).await?;
        let hold = app.hold(&actor).await?;
        Ok::<_, AppError>(context! {
            lang => t.lang, title => t.start, t => v(t), operator => v(&op),
            awaiting => v(&awaiting),
            wallet => v(&wallet), hold => v(&hold),
        })
    };
    match page.await {
        Ok(ctx) => render("start.html", ctx),
        Err(e @ AppError::Forbidden { .. }) => {
            (StatusCode::FORBIDDEN, e.to_string()).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "the start page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, t.failed).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_in_both_languages() {
        for t in [&words::PL, &words::EN] {
            let sign_in = TEMPLATES
                .get_template("sign_in.html")
                .unwrap()
                .render(
                    context! { lang => t.lang, title => t.sign_in, t => v(t), login => "<anna>" },
                )
                .unwrap();
            assert!(sign_in.contains(t.password), "{sign_in}");
            assert!(sign_in.contains("&lt;anna&gt;"), "escaped: {sign_in}");
        }
    }

    #[test]
    fn the_first_tries_pass_and_then_the_login_waits() {
        let throttle = Throttle::new();
        let here: IpAddr = "127.0.0.1".parse().unwrap();
        let tries = (0..7).filter(|_| throttle.allows("Anna", here)).count();
        assert_eq!(tries, 5);
        assert!(
            throttle.allows("tomek", here),
            "another login is not held up"
        );
    }
}
