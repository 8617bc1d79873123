//! The school's settings from the command line: holidays, rules, operators, templates,
//! the wallet, the hold switch, the audit log, and what an SMS text costs.

use super::*;

/// The school's days off: nothing that respects the send window goes on them.
pub(super) async fn holidays_command(
    args: HolidaysArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let HolidaysArgs { action } = args;
    let store = open_store(&settings).await?;
    holidays(&store, &settings, action, now).await
}

/// The periodic rules: their settings, last and next run; `run` runs them now.
pub(super) async fn rules(
    args: RulesArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let RulesArgs { action, json } = args;
    let store = open_store(&settings).await?;
    rules_command(&store, &settings, action, json, now).await
}

/// Operators, their roles and permissions (`list`, `roles`, `add`, `set-role`,
/// `grant`, `revoke`, `add-role`).
pub(super) async fn operators(
    args: OperatorsArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let OperatorsArgs { action } = args;
    let store = open_store(&settings).await?;
    operators_command(&store, &settings, action, now).await
}

/// Named templates: one variant per locale and channel, checked when saved.
pub(super) async fn templates(
    args: TemplatesArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let TemplatesArgs { action } = args;
    let store = open_store(&settings).await?;
    templates_command(&store, &settings, action, now).await
}

/// How an SMS text would be sent: encoding, units, segments, cost.
pub(super) async fn sms_info(
    args: SmsInfoArgs,
    settings: Settings,
    _now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let SmsInfoArgs {
        text,
        transliterate,
        json,
    } = args;
    let text = if transliterate {
        crate::domain::sms::transliterate(&text)
    } else {
        text
    };
    let size = crate::domain::sms::measure(&text);
    let cost = size.segments as i64 * i64::from(settings.sms.price_per_segment);
    if json {
        say!(
            "{}",
            serde_json::json!({
                "encoding": size.encoding,
                "units": size.units,
                "segments": size.segments,
                "cost": cost,
            })
        );
    } else {
        say!(
            "{} units in {}, {} segment(s), {cost} point(s){}",
            size.units,
            size.encoding,
            size.segments,
            if transliterate {
                format!(": {text}")
            } else {
                String::new()
            }
        );
        if size.segments > settings.sms.max_segments as usize {
            say!(
                "Longer than sms.max_segments = {}: Herald would refuse it.",
                settings.sms.max_segments
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The SMS wallet: balance, reserved points, the low-balance threshold, the ledger.
pub(super) async fn wallet(
    args: WalletArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let WalletArgs {
        action,
        ledger,
        json,
    } = args;
    let store = open_store(&settings).await?;
    if let Some(WalletCommand::TopUp {
        points,
        operator,
        note,
    }) = action
    {
        let w = app(&store, &settings, now)
            .top_up(&Actor::operator(operator), points, &note)
            .await
            .map_err(cli_error)?;
        say!(
            "Added {points} point(s): the balance is {} ({} reserved). Messages waiting for credit go on the next pass.",
            w.balance,
            w.reserved
        );
        return Ok(ExitCode::SUCCESS);
    }
    print_wallet(&app(&store, &settings, now), ledger, json).await?;
    Ok(ExitCode::SUCCESS)
}

/// The hold switch: pause all dispatch on every instance (nothing is lost), or
/// resume it. Without a subcommand, show it.
pub(super) async fn hold(
    args: HoldArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let HoldArgs { action } = args;
    let store = open_store(&settings).await?;
    match action {
        None => {
            match store.hold().await? {
                Some(h) => say!("{}", hold_banner(&h, &settings)),
                None => say!("Dispatch is running (the hold switch is off)."),
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(HoldCommand::On { reason, operator }) => {
            let change = app(&store, &settings, now)
                .set_hold(&Actor::operator(operator), Some(&reason))
                .await
                .map_err(cli_error)?;
            if change == HoldChange::Switched {
                say!(
                    "Dispatch is on hold on every instance; messages wait as queued. `herald hold off --as LOGIN` resumes."
                );
            } else {
                say!("Dispatch was on hold already.");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(HoldCommand::Off { operator }) => {
            let change = app(&store, &settings, now)
                .set_hold(&Actor::operator(operator), None)
                .await
                .map_err(cli_error)?;
            if change == HoldChange::Switched {
                say!("Dispatch resumes: what waited goes on the next pass.");
            } else {
                say!("Dispatch was not on hold.");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The audit log: every change made by a person, newest first.
pub(super) async fn audit(
    args: AuditArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let AuditArgs {
        actor,
        action,
        since,
        limit,
        json,
    } = args;
    let since = since.map(|s| parse_since(&settings, &s, now)).transpose()?;
    let store = open_store(&settings).await?;
    let filter = crate::store::AuditFilter {
        actor,
        action,
        since,
        limit: Some(limit),
    };
    let lines = app(&store, &settings, now)
        .audit_log(&READER, &filter)
        .await
        .map_err(cli_error)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&lines)?);
    } else if lines.is_empty() {
        say!("The audit log has nothing that matches.");
    } else {
        let tz = settings.school.time_zone;
        let rows = lines
            .iter()
            .map(|l| {
                vec![
                    l.at.with_timezone(&tz)
                        .format("%Y-%m-%d %H:%M:%S")
                        .to_string(),
                    l.actor.clone(),
                    l.action.to_string(),
                    l.subject.clone(),
                    l.details.to_string(),
                ]
            })
            .collect();
        print_table(&["AT", "WHO", "ACTION", "ON", "DETAILS"], rows);
    }
    Ok(ExitCode::SUCCESS)
}

/// The wallet, its ledger and whether it is low.
pub(super) async fn print_wallet(app: &App, ledger: i64, json: bool) -> anyhow::Result<()> {
    let w = app.wallet_view(&READER, ledger).await.map_err(cli_error)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&w)?);
        return Ok(());
    }
    let settings = app.settings();
    say!(
        "SMS wallet ({} gateway, sender {:?}):",
        settings.sms.gateway.name(),
        settings.sms.sender
    );
    say!("  balance:   {} point(s)", w.balance);
    say!(
        "  reserved:  {} point(s) (held for SMS being sent)",
        w.reserved
    );
    say!(
        "  threshold: {} point(s); SMS due in the next 24 h need {}",
        w.low_balance_threshold,
        w.needed_next_24h
    );
    if w.low {
        say!("  LOW: top it up with `herald wallet top-up POINTS --as LOGIN --note TEXT`");
    }
    say!(
        "  totals:    {} topped up, {} charged, {} reserved now ({} per segment)",
        w.totals.top_ups,
        w.totals.charges,
        w.reserved,
        w.price_per_segment
    );
    if w.ledger.is_empty() {
        say!("The ledger is empty.");
        return Ok(());
    }
    let tz = settings.school.time_zone;
    let rows = w
        .ledger
        .iter()
        .map(|l| {
            vec![
                l.at.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string(),
                l.entry.clone(),
                l.points.to_string(),
                l.message_id.map(|m| m.to_string()).unwrap_or_default(),
                l.balance_after.to_string(),
                l.reserved_after.to_string(),
                [l.actor.clone(), l.note.clone()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": "),
            ]
        })
        .collect();
    print_table(
        &[
            "AT", "ENTRY", "POINTS", "MESSAGE", "BALANCE", "RESERVED", "NOTE",
        ],
        rows,
    );
    Ok(())
}

pub(super) async fn rules_command(
    store: &Arc<dyn Store>,
    settings: &Settings,
    action: Option<RulesCommand>,
    json: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    match action {
        None => list_rules(store, settings, json, now).await,
        Some(RulesCommand::Run {
            rule,
            at,
            operator,
            json,
        }) => {
            let at = at.map(|text| school_time(settings, &text)).transpose()?;
            let results = app(store, settings, now)
                .run_rules(&Actor::operator(operator), rule, at)
                .await
                .map_err(|e| match e {
                    AppError::Invalid {
                        field: "at",
                        problem,
                    } => anyhow::anyhow!("--at {problem}"),
                    other => cli_error(other),
                })?;
            let mut failed = false;
            let mut reports = Vec::new();
            for r in results {
                match r {
                    Ok(report) => {
                        if !json {
                            for f in &report.failed {
                                complain!("herald: {}: could not be written: {f}", report.rule);
                            }
                            failed |= !report.failed.is_empty();
                            say!(
                                "{}: {} new occurrence(s), {} message(s); {} existed already (days {}).",
                                report.rule,
                                report.occurrences,
                                report.messages,
                                report.existing,
                                report
                                    .days
                                    .iter()
                                    .map(|d| d.to_string())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            );
                        }
                        reports.push(serde_json::to_value(&report)?);
                    }
                    Err(e) => {
                        failed = true;
                        match &e {
                            crate::rules::RuleError::NoTemplate {
                                template, channel, ..
                            } => complain!(
                                "herald: {e}; add it with `herald templates add {template} \
                                 --channel {channel} …`"
                            ),
                            _ => complain!("herald: {e}"),
                        }
                    }
                }
            }
            if json {
                say!("{}", serde_json::to_string_pretty(&reports)?);
            } else if reports.is_empty() && !failed {
                say!("No rule is due (`herald rules` shows when each runs next).");
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// The periodic rules: on or off, schedule, channel, template, approval, last and next run.
async fn list_rules(
    store: &Arc<dyn Store>,
    settings: &Settings,
    json: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    use crate::rules::{self, Rule};
    let tz = settings.school.time_zone;
    let mut list = Vec::new();
    for rule in Rule::ALL {
        let c = rule.settings(settings);
        let last = store.rule_run(rule.as_str()).await?;
        let next = c
            .enabled
            .then(|| rules::next_run(settings, rule, last.as_ref(), now))
            .flatten();
        let detail = match rule {
            Rule::InstalmentDue => {
                format!("days before the due date: {:?}", settings.rules.days_before)
            }
            Rule::Arrears => format!(
                "after {} days in arrears, from {:.2} zł, every {} days",
                settings.rules.arrears_min_days,
                settings.rules.arrears_min_amount_cents as f64 / 100.0,
                settings.rules.arrears_repeat_every_days
            ),
            Rule::Birthday => format!(
                "skipped when it cannot go on the day (max_lateness {})",
                humantime::format_duration(settings.rules.birthday_max_lateness)
            ),
        };
        list.push(serde_json::json!({
            "rule": rule,
            "enabled": c.enabled,
            "schedule": c.schedule.to_string(),
            "channel": c.channel,
            "template": c.template,
            "requires_approval": c.requires_approval,
            "detail": detail,
            "last_run": last,
            "next_run": next,
        }));
    }
    if json {
        say!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    let when = |t: Option<DateTime<Utc>>| {
        t.map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|| "-".into())
    };
    let rows = Rule::ALL
        .iter()
        .zip(&list)
        .map(|(rule, v)| {
            let c = rule.settings(settings);
            vec![
                rule.to_string(),
                if c.enabled { "on" } else { "off" }.to_owned(),
                c.schedule.to_string(),
                c.channel.to_string(),
                if c.template.is_empty() {
                    "-".to_owned()
                } else {
                    c.template.clone()
                },
                if c.requires_approval {
                    "outbox"
                } else {
                    "automatic"
                }
                .to_owned(),
                when(
                    v["last_run"]["last_run_at"]
                        .as_str()
                        .and_then(|t| t.parse().ok()),
                ),
                when(v["next_run"].as_str().and_then(|t| t.parse().ok())),
                v["detail"].as_str().unwrap_or_default().to_owned(),
            ]
        })
        .collect();
    print_table(
        &[
            "RULE", "ON", "SCHEDULE", "CHANNEL", "TEMPLATE", "APPROVAL", "LAST RUN", "NEXT RUN", "",
        ],
        rows,
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn operators_command(
    store: &Arc<dyn Store>,
    settings: &Settings,
    action: OperatorsCommand,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    use crate::domain::access::RoleDef;
    let app = app(store, settings, now);
    let grant = matches!(action, OperatorsCommand::Grant { .. });
    match action {
        OperatorsCommand::List { json } => list_operators(&app, json).await,
        OperatorsCommand::Roles { json } => list_roles(&app, json).await,
        OperatorsCommand::Add {
            login,
            name,
            role,
            teacher,
            operator,
        } => {
            let first = operator.is_none();
            let request = OperatorRequest {
                login: login.clone(),
                name,
                role: role.clone(),
                teacher,
            };
            let added = app
                .add_operator(operator.map(Actor::operator).as_ref(), &request)
                .await
                .map_err(|e| match e {
                    AppError::Conflict(_) if first => anyhow::anyhow!(
                        "--as is required: only the installation's first operator is added without it"
                    ),
                    AppError::Invalid { field: "role", problem } if first => anyhow::anyhow!(
                        "--role {problem} (--role owner)"
                    ),
                    AppError::Invalid { field: "role", problem } => anyhow::anyhow!(
                        "--role {problem} (`herald operators roles` lists them; `add-role` adds one)"
                    ),
                    other => cli_error(other),
                })?;
            say!(
                "Added operator {login} ({}) with the role {role}.",
                added.name
            );
            Ok(ExitCode::SUCCESS)
        }
        OperatorsCommand::SetPassword { login, operator } => {
            let password = read_password(&login)?;
            app.set_password(&Actor::operator(operator), &login, &password)
                .await
                .map_err(cli_error)?;
            say!("{login}'s password is set; they can sign in to the console.");
            Ok(ExitCode::SUCCESS)
        }
        OperatorsCommand::SetRole {
            login,
            role,
            operator,
        } => {
            let after = app
                .set_role(&Actor::operator(operator), &login, &role)
                .await
                .map_err(cli_error)?;
            say!(
                "{login} now has the role {role}: {}.",
                permission_list(&after.permissions)
            );
            Ok(ExitCode::SUCCESS)
        }
        OperatorsCommand::Grant {
            login,
            permissions,
            operator,
        }
        | OperatorsCommand::Revoke {
            login,
            permissions,
            operator,
        } => {
            let change = app
                .change_permissions(&Actor::operator(operator), &login, &permissions, grant)
                .await
                .map_err(cli_error)?;
            if change.changed == 0 {
                say!(
                    "Nothing to change: {login} may {}.",
                    permission_list(&change.operator.permissions)
                );
            } else {
                say!(
                    "{login} may now: {}.",
                    permission_list(&change.operator.permissions)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        OperatorsCommand::AddRole {
            name,
            description,
            permissions,
            operator,
        } => {
            let role = RoleDef {
                name: name.clone(),
                description,
                builtin: false,
                permissions: permissions.into_iter().collect(),
            };
            app.save_role(&Actor::operator(operator), &role)
                .await
                .map_err(cli_error)?;
            say!("Saved role {name}: {}.", permission_list(&role.permissions));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Operators with their role, exceptions and permissions.
async fn list_operators(app: &App, json: bool) -> anyhow::Result<ExitCode> {
    let store = app.store();
    let all = store.operators().await?;
    if json {
        say!("{}", serde_json::to_string_pretty(&all)?);
    } else if all.is_empty() {
        say!(
            "No operators yet. Add the first owner with `herald operators add LOGIN --role owner --name \"…\"`."
        );
    } else {
        let rows = all
            .iter()
            .map(|o| {
                let mut extra = Vec::new();
                extra.extend(o.granted.iter().map(|p| format!("+{p}")));
                extra.extend(o.revoked.iter().map(|p| format!("-{p}")));
                vec![
                    o.login.clone(),
                    o.name.clone(),
                    o.role.clone(),
                    o.teacher.clone().unwrap_or_default(),
                    extra.join(" "),
                    permission_list(&o.permissions),
                ]
            })
            .collect();
        print_table(
            &[
                "LOGIN",
                "NAME",
                "ROLE",
                "TEACHER",
                "EXCEPTIONS",
                "PERMISSIONS",
            ],
            rows,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Roles with their permissions, and what each permission allows.
async fn list_roles(app: &App, json: bool) -> anyhow::Result<ExitCode> {
    let store = app.store();
    let roles = store.roles().await?;
    if json {
        say!("{}", serde_json::to_string_pretty(&roles)?);
    } else {
        let rows = roles
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    if r.builtin { "built-in" } else { "school" }.to_owned(),
                    permission_list(&r.permissions),
                    r.description.clone(),
                ]
            })
            .collect();
        print_table(&["ROLE", "KIND", "PERMISSIONS", "DESCRIPTION"], rows);
        say!("\nPermissions:");
        for p in Permission::ALL {
            say!("  {:<22} {}", p.as_str(), p.describe());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn templates_command(
    store: &Arc<dyn Store>,
    settings: &Settings,
    action: TemplatesCommand,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    use crate::templates::{self, Variant};
    match action {
        TemplatesCommand::Add {
            name,
            locale,
            channel,
            subject,
            body,
            html_file,
            operator,
        } => {
            let variant = Variant {
                name,
                locale,
                channel,
                subject,
                body,
                html: read_html(html_file.as_deref())?,
            };
            let variant = app(store, settings, now)
                .save_template(&Actor::operator(operator), &variant)
                .await
                .map_err(|e| match e {
                    // The check's own words say what is wrong and where.
                    AppError::Invalid { problem, .. } => anyhow::anyhow!(problem),
                    other => cli_error(other),
                })?;
            say!(
                "Saved template {:?} ({}, {}).",
                variant.name,
                variant.locale,
                variant.channel
            );
            Ok(ExitCode::SUCCESS)
        }
        TemplatesCommand::List { json } => {
            let all = store.templates(None).await?;
            if json {
                say!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                say!(
                    "No templates. Add one with `herald templates add NAME --body TEXT --as LOGIN`."
                );
            } else {
                let rows = all
                    .iter()
                    .map(|v| {
                        vec![
                            v.name.clone(),
                            v.channel.to_string(),
                            v.locale.clone(),
                            v.subject.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                print_table(&["NAME", "CHANNEL", "LOCALE", "SUBJECT"], rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        TemplatesCommand::Show { name, json } => {
            let variants = store.templates(Some(&name)).await?;
            if variants.is_empty() {
                bail!("there is no template {name:?}");
            }
            if json {
                say!("{}", serde_json::to_string_pretty(&variants)?);
            } else {
                for v in variants {
                    say!("{} — {} — {}", v.name, v.channel, v.locale);
                    if let Some(s) = &v.subject {
                        say!("  subject: {s}");
                    }
                    for line in v.body.lines() {
                        say!("  | {line}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TemplatesCommand::Preview {
            name,
            to,
            channel,
            vars,
        } => {
            let variants: Vec<Variant> = store
                .templates(Some(&name))
                .await?
                .into_iter()
                .filter(|v| v.channel == channel)
                .collect();
            let vars: std::collections::BTreeMap<String, String> = vars.into_iter().collect();
            let (ctx, locale) = match &to {
                Some(id) => {
                    let facts = store
                        .recipient(id)
                        .await?
                        .with_context(|| format!("there is no recipient {id:?}"))?;
                    let locale = facts.recipient.locale.clone();
                    (
                        compose::context(&**store, settings, &facts, &vars).await?,
                        locale,
                    )
                }
                None => (templates::sample(vars), None),
            };
            let variant = templates::pick(
                &variants,
                locale.as_deref(),
                &settings.school.default_locale,
            )
            .with_context(|| format!("there is no template {name:?} for {channel}"))?;
            let templates::Rendered {
                subject,
                body,
                html,
            } = templates::render(
                variant,
                &templates::Context {
                    locale: variant.locale.clone(),
                    ..ctx
                },
            )?;
            say!("({} variant)", variant.locale);
            if let Some(s) = subject {
                say!("Subject: {s}");
            }
            say!("{body}");
            if let Some(html) = html {
                say!("--- HTML ---\n{html}");
            }
            if channel == Channel::Sms {
                let size = crate::domain::sms::measure(&body);
                say!(
                    "({} units in {}, {} segment(s))",
                    size.units,
                    size.encoding,
                    size.segments
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(super) async fn holidays(
    store: &Arc<dyn Store>,
    settings: &Settings,
    action: HolidaysCommand,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let today = now.with_timezone(&settings.school.time_zone).date_naive();
    match action {
        HolidaysCommand::List { all, json } => {
            let list = store.holidays((!all).then_some(today)).await?;
            if json {
                say!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                say!("No holidays. Add one with `herald holidays add NAME FIRST_DAY [LAST_DAY]`.");
            } else {
                let rows = list
                    .iter()
                    .map(|h| {
                        vec![
                            h.id.map(|i| i.to_string()).unwrap_or_default(),
                            h.first_day.format("%a %Y-%m-%d").to_string(),
                            h.last_day.format("%a %Y-%m-%d").to_string(),
                            ((h.last_day - h.first_day).num_days() + 1).to_string(),
                            h.name.clone(),
                        ]
                    })
                    .collect();
                print_table(&["ID", "FIRST DAY", "LAST DAY", "DAYS", "NAME"], rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        HolidaysCommand::Add {
            name,
            first_day,
            last_day,
            operator,
        } => {
            let stored = app(store, settings, now)
                .add_holiday(
                    &Actor::operator(operator),
                    &name,
                    first_day,
                    last_day.unwrap_or(first_day),
                )
                .await
                .map_err(cli_error)
                .with_context(|| format!("cannot add the holiday {name:?}"))?;
            say!(
                "Added holiday {} (id {}): {} to {}.",
                stored.name,
                stored.id.unwrap_or_default(),
                stored.first_day,
                stored.last_day
            );
            if stored.last_day < today {
                say!("Note: it is already over, so it changes nothing.");
            }
            Ok(ExitCode::SUCCESS)
        }
        HolidaysCommand::Remove { id, operator } => {
            app(store, settings, now)
                .remove_holiday(&Actor::operator(operator), id)
                .await
                .map_err(|e| match e {
                    AppError::NotFound { .. } => anyhow::anyhow!(
                        "there is no holiday with id {id}; `herald holidays list --all` shows them"
                    ),
                    other => cli_error(other),
                })?;
            say!("Removed holiday {id}.");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Permissions as the listing shows them: their codes, comma-separated.
fn permission_list(p: &std::collections::BTreeSet<Permission>) -> String {
    p.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
}

/// A new password: typed twice without echo at a terminal, or the first line of
/// standard input when that is a pipe or a file.
fn read_password(login: &str) -> anyhow::Result<secrecy::SecretString> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("New password for {login}: "))?;
        let again = rpassword::prompt_password("The same again: ")?;
        if first != again {
            anyhow::bail!("the two passwords differ; nothing was changed");
        }
        return Ok(first.into());
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        anyhow::bail!("expected the password on the first line of standard input");
    }
    Ok(password.into())
}
