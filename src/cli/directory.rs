//! `herald migrate`, `import`, `recipients`, `groups`: the directory and who can be reached.

use super::*;

/// Create or upgrade the database schema.
pub(super) async fn migrate(settings: Settings, _now: DateTime<Utc>) -> anyhow::Result<ExitCode> {
    let applied = store::migrate(&settings.database).await?;
    if applied.is_empty() {
        println!(
            "The database {} is up to date.",
            settings.database.redacted_url()
        );
    } else {
        println!(
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
    let store = store::open(&settings.database).await?;
    import(&app(&store, &settings, now), &files, kind, &operator, json).await
}

/// List recipients with who can be reached by which channel, and why not.
pub(super) async fn recipients_command(
    args: RecipientsArgs,
    settings: Settings,
    _now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let RecipientsArgs {
        role,
        group,
        search,
        ineligible,
        channel,
        json,
    } = args;
    let store = store::open(&settings.database).await?;
    let filter = RecipientFilter {
        role,
        group,
        search,
        ..RecipientFilter::default()
    };
    recipients(&*store, &settings, &filter, ineligible, channel, json).await?;
    Ok(ExitCode::SUCCESS)
}

/// List groups with how many students and teachers they have.
pub(super) async fn groups(
    args: GroupsArgs,
    settings: Settings,
    _now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let GroupsArgs { json } = args;
    let store = store::open(&settings.database).await?;
    let groups = store.groups().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&groups)?);
    } else if groups.is_empty() {
        println!("No groups. Import some with `herald import groups.csv --as LOGIN`.");
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
            Err(AppError::Invalid { problem, .. }) => {
                failed = true;
                if json {
                    reports.push(serde_json::json!({"file": file, "error": problem}));
                } else {
                    eprintln!("herald: {problem}");
                    eprintln!("  nothing was imported from {}", file.display());
                }
            }
            Err(other) => return Err(cli_error(other)),
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A recipient's verdict per channel, as `--json` prints it.
#[derive(Serialize)]
pub(super) struct RecipientView<'a> {
    id: i64,
    external_id: &'a str,
    role: Role,
    name: &'a str,
    locale: Option<&'a str>,
    email: Option<&'a str>,
    phone: Option<&'a str>,
    sms_enabled: bool,
    channels: BTreeMap<Channel, ChannelView>,
    contracts: &'a [ContractConsent],
}

#[derive(Serialize)]
pub(super) struct ChannelView {
    eligible: bool,
    reasons: Vec<ReasonView>,
}

#[derive(Serialize)]
pub(super) struct ReasonView {
    code: Reason,
    description: &'static str,
}

pub(super) fn verdicts(
    facts: &EligibilityFacts,
    settings: &Settings,
) -> BTreeMap<Channel, Vec<Reason>> {
    Channel::ALL
        .into_iter()
        .map(|c| {
            (
                c,
                facts.check(c, settings.school.phone_region, settings.eligibility),
            )
        })
        .collect()
}

pub(super) async fn recipients(
    store: &dyn Store,
    settings: &Settings,
    filter: &RecipientFilter,
    only_ineligible: bool,
    channel: Option<Channel>,
    json: bool,
) -> anyhow::Result<()> {
    let all = store.recipients(filter).await?;
    let judged: Vec<(&EligibilityFacts, BTreeMap<Channel, Vec<Reason>>)> = all
        .iter()
        .map(|f| {
            let mut v = verdicts(f, settings);
            if let Some(only) = channel {
                v.retain(|c, _| *c == only);
            }
            (f, v)
        })
        .filter(|(_, v)| !only_ineligible || v.values().any(|r| !r.is_empty()))
        .collect();
    if json {
        let views: Vec<RecipientView> = judged
            .iter()
            .map(|(f, v)| {
                let r = &f.recipient;
                RecipientView {
                    id: r.id.0,
                    external_id: &r.external_id,
                    role: r.role,
                    name: &r.name,
                    locale: r.locale.as_deref(),
                    email: r.email.as_deref(),
                    phone: r.phone.as_deref(),
                    sms_enabled: r.sms_enabled,
                    channels: v
                        .iter()
                        .map(|(c, reasons)| {
                            (
                                *c,
                                ChannelView {
                                    eligible: reasons.is_empty(),
                                    reasons: reasons
                                        .iter()
                                        .map(|r| ReasonView {
                                            code: *r,
                                            description: r.describe(),
                                        })
                                        .collect(),
                                },
                            )
                        })
                        .collect(),
                    contracts: &f.contracts,
                }
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(());
    }
    if judged.is_empty() {
        println!("No recipients match.");
        return Ok(());
    }
    let channels: Vec<Channel> = judged[0].1.keys().copied().collect();
    let mut headers = vec!["ID", "ROLE", "NAME"];
    headers.extend(channels.iter().map(|c| match c {
        Channel::Email => "EMAIL",
        Channel::Sms => "SMS",
    }));
    let rows = judged
        .iter()
        .map(|(f, v)| {
            let r = &f.recipient;
            let mut row = vec![r.external_id.clone(), r.role.to_string(), r.name.clone()];
            row.extend(v.values().map(|reasons| {
                if reasons.is_empty() {
                    "ok".to_owned()
                } else {
                    reasons
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                }
            }));
            row
        })
        .collect();
    print_table(&headers, rows);
    let mut tally: BTreeMap<(Channel, Reason), usize> = BTreeMap::new();
    for (_, v) in &judged {
        for (c, reasons) in v {
            for r in reasons {
                *tally.entry((*c, *r)).or_default() += 1;
            }
        }
    }
    if !tally.is_empty() {
        println!();
        for ((c, r), n) in tally {
            println!("{n:>5} {c:<5} {:<22} {}", r.as_str(), r.describe());
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
