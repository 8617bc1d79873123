//! API tokens on both backends: shown once, stored hashed, acting as their operator
//! with that operator's permissions at each use, refused once revoked, and every
//! creation and revocation in the audit log.

use herald::app::{Actor, AppError};
use herald::domain::access::Permission;
use herald::domain::audit::AuditAction;
use herald::store::AuditFilter;

use crate::conformance;
use crate::helpers::{OWNER, TestApp, now};

conformance!(
    a_token_acts_as_its_operator_until_it_is_revoked,
    a_token_is_refused_when_malformed_unknown_or_its_secret_is_wrong,
    a_token_has_its_operators_permissions_at_each_use,
);

async fn audit_actions(app: &TestApp) -> Vec<AuditAction> {
    app.store
        .audit_log(&AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.action)
        .collect()
}

/// The owner, a secretary `platform`, and a token `eduSky` acting as them.
async fn with_token(app: &TestApp) -> (herald::app::App, herald::app::NewToken) {
    app.owner().await;
    app.operator_with("platform", "secretary", &[]).await;
    let herald = app.app_at(now());
    let new = herald
        .create_token(&Actor::operator(OWNER), "eduSky", "platform")
        .await
        .unwrap();
    (herald, new)
}

async fn a_token_acts_as_its_operator_until_it_is_revoked(app: TestApp) {
    let (herald, new) = with_token(&app).await;
    let owner = Actor::operator(OWNER);
    assert!(
        new.token.starts_with(&format!("hrd_{}_", new.record.id)),
        "{}",
        new.token
    );
    assert!(new.token.len() > 40, "32 random bytes: {}", new.token);
    // Only a hash is stored: the secret appears nowhere in the database's answers.
    let (_, stored) = app.store.token(new.record.id).await.unwrap().unwrap();
    let secret = new.token.splitn(3, '_').nth(2).unwrap();
    assert!(!stored.contains(secret) && stored.len() == 64, "{stored}");
    let listed = herald.tokens(&owner).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_used_at, None);

    assert_eq!(
        herald.authenticate(&new.token).await.unwrap(),
        Actor::operator("platform")
    );
    let used = herald.tokens(&owner).await.unwrap();
    assert_eq!(used[0].last_used_at, Some(now()), "last use recorded");

    // Names are not reused; the operator must exist.
    let taken = herald.create_token(&owner, "eduSky", "platform").await;
    assert!(matches!(taken, Err(AppError::Conflict(_))), "{taken:?}");
    let nobody = herald.create_token(&owner, "other", "nobody").await;
    assert!(
        matches!(
            nobody,
            Err(AppError::Invalid {
                field: "operator",
                ..
            })
        ),
        "{nobody:?}"
    );
    // A teacher may not hand out tokens.
    app.operator_with("tomek", "teacher", &[]).await;
    let refused = herald
        .create_token(&Actor::operator("tomek"), "mine", "tomek")
        .await;
    assert!(
        matches!(
            refused,
            Err(AppError::Forbidden {
                permission: Permission::ManageOperators,
                ..
            })
        ),
        "{refused:?}"
    );

    herald.revoke_token(&owner, "eduSky").await.unwrap();
    assert!(matches!(
        herald.authenticate(&new.token).await,
        Err(AppError::Unauthenticated)
    ));
    assert!(matches!(
        herald.revoke_token(&owner, "eduSky").await,
        Err(AppError::NotFound { .. })
    ));
    let actions = audit_actions(&app).await;
    let count = |a| actions.iter().filter(|x| **x == a).count();
    assert_eq!(count(AuditAction::TokenCreate), 1, "{actions:?}");
    assert_eq!(count(AuditAction::TokenRevoke), 1, "{actions:?}");
}

async fn a_token_is_refused_when_malformed_unknown_or_its_secret_is_wrong(app: TestApp) {
    app.owner().await;
    let herald = app.app_at(now());
    let new = herald
        .create_token(&Actor::operator(OWNER), "eduSky", OWNER)
        .await
        .unwrap();
    let id = new.record.id;
    let other_secret = format!("hrd_{id}_{}", "A".repeat(43));
    for bad in [
        "",
        "hrd",
        "Bearer whatever",
        &format!("xyz_{id}_secret"),
        &format!("hrd_{}_secret", id + 100),
        "hrd_notanumber_secret",
        &other_secret,
        &new.token[..new.token.len() - 1],
    ] {
        assert!(
            matches!(
                herald.authenticate(bad).await,
                Err(AppError::Unauthenticated)
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        herald.tokens(&Actor::operator(OWNER)).await.unwrap()[0].last_used_at,
        None,
        "a refused token is not recorded as used"
    );
}

async fn a_token_has_its_operators_permissions_at_each_use(app: TestApp) {
    let (herald, new) = with_token(&app).await;
    let owner = Actor::operator(OWNER);
    let actor = herald.authenticate(&new.token).await.unwrap();
    herald.top_up(&actor, 10, "FV 1").await.unwrap();
    // The operator loses the permission: the token's next use has it no more.
    herald
        .change_permissions(&owner, "platform", &[Permission::TopUp], false)
        .await
        .unwrap();
    let actor = herald.authenticate(&new.token).await.unwrap();
    let refused = herald.top_up(&actor, 10, "FV 2").await;
    assert!(
        matches!(
            refused,
            Err(AppError::Forbidden {
                permission: Permission::TopUp,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(app.store.wallet().await.unwrap().balance, 10);
}
