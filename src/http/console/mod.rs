//! The web console for secretaries and owners: pages rendered on the server from
//! templates compiled into the binary, signed in with a password, on a session kept
//! in Herald's database. Every page is one or more `App` calls as the signed-in
//! operator, with the same permission checks as the CLI and the API; the console
//! only translates forms into those calls and their answers into pages.
//!
//! Protection: the session cookie is `HttpOnly; SameSite=Strict` (plus `Secure` and
//! the `__Host-` prefix when `http.public_url` is https), its id changes at sign-in,
//! it ends after `http.console_idle` without use and `http.console_longest` after
//! sign-in;
//! every request that changes something passes tower-http's `CsrfLayer` (Origin and
//! Sec-Fetch-Site); sign-in attempts are throttled per login and per address.
//!
//! One module per area: [`outbox`] (batches and decisions), [`compose`],
//! [`messages`] (Messages – All), [`why`] (diagnosis), [`wallet`], [`calendar`],
//! [`templates`], [`owners`] (operators, the hold switch, the audit log).

mod calendar;
mod compose;
mod messages;
mod outbox;
mod owners;
mod templates;
mod wallet;
mod why;
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
use minijinja::value::merge_maps;
use minijinja::{Environment, UndefinedBehavior, Value, context};
use secrecy::SecretString;
use serde::Deserialize;
use tower_sessions::cookie::SameSite;
use tower_sessions::cookie::time::Duration as CookieDuration;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use super::ConsoleSessions;
use crate::app::{Actor, App, AppError};
use crate::config::HttpSettings;
use crate::domain::access::{Operator, Permission};
use crate::store::Hold;
use words::Words;

/// Session keys.
const OPERATOR: &str = "operator";
const SIGNED_IN_AT: &str = "signed_in_at";

/// The templates, compiled into the binary and parsed once.
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // A word or a value a template names but the page did not give is an error
    // (and a failing test), not a blank on a secretary's screen.
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.add_filter("local", local_time);
    env.add_filter("segment", |text: String| segment(&text));
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("sign_in.html", include_str!("templates/sign_in.html")),
        ("start.html", include_str!("templates/start.html")),
        ("outbox.html", include_str!("templates/outbox.html")),
        ("batch.html", include_str!("templates/batch.html")),
        ("problem.html", include_str!("templates/problem.html")),
        ("why.html", include_str!("templates/why.html")),
        ("compose.html", include_str!("templates/compose.html")),
        ("counter.html", include_str!("templates/counter.html")),
        ("people.html", include_str!("templates/people.html")),
        ("messages.html", include_str!("templates/messages.html")),
        ("message.html", include_str!("templates/message.html")),
        ("wallet.html", include_str!("templates/wallet.html")),
        ("calendar.html", include_str!("templates/calendar.html")),
        ("held.html", include_str!("templates/held.html")),
        ("templates.html", include_str!("templates/templates.html")),
        ("template.html", include_str!("templates/template.html")),
        (
            "template_form.html",
            include_str!("templates/template_form.html"),
        ),
        ("operators.html", include_str!("templates/operators.html")),
        ("audit.html", include_str!("templates/audit.html")),
    ] {
        env.add_template(name, source)
            .expect("the console's templates parse (a test renders each)");
    }
    env
});

/// `{{ when | local(tz) }}`: an RFC 3339 instant as the school's local
/// `YYYY-MM-DD HH:MM`; anything else unchanged.
fn local_time(value: String, tz: String) -> String {
    match (
        chrono::DateTime::parse_from_rfc3339(&value),
        tz.parse::<chrono_tz::Tz>(),
    ) {
        (Ok(at), Ok(tz)) => at.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string(),
        _ => value,
    }
}

/// `text` as one segment of a path: everything but letters, digits and `-._~`
/// percent-encoded (a `/` or a space in a template's name stays inside its segment).
fn segment(text: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

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

/// How long a session lives: idle, and at most after sign-in.
#[derive(Clone, Copy)]
struct Lifetimes {
    longest: chrono::Duration,
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
    let idle = CookieDuration::seconds(settings.console_idle.as_secs() as i64);
    let sessions = SessionManagerLayer::new(ConsoleSessions::new(app.clone()))
        .with_name(name)
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_secure(https)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(idle));
    let lifetimes = Lifetimes {
        longest: chrono::Duration::from_std(settings.console_longest)
            .unwrap_or(chrono::Duration::hours(12)),
    };
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
        .route("/console/language", post(language))
        .route("/console/static/console.css", get(stylesheet))
        .route("/console/static/htmx.min.js", get(htmx))
        .merge(outbox::routes())
        .merge(compose::routes())
        .merge(messages::routes())
        .merge(why::routes())
        .merge(wallet::routes())
        .merge(calendar::routes())
        .merge(templates::routes())
        .merge(owners::routes())
        .layer(Extension(Arc::new(Throttle::new())))
        .layer(Extension(lifetimes))
        .layer(csrf)
        .layer(sessions)
}

/// A value for a template from anything serialisable.
fn v<T: serde::Serialize>(value: &T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

/// The page's language: the one the operator chose in the console, else Polish
/// when the browser prefers it, else English.
fn words(headers: &HeaderMap, chosen: Option<&str>) -> &'static Words {
    let polish = match chosen {
        Some(lang) => lang == "pl",
        None => headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|first| first.trim().to_ascii_lowercase().starts_with("pl")),
    };
    if polish { &words::PL } else { &words::EN }
}

/// A page from its template, or a plain 500 when rendering fails (the log says why).
fn render(name: &str, ctx: Value) -> Response {
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
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("static/console.css"),
    )
}

/// htmx 2, vendored from npm (`htmx.org`), served from the binary: no CDN, nothing
/// fetched from elsewhere at run time.
async fn htmx() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        include_str!("static/htmx.min.js"),
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
        let longest = parts
            .extensions
            .get::<Lifetimes>()
            .map_or(chrono::Duration::hours(12), |l| l.longest);
        let login: Option<String> = session.get(OPERATOR).await.ok().flatten();
        let since: Option<i64> = session.get(SIGNED_IN_AT).await.ok().flatten();
        let (Some(login), Some(since)) = (login, since) else {
            return Err(to_sign_in());
        };
        if app.now().timestamp() - since > longest.num_seconds() {
            let _ = session.flush().await;
            return Err(to_sign_in());
        }
        // Read at every request: a removed operator or a changed role counts now,
        // and a password set since sign-in ends the session (a lost laptop's
        // session ends with the new password).
        match app.store().operator(&login).await {
            Ok(Some(op))
                if op
                    .password_set_at
                    .is_none_or(|set| set.timestamp() <= since) =>
            {
                Ok(SignedIn(op))
            }
            _ => {
                let _ = session.flush().await;
                Err(to_sign_in())
            }
        }
    }
}

/// What every signed-in page starts from: the operator, their words, the hold
/// switch (its banner shows on every page while it is on).
pub(super) struct Ctx {
    app: App,
    op: Operator,
    actor: Actor,
    t: &'static Words,
    hold: Option<Hold>,
    /// The page's path (and query), to come back to after switching language.
    here: String,
}

impl FromRequestParts<App> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Ctx, Response> {
        let SignedIn(op) = SignedIn::from_request_parts(parts, app).await?;
        // The operator's own choice, kept with them; else this browser's.
        let t = words(&parts.headers, op.locale.as_deref());
        let actor = Actor::operator(op.login.clone());
        let hold = app.hold(&actor).await.ok().flatten();
        // After a POST the page to come back to is the one it came from.
        let here = match parts.method {
            axum::http::Method::GET => parts
                .uri
                .path_and_query()
                .map_or("/console/", |p| p.as_str())
                .to_owned(),
            _ => "/console/".to_owned(),
        };
        Ok(Ctx {
            app: app.clone(),
            op,
            actor,
            t,
            hold,
            here,
        })
    }
}

impl Ctx {
    /// Whether the operator holds `p` (to show or hide what they cannot use; `App`
    /// checks again whatever they send).
    fn may(&self, p: Permission) -> bool {
        self.op.may(p)
    }

    /// What every page's frame needs, with `title`.
    fn base(&self, title: &str) -> Value {
        let may = |p: Permission| self.op.may(p);
        context! {
            lang => self.t.lang, title => title, t => v(self.t), operator => v(&self.op),
            here => &self.here, section => self.here.split(['?', '/']).nth(2).unwrap_or(""),
            hold => v(&self.hold), tz => self.app.settings().school.time_zone.name(),
            may => context! {
                send => may(Permission::Send),
                approve => may(Permission::Approve),
                top_up => may(Permission::TopUp),
                settings => may(Permission::ManageSettings),
                operators => may(Permission::ManageOperators),
            },
        }
    }

    /// The page `name` titled `title`, with `more` beside the frame's values.
    fn page(&self, name: &str, title: &str, more: Value) -> Response {
        render(name, merge_maps([more, self.base(title)]))
    }

    /// A notice after a change (Post/Redirect/Get): only words the console knows,
    /// so a link cannot make a page say anything else.
    fn done(&self, key: Option<&str>) -> Option<&'static str> {
        key.and_then(|k| self.t.get(&format!("done_{k}")))
    }

    /// A page saying why the request was not done: 403 for a permission, 404 for
    /// what does not exist, 409 for a change in between, 422 for input, 500 (and
    /// the log) for Herald's own failures.
    fn problem(&self, e: AppError) -> Response {
        let t = self.t;
        let (status, text) = match &e {
            AppError::Forbidden { .. } | AppError::OutsideGroups { .. } => {
                (StatusCode::FORBIDDEN, e.to_string())
            }
            AppError::NotFound { .. } => (StatusCode::NOT_FOUND, e.to_string()),
            AppError::Conflict(_) => (StatusCode::CONFLICT, e.to_string()),
            AppError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            AppError::Unauthenticated | AppError::UnknownOperator(_) => {
                (StatusCode::UNAUTHORIZED, e.to_string())
            }
            AppError::Store(_) | AppError::Internal(_) => {
                tracing::error!(error = %e, "a console request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, t.w("failed").to_owned())
            }
        };
        let page = self.page(
            "problem.html",
            t.w("not_done"),
            context! { problem => text },
        );
        (status, page).into_response()
    }
}

/// The number a path names (a batch, a message, a day off), or "no such `what`".
fn number_in_path(what: &'static str, text: &str) -> Result<i64, AppError> {
    text.parse().map_err(|_| AppError::NotFound {
        what,
        id: text.to_owned(),
    })
}

/// Status `status` on a rendered page.
fn with_status(status: StatusCode, page: Response) -> Response {
    (status, page).into_response()
}

/// A redirect after a change, to `to` with `?done=word` (Post/Redirect/Get).
fn done_at(to: &str, word: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{sep}done={word}")).into_response()
}

/// `?done=` on a page after a change.
#[derive(Deserialize, Default)]
struct Done {
    done: Option<String>,
}

async fn sign_in_page(headers: HeaderMap) -> Response {
    let t = words(&headers, None);
    render(
        "sign_in.html",
        context! { lang => t.lang, title => t.w("sign_in"), t => v(t), login => "",
        operator => (), hold => () },
    )
}

// Every field may be missing: the handler (or `App`) says which one is wanted.
#[derive(Deserialize, Default)]
#[serde(default)]
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
    let t = words(&headers, None);
    let login = form.login.trim().to_owned();
    let refuse = |status: StatusCode, problem: &str| {
        let page = render(
            "sign_in.html",
            context! { lang => t.lang, title => t.w("sign_in"), t => v(t), login => &login,
            problem => problem, operator => (), hold => () },
        );
        (status, page).into_response()
    };
    if !throttle.allows(&login, peer.ip()) {
        tracing::warn!(login, address = %peer.ip(), "sign-in attempts throttled");
        return refuse(StatusCode::TOO_MANY_REQUESTS, t.w("throttled"));
    }
    let password = SecretString::from(form.password);
    match app.check_password(&login, &password).await {
        Ok(op) => {
            // A new id at sign-in: an id planted before it is worth nothing after.
            if let Err(e) = session.cycle_id().await {
                tracing::error!(error = %e, "the session could not be renewed");
                return refuse(StatusCode::INTERNAL_SERVER_ERROR, t.w("failed"));
            }
            let stored = async {
                session.insert(OPERATOR, &op.login).await?;
                session.insert(SIGNED_IN_AT, app.now().timestamp()).await
            };
            if let Err(e) = stored.await {
                tracing::error!(error = %e, "the session could not be stored");
                return refuse(StatusCode::INTERNAL_SERVER_ERROR, t.w("failed"));
            }
            tracing::info!(login = op.login, "signed in to the console");
            Redirect::to("/console/").into_response()
        }
        Err(AppError::Unauthenticated) => {
            tracing::info!(login, address = %peer.ip(), "a sign-in was refused");
            refuse(StatusCode::UNAUTHORIZED, t.w("wrong"))
        }
        Err(e) => {
            tracing::error!(error = %e, "a sign-in failed");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, t.w("failed"))
        }
    }
}

async fn sign_out(session: Session) -> Response {
    let _ = session.flush().await;
    Redirect::to("/console/sign-in").into_response()
}

// Every field may be missing: the handler (or `App`) says which one is wanted.
#[derive(Deserialize, Default)]
#[serde(default)]
struct LanguageForm {
    lang: String,
    back: Option<String>,
}

/// The operator's choice of language, kept with them: their language on any
/// browser from then on.
async fn language(
    State(app): State<App>,
    SignedIn(op): SignedIn,
    Form(form): Form<LanguageForm>,
) -> Response {
    let lang = if form.lang == "pl" { "pl" } else { "en" };
    if let Err(e) = app
        .set_locale(&Actor::operator(op.login.clone()), &op.login, Some(lang))
        .await
    {
        tracing::warn!(login = op.login, error = %e, "the operator's language was not kept");
    }
    // Back to the console page they were on, never elsewhere, and never with
    // anything a header could not carry.
    let back = form
        .back
        .filter(|b| b.starts_with("/console/") && b.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| "/console/".into());
    Redirect::to(&back).into_response()
}

/// The start page: what waits for approval, what failed today, the wallet, the
/// dispatcher's health, the hold switch.
async fn start(ctx: Ctx, axum::extract::Query(q): axum::extract::Query<Done>) -> Response {
    let app = &ctx.app;
    let actor = &ctx.actor;
    let tz = app.settings().school.time_zone;
    let today = app.now().with_timezone(&tz).date_naive();
    let midnight = crate::domain::window::start_of_day(tz, today);
    let page = async {
        let awaiting = app
            .batches(actor, Some(crate::domain::BatchStatus::AwaitingApproval))
            .await?;
        let failed = app
            .message_counts(
                actor,
                &crate::store::MessageFilter {
                    since: Some(midnight),
                    status: Some(crate::domain::MessageStatus::Failed),
                    ..Default::default()
                },
            )
            .await?;
        let failed_today: i64 = failed.iter().map(|c| c.count).sum();
        // Handed over with no answer: each waits for a person to resend or drop it.
        let unknown = app
            .message_counts(
                actor,
                &crate::store::MessageFilter {
                    status: Some(crate::domain::MessageStatus::Unknown),
                    ..Default::default()
                },
            )
            .await?;
        let unknown: i64 = unknown.iter().map(|c| c.count).sum();
        let wallet = app.wallet_view(actor, 0).await?;
        let health = app.dispatcher_health(actor).await?;
        Ok::<_, AppError>(context! {
            done => ctx.done(q.done.as_deref()), unknown => unknown,
            awaiting => v(&awaiting), failed_today => failed_today,
            today => today.to_string(),
            wallet => v(&wallet), health => v(&health),
        })
    };
    match page.await {
        Ok(more) => ctx.page("start.html", ctx.t.w("start"), more),
        Err(e) => ctx.problem(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_in_page_renders_in_both_languages_and_escapes_what_it_shows() {
        for t in [&*words::PL, &*words::EN] {
            let sign_in = TEMPLATES
                .get_template("sign_in.html")
                .unwrap()
                .render(
                    context! { lang => t.lang, title => t.w("sign_in"), t => v(t),
                    login => "<anna>", operator => (), hold => () },
                )
                .unwrap();
            assert!(sign_in.contains(t.w("password")), "{sign_in}");
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

    #[test]
    fn a_name_stays_one_path_segment() {
        assert_eq!(segment("Wycieczka klasowa/2b"), "Wycieczka%20klasowa%2F2b");
        assert_eq!(segment("przypomnienie-1.v2_x~"), "przypomnienie-1.v2_x~");
        assert_eq!(segment("zażółć"), "za%C5%BC%C3%B3%C5%82%C4%87");
    }

    #[test]
    fn instants_show_in_the_school_time_zone() {
        assert_eq!(
            local_time("2026-12-03T08:30:00Z".into(), "Europe/Warsaw".into()),
            "2026-12-03 09:30"
        );
        assert_eq!(local_time("soon".into(), "Europe/Warsaw".into()), "soon");
    }
}
