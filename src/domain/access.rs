//! Operators and what they may do: permissions, roles, and the one check every
//! command that changes something goes through.
//!
//! An operator's permissions are their role's, plus grants, minus revocations. The
//! built-in `owner` role holds every permission, including ones added in later
//! versions, so a school is never locked out of a new command; all but
//! `send_without_approval`, which skips the second pair of eyes and so is given to a
//! person, never to a role by default.

use std::collections::BTreeSet;

use super::codes::stable_codes;

stable_codes! {
    /// Something an operator may be allowed to do.
    pub enum Permission("permission") {
        /// Read the outbox, the messages, the audit log.
        View = "view",
        /// Compose messages (informational sends, system notifications).
        Send = "send",
        /// Send to any audience; without it, only to the groups the operator teaches.
        SendAnyAudience = "send_any_audience",
        /// Informational sends skip the outbox.
        SendWithoutApproval = "send_without_approval",
        /// Approve or reject batches and messages; resend or cancel messages.
        Approve = "approve",
        /// Import recipients, groups and contracts.
        ManageRecipients = "manage_recipients",
        /// Templates, holidays, the hold switch.
        ManageSettings = "manage_settings",
        /// Add operators and roles, change roles, grant and revoke.
        ManageOperators = "manage_operators",
        /// Top up the SMS wallet.
        TopUp = "top_up",
    }
}

impl Permission {
    /// What the permission allows, in words for people.
    pub fn describe(self) -> &'static str {
        match self {
            Permission::View => "read the outbox, messages and audit log",
            Permission::Send => "compose messages",
            Permission::SendAnyAudience => "send to any audience, not only their own groups",
            Permission::SendWithoutApproval => "send informational messages without approval",
            Permission::Approve => "approve, reject, resend and cancel messages",
            Permission::ManageRecipients => "import recipients, groups and contracts",
            Permission::ManageSettings => "change templates, holidays and the hold switch",
            Permission::ManageOperators => "manage operators and roles",
            Permission::TopUp => "top up the SMS wallet",
        }
    }
}

/// The role that holds every permission (but `send_without_approval`).
pub const OWNER_ROLE: &str = "owner";

/// What the `owner` role gives: everything but `send_without_approval`.
pub fn owner_permissions() -> BTreeSet<Permission> {
    Permission::ALL
        .into_iter()
        .filter(|p| *p != Permission::SendWithoutApproval)
        .collect()
}

/// A role name: lower-case letters, digits, `_` and `-`, starting with a letter.
pub fn valid_role_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && name.len() <= 40
}

/// A login: letters, digits, `.`, `_`, `-` and `@`, so it can be typed after `--as`
/// and never carries a line break into a log or a header.
pub fn valid_login(login: &str) -> bool {
    !login.is_empty()
        && login.len() <= 64
        && login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// A role and the permissions it gives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoleDef {
    /// Its name (`owner`, `secretary`, `teacher`, or one the school added).
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Shipped with Herald (cannot be redefined).
    pub builtin: bool,
    /// What it allows (for `owner`: everything).
    pub permissions: BTreeSet<Permission>,
}

/// An operator as the checks see them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Operator {
    /// What they type after `--as`.
    pub login: String,
    /// Their name, shown in the audit trail.
    pub name: String,
    /// Their role.
    pub role: String,
    /// The platform id of the teacher they are, if any.
    pub teacher: Option<String>,
    /// Granted beyond their role.
    pub granted: BTreeSet<Permission>,
    /// Taken away from their role.
    pub revoked: BTreeSet<Permission>,
    /// What they may do, all told.
    pub permissions: BTreeSet<Permission>,
    /// The language they chose for the console (`pl`, `en`); `None`: their
    /// browser's.
    pub locale: Option<String>,
    /// When their password was last set: a console session signed in before it
    /// has ended. Not shown anywhere.
    #[serde(skip)]
    pub password_set_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Operator {
    /// Builds an operator's effective permissions from their role and exceptions.
    pub fn new(
        login: String,
        name: String,
        role: &RoleDef,
        teacher: Option<String>,
        exceptions: impl IntoIterator<Item = (Permission, bool)>,
    ) -> Operator {
        let mut granted = BTreeSet::new();
        let mut revoked = BTreeSet::new();
        for (p, yes) in exceptions {
            if yes {
                granted.insert(p);
            } else {
                revoked.insert(p);
            }
        }
        let permissions = role
            .permissions
            .union(&granted)
            .copied()
            .filter(|p| !revoked.contains(p))
            .collect();
        Operator {
            login,
            name,
            role: role.name.clone(),
            teacher,
            granted,
            revoked,
            permissions,
            locale: None,
            password_set_at: None,
        }
    }

    /// The operator with their chosen console language and when their password
    /// was set.
    pub fn with_account(
        mut self,
        locale: Option<String>,
        password_set_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Operator {
        self.locale = locale;
        self.password_set_at = password_set_at;
        self
    }

    /// Whether they hold `permission`.
    pub fn may(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    /// `Ok` when they hold `permission`; otherwise an error that says what they
    /// tried, what it needs and how to get it.
    pub fn require(&self, permission: Permission, what: &str) -> Result<(), AccessError> {
        if self.may(permission) {
            Ok(())
        } else {
            Err(AccessError::Denied {
                login: self.login.clone(),
                role: self.role.clone(),
                what: what.to_owned(),
                permission,
            })
        }
    }
}

/// Why an operator may not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// `--as` names nobody.
    #[error("unknown operator {0:?}")]
    UnknownOperator(String),
    /// The operator lacks a permission.
    #[error("{login} (role {role}) may not {what}: that needs the permission `{permission}`")]
    Denied {
        /// Who tried.
        login: String,
        /// Their role.
        role: String,
        /// What they tried, in words.
        what: String,
        /// What it needs.
        permission: Permission,
    },
    /// A teacher tried to reach people outside their groups.
    #[error(
        "{login} may send only to the groups they teach ({groups}); {outside} is outside them (the permission `send_any_audience` lifts this)"
    )]
    OutsideGroups {
        /// Who tried.
        login: String,
        /// The groups they teach, comma-separated (or "none").
        groups: String,
        /// What was outside, in words.
        outside: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, perms: &[Permission]) -> RoleDef {
        RoleDef {
            name: name.into(),
            description: String::new(),
            builtin: false,
            permissions: perms.iter().copied().collect(),
        }
    }

    #[test]
    fn grants_add_to_the_role_and_revocations_win() {
        let teacher = role("teacher", &[Permission::View, Permission::Send]);
        let op = Operator::new(
            "jan".into(),
            "Jan".into(),
            &teacher,
            None,
            [
                (Permission::SendWithoutApproval, true),
                (Permission::View, false),
            ],
        );
        assert!(op.may(Permission::Send));
        assert!(op.may(Permission::SendWithoutApproval));
        assert!(!op.may(Permission::View));
        let err = op
            .require(Permission::Approve, "approve batches")
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("jan (role teacher) may not approve batches"),
            "{text}"
        );
        assert!(text.contains("`approve`"), "{text}");
    }

    #[test]
    fn logins_and_role_names_are_plain_words() {
        assert!(valid_login("anna.kowalska@school"));
        assert!(!valid_login("anna\nroot"));
        assert!(!valid_login(""));
        assert!(valid_role_name("accountant"));
        assert!(!valid_role_name("Accountant"));
        assert!(!valid_role_name("9th"));
    }
}
