//! What the backends share: the pure parts of applying records and reading rows,
//! so each backend file holds only its SQL.

use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::{Applied, Refused, Result, StoreError};
use crate::domain::Reason;
use crate::domain::access::{OWNER_ROLE, Operator, RoleDef, owner_permissions};
use crate::domain::directory::{ContractStatus, Role};

pub(super) type Outcome = std::result::Result<Applied, Refused>;

pub(super) fn parse_role(text: &str) -> Result<Role> {
    Role::from_str(text).map_err(|_| StoreError::Corrupt {
        column: "recipients.role",
        value: text.to_owned(),
    })
}

pub(super) fn parse_status(text: &str) -> Result<ContractStatus> {
    ContractStatus::from_str(text).map_err(|_| StoreError::Corrupt {
        column: "contracts.status",
        value: text.to_owned(),
    })
}

pub(super) fn parse_code<T: FromStr>(column: &'static str, text: &str) -> Result<T> {
    text.parse().map_err(|_| StoreError::Corrupt {
        column,
        value: text.to_owned(),
    })
}

pub(super) fn parse_reason(text: Option<String>) -> Result<Option<Reason>> {
    text.map(|t| parse_code("messages.reason", &t)).transpose()
}

/// The consent date to store for one channel: the platform's date when it gives one;
/// otherwise the moment Herald learns of a change of the flag; otherwise the old date
/// (re-importing the same row changes nothing).
pub(super) fn consent_at(
    given: Option<DateTime<Utc>>,
    flag: bool,
    old_flag: bool,
    old_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match given {
        Some(at) => Some(at),
        None if flag != old_flag => Some(now),
        None => old_at,
    }
}

/// A stored failure mark (of an email address or a phone number) as people read it.
pub(super) fn failure_mark(detail: Option<String>, since: Option<DateTime<Utc>>) -> Option<String> {
    match (detail, since) {
        (Some(detail), Some(since)) => Some(format!(
            "{detail} (since {})",
            since.format("%Y-%m-%d %H:%M UTC")
        )),
        (Some(detail), None) => Some(detail),
        _ => None,
    }
}

/// Roles from their rows and their permission rows. `owner` holds every permission
/// but `send_without_approval` (see [`crate::domain::access::owner_permissions`]),
/// whatever its rows say, so a new permission never locks a school out.
pub(super) fn build_roles(
    rows: Vec<(String, String, bool)>,
    permissions: Vec<(String, String)>,
) -> Result<Vec<RoleDef>> {
    let mut roles = Vec::with_capacity(rows.len());
    for (name, description, builtin) in rows {
        let permissions = if name == OWNER_ROLE {
            owner_permissions()
        } else {
            permissions
                .iter()
                .filter(|(role, _)| *role == name)
                .map(|(_, p)| parse_code("role_permissions.permission", p))
                .collect::<Result<_>>()?
        };
        roles.push(RoleDef {
            name,
            description,
            builtin,
            permissions,
        });
    }
    Ok(roles)
}

/// An operator's row: login, name, role, teacher, locale, when the password was set.
pub(super) type OperatorRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<chrono::DateTime<chrono::Utc>>,
);

/// Operators from their rows, their exceptions and the roles.
pub(super) fn build_operators(
    rows: Vec<OperatorRow>,
    exceptions: Vec<(String, String, bool)>,
    roles: &[RoleDef],
) -> Result<Vec<Operator>> {
    rows.into_iter()
        .map(|(login, name, role, teacher, locale, password_set_at)| {
            let role =
                roles
                    .iter()
                    .find(|r| r.name == role)
                    .ok_or_else(|| StoreError::Corrupt {
                        column: "operators.role",
                        value: role.clone(),
                    })?;
            let mine = exceptions
                .iter()
                .filter(|(l, _, _)| *l == login)
                .map(|(_, p, yes)| Ok((parse_code("operator_permissions.permission", p)?, *yes)))
                .collect::<Result<Vec<_>>>()?;
            Ok(Operator::new(login, name, role, teacher, mine)
                .with_account(locale, password_set_at))
        })
        .collect()
}
