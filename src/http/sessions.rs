//! Console sessions in Herald's own database, on both backends: tower-sessions'
//! `SessionStore` over the store's `SessionStore`. The published SQL stores for
//! tower-sessions need another sqlx than Herald's, and this one keeps only the
//! SHA-256 of each session id, so a copy of the database signs nobody in.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tower_sessions::cookie::time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, ExpiredDeletion, Result, SessionStore};

use crate::app::App;

/// The console's sessions, kept through the application's store and clock.
#[derive(Clone)]
pub struct ConsoleSessions {
    app: App,
}

impl std::fmt::Debug for ConsoleSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConsoleSessions")
    }
}

impl ConsoleSessions {
    /// Sessions kept in `app`'s database.
    pub fn new(app: App) -> ConsoleSessions {
        ConsoleSessions { app }
    }
}

/// What the database keeps of an id.
fn digest(id: &Id) -> String {
    hex::encode(Sha256::digest(id.to_string().as_bytes()))
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

fn to_chrono(t: OffsetDateTime) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond())
        .ok_or_else(|| Error::Encode(format!("an expiry out of range: {t}")))
}

fn from_chrono(t: DateTime<Utc>) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(t.timestamp())
        .map_err(|e| Error::Decode(format!("an expiry out of range: {e}")))
}

fn encode(record: &Record) -> Result<String> {
    serde_json::to_string(&record.data).map_err(|e| Error::Encode(e.to_string()))
}

#[async_trait]
impl SessionStore for ConsoleSessions {
    async fn create(&self, record: &mut Record) -> Result<()> {
        let data = encode(record)?;
        let expires = to_chrono(record.expiry_date)?;
        // A 128-bit random id practically never collides; if it does, take another
        // rather than overwrite someone's session.
        while !self
            .app
            .store()
            .create_session(&digest(&record.id), &data, expires)
            .await
            .map_err(backend)?
        {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> Result<()> {
        self.app
            .store()
            .save_session(
                &digest(&record.id),
                &encode(record)?,
                to_chrono(record.expiry_date)?,
            )
            .await
            .map_err(backend)
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let found = self
            .app
            .store()
            .load_session(&digest(id), self.app.now())
            .await
            .map_err(backend)?;
        let Some((data, expires)) = found else {
            return Ok(None);
        };
        Ok(Some(Record {
            id: *id,
            data: serde_json::from_str(&data).map_err(|e| Error::Decode(e.to_string()))?,
            expiry_date: from_chrono(expires)?,
        }))
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.app
            .store()
            .delete_session(&digest(id))
            .await
            .map_err(backend)
    }
}

#[async_trait]
impl ExpiredDeletion for ConsoleSessions {
    async fn delete_expired(&self) -> Result<()> {
        self.app
            .store()
            .delete_expired_sessions(self.app.now())
            .await
            .map_err(backend)?;
        Ok(())
    }
}
