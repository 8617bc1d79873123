//! What an operation can answer instead of its result: typed, so each adapter maps it
//! to its own words and codes (the CLI adds its hints, HTTP its status and stable
//! code), and worded without naming any one interface.

use crate::compose::ComposeError;
use crate::domain::Channel;
use crate::domain::access::{AccessError, Permission};
use crate::store::StoreError;

/// Why an operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No live API token: malformed, unknown, a wrong secret, or revoked.
    #[error("the token is not a valid, unrevoked API token")]
    Unauthenticated,
    /// The actor names no operator.
    #[error("unknown operator {0:?}")]
    UnknownOperator(String),
    /// The operator lacks a permission.
    #[error("{login} (role {role}) may not {what}: that needs the permission `{permission}`")]
    Forbidden {
        /// Who tried.
        login: String,
        /// Their role.
        role: String,
        /// What they tried, in words.
        what: String,
        /// The permission it needs.
        permission: Permission,
    },
    /// What the operation names does not exist.
    #[error("there is no {what} {id}")]
    NotFound {
        /// What kind of thing (`message`, `holiday`, `batch`).
        what: &'static str,
        /// Its id as given.
        id: String,
    },
    /// The thing exists but is not in a state that allows the change; the text says
    /// what state it is in and what would allow it.
    #[error("{0}")]
    Conflict(String),
    /// An input is not what was expected.
    #[error("{field}: {problem}")]
    Invalid {
        /// The input's name (`points`, `note`, `last_day`).
        field: &'static str,
        /// What was given and what was expected.
        problem: String,
    },
    /// A teacher tried to reach people outside the groups they teach.
    #[error(
        "{login} may send only to the groups they teach ({groups}); {outside} is outside them \
         (the permission `send_any_audience` lifts this)"
    )]
    OutsideGroups {
        /// Who tried.
        login: String,
        /// The groups they teach.
        groups: String,
        /// Who or what was outside them.
        outside: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Herald itself failed (a worker thread stopped): not the caller's doing.
    #[error("{0}")]
    Internal(String),
}

impl From<AccessError> for AppError {
    fn from(e: AccessError) -> AppError {
        match e {
            AccessError::UnknownOperator(login) => AppError::UnknownOperator(login),
            AccessError::Denied {
                login,
                role,
                what,
                permission,
            } => AppError::Forbidden {
                login,
                role,
                what,
                permission,
            },
            AccessError::OutsideGroups {
                login,
                groups,
                outside,
            } => AppError::OutsideGroups {
                login,
                groups,
                outside,
            },
        }
    }
}

impl From<ComposeError> for AppError {
    fn from(e: ComposeError) -> AppError {
        match e {
            ComposeError::Access(e) => e.into(),
            ComposeError::Store(e) => AppError::Store(e),
            // The field by the name an adapter knows it: `subject`, `body`, `html`;
            // a send without a text for one of its channels is about `channel`.
            ComposeError::BadText { field, problem } => {
                let field = match field {
                    "the HTML body" => "html",
                    "the send" => "channel",
                    other => other.trim_start_matches("the "),
                };
                AppError::invalid(field, problem)
            }
            e @ ComposeError::TooLong { .. } => AppError::invalid("body", e.to_string()),
            ComposeError::UnknownGroup(group) => AppError::NotFound {
                what: "group",
                id: group,
            },
            e @ ComposeError::EmptyAudience(_) => AppError::invalid("audience", e.to_string()),
            e @ (ComposeError::NoTemplate { .. } | ComposeError::Template(..)) => {
                AppError::invalid("template", e.to_string())
            }
        }
    }
}

impl AppError {
    /// The error about the text of one channel of a send, saying which.
    pub fn on_channel(self, channel: Channel) -> AppError {
        match self {
            AppError::Invalid { field, problem } => AppError::Invalid {
                field,
                problem: format!("{problem} (the {channel} text)"),
            },
            other => other,
        }
    }

    /// An invalid input.
    pub fn invalid(field: &'static str, problem: impl Into<String>) -> AppError {
        AppError::Invalid {
            field,
            problem: problem.into(),
        }
    }
}

/// The result of an operation.
pub type Result<T> = std::result::Result<T, AppError>;
