//! The one narrow interface every sink implements, and what a delivery attempt can come to.
//!
//! In: records in delivery order (one chat's, or a whole batch for sinks that keep the outbox
//! order anyway). Out: one [`Outcome`] per record tried, stopping at the first that was not
//! delivered — the rest are left untried, so a later record never overtakes an earlier one.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A record on its way to a sink.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub seq: i64,
    pub record_id: String,
    /// The record's JSON as committed: what the NDJSON file and stdout write, and the default
    /// body of an HTTP delivery.
    pub body: String,
    pub chat_id: Option<String>,
}

/// How far a failure reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This record failed (the receiver refused it): its chat waits, other chats go on.
    Record,
    /// The receiver cannot take anything now (unreachable, timing out, rate limiting, refusing
    /// our credentials): the whole sink pauses.
    Sink,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered,
    /// Not delivered; to be tried again. `retry_after` is the receiver's own wish (Retry-After).
    Failed {
        error: String,
        scope: Scope,
        retry_after: Option<Duration>,
    },
    /// Can never be delivered as it is (the request cannot be made from this record):
    /// dead-lettered at once.
    Undeliverable {
        error: String,
    },
    /// The receiver answered 410 Gone: it wants nothing more; the sink is disabled.
    Gone {
        error: String,
    },
}

pub type Delivering<'a> = Pin<Box<dyn Future<Output = Vec<Outcome>> + Send + 'a>>;

pub trait Sink: Send + Sync {
    /// The name deliveries are kept under (`ndjson`, `stdout`, or the `[sinks.NAME]` name).
    fn name(&self) -> &str;

    /// Delivers `records` in order, stopping after the first one not delivered.
    fn deliver<'a>(&'a self, records: &'a [Outgoing]) -> Delivering<'a>;

    /// How many chats may be delivered at once. Sinks of 1 get each batch whole, in outbox order.
    fn concurrency(&self) -> usize {
        1
    }

    /// How long one record may take (bounds how long a claim must last).
    fn timeout(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// Delay before the `attempt`-th retry (1-based) of a failed record, jitter included.
    fn backoff(&self, attempt: u32) -> Duration {
        super::retry::Backoff::default().delay(attempt)
    }

    /// How long a record may wait for this sink before it is dead-lettered; `None`: forever.
    fn give_up_after(&self) -> Option<Duration> {
        None
    }
}
