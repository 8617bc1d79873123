//! Console sessions: kept by the SHA-256 of their id, loaded only while unexpired.

use super::*;
use crate::store::SessionStore;

#[async_trait]
impl SessionStore for Backend {
    async fn create_session(
        &self,
        id_sha256: &str,
        data: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO console_sessions (id_sha256, data, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (id_sha256) DO NOTHING",
        )
        .bind(id_sha256)
        .bind(data)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn save_session(
        &self,
        id_sha256: &str,
        data: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO console_sessions (id_sha256, data, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (id_sha256) DO UPDATE
             SET data = excluded.data, expires_at = excluded.expires_at",
        )
        .bind(id_sha256)
        .bind(data)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn load_session(
        &self,
        id_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(String, DateTime<Utc>)>> {
        Ok(sqlx::query_as(
            "SELECT data, expires_at FROM console_sessions
             WHERE id_sha256 = $1 AND expires_at > $2",
        )
        .bind(id_sha256)
        .bind(now)
        .fetch_optional(&self.reads)
        .await?)
    }

    async fn delete_session(&self, id_sha256: &str) -> Result<()> {
        sqlx::query("DELETE FROM console_sessions WHERE id_sha256 = $1")
            .bind(id_sha256)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
