//! The application layer: every change a person or the platform can make, and the
//! read models they look at, whatever interface they use.
//!
//! The CLI (and the HTTP API and console after it) turn their input into one call
//! here and its result into output; they decide nothing. An operation authorizes its
//! [`Actor`] first, then makes the change and writes its audit line in the same store
//! transaction, so an audit line never exists without its change nor a change
//! without its line. Errors are typed ([`AppError`]) so each adapter can map them to
//! its own words (the CLI's hints, an HTTP status) without this layer knowing either.

mod admin;
mod compose;
mod error;
mod health;
mod import;
mod messages;
mod operators;
mod outbox;
mod passwords;
mod reports;
mod rules;
mod templates;
mod tokens;
mod views;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::access::{Operator, Permission, RoleDef};
use crate::domain::audit::AuditAction;
use crate::store::{AuditEntry, Store};

pub use admin::HoldChange;
pub use compose::{Composed, Notified, NotifyContent, NotifyRequest, SendContent, SendRequest};
pub use error::{AppError, Result};
pub use health::{Readiness, ReadyCheck};
pub use operators::{OPERATOR_LOCALES, OperatorRequest, PermissionChange};
pub use outbox::{
    BatchText, BatchView, DecisionTaken, Summary, SummaryLine, content_hash, lines_of,
};
pub use tokens::{Authenticated, NewToken};
pub use views::{ChannelVerdict, MessageListing, ReasonView, RecipientView, WalletView};

/// Who is acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An operator, by login: a person at the CLI or console, or the platform through
    /// a token that acts as its operator. Their permissions are read at each call,
    /// so a revoked permission stops the next request.
    Operator(String),
    /// Herald itself (the daemon, the rules): may do anything, and is named in the
    /// audit log by what it is (`rules`, `dispatcher`).
    System(&'static str),
}

impl Actor {
    /// The operator `login`.
    pub fn operator(login: impl Into<String>) -> Actor {
        Actor::Operator(login.into())
    }

    /// The name the audit log and message events show.
    pub fn name(&self) -> &str {
        match self {
            Actor::Operator(login) => login,
            Actor::System(what) => what,
        }
    }
}

/// Herald itself as an operator: every permission, any audience.
fn system_operator(name: &str) -> Operator {
    let role = RoleDef {
        name: "system".to_owned(),
        description: "Herald itself".to_owned(),
        builtin: true,
        permissions: Permission::ALL.into_iter().collect(),
    };
    Operator::new(name.to_owned(), name.to_owned(), &role, None, [])
}

/// The application: the store, the settings and the clock every operation uses.
#[derive(Clone)]
pub struct App {
    store: Arc<dyn Store>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    /// When this application was made: for `herald run`, when the daemon started.
    started: DateTime<Utc>,
    /// The daemon's outcomes waiting for the database, when a daemon runs beside.
    backlog: Option<Arc<crate::dispatcher::Backlog>>,
}

impl App {
    /// An application over `store`, reading the time from `clock`.
    pub fn new(store: Arc<dyn Store>, settings: Arc<Settings>, clock: Arc<dyn Clock>) -> App {
        App {
            started: clock.now(),
            store,
            settings,
            clock,
            backlog: None,
        }
    }

    /// The same application, answering for the daemon beside it whose outcomes
    /// wait in `backlog` (readiness reports them).
    pub fn with_backlog(mut self, backlog: Arc<crate::dispatcher::Backlog>) -> App {
        self.backlog = Some(backlog);
        self
    }

    /// The store, for the read paths that have no operation of their own yet.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Now, by the application's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The actor as an operator, when they hold `permission`; `what` says in words
    /// what they tried. The system may do anything: it acts as an operator holding
    /// every permission, named by what it is.
    pub async fn authorize(
        &self,
        actor: &Actor,
        permission: Permission,
        what: &str,
    ) -> Result<Operator> {
        let login = match actor {
            Actor::System(name) => return Ok(system_operator(name)),
            Actor::Operator(login) => login,
        };
        let op = self
            .store
            .operator(login)
            .await?
            .ok_or_else(|| AppError::UnknownOperator(login.clone()))?;
        if !op.may(permission) {
            return Err(AppError::Forbidden {
                login: op.login,
                role: op.role,
                what: what.to_owned(),
                permission,
            });
        }
        Ok(op)
    }

    /// An audit line by `actor`, now.
    fn audit_line(
        &self,
        actor: &Actor,
        action: AuditAction,
        subject: impl Into<String>,
        details: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            at: self.now(),
            actor: actor.name().to_owned(),
            action,
            subject: subject.into(),
            details,
        }
    }
}
