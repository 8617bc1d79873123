//! Herald's integration tests: one binary, one file per area, real parts only (an
//! SQLite file on disk, the `herald` binary itself).
//!
//! Store behaviour is written once as `async fn name(app: TestApp)` and listed in a
//! `conformance!` block, which runs it on every backend the build has.

mod helpers;
mod sms;
mod smtp;

mod access;
mod admin;
mod app;
mod browser;
mod calendar;
mod cli;
mod console;
mod console_browser;
mod diagnose;
mod directory;
mod dispatch;
mod email;
mod faults;
mod health;
mod hooks;
mod http;
mod import;
mod metrics;
mod multi;
mod openapi;
mod outbox;
mod passwords;
mod rate_limit;
mod rules;
mod sessions;
mod tokens;
