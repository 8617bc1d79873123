//! Operators' passwords on both backends: set by the operator or by someone who
//! manages operators, checked at sign-in with one answer for every failure, audited
//! without the password, and set from the command line through standard input.

use herald::app::{Actor, AppError};
use herald::domain::audit::AuditAction;
use herald::store::AuditFilter;
use secrecy::SecretString;

use crate::conformance;
use crate::helpers::{OWNER, TestApp, now};

conformance!(
    a_password_is_set_by_its_owner_or_a_manager_and_checked_with_one_answer_for_every_failure,
);

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

async fn a_password_is_set_by_its_owner_or_a_manager_and_checked_with_one_answer_for_every_failure(
    app: TestApp,
) {
    app.owner().await;
    app.operator_with("anna", "secretary", &[]).await;
    app.operator_with("tomek", "teacher", &[]).await;
    let herald = app.app_at(now());
    let anna = Actor::operator("anna");

    // Nobody has a password yet: signing in fails like a wrong password.
    let before = herald
        .check_password("anna", &secret("zebranie w czwartek"))
        .await;
    assert!(
        matches!(before, Err(AppError::Unauthenticated)),
        "{before:?}"
    );

    // Anna sets her own; a teacher may not set hers; the owner may.
    herald
        .set_password(&anna, "anna", &secret("zebranie w czwartek"))
        .await
        .unwrap();
    let refused = herald
        .set_password(
            &Actor::operator("tomek"),
            "anna",
            &secret("przejęte konto!"),
        )
        .await;
    assert!(
        matches!(refused, Err(AppError::Forbidden { .. })),
        "{refused:?}"
    );
    let signed_in = herald
        .check_password("anna", &secret("zebranie w czwartek"))
        .await
        .unwrap();
    assert_eq!(
        (signed_in.login.as_str(), signed_in.role.as_str()),
        ("anna", "secretary")
    );
    for (login, password) in [
        ("anna", "zebranie w piątek"),
        ("anna", ""),
        ("nobody", "zebranie w czwartek"),
        ("tomek", "zebranie w czwartek"),
    ] {
        let r = herald.check_password(login, &secret(password)).await;
        assert!(
            matches!(r, Err(AppError::Unauthenticated)),
            "{login}/{password}: {r:?}"
        );
    }
    herald
        .set_password(
            &Actor::operator(OWNER),
            "tomek",
            &secret("lekcja numer siedem"),
        )
        .await
        .unwrap();
    assert!(
        herald
            .check_password("tomek", &secret("lekcja numer siedem"))
            .await
            .is_ok()
    );

    // Bad passwords name the field and change nothing.
    for bad in ["krótkie", "anna"] {
        match herald.set_password(&anna, "anna", &secret(bad)).await {
            Err(AppError::Invalid { field, .. }) => assert_eq!(field, "password"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert!(
        herald
            .check_password("anna", &secret("zebranie w czwartek"))
            .await
            .is_ok()
    );
    let missing = herald
        .set_password(
            &Actor::operator(OWNER),
            "ghost",
            &secret("zebranie w czwartek"),
        )
        .await;
    assert!(
        matches!(missing, Err(AppError::NotFound { .. })),
        "{missing:?}"
    );

    // Audited, by who set it, never with the password.
    let log = app.store.audit_log(&AuditFilter::default()).await.unwrap();
    let lines: Vec<_> = log
        .iter()
        .filter(|e| e.action == AuditAction::PasswordSet)
        .map(|e| (e.actor.as_str(), e.subject.as_str()))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.contains(&("anna", "operator anna")));
    assert!(lines.contains(&(OWNER, "operator tomek")));
    let everything = format!("{log:?}");
    assert!(!everything.contains("zebranie"), "{everything}");
}
