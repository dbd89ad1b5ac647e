//! The privacy lifecycle: how long a message's media and record are kept, erasing them when
//! that time is up or when a customer asks, and keeping personal data out of logs.
//!
//! # Layout
//! - [`clock`]: the time retention reads (`MEDIASPOOL_NOW` moves it, to preview or test).
//! - [`retention`]: how long a message is kept, and `purge` (the daemon's periodic one too).
//! - [`forget`]: erasure of one customer's or one chat's messages, in the catalog, the store
//!   and the spool, with a summary to keep.
//! - [`erase`]: the step both share: objects no other message needs leave the store first, then
//!   the messages' rows leave the catalog in one transaction that queues one `media.deleted`
//!   record per message. A crash between the two is repaired by the next run (deleting a
//!   missing object is not an error).
//! - [`redact`]: phone numbers, chat ids, tokens and secrets out of every log line.

pub mod clock;
pub mod erase;
pub mod forget;
pub mod redact;
pub mod retention;

pub use erase::{Eraser, Outcome};
