//! The command line: clap commands turned into application calls, and their results
//! into text. The only place that prints for people, and the one place (with the daemon)
//! that reads the clock.
//!
//! `args` is the grammar; one module per group of commands translates; `print` formats.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use clap::{Parser, Subcommand};

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::app::{
    Actor, App, AppError, BatchText, HoldChange, NotifyContent, NotifyRequest, OperatorRequest,
    SendContent, SendRequest, Summary,
};
use crate::clock::FixedClock;
use crate::compose;
use crate::config::Settings;
use crate::daemon::Daemon;
use crate::domain::MessageId;
use crate::domain::access::Permission;
use crate::domain::audit::AuditAction;
use crate::domain::codes::UnknownCode;
use crate::domain::directory::{ContractConsent, Role};
use crate::domain::{Audience, BatchId, BatchStatus, MessageKind, MessageStatus, Reach};
use crate::domain::{Channel, ChannelChoice, EligibilityFacts, HolidayCalendar, Reason};
use crate::import::{ImportKind, ImportReport};
use crate::store::{self, RecipientFilter, Store};
use crate::store::{Decision, MessageAction, MessageFilter};

/// `println!` for a command's output. Where `println!` would panic when the reader
/// has gone away (`herald recipients --json | head`), the command goes on without
/// printing (see [`write_out`]).
macro_rules! say {
    () => {
        $crate::cli::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` for a command's complaints: a standard error that cannot be written
/// (`herald import … 2>&1 | head`) is no reason to panic (see [`write_err`]).
macro_rules! complain {
    ($($arg:tt)*) => {
        $crate::cli::write_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod admin;
mod args;
mod daemon;
mod demo;
mod diagnose;
mod directory;
mod outbox;
mod print;
mod tokens;

pub use args::*;
use print::*;

/// Runs a command with the loaded settings.
pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<ExitCode> {
    OPENED
        .scope(RefCell::new(Vec::new()), async {
            // On the heap: every command's future is inline in this one, and in a
            // debug build that is more than a test thread's stack.
            let result = Box::pin(command(cli, settings)).await;
            let opened = OPENED.with(|opened| std::mem::take(&mut *opened.borrow_mut()));
            for store in opened {
                store.close().await;
            }
            result.map_err(with_hint)
        })
        .await
}

/// The command's own function.
async fn command(cli: Cli, settings: Settings) -> anyhow::Result<ExitCode> {
    // The one reading of the clock for a command: everything below takes `now`.
    let now = Utc::now();
    match cli.command {
        Command::Migrate => directory::migrate(settings, now).await,
        Command::Import(args) => directory::import_command(args, settings, now).await,
        Command::Recipients(args) => directory::recipients_command(args, settings, now).await,
        Command::Groups(args) => directory::groups(args, settings, now).await,
        Command::Holidays(args) => admin::holidays_command(args, settings, now).await,
        Command::Notify(args) => outbox::notify(args, settings, now).await,
        Command::Send(args) => outbox::send(args, settings, now).await,
        Command::Outbox(args) => outbox::outbox(args, settings, now).await,
        Command::Approve(args) => outbox::approve(args, settings, now).await,
        Command::Reject(args) => outbox::reject(args, settings, now).await,
        Command::Resend(args) => outbox::resend(args, settings, now).await,
        Command::Cancel(args) => outbox::cancel(args, settings, now).await,
        Command::Run => daemon::run(settings, now).await,
        Command::Dispatch(args) => daemon::dispatch(args, settings, now).await,
        Command::Status(args) => daemon::status_command(args, settings, now).await,
        Command::Templates(args) => admin::templates(args, settings, now).await,
        Command::SmsInfo(args) => admin::sms_info(args, settings, now).await,
        Command::Wallet(args) => admin::wallet(args, settings, now).await,
        Command::Hold(args) => admin::hold(args, settings, now).await,
        Command::Audit(args) => admin::audit(args, settings, now).await,
        Command::Diagnose(args) => diagnose::diagnose(args, settings, now).await,
        Command::Doctor(args) => diagnose::doctor(args, settings, now).await,
        Command::Rules(args) => admin::rules(args, settings, now).await,
        Command::Operators(args) => admin::operators(args, settings, now).await,
        Command::Tokens(args) => tokens::tokens(args, settings, now).await,
        Command::Demo(args) => demo::demo_command(args, settings, now).await,
    }
}

/// How the command's output fares (see [`write_out`]).
static OUTPUT: AtomicU8 = AtomicU8::new(OUTPUT_PRINT);
/// In-process (the tests): `print!`, which a test harness captures.
const OUTPUT_PRINT: u8 = 0;
/// The binary: written to standard output, errors seen.
const OUTPUT_STDOUT: u8 = 1;
/// The reader has gone away: nothing more is written.
const OUTPUT_GONE: u8 = 2;
/// Writing failed otherwise (a full disk): nothing more is written, and the command
/// fails (see [`output_failed`]).
const OUTPUT_FAILED: u8 = 3;

/// Has commands write their output to the process's standard output themselves, so
/// that they see a reader that has gone away (see [`say!`]). Only the binary asks for
/// it: a program that runs commands in-process (the tests) keeps `print!`, which its
/// test harness captures.
pub fn write_to_stdout() {
    OUTPUT.store(OUTPUT_STDOUT, Ordering::Relaxed);
}

/// Whether the command's output could not be written for another reason than its
/// reader going away: the binary then exits with a failure whatever the command did.
pub fn output_failed() -> bool {
    OUTPUT.load(Ordering::Relaxed) == OUTPUT_FAILED
}

/// Writes a command's output (see [`say!`]). A failure to write does not end the
/// command: output can come before the work it describes is done (the demo prints
/// its school before it sends, an import each file's report before the next file),
/// so the command goes on to its end, stores closed and exit code its own, and only
/// stops printing. A reader that has gone away (`| head`) is what every Unix tool
/// meets quietly; any other failure is said once on standard error (`output_failed`).
fn write_out(text: std::fmt::Arguments) {
    use std::io::Write;
    match OUTPUT.load(Ordering::Relaxed) {
        OUTPUT_PRINT => print!("{text}"),
        OUTPUT_STDOUT => {
            if let Err(e) = std::io::stdout().lock().write_fmt(text) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    OUTPUT.store(OUTPUT_GONE, Ordering::Relaxed);
                } else {
                    write_err(format_args!("herald: cannot write the output: {e}\n"));
                    OUTPUT.store(OUTPUT_FAILED, Ordering::Relaxed);
                }
            }
        }
        _ => {}
    }
}

/// Writes to standard error (see [`complain!`]); where that fails there is nowhere
/// left to say so, and the command goes on as [`write_out`] lets it.
pub fn write_err(text: std::fmt::Arguments) {
    use std::io::Write;
    match OUTPUT.load(Ordering::Relaxed) {
        OUTPUT_PRINT => eprint!("{text}"),
        _ => {
            let _ = std::io::stderr().lock().write_fmt(text);
        }
    }
}

/// The HTML body in `path`, if one was given.
pub(super) fn read_html(path: Option<&Path>) -> anyhow::Result<Option<String>> {
    path.map(|p| {
        std::fs::read_to_string(p)
            .with_context(|| format!("--html-file {}: cannot read it as UTF-8 text", p.display()))
    })
    .transpose()
}

tokio::task_local! {
    /// The stores this command opened, closed when it ends: on SQLite the last
    /// connection to close writes the WAL back into the database file and removes
    /// it, so that a copy of the file made afterwards holds everything (an ended
    /// process leaves the WAL beside the file instead, and the next writer pays for
    /// it). Kept per command, not per process: tests run commands side by side.
    static OPENED: RefCell<Vec<Arc<dyn Store>>>;
}

/// Opens the store for a command (see [`OPENED`]).
pub(super) async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let store = store::open(&settings.database).await?;
    close_when_done(&store);
    Ok(store)
}

/// Has the command close `store` when it ends (see [`OPENED`]), for a store opened
/// elsewhere than [`open_store`] (the demo school's).
pub(super) fn close_when_done(store: &Arc<dyn Store>) {
    // Outside `run` (no command to close it) the store is only opened.
    let _ = OPENED.try_with(|opened| opened.borrow_mut().push(Arc::clone(store)));
}

/// Who reads from the command line: whoever holds the database's credentials may read
/// it anyway, so listings name no operator.
const READER: Actor = Actor::System("cli");

/// The application over `store`, on the command's one clock.
pub(super) fn app(store: &Arc<dyn Store>, settings: &Settings, now: DateTime<Utc>) -> App {
    App::new(
        Arc::clone(store),
        Arc::new(settings.clone()),
        Arc::new(FixedClock::new(now)),
    )
}

/// An application error in the CLI's words: what the library says, plus how to fix
/// it from the command line.
pub(super) fn cli_error(e: AppError) -> anyhow::Error {
    match e {
        AppError::UnknownOperator(login) => anyhow::anyhow!(
            "unknown operator {login:?}: operators are added with `herald operators add LOGIN \
             --role ROLE --as OWNER` (`herald operators list` shows them)"
        ),
        e @ AppError::Forbidden { .. } => {
            let AppError::Forbidden {
                login, permission, ..
            } = &e
            else {
                unreachable!()
            };
            anyhow::anyhow!(
                "{e}; an operator with `manage_operators` can grant it: herald operators grant \
                 {login} {permission} --as LOGIN"
            )
        }
        AppError::Invalid { field, problem } => {
            // The input by the name the command line gives it, and where a flag helps.
            let (name, hint) = match field {
                "points" => ("POINTS", ""),
                "login" => ("login", ""),
                "holiday" => ("the holiday", ""),
                "audience" => ("the audience", ""),
                "file" => return anyhow::anyhow!(problem),
                "html" => ("--html-file", ""),
                "template" => ("--template", " (`herald templates list`)"),
                "body" if problem.contains("transliteration") => ("--body", " (--transliterate)"),
                other => return anyhow::anyhow!("--{}: {problem}", other.replace('_', "-")),
            };
            anyhow::anyhow!("{name}: {problem}{hint}")
        }
        AppError::NotFound { what: "batch", id } => {
            anyhow::anyhow!("there is no batch {id}; `herald outbox --all` lists them")
        }
        AppError::NotFound {
            what: "message",
            id,
        } => {
            anyhow::anyhow!("there is no message {id}; `herald status` lists them")
        }
        AppError::NotFound { what: "group", id } => {
            anyhow::anyhow!("no group with id {id:?} (`herald groups` lists them)")
        }
        other => anyhow::Error::new(other),
    }
}

/// An error of a command in the CLI's words: what the library says, plus the command
/// that fixes it where there is one.
fn with_hint(e: anyhow::Error) -> anyhow::Error {
    // The store's error may be wrapped (the daemon's, the demo's, which forward it
    // transparently): look at each of them down the chain.
    use crate::daemon::DaemonError;
    use crate::demo::DemoError;
    use store::StoreError::NotMigrated;
    let not_migrated = e.chain().any(|cause| {
        matches!(cause.downcast_ref(), Some(NotMigrated { .. }))
            || matches!(
                cause.downcast_ref(),
                Some(DaemonError::Store(NotMigrated { .. }))
            )
            || matches!(
                cause.downcast_ref(),
                Some(DemoError::Store(NotMigrated { .. }))
            )
    });
    if not_migrated {
        return anyhow::anyhow!("{e:#}: run `herald migrate`");
    }
    e
}

/// Cancels `shutdown` on SIGTERM (systemd's stop) or SIGINT (Ctrl-C).
pub(super) async fn stop_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => tracing::info!("SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
    }
    shutdown.cancel();
}

/// A school wall-clock time (`2026-11-24T10:00`, `2026-11-24 10:00:30`) as an instant.
pub(super) fn school_time(settings: &Settings, text: &str) -> anyhow::Result<DateTime<Utc>> {
    let text = text.trim();
    let naive = [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
    .with_context(|| {
        format!("{text:?} is not a school time; expected e.g. 2026-11-24T10:00 or 2026-11-24")
    })?;
    use chrono::TimeZone;
    settings
        .school
        .time_zone
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| {
            format!(
                "{text:?} does not exist in {} (a DST gap)",
                settings.school.time_zone
            )
        })
}

/// `--since`: a duration back from now, or a school date or time.
pub(super) fn parse_since(
    settings: &Settings,
    text: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(d) = humantime::parse_duration(text.trim()) {
        return Ok(now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX));
    }
    school_time(settings, text).with_context(|| {
        format!("--since {text:?}: expected a duration such as 24h or 7d, or a school date or time")
    })
}
