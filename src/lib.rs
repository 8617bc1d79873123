//! Herald: a message-dispatch daemon for schools and course centres.
pub mod domain;
