//! Who may do what: operators, their roles and exceptions, and the roles a school
//! defines. One rule holds throughout: someone can always still manage operators.

use std::collections::BTreeMap;

use serde_json::json;

use super::{Actor, App, AppError, Result};
use crate::domain::Role;
use crate::domain::access::{
    OWNER_ROLE, Operator, Permission, RoleDef, valid_login, valid_role_name,
};
use crate::domain::audit::AuditAction;
use crate::store::{AddOperator, NewOperator};

/// A new operator, as an owner (or the installation's first run) asks for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRequest {
    /// What they sign in with.
    pub login: String,
    /// Their name (the login when empty).
    pub name: Option<String>,
    /// Their role.
    pub role: String,
    /// The platform id of the teacher they are, if any.
    pub teacher: Option<String>,
}

/// The languages the console speaks to operators.
pub const OPERATOR_LOCALES: [&str; 2] = ["pl", "en"];

/// What a grant or revocation changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PermissionChange {
    /// The operator as they are now.
    pub operator: Operator,
    /// How many exceptions changed (none when the role already said so).
    pub changed: usize,
}

impl App {
    /// Adds an operator. `by` is `None` only for the installation's first operator,
    /// who must be an owner so that someone can add the others.
    pub async fn add_operator(
        &self,
        by: Option<&Actor>,
        req: &OperatorRequest,
    ) -> Result<Operator> {
        let login = &req.login;
        if !valid_login(login) {
            return Err(AppError::invalid(
                "login",
                format!("{login:?}: expected 1–64 letters, digits, '.', '_', '-' or '@'"),
            ));
        }
        let by_login = match by {
            Some(actor) => {
                self.authorize(actor, Permission::ManageOperators, "manage operators")
                    .await?
                    .login
            }
            None => {
                if !self.store.operators().await?.is_empty() {
                    return Err(AppError::Conflict(
                        "operators exist already: only the installation's first operator is \
                         added without naming who adds them"
                            .into(),
                    ));
                }
                if req.role != OWNER_ROLE {
                    return Err(AppError::invalid(
                        "role",
                        format!(
                            "{:?}: the first operator must have the role owner, so that someone \
                             can add the others",
                            req.role
                        ),
                    ));
                }
                login.clone()
            }
        };
        if let Some(t) = &req.teacher {
            match self.store.recipient(t).await? {
                Some(f) if f.recipient.role == Role::Teacher => {}
                Some(f) => {
                    return Err(AppError::invalid(
                        "teacher",
                        format!(
                            "{t:?}: expected a teacher, but {} is a {}",
                            f.recipient.name, f.recipient.role
                        ),
                    ));
                }
                None => {
                    return Err(AppError::invalid(
                        "teacher",
                        format!("{t:?}: there is no recipient with that id"),
                    ));
                }
            }
        }
        let name = req
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or(login)
            .to_owned();
        if name.chars().any(char::is_control) {
            return Err(AppError::invalid(
                "name",
                "expected one line, without control characters",
            ));
        }
        let new = NewOperator {
            login: login.clone(),
            name: name.clone(),
            role: req.role.clone(),
            teacher: req.teacher.clone(),
            at: self.now(),
            by: by_login.clone(),
        };
        let actor = Actor::Operator(by_login);
        let entry = self.audit_line(
            &actor,
            AuditAction::OperatorAdd,
            format!("operator {login}"),
            json!({"name": name, "role": req.role, "teacher": req.teacher}),
        );
        match self.store.add_operator(&new, by.is_none(), &entry).await? {
            AddOperator::Added => Ok(self.operator(login).await?),
            AddOperator::LoginTaken => Err(AppError::Conflict(format!(
                "there is already an operator {login:?}"
            ))),
            AddOperator::UnknownRole => Err(AppError::invalid(
                "role",
                format!("{:?}: no such role", req.role),
            )),
            AddOperator::NotFirst => Err(AppError::Conflict(
                "an operator was added in the meantime: name who adds this one".into(),
            )),
        }
    }

    /// Gives an operator another role; their own exceptions stay.
    pub async fn set_role(&self, actor: &Actor, login: &str, role: &str) -> Result<Operator> {
        self.authorize(actor, Permission::ManageOperators, "manage operators")
            .await?;
        let before = self.operator(login).await?;
        let roles = self.store.roles().await?;
        let new_role = roles
            .iter()
            .find(|r| r.name == role)
            .ok_or_else(|| AppError::invalid("role", format!("{role:?}: no such role")))?;
        let after = with_role(&before, new_role, exceptions_of(&before));
        self.keeps_a_manager(&after).await?;
        let entry = self.audit_line(
            actor,
            AuditAction::OperatorRole,
            format!("operator {login}"),
            json!({"from": before.role, "to": role}),
        );
        if !self.store.set_role(login, role, &entry).await? {
            return Err(AppError::Conflict(format!(
                "operator {login:?} or role {role:?} is gone"
            )));
        }
        Ok(after)
    }

    /// Sets the language `login` reads the console in (one of
    /// [`OPERATOR_LOCALES`]; `None`: their browser's): their own choice, or an
    /// operator manager's.
    pub async fn set_locale(&self, actor: &Actor, login: &str, locale: Option<&str>) -> Result<()> {
        if actor.name() != login {
            self.authorize(actor, Permission::ManageOperators, "manage operators")
                .await?;
        }
        let before = self.operator(login).await?;
        if let Some(l) = locale
            && !OPERATOR_LOCALES.contains(&l)
        {
            return Err(AppError::invalid(
                "locale",
                format!(
                    "locale: {l:?} is not one of {}",
                    OPERATOR_LOCALES.join(", ")
                ),
            ));
        }
        let entry = self.audit_line(
            actor,
            AuditAction::OperatorLocale,
            format!("operator {login}"),
            json!({"from": before.locale, "to": locale}),
        );
        self.store.set_locale(login, locale, &entry).await?;
        Ok(())
    }

    /// Grants (`grant`) or revokes permissions as exceptions to an operator's role;
    /// an exception the role makes pointless is removed instead.
    pub async fn change_permissions(
        &self,
        actor: &Actor,
        login: &str,
        permissions: &[Permission],
        grant: bool,
    ) -> Result<PermissionChange> {
        self.authorize(actor, Permission::ManageOperators, "manage operators")
            .await?;
        let before = self.operator(login).await?;
        let roles = self.store.roles().await?;
        let role = roles
            .iter()
            .find(|r| r.name == before.role)
            .ok_or_else(|| AppError::Conflict(format!("the role of {login} is gone")))?;
        let mut exceptions = exceptions_of(&before);
        let mut changes = Vec::new();
        for p in permissions {
            // The role already says so: no exception is needed.
            let wanted = (role.permissions.contains(p) != grant).then_some(grant);
            if exceptions.get(p).copied() != wanted {
                match wanted {
                    Some(w) => exceptions.insert(*p, w),
                    None => exceptions.remove(p),
                };
                changes.push((*p, wanted));
            }
        }
        let after = with_role(&before, role, exceptions);
        self.keeps_a_manager(&after).await?;
        let action = if grant {
            AuditAction::Grant
        } else {
            AuditAction::Revoke
        };
        for (p, wanted) in &changes {
            let entry = self.audit_line(
                actor,
                action,
                format!("operator {login}"),
                json!({"permission": p, "role": before.role}),
            );
            self.store
                .set_permission(login, *p, *wanted, &entry)
                .await?;
        }
        Ok(PermissionChange {
            operator: after,
            changed: changes.len(),
        })
    }

    /// Adds a role of the school's own, or redefines one; built-in roles stay as
    /// they are.
    pub async fn save_role(&self, actor: &Actor, role: &RoleDef) -> Result<()> {
        self.authorize(actor, Permission::ManageOperators, "manage operators")
            .await?;
        let name = &role.name;
        if !valid_role_name(name) {
            return Err(AppError::invalid(
                "name",
                format!(
                    "{name:?}: expected lower-case letters, digits, '_' or '-', starting with a \
                     letter"
                ),
            ));
        }
        let description = role.description.trim();
        if description.is_empty() || description.chars().any(char::is_control) {
            return Err(AppError::invalid(
                "description",
                "expected what the role is for, on one line",
            ));
        }
        let role = RoleDef {
            description: description.to_owned(),
            builtin: false,
            ..role.clone()
        };
        let roles = self.store.roles().await?;
        let built_in = || {
            AppError::Conflict(format!(
                "{name} is a built-in role and cannot be redefined; add a role of another name"
            ))
        };
        if roles.iter().any(|r| &r.name == name && r.builtin) {
            return Err(built_in());
        }
        // Redefining a role its holders manage operators by must leave someone who
        // still can.
        let mut anyone = false;
        for o in self.store.operators().await? {
            let o = if &o.role == name {
                with_role(&o, &role, exceptions_of(&o))
            } else {
                o
            };
            anyone |= o.may(Permission::ManageOperators);
        }
        if !anyone && roles.iter().any(|r| &r.name == name) {
            return Err(AppError::Conflict(format!(
                "refused: after this change nobody could manage operators; keep \
                 manage_operators in {name} or give it to someone else first"
            )));
        }
        let entry = self.audit_line(
            actor,
            AuditAction::RoleSave,
            format!("role {name}"),
            json!({"description": role.description, "permissions": role.permissions}),
        );
        if !self.store.save_role(&role, &entry).await? {
            return Err(built_in());
        }
        Ok(())
    }

    /// An operator by login.
    async fn operator(&self, login: &str) -> Result<Operator> {
        self.store
            .operator(login)
            .await?
            .ok_or_else(|| AppError::UnknownOperator(login.to_owned()))
    }

    /// Refuses a change after which nobody could manage operators.
    async fn keeps_a_manager(&self, changed: &Operator) -> Result<()> {
        let others = self
            .store
            .operators()
            .await?
            .into_iter()
            .filter(|o| o.login != changed.login)
            .any(|o| o.may(Permission::ManageOperators));
        if !others && !changed.may(Permission::ManageOperators) {
            return Err(AppError::Conflict(format!(
                "refused: {} is the last operator who may manage operators; give someone else \
                 `manage_operators` first",
                changed.login
            )));
        }
        Ok(())
    }
}

/// An operator's exceptions to their role: granted (`true`) or revoked.
fn exceptions_of(o: &Operator) -> BTreeMap<Permission, bool> {
    o.granted
        .iter()
        .map(|p| (*p, true))
        .chain(o.revoked.iter().map(|p| (*p, false)))
        .collect()
}

/// The operator `o` with `role` and these exceptions.
fn with_role(o: &Operator, role: &RoleDef, exceptions: BTreeMap<Permission, bool>) -> Operator {
    Operator::new(
        o.login.clone(),
        o.name.clone(),
        role,
        o.teacher.clone(),
        exceptions,
    )
}
