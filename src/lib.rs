//! Herald: a message-dispatch daemon for schools and course centres.
pub mod config;
pub mod domain;
pub mod store;
