//! `herald diagnose` and `herald doctor`: why a message did not arrive, and whether the
//! installation can send at all.

use super::*;

/// Why didn't they get it? Every check for one person (by id, external id, email
/// address or phone number) or one message's whole story.
pub(super) async fn diagnose(
    args: DiagnoseArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let DiagnoseArgs {
        recipient,
        message,
        json,
    } = args;
    let store = open_store(&settings).await?;
    diagnose_command(&app(&store, &settings, now), recipient, message, json).await
}

/// Check the installation: configuration, database, SMTP, SMS gateway, DKIM,
/// window, holidays, wallet, hold switch, dispatcher, rules. Sends nothing.
pub(super) async fn doctor(
    args: DoctorArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let DoctorArgs { json } = args;
    let checks = crate::doctor::doctor(&settings, now).await;
    let failed = checks
        .iter()
        .any(|c| c.verdict == crate::diagnose::Verdict::Error);
    if json {
        say!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        for c in &checks {
            print_check(c);
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Why someone did not get a message: a person (`recipient`) or one message's story.
pub(super) async fn diagnose_command(
    app: &App,
    recipient: Option<String>,
    message: Option<i64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match message {
        Some(id) => diagnose_message(app, id, json).await,
        None => diagnose_person(app, recipient.unwrap_or_default(), json).await,
    }
}

/// One message's timeline and where it stands now.
async fn diagnose_message(app: &App, id: i64, json: bool) -> anyhow::Result<ExitCode> {
    let tz = app.settings().school.time_zone;
    let t = app
        .diagnose_message(&READER, MessageId(id))
        .await
        .map_err(cli_error)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&t)?);
        return Ok(ExitCode::SUCCESS);
    }
    say!(
        "Message {id} to {} ({}):",
        t.message.message.recipient,
        t.message.message.address.as_deref().unwrap_or("no address")
    );
    if let Some(b) = &t.batch {
        say!(
            "  batch {} \"{}\" composed by {}{}",
            b.id,
            b.audience,
            b.created_by,
            match (&b.decided_by, b.decided_at) {
                (Some(by), Some(at)) => format!(
                    "; {} by {by} at {}{}",
                    b.status,
                    at.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
                    b.decision_note
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default()
                ),
                _ => format!("; {}", b.status),
            }
        );
    }
    say!("Timeline:");
    for e in &t.events {
        say!(
            "  {}  {}{}{}{}",
            e.at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S"),
            e.status,
            e.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            e.actor
                .as_deref()
                .map(|a| format!(" by {a}"))
                .unwrap_or_default(),
            e.note
                .as_deref()
                .map(|n| format!(" — {n}"))
                .unwrap_or_default()
        );
    }
    say!("Now:");
    print_message_diagnosis(&t.message, tz);
    Ok(ExitCode::SUCCESS)
}

/// A person: every check per channel, the timing, the dispatcher, recent messages.
async fn diagnose_person(app: &App, query: String, json: bool) -> anyhow::Result<ExitCode> {
    use crate::diagnose::Lookup;
    let settings = app.settings();
    let tz = settings.school.time_zone;
    let lookup = app
        .diagnose_recipient(&READER, &query)
        .await
        .map_err(cli_error)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&lookup)?);
        return Ok(match lookup {
            Lookup::One(_) => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        });
    }
    let d = match lookup {
        Lookup::None { query } => bail!(
            "nobody matches {query:?}: try the platform's id, Herald's id, an email address or a phone number (`herald recipients --search TEXT` searches)"
        ),
        Lookup::Ambiguous { query, matches } => {
            say!(
                "{} people match {query:?}; diagnose one by their id:",
                matches.len()
            );
            for r in matches {
                say!(
                    "  {}  {} ({}) {} {}",
                    r.external_id,
                    r.name,
                    r.role,
                    r.email.as_deref().unwrap_or("-"),
                    r.phone.as_deref().unwrap_or("-")
                );
            }
            return Ok(ExitCode::FAILURE);
        }
        Lookup::One(d) => d,
    };
    let r = &d.recipient;
    say!(
        "{} ({}, {}, Herald id {})",
        r.name,
        r.role,
        r.external_id,
        r.id.0
    );
    say!(
        "  email {}   phone {}{}",
        r.email.as_deref().unwrap_or("-"),
        r.phone.as_deref().unwrap_or("-"),
        if r.sms_enabled { " (receives SMS)" } else { "" }
    );
    for rel in &d.related {
        say!("  {}: {} ({})", rel.relation, rel.name, rel.external_id);
    }
    for c in &d.channels {
        say!(
            "\n{}: {}",
            channel_name(c.channel),
            if c.eligible {
                "can be reached".to_owned()
            } else {
                let reasons: Vec<&str> = c
                    .checks
                    .iter()
                    .filter_map(|x| x.reason.map(|r| r.as_str()))
                    .collect();
                format!("CANNOT be reached ({})", reasons.join(", "))
            }
        );
        for check in &c.checks {
            print_check(check);
        }
    }
    say!("\nTiming:");
    for check in &d.timing {
        print_check(check);
    }
    say!("\nDispatcher:");
    for check in &d.dispatcher {
        print_check(check);
    }
    say!(
        "\nRecent messages ({} of the last {} days, newest first):",
        d.messages.len(),
        settings.diagnose.recent_days
    );
    if d.messages.is_empty() {
        say!("  none");
    }
    for m in &d.messages {
        print_message_diagnosis(m, tz);
    }
    Ok(ExitCode::SUCCESS)
}
