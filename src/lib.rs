//! Herald: a message-dispatch daemon for schools and course centres.
//!
//! It decides who may receive what, when, through which channel and at what cost,
//! and can explain every message that did not arrive. See `ARCHITECTURE.md` for the
//! map and the invariants.
//!
//! # Layout
//!
//! - [`app`] — the application layer: every change a person or the platform makes
//!   (authorized, made and audited in one transaction) and the read models.
//! - [`domain`] — pure types and rules (recipients, contact points, eligibility, the
//!   send window and calendar, reason codes). No IO, no clock.
//! - [`config`] — the settings tree, layered and validated once at start-up.
//! - [`store`] — the store traits and their backends; the only place with SQL.
//! - [`import`] — CSV and JSON import of the directory.
//! - [`rules`] — periodic rules: reminders, arrears notices, birthday greetings.
//! - [`demo`] — the demo school, run as steps through the application layer.
//! - [`diagnose`] — why a message did not arrive.
//! - [`doctor`] — `herald doctor`: the installation's checks, sending nothing.
//! - [`cli`] — commands translated to `app` calls; the only place that prints for
//!   people.
//! - [`http`] — the HTTP API: requests translated to `app` calls; the only place with
//!   HTTP types.
//! - [`metrics`] — Prometheus metrics: names, the recorder, and the exposition.
//! - [`clock`] — the one place the time is read.
//! - [`compose`], [`templates`], [`dispatcher`], [`channels`], [`daemon`] — composing
//!   messages, rendering them, and sending them.
//! - [`telemetry`] — logging on standard error.

pub mod app;
pub mod channels;
pub mod cli;
pub mod clock;
pub mod compose;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod diagnose;
pub mod dispatcher;
pub mod doctor;
pub mod domain;
pub mod http;
pub mod import;
pub mod metrics;
pub mod rules;
pub mod store;
pub mod telemetry;
pub mod templates;
