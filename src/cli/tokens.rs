//! `herald tokens`: the API tokens the school's platform calls Herald with.

use super::*;

/// API tokens: list them, create one (shown once), or revoke one.
pub(super) async fn tokens(
    args: TokensArgs,
    settings: Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let store = open_store(&settings).await?;
    let app = app(&store, &settings, now);
    match args.action {
        Some(TokensCommand::Create { name, operator, by }) => {
            let new = app
                .create_token(&Actor::operator(by), &name, &operator)
                .await
                .map_err(cli_error)?;
            say!(
                "Token {:?} acts as {}. Keep it now: Herald keeps only its hash and cannot show it again.",
                new.record.name,
                new.record.operator
            );
            say!("{}", new.token);
        }
        Some(TokensCommand::Revoke { name, by }) => {
            app.revoke_token(&Actor::operator(by), &name)
                .await
                .map_err(|e| match e {
                    AppError::NotFound { .. } => anyhow::anyhow!(
                        "there is no unrevoked token {name:?}; `herald tokens` lists them"
                    ),
                    other => cli_error(other),
                })?;
            say!("Token {name:?} is revoked: its next request is refused.");
        }
        None => {
            let list = app.tokens(&READER).await.map_err(cli_error)?;
            if args.json {
                say!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                say!(
                    "No API tokens. Create one with `herald tokens create NAME --operator LOGIN --as LOGIN`."
                );
            } else {
                let tz = settings.school.time_zone;
                let at = |t: Option<DateTime<Utc>>| {
                    t.map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_else(|| "-".into())
                };
                let rows = list
                    .iter()
                    .map(|t| {
                        vec![
                            t.name.clone(),
                            t.operator.clone(),
                            at(Some(t.created_at)),
                            t.created_by.clone(),
                            at(t.last_used_at),
                            match (&t.revoked_at, &t.revoked_by) {
                                (Some(when), by) => format!(
                                    "revoked {} by {}",
                                    at(Some(*when)),
                                    by.as_deref().unwrap_or("?")
                                ),
                                _ => "active".to_owned(),
                            },
                        ]
                    })
                    .collect();
                print_table(
                    &["NAME", "OPERATOR", "CREATED", "BY", "LAST USED", "STATE"],
                    rows,
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
