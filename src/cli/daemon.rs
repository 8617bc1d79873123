//! `herald run` (the daemon), `dispatch --once` and `status`.

use super::*;

/// Run the daemon: a dispatch pass on each tick of dispatch.schedule, system
/// messages at once; stops cleanly on SIGTERM or SIGINT.
pub(super) async fn run(settings: Settings, _now: DateTime<Utc>) -> anyhow::Result<ExitCode> {
    let store = open_store(&settings).await?;
    let ran = run_on(Arc::clone(&store), settings).await;
    store.close().await;
    ran
}

/// `herald run` on an open store.
pub(super) async fn run_on(store: Arc<dyn Store>, settings: Settings) -> anyhow::Result<ExitCode> {
    // Every instance on one PostgreSQL database keeps the database's time, so that
    // leases written by one are judged by the others against the same clock.
    let database_clock = Arc::new(crate::clock::DatabaseClock::default());
    crate::daemon::set_to_database_clock(&database_clock, &*store).await?;
    let clock: Arc<dyn crate::clock::Clock> = Arc::clone(&database_clock) as _;
    let shutdown = CancellationToken::new();
    tokio::spawn(crate::daemon::follow_database_clock(
        database_clock,
        Arc::clone(&store),
        shutdown.clone(),
    ));
    // Built first (nothing runs yet) so that readiness can report its backlog.
    let daemon = Daemon::build_with(settings.clone(), Arc::clone(&store), Arc::clone(&clock))?;
    let app = App::new(
        Arc::clone(&store),
        Arc::new(settings.clone()),
        Arc::clone(&clock),
    )
    .with_backlog(Arc::clone(daemon.dispatcher().backlog()));
    // HTTP beside the dispatcher, on the same shutdown: the listeners are bound before
    // the daemon starts, so a port in use stops start-up with a clear error.
    let grace = settings.dispatch.shutdown_grace;
    let api = match settings.http.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("http.listen = {addr}: cannot listen there"))?;
            tracing::info!(%addr, "serving the HTTP API");
            let router = crate::http::router(app.clone(), &settings.http);
            Some(crate::http::serve(
                listener,
                router,
                shutdown.clone(),
                grace,
            ))
        }
        None => None,
    };
    let metrics = match settings.http.metrics_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("http.metrics_listen = {addr}: cannot listen there"))?;
            tracing::info!(%addr, "serving /metrics");
            let router = crate::http::metrics_router(app.clone());
            Some(crate::http::serve(
                listener,
                router,
                shutdown.clone(),
                grace,
            ))
        }
        None => None,
    };
    // Console sessions that ended (idle or too old) are removed hourly: a session
    // that lapsed signs nobody in anyway, this only keeps the table small.
    if api.is_some() {
        tokio::spawn(delete_expired_sessions(app.clone(), shutdown.clone()));
    }
    // The recorder is the process's: installed before the first pass is counted.
    let recorder = crate::metrics::recorder();
    tokio::spawn(crate::metrics::keep_up(recorder, shutdown.clone()));
    let http = (api.is_some() || metrics.is_some()).then(|| {
        tokio::spawn(async move {
            let optional = |server: Option<_>| async move {
                match server {
                    Some(server) => server.await,
                    None => Ok(()),
                }
            };
            // Either listener failing stops both, and so the daemon (below).
            tokio::try_join!(optional(api), optional(metrics)).map(|_| ())
        })
    });
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let running = daemon.run_until_stopped(shutdown.clone());
    let Some(mut http) = http else {
        running.await?;
        return Ok(ExitCode::SUCCESS);
    };
    // Whichever ends first ends the other: a daemon without its API (or an API over a
    // stopped daemon) is not half-running unnoticed.
    tokio::pin!(running);
    tokio::select! {
        stopped = &mut running => {
            shutdown.cancel();
            let served = http.await.context("the HTTP server stopped abnormally")?;
            stopped?;
            served?;
        }
        served = &mut http => {
            // Asked to stop (SIGTERM), the API may simply close first.
            let asked = shutdown.is_cancelled();
            if !asked {
                tracing::error!("the HTTP server stopped; stopping the daemon");
                shutdown.cancel();
            }
            running.await?;
            served.context("the HTTP server stopped abnormally")??;
            if !asked {
                anyhow::bail!("the HTTP server stopped before the daemon was asked to");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Every hour until `shutdown`, removes the console sessions that have ended.
async fn delete_expired_sessions(app: App, shutdown: CancellationToken) {
    use tower_sessions::session_store::ExpiredDeletion;
    let sessions = crate::http::ConsoleSessions::new(app);
    let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = hourly.tick() => {
                if let Err(e) = sessions.delete_expired().await {
                    tracing::warn!(error = %e, "ended console sessions were not removed");
                }
            }
        }
    }
}

/// Run one dispatch pass and exit.
pub(super) async fn dispatch(
    args: DispatchArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let DispatchArgs { once: _, at, json } = args;
    let args_at_given = at.is_some();
    let at = match at {
        Some(text) => school_time(&settings, &text)?,
        None => now,
    };
    let store = open_store(&settings).await?;
    // A clock that moves, on the database's time: leases written late in a long pass
    // must not be born expired for the daemons on the same database. With `--at`,
    // it starts at that time.
    let clock = crate::clock::DatabaseClock::default();
    crate::daemon::set_to_database_clock(&clock, &*store).await?;
    if args_at_given {
        clock.set(std::time::Instant::now(), at);
    }
    let daemon = Daemon::build_with(settings, store, Arc::new(clock))?;
    let started = std::time::Instant::now();
    let counts = daemon.run_once().await?;
    let took = started.elapsed();
    if json {
        say!("{}", serde_json::to_string_pretty(&counts)?);
    } else {
        say!(
            "Dispatch pass in {:.1} ms: {} sent, {} to retry, {} failed, {} unknown (for a person to decide), {} held, {} blocked, {} too late or no longer relevant.",
            took.as_secs_f64() * 1000.0,
            counts.sent,
            counts.retried,
            counts.failed,
            counts.unknown,
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
        ..MessageFilter::default()
    };
    let store = open_store(&settings).await?;
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
            say!("{}\n", hold_banner(h, &settings));
        }
        print_messages(&settings, &listing.messages, json)?;
    }
    Ok(ExitCode::SUCCESS)
}
