//! API tokens: created and revoked with their audit line, looked up by id.

use super::*;
use crate::store::{CreateToken, TokenRecord, TokenStore};

/// The columns of a token as listed, in the order `token_record` reads them.
macro_rules! token_columns {
    () => {
        "id, name, operator, created_at, created_by, last_used_at, revoked_at, revoked_by"
    };
}

fn token_record(row: &<Db as sqlx::Database>::Row) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        operator: row.try_get("operator")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
        revoked_by: row.try_get("revoked_by")?,
    })
}

#[async_trait]
impl TokenStore for Backend {
    async fn create_token(
        &self,
        name: &str,
        operator: &str,
        secret_sha256: &str,
        audit: &AuditEntry,
    ) -> Result<CreateToken> {
        let mut tx = self.begin_write().await?;
        let known: Option<String> =
            sqlx::query_scalar("SELECT login FROM operators WHERE login = $1")
                .bind(operator)
                .fetch_optional(&mut *tx)
                .await?;
        if known.is_none() {
            return Ok(CreateToken::UnknownOperator);
        }
        // The name is unique; a second token of the same name inserts nothing.
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO api_tokens (name, operator, secret_sha256, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO NOTHING
             RETURNING id",
        )
        .bind(name)
        .bind(operator)
        .bind(secret_sha256)
        .bind(audit.at)
        .bind(&audit.actor)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            return Ok(CreateToken::NameTaken);
        };
        insert_audit(&mut tx, &audit.for_id(id)).await?;
        tx.commit().await?;
        Ok(CreateToken::Created(id))
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens ORDER BY id DESC"
        ))
        .fetch_all(&self.reads)
        .await?;
        rows.iter().map(token_record).collect()
    }

    async fn token(&self, id: i64) -> Result<Option<(TokenRecord, String)>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            ", secret_sha256 FROM api_tokens WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.reads)
        .await?;
        row.map(|row| Ok((token_record(&row)?, row.try_get("secret_sha256")?)))
            .transpose()
    }

    async fn revoke_token(&self, name: &str, audit: &AuditEntry) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $2, revoked_by = $3
             WHERE name = $1 AND revoked_at IS NULL",
        )
        .bind(name)
        .bind(audit.at)
        .bind(&audit.actor)
        .execute(&mut *tx)
        .await?;
        commit_with_audit(tx, done.rows_affected(), audit).await
    }

    async fn touch_token(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        // Last use only moves forward, whichever request records it first.
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = $2
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
        )
        .bind(id)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
