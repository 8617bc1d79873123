//! The outbox: batches awaiting approval, and a batch's page as the approver sees
//! it, with approve (bound to the version shown), reject with a reason, the same
//! for single messages, and a change of text.

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use minijinja::context;
use serde::Serialize;

use super::{Ctx, Done, done_at, number_in_path, v, with_status};
use crate::app::{App, AppError, BatchText, BatchView};
use crate::domain::{BatchId, BatchStatus, Channel, MessageId};
use crate::store::{BatchSummary, Decision, MessageFilter, MessageView};

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/console/outbox", get(outbox))
        .route("/console/outbox/{id}", get(batch_page))
        .route("/console/outbox/{id}/edit", post(edit))
        .route("/console/outbox/{id}/{decision}", post(decision))
}

/// A batch in the outbox's list, with what approving it would do.
#[derive(Serialize)]
struct Waiting {
    batch: BatchSummary,
    will_go: i64,
    blocked: i64,
    sms_cost: i64,
    when: String,
}

/// The batches waiting for a decision, and the latest decided ones.
async fn outbox(ctx: Ctx) -> Response {
    let (app, actor) = (&ctx.app, &ctx.actor);
    let listed = async {
        let all = app.batches(actor, None).await?;
        let mut waiting = Vec::new();
        let mut decided = Vec::new();
        for b in all {
            if b.status == BatchStatus::AwaitingApproval {
                // The outbox is a short list (what one school composed and nobody
                // decided yet); each line shows what approving it would do.
                let view = app.batch_view(actor, b.id).await?;
                waiting.push(Waiting {
                    will_go: view.summary.will_go,
                    blocked: view.summary.blocked.values().sum(),
                    sms_cost: view.summary.sms_cost,
                    when: view.summary.when,
                    batch: b,
                });
            } else if decided.len() < 15 {
                decided.push(b);
            }
        }
        Ok::<_, AppError>((waiting, decided))
    };
    match listed.await {
        Ok((waiting, decided)) => ctx.page(
            "outbox.html",
            ctx.t.w("outbox"),
            context! { waiting => v(&waiting), decided => v(&decided) },
        ),
        Err(e) => ctx.problem(e),
    }
}

/// The approver's view of one batch.
async fn batch_page(ctx: Ctx, Path(id): Path<String>, Query(q): Query<Done>) -> Response {
    let id = match number_in_path("batch", &id) {
        Ok(id) => id,
        Err(e) => return ctx.problem(e),
    };
    let done = ctx.done(q.done.as_deref());
    show(&ctx, BatchId(id), done, None, StatusCode::OK).await
}

/// The batch's page, with a notice or a problem on top.
async fn show(
    ctx: &Ctx,
    id: BatchId,
    done: Option<&str>,
    problem: Option<&str>,
    status: StatusCode,
) -> Response {
    let (app, actor) = (&ctx.app, &ctx.actor);
    let view = match app.batch_view(actor, id).await {
        Ok(view) => view,
        Err(e) => return ctx.problem(e),
    };
    let messages = match app
        .messages(
            actor,
            &MessageFilter {
                batch: Some(id),
                limit: Some(500),
                ..Default::default()
            },
        )
        .await
    {
        Ok(listing) => listing.messages,
        Err(e) => return ctx.problem(e),
    };
    let approver = ctx.may(crate::domain::access::Permission::Approve);
    let edits = if editable(&ctx.op.login, &view, approver) {
        texts(&view)
    } else {
        Vec::new()
    };
    let waiting: Vec<&MessageView> = messages
        .iter()
        .filter(|m| m.status == crate::domain::MessageStatus::AwaitingApproval)
        .collect();
    with_status(
        status,
        ctx.page(
            "batch.html",
            &format!("{} #{}", ctx.t.w("batch"), id.0),
            context! {
                view => v(&view), done => done, problem => problem,
                messages => v(&messages), waiting => waiting.len(),
                editable => !edits.is_empty(), edits => v(&edits),
            },
        ),
    )
}

/// Whether the operator may change the batch's text: whoever composed it, or an
/// approver, while nothing of it has gone (`App` decides again on save).
fn editable(login: &str, view: &BatchView, approver: bool) -> bool {
    matches!(
        view.batch.status,
        BatchStatus::AwaitingApproval | BatchStatus::Approved
    ) && view.summary.sent == 0
        && (approver || view.batch.created_by == login)
}

/// A channel's text as the edit form starts from it.
#[derive(Serialize)]
struct Text {
    channel: Channel,
    subject: Option<String>,
    body: String,
}

/// The text of each of the batch's channels that has one text for everyone: the
/// batch's own for its first channel, the same text (perhaps transliterated) for the
/// other. A batch made from a template is personal per recipient (its stored text is
/// a sample rendering): it offers no edit, which would send one family's text, or
/// the sample's, to all.
fn texts(view: &BatchView) -> Vec<Text> {
    let b = &view.batch;
    let same_for_all = |channel: Channel, text: &str| {
        let of_channel = view.samples.iter().filter(|s| s.channel == channel);
        let transliterated = crate::domain::sms::transliterate(text);
        of_channel
            .into_iter()
            .all(|s| s.body == text || (channel == Channel::Sms && s.body == transliterated))
    };
    b.channels
        .channels()
        .iter()
        .filter(|&&channel| same_for_all(channel, &b.body))
        .map(|&channel| Text {
            channel,
            subject: (channel == b.channel).then(|| b.subject.clone()).flatten(),
            body: b.body.clone(),
        })
        .collect()
}

/// `approve` or `reject`, on the version the approver saw; for the whole batch, or
/// for the messages ticked (`message` fields) when any are.
async fn decision(
    ctx: Ctx,
    Path((id, what)): Path<(String, String)>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let id = match number_in_path("batch", &id) {
        Ok(id) => id,
        Err(e) => return ctx.problem(e),
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let decision = match what.as_str() {
        "approve" => Decision::Approve,
        "reject" => Decision::Reject(field("reason").unwrap_or_default().trim().to_owned()),
        _ => {
            return ctx.problem(AppError::NotFound {
                what: "decision",
                id: what,
            });
        }
    };
    let mut only = Vec::new();
    for (k, value) in &fields {
        if k == "message" {
            match value.parse() {
                Ok(n) => only.push(MessageId(n)),
                Err(_) => {
                    return ctx.problem(AppError::invalid(
                        "message",
                        format!("message: {value:?} is not a message id"),
                    ));
                }
            }
        }
    }
    // The form for single messages says so: with nothing ticked it must not turn
    // into a decision on the whole batch.
    // Enter in the reason field presses the ticked form's hidden first button, and
    // a decision on ticked messages with none ticked must not become one on the whole
    // batch: neither decides anything.
    let nothing = if field("enter").is_some() {
        Some("press_a_button")
    } else if field("ticked").is_some() && only.is_empty() {
        Some("tick_some")
    } else {
        None
    };
    if let Some(word) = nothing {
        let text = ctx.t.w(word);
        return show(
            &ctx,
            BatchId(id),
            None,
            Some(text),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let seen = field("seen").unwrap_or_default();
    let id = BatchId(id);
    let word = match (&decision, only.is_empty()) {
        (Decision::Approve, true) => "approved",
        (Decision::Reject(_), true) => "rejected",
        (Decision::Approve, false) => "approved_some",
        (Decision::Reject(_), false) => "rejected_some",
    };
    match ctx
        .app
        .decide(&ctx.actor, id, &only, decision, Some(seen))
        .await
    {
        Ok(_) => done_at(&format!("/console/outbox/{}", id.0), word),
        Err(AppError::Conflict(why)) => {
            let text = format!("{} {why}", ctx.t.w("stale"));
            show(&ctx, id, None, Some(&text), StatusCode::CONFLICT).await
        }
        Err(e) => ctx.problem(e),
    }
}

// Every field may be missing: the handler (or `App`) says which one is wanted.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct EditForm {
    channel: Option<String>,
    subject: Option<String>,
    body: String,
    transliterate: Option<String>,
}

/// A new text for one of the batch's channels; its unsent messages take it and
/// wait for approval again.
async fn edit(ctx: Ctx, Path(id): Path<String>, Form(form): Form<EditForm>) -> Response {
    let id = match number_in_path("batch", &id) {
        Ok(id) => id,
        Err(e) => return ctx.problem(e),
    };
    let channel = match form.channel.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => match c.parse::<Channel>() {
            Ok(c) => Some(c),
            Err(e) => return ctx.problem(AppError::invalid("channel", e.to_string())),
        },
    };
    let text = BatchText {
        channel,
        subject: form.subject.filter(|s| !s.trim().is_empty()),
        body: form.body,
        html: None,
        transliterate: form.transliterate.is_some(),
    };
    let id = BatchId(id);
    match ctx.app.edit_batch(&ctx.actor, id, &text).await {
        Ok(_) => done_at(&format!("/console/outbox/{}", id.0), "edited"),
        Err(e @ AppError::Invalid { .. }) => {
            let text = e.to_string();
            show(
                &ctx,
                id,
                None,
                Some(&text),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => ctx.problem(e),
    }
}
