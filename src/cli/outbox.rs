//! Writing and deciding: `notify`, `send`, `outbox`, `approve`, `reject`, `resend`, `cancel`.

use super::*;

/// Create a system message to one recipient: no approval, sent on the next pass,
/// at once when `herald run` is running.
pub(super) async fn notify(
    args: NotifyArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let NotifyArgs {
        recipient,
        channel,
        subject,
        body,
        template,
        vars,
        transliterate,
        actor,
    } = args;
    // clap makes sure of exactly one of --body and --template.
    let content = match template {
        Some(name) => NotifyContent::Template {
            name,
            vars: vars.into_iter().collect(),
        },
        None => NotifyContent::Text {
            subject,
            body: body.unwrap_or_default(),
        },
    };
    let request = NotifyRequest {
        recipient: recipient.clone(),
        channel,
        content,
        transliterate,
    };
    let store = open_store(&settings).await?;
    let (id, message) = app(&store, &settings, now)
        .notify_with(&Actor::operator(actor), &request)
        .await
        .map_err(cli_error)?;
    match message.reason {
        Some(reason) if message.status == MessageStatus::Blocked => {
            say!(
                "Message {id} to {recipient} is blocked: {} ({}).",
                reason.describe(),
                reason.as_str()
            );
        }
        _ => say!("Message {id} to {recipient} is queued; `herald run` sends it at once."),
    }
    Ok(ExitCode::SUCCESS)
}

/// Compose an informational email or SMS to an audience; it waits in the outbox
/// for approval unless the operator may send without it.
pub(super) async fn send(
    args: SendArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let SendArgs {
        operator,
        audience,
        reach,
        channel,
        subject,
        body,
        html_file,
        template,
        vars,
        transliterate,
        dry_run,
        json,
    } = args;
    let html = read_html(html_file.as_deref())?;
    let content = match (template, body) {
        (Some(_), _) if html.is_some() => {
            bail!("--html-file goes with --body; a template has its own HTML variant")
        }
        (Some(name), _) => SendContent::Template {
            name,
            vars: vars.into_iter().collect(),
        },
        (None, body) => SendContent::Text {
            subject,
            body: body.unwrap_or_default(),
            html,
        },
    };
    let request = SendRequest {
        audience: audience.audience(),
        reach,
        channel,
        content,
        transliterate,
    };
    let store = open_store(&settings).await?;
    let composed = app(&store, &settings, now)
        .send(&Actor::operator(operator), &request, dry_run)
        .await
        .map_err(cli_error)?;
    print_send(&composed.send, composed.batch, json)?;
    if !json {
        print_summary(&composed.summary);
    }
    Ok(ExitCode::SUCCESS)
}

/// Approve a batch (or only some of its messages): they go on the next dispatch
/// tick.
pub(super) async fn approve(
    args: ApproveArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let ApproveArgs {
        batch,
        messages,
        operator,
        seen,
    } = args;
    decide(
        &settings,
        batch,
        &messages,
        &operator,
        Decision::Approve,
        seen.as_deref(),
        now,
    )
    .await
}

/// Reject a batch (or only some of its messages): they will not go.
pub(super) async fn reject(
    args: RejectArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let RejectArgs {
        batch,
        messages,
        operator,
        reason,
        seen,
    } = args;
    let decision = Decision::Reject(reason.trim().to_owned());
    decide(
        &settings,
        batch,
        &messages,
        &operator,
        decision,
        seen.as_deref(),
        now,
    )
    .await
}

/// Send a message again whose outcome is unknown or that failed (needs approve).
pub(super) async fn resend(
    args: ResendArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let ResendArgs { message, operator } = args;
    act(&settings, message, &operator, MessageAction::Resend, now).await
}

/// Withdraw a message that has not been sent, or drop one whose outcome is
/// unknown (needs approve).
pub(super) async fn cancel(
    args: CancelArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let CancelArgs { message, operator } = args;
    act(&settings, message, &operator, MessageAction::Cancel, now).await
}

/// Batches waiting for approval, with their counts per status and reason; `show`,
/// `edit` and `cancel` one.
pub(super) async fn outbox(
    args: OutboxArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let OutboxArgs { action, all, json } = args;
    match action {
        Some(action) => {
            let store = open_store(&settings).await?;
            outbox_action(&store, &settings, action, now).await
        }
        None => {
            let store = open_store(&settings).await?;
            let batches = store
                .batches((!all).then_some(BatchStatus::AwaitingApproval))
                .await?;
            if !json && let Some(h) = store.hold().await? {
                say!("{}\n", hold_banner(&h, &settings));
            }
            print_batches(&batches, json, all)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(super) async fn outbox_action(
    store: &Arc<dyn Store>,
    settings: &Settings,
    action: OutboxCommand,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    match action {
        OutboxCommand::Show { batch, json } => {
            let view = app(store, settings, now)
                .batch_view(&READER, BatchId(batch))
                .await
                .map_err(|e| match e {
                    AppError::NotFound { .. } => anyhow::anyhow!(
                        "there is no batch {batch}; `herald outbox --all` lists them"
                    ),
                    other => cli_error(other),
                })?;
            let (b, summary, samples) = (&view.batch, &view.summary, &view.samples);
            if json {
                say!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                if let Some(h) = &view.hold {
                    say!("{}\n", hold_banner(h, settings));
                }
                print_batches(std::slice::from_ref(b), false, true)?;
                if samples.is_empty() {
                    say!("Text:");
                    for line in b.body.lines() {
                        say!("  | {line}");
                    }
                }
                // What people will read: one message per channel and locale, as
                // rendered for its recipient.
                for m in samples {
                    say!(
                        "{} to {} ({}):",
                        channel_name(m.channel),
                        m.recipient,
                        m.locale
                            .as_deref()
                            .unwrap_or(&settings.school.default_locale)
                    );
                    if let Some(subject) = &m.subject {
                        say!("  | Subject: {subject}");
                    }
                    for line in m.body.lines() {
                        say!("  | {line}");
                    }
                    if m.html.is_some() {
                        say!("  | (with an HTML version)");
                    }
                }
                print_summary(summary);
                say!(
                    "Version:   {} (approve exactly this: `herald approve {batch} --seen {} --as LOGIN`)",
                    view.version,
                    view.version
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        OutboxCommand::Edit {
            batch,
            operator,
            channel,
            subject,
            body,
            html_file,
            transliterate,
        } => {
            let text = BatchText {
                channel,
                subject,
                body,
                html: read_html(html_file.as_deref())?,
                transliterate,
            };
            let app = app(store, settings, now);
            let was = app
                .batch_view(&READER, BatchId(batch))
                .await
                .map_err(cli_error)?;
            let n = app
                .edit_batch(&Actor::operator(operator), BatchId(batch), &text)
                .await
                .map_err(cli_error)?;
            say!(
                "Batch {batch} edited: {n} unsent message(s) take the new text and wait for approval{}.",
                if was.batch.status == BatchStatus::Approved {
                    " again"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        OutboxCommand::Cancel { batch, operator } => {
            let n = app(store, settings, now)
                .cancel_batch(&Actor::operator(operator), BatchId(batch))
                .await
                .map_err(cli_error)?;
            say!("Batch {batch}: {n} unsent message(s) cancelled.");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(super) async fn act(
    settings: &Settings,
    message: i64,
    login: &str,
    action: MessageAction,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let store = open_store(settings).await?;
    let before = app(&store, settings, now)
        .act_on_message(&Actor::operator(login), MessageId(message), action)
        .await
        .map_err(cli_error)?;
    let verb = match action {
        MessageAction::Resend => "queued again",
        MessageAction::Cancel => "cancelled",
    };
    say!("Message {message} ({before}) {verb} by {login}.");
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn decide(
    settings: &Settings,
    batch: i64,
    only: &[i64],
    login: &str,
    decision: Decision,
    seen: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let store = open_store(settings).await?;
    let verb = match decision {
        Decision::Approve => "approved",
        Decision::Reject(_) => "rejected",
    };
    let only: Vec<MessageId> = only.iter().copied().map(MessageId).collect();
    let taken = app(&store, settings, now)
        .decide(
            &Actor::operator(login),
            BatchId(batch),
            &only,
            decision.clone(),
            seen,
        )
        .await
        .map_err(|e| match e {
            AppError::Conflict(text) if text.contains("changed") => anyhow::anyhow!(
                "{text}; look again with `herald outbox show {batch}` and decide with --seen VERSION"
            ),
            AppError::NotFound { .. } => {
                anyhow::anyhow!("there is no batch {batch}; `herald outbox --all` lists them")
            }
            other => cli_error(other),
        })?;
    if seen.is_none() {
        // Without --seen the decision is on the batch as it was at that moment: show
        // what that was, as `outbox show` would have.
        say!("Decided on version {}:", taken.view.version);
        print_summary(&taken.view.summary);
    }
    let n = taken.messages;
    if !only.is_empty() && n < only.len() as u64 {
        say!(
            "Note: {} of the messages named are not in batch {batch} or no longer await approval.",
            only.len() as u64 - n
        );
    }
    say!(
        "{} {verb} by {login}: {n} message(s) {}.",
        if only.is_empty() {
            format!("Batch {batch}")
        } else {
            format!("Messages of batch {batch}")
        },
        match decision {
            Decision::Approve => "go on the next dispatch tick",
            Decision::Reject(_) => "will not be sent",
        }
    );
    Ok(ExitCode::SUCCESS)
}
