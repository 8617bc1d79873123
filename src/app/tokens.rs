//! API tokens: what the platform authenticates with. A token acts as its operator,
//! with that operator's permissions at the time of each request, so a permission
//! revoked or a role changed applies at the next call.
//!
//! A token reads `hrd_<id>_<secret>`: the id finds its row, the secret (32 bytes from
//! the operating system's generator, base64url) is compared with the SHA-256 kept
//! for it, in constant time. A secret with 256 bits of entropy needs no slow hash:
//! nobody can guess it, and a stolen database yields no token.

use base64::Engine;
use serde_json::json;
use sha2::Digest;
use subtle::ConstantTimeEq;

use super::{Actor, App, AppError, Result};
use crate::domain::access::{Permission, valid_login};
use crate::domain::audit::AuditAction;
use crate::store::{CreateToken, TokenRecord};

/// What every token starts with, so a leaked one is recognisable (secret scanners).
const PREFIX: &str = "hrd";

/// A token just created: its record, and the token itself, shown this once.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The token as stored.
    pub record: TokenRecord,
    /// The whole token: `hrd_<id>_<secret>`.
    pub token: String,
}

impl App {
    /// Creates a token that acts as `operator`. The token is returned once and never
    /// stored: only the SHA-256 of its secret is.
    pub async fn create_token(
        &self,
        actor: &Actor,
        name: &str,
        operator: &str,
    ) -> Result<NewToken> {
        self.authorize(actor, Permission::ManageOperators, "manage API tokens")
            .await?;
        let name = name.trim();
        if !valid_login(name) {
            return Err(AppError::invalid(
                "name",
                format!("{name:?}: expected 1–64 letters, digits, '.', '_', '-' or '@'"),
            ));
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| {
            AppError::Conflict(format!("the operating system gave no random bytes: {e}"))
        })?;
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let audit = self.audit_line(
            actor,
            AuditAction::TokenCreate,
            format!("token {name}"),
            json!({"operator": operator}),
        );
        match self
            .store
            .create_token(name, operator, &sha256_hex(&secret), &audit)
            .await?
        {
            CreateToken::Created(id) => {
                let record = self
                    .store
                    .token(id)
                    .await?
                    .map(|(record, _)| record)
                    .ok_or_else(|| AppError::Conflict(format!("token {id} is gone")))?;
                Ok(NewToken {
                    record,
                    token: format!("{PREFIX}_{id}_{secret}"),
                })
            }
            CreateToken::NameTaken => Err(AppError::Conflict(format!(
                "there is already a token named {name:?} (names are not reused, revoked ones \
                 included)"
            ))),
            CreateToken::UnknownOperator => Err(AppError::invalid(
                "operator",
                format!("{operator:?}: there is no operator with that login"),
            )),
        }
    }

    /// Every token, newest first, without their secrets.
    pub async fn tokens(&self, actor: &Actor) -> Result<Vec<TokenRecord>> {
        self.authorize(actor, Permission::View, "see the API tokens")
            .await?;
        Ok(self.store.tokens().await?)
    }

    /// Revokes a token: its next request fails.
    pub async fn revoke_token(&self, actor: &Actor, name: &str) -> Result<()> {
        self.authorize(actor, Permission::ManageOperators, "manage API tokens")
            .await?;
        let audit = self.audit_line(
            actor,
            AuditAction::TokenRevoke,
            format!("token {name}"),
            json!({}),
        );
        if self.store.revoke_token(name, &audit).await? {
            Ok(())
        } else {
            Err(AppError::NotFound {
                what: "unrevoked token",
                id: name.to_owned(),
            })
        }
    }

    /// The actor a bearer token stands for, recording its use; `Unauthenticated` for
    /// anything but a live token (malformed, unknown, wrong secret, revoked), without
    /// saying which, so a caller learns nothing by trying.
    pub async fn authenticate(&self, token: &str) -> Result<Actor> {
        Ok(self.authenticate_token(token).await?.actor)
    }

    /// [`App::authenticate`], with the token's id: what a limit per token counts by.
    pub async fn authenticate_token(&self, token: &str) -> Result<Authenticated> {
        let mut parts = token.trim().splitn(3, '_');
        let (Some(PREFIX), Some(id), Some(secret)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(AppError::Unauthenticated);
        };
        let Ok(id) = id.parse::<i64>() else {
            return Err(AppError::Unauthenticated);
        };
        let Some((record, stored)) = self.store.token(id).await? else {
            return Err(AppError::Unauthenticated);
        };
        let matches: bool = sha256_hex(secret)
            .as_bytes()
            .ct_eq(stored.as_bytes())
            .into();
        if !matches || record.revoked_at.is_some() {
            return Err(AppError::Unauthenticated);
        }
        // "Last used" to the minute is all anyone reads, and a write per request
        // would contend with the dispatcher for SQLite's one writer (and cost even
        // the requests the rate limit then refuses).
        let now = self.now();
        if record
            .last_used_at
            .is_none_or(|last| now - last >= chrono::Duration::minutes(1))
        {
            self.store.touch_token(id, now).await?;
        }
        Ok(Authenticated {
            token: id,
            actor: Actor::Operator(record.operator),
        })
    }
}

/// A live token and the operator it acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The token's id (the middle of `hrd_<id>_<secret>`).
    pub token: i64,
    /// Its operator.
    pub actor: Actor,
}

fn sha256_hex(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}
