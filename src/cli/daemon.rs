//! `herald run` (the daemon), `dispatch --once` and `status`.

use super::*;

/// Run the daemon: a dispatch pass on each tick of dispatch.schedule, system
/// messages at once; stops cleanly on SIGTERM or SIGINT.
pub(super) async fn run(settings: Settings, _now: DateTime<Utc>) -> anyhow::Result<ExitCode> {
    let daemon = Daemon::build(settings).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    daemon.run_until_stopped(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Run one dispatch pass and exit.
pub(super) async fn dispatch(
    args: DispatchArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let DispatchArgs { once: _, at, json } = args;
    let at = match at {
        Some(text) => school_time(&settings, &text)?,
        None => now,
    };
    let store = store::open(&settings.database).await?;
    let daemon = Daemon::build_with(settings, store, Arc::new(FixedClock::new(at)))?;
    let counts = daemon.run_once().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&counts)?);
    } else {
        println!(
            "Dispatch pass: {} sent, {} to retry, {} failed, {} held, {} blocked, {} too late or no longer relevant.",
            counts.sent,
            counts.retried,
            counts.failed,
            counts.held,
            counts.blocked,
            counts.withdrawn
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// List messages, newest first, with their status and reason.
pub(super) async fn status_command(
    args: StatusArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let StatusArgs {
        batch,
        recipient,
        status,
        kind,
        channel,
        since,
        limit,
        summary,
        json,
    } = args;
    let since = since.map(|s| parse_since(&settings, &s, now)).transpose()?;
    let filter = MessageFilter {
        batch: batch.map(BatchId),
        recipient,
        status,
        kind,
        channel,
        since,
        limit: Some(limit),
    };
    let store = store::open(&settings.database).await?;
    let app = app(&store, &settings, now);
    if summary {
        let counts = app
            .message_counts(&READER, &filter)
            .await
            .map_err(cli_error)?;
        print_counts(&counts, json)?;
    } else {
        let listing = app.messages(&READER, &filter).await.map_err(cli_error)?;
        if !json && let Some(h) = &listing.hold {
            println!("{}\n", hold_banner(h, &settings));
        }
        print_messages(&settings, &listing.messages, json)?;
    }
    Ok(ExitCode::SUCCESS)
}
