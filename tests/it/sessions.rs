//! Console sessions in Herald's database, on both backends, through tower-sessions'
//! store interface: created, loaded, saved, deleted, expired; the database keeps
//! only a digest of each id.

use chrono::Duration;
use herald::http::ConsoleSessions;
use tower_sessions::cookie::time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{ExpiredDeletion, SessionStore};

use crate::conformance;
use crate::helpers::{TestApp, now};

conformance!(a_session_lives_until_it_expires_or_is_deleted_and_its_id_is_kept_as_a_digest);

fn at(offset: Duration) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp((now() + offset).timestamp()).unwrap()
}

async fn a_session_lives_until_it_expires_or_is_deleted_and_its_id_is_kept_as_a_digest(
    app: TestApp,
) {
    let sessions = ConsoleSessions::new(app.app_at(now()));
    let mut record = Record {
        id: Id::default(),
        data: [("operator".to_owned(), serde_json::json!("anna"))].into(),
        expiry_date: at(Duration::hours(1)),
    };
    sessions.create(&mut record).await.unwrap();
    let loaded = sessions
        .load(&record.id)
        .await
        .unwrap()
        .expect("it is there");
    assert_eq!(loaded, record);

    // A second session cannot take the first one's id: it gets another.
    let mut clash = Record {
        id: record.id,
        data: [("operator".to_owned(), serde_json::json!("mallory"))].into(),
        expiry_date: at(Duration::hours(1)),
    };
    sessions.create(&mut clash).await.unwrap();
    assert_ne!(clash.id, record.id);
    assert_eq!(
        sessions.load(&record.id).await.unwrap().unwrap().data,
        record.data
    );

    // Saved changes are loaded back; an unknown id loads nothing.
    record
        .data
        .insert("locale".to_owned(), serde_json::json!("pl"));
    sessions.save(&record).await.unwrap();
    assert_eq!(
        sessions.load(&record.id).await.unwrap().unwrap().data,
        record.data
    );
    assert_eq!(sessions.load(&Id::default()).await.unwrap(), None);

    // The id itself is not in the database.
    let raw = format!(
        "{:?}",
        app.store
            .load_session(&record.id.to_string(), now())
            .await
            .unwrap()
    );
    assert_eq!(raw, "None", "looked up by the id itself, nothing is found");

    // Expired sessions load as nothing and are swept; deleted ones are gone.
    let mut old = Record {
        id: Id::default(),
        data: Default::default(),
        expiry_date: at(Duration::seconds(-1)),
    };
    sessions.create(&mut old).await.unwrap();
    assert_eq!(sessions.load(&old.id).await.unwrap(), None);
    sessions.delete_expired().await.unwrap();
    assert_eq!(
        app.store.delete_expired_sessions(now()).await.unwrap(),
        0,
        "swept already"
    );
    sessions.delete(&record.id).await.unwrap();
    assert_eq!(sessions.load(&record.id).await.unwrap(), None);
    assert!(sessions.load(&clash.id).await.unwrap().is_some());
}
