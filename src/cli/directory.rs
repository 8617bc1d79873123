//! `herald migrate`, `import`, `recipients`, `groups`: the directory and who can be reached.

use super::*;

/// Create or upgrade the database schema.
pub(super) async fn migrate(settings: Settings, _now: DateTime<Utc>) -> anyhow::Result<ExitCode> {
    let applied = store::migrate(&settings.database).await?;
    if applied.is_empty() {
        say!(
            "The database {} is up to date.",
            settings.database.redacted_url()
        );
    } else {
        say!(
            "Applied {} migration(s) to {}.",
            applied.len(),
            settings.database.redacted_url()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Import recipients, groups, guardianships, memberships, contracts or instalments
/// from CSV or JSON files (upserted by the platform's ids; a bad row is reported
/// and skipped).
pub(super) async fn import_command(
    args: ImportArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let ImportArgs {
        files,
        kind,
        operator,
        json,
    } = args;
    let store = open_store(&settings).await?;
    import(&app(&store, &settings, now), &files, kind, &operator, json).await
}

/// List recipients with who can be reached by which channel, and why not.
pub(super) async fn recipients_command(
    args: RecipientsArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let RecipientsArgs {
        role,
        group,
        search,
        ineligible,
        channel,
        json,
    } = args;
    let store = open_store(&settings).await?;
    let filter = RecipientFilter {
        role,
        group,
        search,
        ..RecipientFilter::default()
    };
    recipients(
        &app(&store, &settings, now),
        &filter,
        ineligible,
        channel,
        json,
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// List groups with how many students and teachers they have.
pub(super) async fn groups(
    args: GroupsArgs,
    settings: Settings,
    _now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let GroupsArgs { json } = args;
    let store = open_store(&settings).await?;
    let groups = store.groups().await?;
    if json {
        say!("{}", serde_json::to_string_pretty(&groups)?);
    } else if groups.is_empty() {
        say!("No groups. Import some with `herald import groups.csv --as LOGIN`.");
    } else {
        let rows = groups
            .iter()
            .map(|g| {
                vec![
                    g.external_id.clone(),
                    g.name.clone(),
                    g.students.to_string(),
                    g.teachers.to_string(),
                ]
            })
            .collect();
        print_table(&["ID", "NAME", "STUDENTS", "TEACHERS"], rows);
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn import(
    app: &App,
    files: &[PathBuf],
    kind: Option<ImportKind>,
    operator: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    let mut reports = Vec::new();
    for file in files {
        match app
            .import_file(&Actor::operator(operator), file, kind)
            .await
        {
            Ok(report) => {
                failed |= report.has_errors();
                if !json {
                    print_import_report(file, &report);
                }
                reports.push(serde_json::json!({"file": file, "report": report}));
            }
            Err(AppError::Invalid { field, problem }) => {
                let problem = match field {
                    "kind" => format!("{problem} with --kind"),
                    _ => problem,
                };
                failed = true;
                if json {
                    reports.push(serde_json::json!({"file": file, "error": problem}));
                } else {
                    complain!("herald: {problem}");
                    complain!("  nothing was imported from {}", file.display());
                }
            }
            Err(other) => return Err(cli_error(other)),
        }
    }
    if json {
        say!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A recipient's verdict per channel, as `--json` prints it.
/// Lists recipients with their verdict per channel, then how many per reason.
pub(super) async fn recipients(
    app: &App,
    filter: &RecipientFilter,
    only_ineligible: bool,
    channel: Option<Channel>,
    json: bool,
) -> anyhow::Result<()> {
    let views = app
        .recipients(&READER, filter, channel, only_ineligible)
        .await
        .map_err(cli_error)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(());
    }
    if views.is_empty() {
        say!("No recipients match.");
        return Ok(());
    }
    let channels: Vec<Channel> = views[0].channels.keys().copied().collect();
    let mut headers = vec!["ID", "ROLE", "NAME"];
    headers.extend(channels.iter().map(|c| match c {
        Channel::Email => "EMAIL",
        Channel::Sms => "SMS",
    }));
    let rows = views
        .iter()
        .map(|v| {
            let mut row = vec![v.external_id.clone(), v.role.to_string(), v.name.clone()];
            row.extend(v.channels.values().map(|c| {
                if c.eligible {
                    "ok".to_owned()
                } else {
                    c.reasons
                        .iter()
                        .map(|r| r.code.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                }
            }));
            row
        })
        .collect();
    print_table(&headers, rows);
    let mut tally: BTreeMap<(Channel, Reason), usize> = BTreeMap::new();
    for v in &views {
        for (c, verdict) in &v.channels {
            for r in &verdict.reasons {
                *tally.entry((*c, r.code)).or_default() += 1;
            }
        }
    }
    if !tally.is_empty() {
        say!();
        for ((c, r), n) in tally {
            say!("{n:>5} {c:<5} {:<22} {}", r.as_str(), r.describe());
        }
    }
    Ok(())
}

/// A reason in plain words, with the detail that lets a secretary fix it.
pub(super) fn explain(reason: Reason, channel: Channel, facts: &EligibilityFacts) -> String {
    let r = &facts.recipient;
    let detail = match reason {
        Reason::InvalidEmail => r.email.as_ref().map(|e| format!("{e:?}")),
        Reason::InvalidPhone => r.phone.as_ref().map(|p| format!("{p:?}")),
        Reason::PhoneNotSmsEnabled => r
            .phone
            .as_ref()
            .map(|p| format!("{p} is stored but 'receives SMS' is off")),
        Reason::NoConsent if facts.contracts.is_empty() => Some(match r.role {
            Role::Guardian => "no student in their care has a contract".to_owned(),
            _ => "no contract".to_owned(),
        }),
        Reason::NoConsent => Some(
            facts
                .contracts
                .iter()
                .map(|c| describe_consent(c, channel))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        _ => None,
    };
    match detail {
        Some(d) => format!("{} ({d})", reason.describe()),
        None => reason.describe().to_owned(),
    }
}

/// Why one contract does not give consent on `channel`.
pub(super) fn describe_consent(c: &ContractConsent, channel: Channel) -> String {
    if c.status != crate::domain::ContractStatus::Active {
        return format!("contract {} is {}", c.contract, c.status);
    }
    let consent = match channel {
        Channel::Email => &c.email,
        Channel::Sms => &c.sms,
    };
    let mut text = format!(
        "contract {} has no {} consent",
        c.contract,
        channel_name(channel)
    );
    let when = consent.changed_at.map(|t| t.format("%Y-%m-%d").to_string());
    match (when, &c.source) {
        (Some(w), Some(s)) => text.push_str(&format!(", recorded {w} ({s})")),
        (Some(w), None) => text.push_str(&format!(", recorded {w}")),
        (None, Some(s)) => text.push_str(&format!(" ({s})")),
        (None, None) => {}
    }
    text
}
