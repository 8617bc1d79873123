//! Operators' passwords, for signing in to the console: set by the operator or by
//! someone who manages operators, kept as Argon2id hashes (PHC strings, which carry
//! their own parameters), and checked without telling whether the login exists.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::{Actor, App, AppError, Result};
use crate::domain::access::{Operator, Permission};
use crate::domain::audit::AuditAction;

/// The shortest password taken. Length is what makes a password hard to guess
/// (NIST SP 800-63B asks for at least 8; a school's console guards parents' data).
const MIN_CHARS: usize = 10;

/// The longest: hashing is costly, and nobody types more.
const MAX_CHARS: usize = 256;

/// A hash of nothing anyone knows, checked when the login has no password, so that a
/// wrong login takes as long as a wrong password.
static DECOY: LazyLock<String> =
    LazyLock::new(|| hash("a password nobody has").unwrap_or_default());

/// Argon2id with the crate's defaults (19 MiB, 2 passes, 1 lane: OWASP's minimum),
/// a random salt from the OS.
fn hash(password: &str) -> std::result::Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC string `stored`.
fn matches(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Refuses a password that is too short or too long, or that is the login itself.
fn check(login: &str, password: &str) -> Result<()> {
    let chars = password.chars().count();
    if !(MIN_CHARS..=MAX_CHARS).contains(&chars) {
        return Err(AppError::invalid(
            "password",
            format!(
                "{chars} characters: expected {MIN_CHARS} to {MAX_CHARS} (a few words make a good one)"
            ),
        ));
    }
    if password.trim().eq_ignore_ascii_case(login) {
        return Err(AppError::invalid(
            "password",
            "the login itself: expected something only its owner knows",
        ));
    }
    Ok(())
}

impl App {
    /// Sets `login`'s password: their own, or anyone's for someone who manages
    /// operators. Hashed off the async threads; the audit line never holds it.
    pub async fn set_password(
        &self,
        actor: &Actor,
        login: &str,
        password: &SecretString,
    ) -> Result<()> {
        match actor {
            Actor::Operator(me) if me == login => {
                if self.store.operator(login).await?.is_none() {
                    return Err(AppError::UnknownOperator(login.to_owned()));
                }
            }
            _ => {
                self.authorize(
                    actor,
                    Permission::ManageOperators,
                    "set another operator's password",
                )
                .await?;
            }
        }
        check(login, password.expose_secret())?;
        let secret = password.clone();
        let hashed = tokio::task::spawn_blocking(move || hash(secret.expose_secret()))
            .await
            .map_err(|e| AppError::Internal(format!("hashing the password stopped: {e}")))?
            .map_err(|e| AppError::Internal(format!("hashing the password failed: {e}")))?;
        let audit = self.audit_line(
            actor,
            AuditAction::PasswordSet,
            format!("operator {login}"),
            json!({}),
        );
        if !self.store.set_password(login, &hashed, &audit).await? {
            return Err(AppError::NotFound {
                what: "operator",
                id: login.to_owned(),
            });
        }
        Ok(())
    }

    /// The operator `login`, when `password` is theirs. Every failure — no such
    /// operator, no password set, a wrong one — is the same `Unauthenticated`, and
    /// takes as long, so a sign-in form does not tell which logins exist.
    pub async fn check_password(&self, login: &str, password: &SecretString) -> Result<Operator> {
        let stored = self.store.password_hash(login).await?;
        let secret = password.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let stored = stored.as_deref().unwrap_or(DECOY.as_str());
            matches(secret.expose_secret(), stored) && stored != DECOY.as_str()
        })
        .await
        .map_err(|e| AppError::Internal(format!("checking the password stopped: {e}")))?;
        if !ok {
            return Err(AppError::Unauthenticated);
        }
        self.store
            .operator(login)
            .await?
            .ok_or(AppError::Unauthenticated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_matches_its_password_only() {
        let stored = hash("correct horse battery").unwrap();
        assert!(stored.starts_with("$argon2id$v=19$"), "{stored}");
        assert!(matches("correct horse battery", &stored));
        assert!(!matches("correct horse batterY", &stored));
        assert!(!matches("correct horse battery", "not a hash"));
        assert_ne!(stored, hash("correct horse battery").unwrap(), "salted");
    }

    #[test]
    fn short_long_and_login_passwords_are_refused_naming_the_field() {
        for bad in ["short", &"x".repeat(257), "anna.nowak1"] {
            match check("anna.nowak1", bad) {
                Err(AppError::Invalid { field, .. }) => assert_eq!(field, "password"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(check("anna", "zebranie w czwartek").is_ok());
    }
}
