//! The catalog: what media exists, which messages produced which records, who is working on
//! which bytes, and the outbox — behind one narrow interface, [`Catalog`].
//!
//! In: committed job outcomes. Out: dedup answers (is there already a rendition of these bytes
//! for this profile? was this very message seen before?), records for `query`, content leases
//! (one daemon at a time works on the same bytes), and the outbox rows the sinks drain. A job's
//! record is written in the same transaction that marks the job done, so a record exists
//! exactly when its job is done: a crash on either side of the commit loses nothing and
//! doubles nothing. Each record waits in the outbox once per sink, with that delivery's own
//! state and claim. Records are bounded ([`MAX_RECORD_BYTES`](crate::records::MAX_RECORD_BYTES)) both ways: a larger one is
//! refused at commit, and a larger row (written by an earlier version) is never read back — not
//! for a sink, a repeat or `query` — so it cannot wedge delivery or cost its size in memory; its
//! length is checked in SQL before the row is loaded.
//!
//! Two implementations: SQLite ([`sqlite`], `sqlite://PATH`, the zero-config default; several
//! daemons may share the file on one machine) and PostgreSQL ([`postgres`], `postgres://…`,
//! shared by daemons on many machines). Both migrate their schema at open, one daemon at a
//! time. Async: SQLite runs its calls on blocking threads itself. Fails with [`CatalogError`],
//! classed as transient (the database is busy, restarting or unreachable: the job waits in
//! `work/` and is tried again) or not.

pub mod contract;
mod erasure;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::failure::{ErrorCode, Failure};
use crate::records::{MediaInfo, Record, RecordTooLarge, SourceInfo, ThumbnailInfo};
use crate::store::ObjectRef;

pub use erasure::{Erased, Erasure, MessageRow, Subject, UnneededMedia};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog url {0:?}: use sqlite://PATH or postgres://…")]
    Url(String),
    #[error("catalog: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("catalog: {0}")]
    Postgres(String),
    /// The database cannot be reached now (down, restarting, refusing connections).
    #[error("catalog unavailable: {0}")]
    Unavailable(String),
    #[error("catalog: corrupt row: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("catalog: {0}")]
    TooLarge(#[from] RecordTooLarge),
}

impl CatalogError {
    /// Errors that pass: the database busy, locked, restarting or unreachable, a full disk, an
    /// I/O error. Anything else (a corrupt row, a broken schema) comes back on every try.
    pub fn is_transient(&self) -> bool {
        use rusqlite::ErrorCode::*;
        match self {
            CatalogError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                DatabaseBusy | DatabaseLocked | DiskFull | SystemIoFailure | OutOfMemory
            ),
            CatalogError::Unavailable(_) => true,
            _ => false,
        }
    }

    pub fn failure(&self) -> Failure {
        Failure::new(ErrorCode::CATALOG_ERROR, self.to_string())
    }
}

/// A rendition already in the store, as records describe it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredMedia {
    pub media: MediaInfo,
    pub thumbnail: Option<ThumbnailInfo>,
    pub original: Option<ObjectRef>,
    /// Record id of the message that first produced it.
    pub first_record_id: String,
    /// What probing found about the bytes (mime, container, codecs): true of every copy.
    #[serde(default)]
    pub source: SourceInfo,
}

impl StoredMedia {
    /// What a record of newly stored media says about it, kept for later duplicates.
    pub fn from_record(record: &Record) -> Option<StoredMedia> {
        Some(StoredMedia {
            media: record.media.clone()?,
            thumbnail: record.thumbnail.clone(),
            original: record.original.clone(),
            first_record_id: record.record_id.clone(),
            source: SourceInfo {
                file_name: String::new(),
                ..record.source.clone()
            },
        })
    }
}

/// A rendition of some bytes: (profile id, kind, what records say about it).
pub type Rendition = (String, String, StoredMedia);

/// How a finished job left its input: released (done/ or deleted) or quarantined.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum JobVerdict {
    Done,
    Failed(Failure),
    /// Refused by policy: the input is removed, not kept (consent).
    Removed,
}

/// Everything a finished job commits at once.
#[derive(Debug, Clone, Copy)]
pub struct Commit<'a> {
    pub job_id: &'a str,
    /// The message's identity (the channel's message id, else the file name).
    pub message_key: &'a str,
    pub record: &'a Record,
    /// A rendition made by this job: (profile id, kind, what records say about it).
    pub new_media: Option<(&'a str, &'a str, &'a StoredMedia)>,
    pub verdict: &'a JobVerdict,
    /// The sinks the record is delivered to.
    pub sinks: &'a [&'a str],
}

/// Filters of `mediaspool query`; all optional, combined with AND.
#[derive(Debug, Default, Clone)]
pub struct QueryFilter {
    pub customer: Option<String>,
    pub chat: Option<String>,
    pub kind: Option<String>,
    pub tag: Option<String>,
    /// RFC 3339 bounds on when the message was received (or processed, if the producer did not
    /// say).
    pub since: Option<String>,
    pub until: Option<String>,
}

/// What [`Catalog::query`] found.
#[derive(Debug, Default)]
pub struct Found {
    pub records: Vec<Record>,
    /// Ids of matching records over [`MAX_RECORD_BYTES`](crate::records::MAX_RECORD_BYTES), left out.
    pub withheld: Vec<String>,
}

/// A delivery a sink's task has claimed.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub seq: i64,
    pub record_id: String,
    /// The record's JSON, as committed.
    pub body: String,
    pub chat_id: Option<String>,
    /// Attempts made before this one.
    pub attempts: u32,
    /// When the record entered this sink's line (its commit, or its last redrive).
    pub queued_ms: i64,
}

/// How one claimed delivery ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    Delivered {
        seq: i64,
    },
    /// Not delivered: try again at `next_attempt_ms`, or never (`dead`).
    Failed {
        seq: i64,
        error: String,
        next_attempt_ms: i64,
        dead: bool,
    },
    /// Not tried (an earlier record of its chat failed, or the sink paused): back in line as it was.
    Released {
        seq: i64,
    },
}

/// A delivery still waiting (or dead-lettered), as `mediaspool deliveries` lists it.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub sink: String,
    pub record_id: String,
    pub body: String,
    pub chat_id: Option<String>,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    pub queued_ms: i64,
    pub last_error: Option<String>,
    pub dead_ms: Option<i64>,
}

/// What waits for one sink.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkBacklog {
    pub waiting: u64,
    pub dead: u64,
    /// Set when the receiver answered 410 Gone: (when, why).
    pub disabled: Option<(i64, String)>,
}

/// Milliseconds since the Unix epoch, now: the clock of leases, claims and delivery times.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// The catalog interface the pipeline, the sinks and the commands hold. Implementations:
/// [`sqlite::SqliteCatalog`], [`postgres::PgCatalog`]. Times are Unix milliseconds.
#[async_trait::async_trait]
pub trait Catalog: Send + Sync {
    /// Where the catalog is, for logs and `check` (a URL without its password).
    fn describe(&self) -> String;

    /// Whether the catalog answers now (readiness): the database reached afresh and read.
    async fn ping(&self) -> Result<(), CatalogError>;

    // --- jobs, dedup and records ---

    /// The verdict of a job that already committed, if it did (a resumed job after a crash
    /// between commit and release).
    async fn finished_job(&self, job_id: &str) -> Result<Option<JobVerdict>, CatalogError>;

    /// Counts one more attempt at a job whose worker died, returning the count so far.
    async fn count_attempt(&self, job_id: &str, file_name: &str) -> Result<u32, CatalogError>;

    /// Renditions of these bytes, by profile id.
    async fn media_for(&self, content_hash: &str) -> Result<Vec<Rendition>, CatalogError>;

    /// The record already made for this message (same message key, same bytes), if it was not
    /// a rejection.
    async fn record_of_message(
        &self,
        message_key: &str,
        content_hash: &str,
    ) -> Result<Option<Record>, CatalogError>;

    /// The record with this id, if the catalog has it (none over
    /// [`MAX_RECORD_BYTES`](crate::records::MAX_RECORD_BYTES)).
    async fn record(&self, record_id: &str) -> Result<Option<Record>, CatalogError>;

    /// The last `limit` records, newest first; only rejections with `rejected`. Rows over
    /// [`MAX_RECORD_BYTES`](crate::records::MAX_RECORD_BYTES) are left out.
    async fn recent(&self, limit: usize, rejected: bool) -> Result<Vec<Record>, CatalogError>;

    /// Commits a finished job: its rendition (if new; a rendition of the same bytes and
    /// profile committed first stays), its record, the record's outbox rows for every sink,
    /// and the job's verdict — all or nothing.
    async fn commit(&self, commit: &Commit<'_>) -> Result<(), CatalogError>;

    /// Records matching `filter`, oldest first; rows over [`MAX_RECORD_BYTES`](crate::records::MAX_RECORD_BYTES) are named, not
    /// read.
    async fn query(&self, filter: &QueryFilter) -> Result<Found, CatalogError>;

    /// Forgets outbox rows delivered to every sink and created before `before` (RFC 3339);
    /// the records themselves stay. Returns how many rows went.
    async fn prune_delivered(&self, before: &str) -> Result<usize, CatalogError>;

    // --- content leases: one holder at a time, across every daemon ---

    /// Takes the lease on `key` for `owner` until `until_ms`, if nobody else holds it unexpired
    /// at `now_ms`; the owner's own lease is extended (its heartbeat). Whether `owner` holds it
    /// now.
    async fn take_lease(
        &self,
        key: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, CatalogError>;

    /// Lets go of `owner`'s lease on `key` (nothing if another holds it now).
    async fn release_lease(&self, key: &str, owner: &str) -> Result<(), CatalogError>;

    // --- deliveries: the outbox as the sinks see it ---

    /// Claims up to `limit` deliveries due for `sink` at `now`, oldest first, for `lease_ms`.
    /// A record is left out while an earlier record of the same chat waits for a later attempt
    /// or is claimed by anyone (this process or another); records with no chat are not
    /// ordered. Two claimers never get the same delivery. Records over [`MAX_RECORD_BYTES`](crate::records::MAX_RECORD_BYTES) are
    /// never claimed.
    async fn claim_deliveries(
        &self,
        sink: &str,
        owner: &str,
        now: i64,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<ClaimedDelivery>, CatalogError>;

    /// Extends every claim `owner` holds on `sink` to `until_ms` (a heartbeat while it delivers).
    async fn renew_claims(&self, sink: &str, owner: &str, until_ms: i64) -> Result<(), CatalogError>;

    /// Records how claimed deliveries ended, all in one transaction, and lets go of their claims.
    async fn settle_deliveries(&self, sink: &str, settled: &[Settlement]) -> Result<(), CatalogError>;

    /// Dead-letters every delivery to `sink` that entered its line before `queued_before_ms` and
    /// is not out on a claim, with `error` as its last error. Returns how many.
    async fn dead_letter_expired(
        &self,
        sink: &str,
        queued_before_ms: i64,
        error: &str,
    ) -> Result<usize, CatalogError>;

    /// Dead-letters every waiting delivery to `sink` of a record over [`MAX_RECORD_BYTES`](crate::records::MAX_RECORD_BYTES) (only
    /// an earlier version could write one; it is never read back) and returns them:
    /// (record id, bytes).
    async fn dead_letter_oversized(&self, sink: &str) -> Result<Vec<(String, u64)>, CatalogError>;

    /// The earliest time a delivery to `sink` may become due (its next attempt, or the end of a
    /// claim on it), counting only the first waiting record of each chat; `None` when nothing
    /// waits.
    async fn next_delivery_due(&self, sink: &str) -> Result<Option<i64>, CatalogError>;

    /// Deliveries waiting (or, with `dead`, given up on), for one sink or all, oldest first; the
    /// body of a record over [`MAX_RECORD_BYTES`](crate::records::MAX_RECORD_BYTES) reads `{}`.
    async fn list_deliveries(
        &self,
        sink: Option<&str>,
        dead: bool,
        limit: usize,
    ) -> Result<Vec<DeliveryRow>, CatalogError>;

    /// How many deliveries wait for and were given up on by `sink`, and whether it is disabled.
    async fn sink_backlog(&self, sink: &str) -> Result<SinkBacklog, CatalogError>;

    /// Stops all delivery to `sink` until a redrive (the receiver answered 410 Gone).
    async fn disable_sink(&self, sink: &str, reason: &str) -> Result<(), CatalogError>;

    async fn sink_disabled(&self, sink: &str) -> Result<bool, CatalogError>;

    /// Puts dead-lettered deliveries (of one sink or all, of one record or all) back in line,
    /// due now with a fresh `give_up_after`, and re-enables the sink(s); a record over
    /// [`MAX_RECORD_BYTES`](crate::records::MAX_RECORD_BYTES) stays dead. Returns how many.
    async fn redrive(&self, sink: Option<&str>, record_id: Option<&str>) -> Result<usize, CatalogError>;

    // --- retention and erasure ---

    /// Messages whose `retention_until` is at or before `now` (RFC 3339, UTC, whole seconds),
    /// by record id after `after`, at most `limit`.
    async fn expired(&self, now: &str, after: &str, limit: usize) -> Result<Vec<MessageRow>, CatalogError>;

    /// Every message of one customer or chat, by record id.
    async fn messages_of(&self, subject: &Subject) -> Result<Vec<MessageRow>, CatalogError>;

    /// Renditions of the bytes of these messages that no other message (but a rejected one)
    /// refers to: what leaves the store when they go.
    async fn unneeded_media(&self, record_ids: &[String]) -> Result<Vec<UnneededMedia>, CatalogError>;

    /// Removes the rows of an erasure (the messages, their jobs, outbox rows and deliveries,
    /// and the renditions no message refers to any more) and queues its notices for their
    /// sinks, all or nothing.
    async fn erase(&self, erasure: &Erasure) -> Result<Erased, CatalogError>;
}

/// How long a PostgreSQL catalog that cannot be reached at open is waited for.
pub const OPEN_PATIENCE: Duration = Duration::from_secs(30);

/// Opens (creating and migrating if needed) the catalog `url` names: `sqlite://PATH` (relative
/// paths against the working directory) or `postgres://…` (see [`postgres`] for TLS and the
/// `PG*` environment).
pub async fn open(url: &str) -> Result<Arc<dyn Catalog>, CatalogError> {
    open_within(url, OPEN_PATIENCE).await
}

/// [`open`], waiting at most `patience` for a PostgreSQL server that cannot be reached.
pub async fn open_within(url: &str, patience: Duration) -> Result<Arc<dyn Catalog>, CatalogError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let catalog = sqlite::SqliteCatalog::open(std::path::Path::new(path)).await?;
        return Ok(Arc::new(catalog));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(postgres::PgCatalog::open(url, patience).await?));
    }
    Err(CatalogError::Url(url.to_string()))
}
