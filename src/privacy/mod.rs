//! The privacy lifecycle: keeping personal data and secrets out of the logs.
//!
//! # Layout
//! - [`redact`]: phone numbers, chat ids, customer names, tokens and secrets out of every log
//!   line.

pub mod redact;
