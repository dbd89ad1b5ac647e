//! The catalog: what media exists, which messages produced which records, and the outbox.
//!
//! In: committed job outcomes. Out: dedup answers (is there already a rendition of these bytes
//! for this profile? was this very message seen before?), records for `query`, and the outbox
//! rows the sinks drain. A job's record is written in the same transaction that marks the job
//! done, so a record exists exactly when its job is done: a crash on either side of the commit
//! loses nothing and doubles nothing. Each record waits in the outbox once per sink, with that
//! delivery's own state (see `deliveries.rs`). Records are bounded ([`MAX_RECORD_BYTES`]) both
//! ways: a larger one is refused at commit, and a larger row (written by an earlier version) is
//! never read back — not for a sink, a repeat or `query` — so it cannot wedge delivery or cost
//! its size in memory; its length is checked in SQL before the row is loaded. SQLite (WAL)
//! behind a mutex; every call blocks, so call from a blocking thread. Fails with
//! [`CatalogError`].

mod deliveries;
mod schema;

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::failure::{ErrorCode, Failure};
use crate::records::{MediaInfo, Record, RecordTooLarge, SourceInfo, ThumbnailInfo, MAX_RECORD_BYTES};
use crate::store::ObjectRef;

pub use deliveries::{now_ms, ClaimedDelivery, DeliveryRow, Settlement, SinkBacklog};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog url {0:?}: only sqlite://PATH is available")]
    Url(String),
    #[error("catalog: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("catalog: corrupt row: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("catalog: {0}")]
    TooLarge(#[from] RecordTooLarge),
}

impl CatalogError {
    /// Errors that pass: the database busy or locked by another process, a full disk, an I/O
    /// error. Anything else (a corrupt row, a broken schema) comes back on every try.
    pub fn is_transient(&self) -> bool {
        use rusqlite::ErrorCode::*;
        match self {
            CatalogError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                DatabaseBusy | DatabaseLocked | DiskFull | SystemIoFailure | OutOfMemory
            ),
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

/// How a finished job left its input: released (done/ or deleted) or quarantined.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum JobVerdict {
    Done,
    Failed(Failure),
    /// Refused by policy: the input is removed, not kept (consent).
    Removed,
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

pub struct Catalog {
    conn: Mutex<Connection>,
    /// The database file, opened afresh by [`Catalog::ping`].
    path: std::path::PathBuf,
}

impl Catalog {
    /// Opens (creating if needed) the catalog named by `url` (`sqlite://PATH`), relative paths
    /// against the working directory.
    pub fn open(url: &str) -> Result<Catalog, CatalogError> {
        let path = url
            .strip_prefix("sqlite://")
            .ok_or_else(|| CatalogError::Url(url.to_string()))?;
        Self::open_path(Path::new(path))
    }

    pub fn open_path(path: &Path) -> Result<Catalog, CatalogError> {
        let conn = Connection::open(path)?;
        // Several daemons may share the file; writers wait for each other briefly.
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // WAL with NORMAL survives a killed process; only a power cut may lose the last commits.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::migrate(&conn)?;
        Ok(Catalog {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The verdict of a job that already committed, if it did (a resumed job after a crash
    /// between commit and release).
    pub fn finished_job(&self, job_id: &str) -> Result<Option<JobVerdict>, CatalogError> {
        let conn = self.conn();
        let verdict: Option<String> = conn
            .query_row(
                "SELECT verdict FROM jobs WHERE job_id = ?1 AND verdict IS NOT NULL",
                [job_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(verdict.map(|v| serde_json::from_str(&v)).transpose()?)
    }

    /// Counts one more attempt at a job whose worker died, returning the count so far.
    pub fn count_attempt(&self, job_id: &str, file_name: &str) -> Result<u32, CatalogError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO jobs (job_id, file_name, attempts) VALUES (?1, ?2, 1)
             ON CONFLICT(job_id) DO UPDATE SET attempts = attempts + 1",
            params![job_id, file_name],
        )?;
        Ok(
            conn.query_row("SELECT attempts FROM jobs WHERE job_id = ?1", [job_id], |r| {
                r.get(0)
            })?,
        )
    }

    /// Renditions of these bytes, by profile id.
    pub fn media_for(&self, content_hash: &str) -> Result<Vec<(String, String, StoredMedia)>, CatalogError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT profile_id, kind, info FROM media WHERE content_hash = ?1")?;
        let rows = stmt
            .query_map([content_hash], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(profile_id, kind, info)| Ok((profile_id, kind, serde_json::from_str(&info)?)))
            .collect()
    }

    /// The record already made for this message (same message key, same bytes), if it was not
    /// a rejection.
    pub fn record_of_message(
        &self,
        message_key: &str,
        content_hash: &str,
    ) -> Result<Option<Record>, CatalogError> {
        let conn = self.conn();
        let body: Option<String> = conn
            .query_row(
                "SELECT record FROM messages WHERE message_key = ?1 AND content_hash = ?2
                 AND event != 'media.rejected' AND octet_length(record) <= ?3
                 ORDER BY processed_at LIMIT 1",
                params![message_key, content_hash, MAX_RECORD_BYTES],
                |r| r.get(0),
            )
            .optional()?;
        Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
    }

    /// The record with this id, if the catalog has it (none over [`MAX_RECORD_BYTES`]).
    pub fn record(&self, record_id: &str) -> Result<Option<Record>, CatalogError> {
        let conn = self.conn();
        let body: Option<String> = conn
            .query_row(
                "SELECT record FROM messages WHERE record_id = ?1 AND octet_length(record) <= ?2",
                params![record_id, MAX_RECORD_BYTES],
                |r| r.get(0),
            )
            .optional()?;
        Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
    }

    /// Commits a finished job: its rendition (if new), its record, the record's outbox rows
    /// for every sink, and the job's verdict — all or nothing.
    pub fn commit(
        &self,
        job_id: &str,
        message_key: &str,
        record: &Record,
        new_media: Option<(&str, &str, &StoredMedia)>,
        verdict: &JobVerdict,
        sinks: &[&str],
    ) -> Result<(), CatalogError> {
        let mut conn = self.conn();
        let body = record.to_json()?;
        let tx = conn.transaction()?;
        if let Some((profile_id, kind, media)) = new_media {
            tx.execute(
                "INSERT OR IGNORE INTO media (content_hash, profile_id, kind, info, first_record_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    record.content_hash,
                    profile_id,
                    kind,
                    serde_json::to_string(media)?,
                    media.first_record_id,
                    record.processed_at
                ],
            )?;
        }
        tx.execute(
            "INSERT OR IGNORE INTO messages (record_id, message_key, content_hash, event, kind, customer_id, chat_id,
                 tags, received_at, processed_at, retention_until, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                record.record_id,
                message_key,
                record.content_hash,
                record.event.as_str(),
                record.media.as_ref().map(|m| m.kind.clone()),
                record.crm.customer_id,
                record.crm.chat_id,
                serde_json::to_string(&record.crm.tags)?,
                record.received_at,
                record.processed_at,
                record.retention_until,
                body
            ],
        )?;
        tx.execute(
            "INSERT INTO outbox (record_id, body, created_at, chat_id) VALUES (?1, ?2, ?3, ?4)",
            params![record.record_id, body, record.processed_at, record.crm.chat_id],
        )?;
        let seq = tx.last_insert_rowid();
        let queued = now_ms();
        for sink in sinks {
            tx.execute(
                "INSERT INTO deliveries (seq, sink, queued_ms) VALUES (?1, ?2, ?3)",
                params![seq, sink, queued],
            )?;
        }
        tx.execute(
            "INSERT INTO jobs (job_id, file_name, attempts, verdict, record_id) VALUES (?1, ?2, 0, ?3, ?4)
             ON CONFLICT(job_id) DO UPDATE SET verdict = excluded.verdict, record_id = excluded.record_id",
            params![
                job_id,
                record.source.file_name,
                serde_json::to_string(verdict)?,
                record.record_id
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets outbox rows delivered to every sink and created before `before` (RFC 3339);
    /// the records themselves stay in `messages`. Returns how many rows went.
    pub fn prune_delivered(&self, before: &str) -> Result<usize, CatalogError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let done = "SELECT o.seq FROM outbox o WHERE o.created_at < ?1 AND NOT EXISTS
                    (SELECT 1 FROM deliveries d WHERE d.seq = o.seq AND d.delivered_at IS NULL)";
        tx.execute(&format!("DELETE FROM deliveries WHERE seq IN ({done})"), [before])?;
        let pruned = tx.execute(
            "DELETE FROM outbox WHERE created_at < ?1 AND NOT EXISTS
             (SELECT 1 FROM deliveries d WHERE d.seq = outbox.seq)",
            [before],
        )?;
        tx.commit()?;
        Ok(pruned)
    }

    /// Whether the catalog answers: its file opened afresh (not created) and read. An open
    /// connection would go on working on a file that was removed or replaced.
    pub fn ping(&self) -> Result<(), CatalogError> {
        use rusqlite::OpenFlags;
        let conn = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.query_row("SELECT count(*) FROM jobs", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    }

    /// The last `limit` records, newest first; only rejections with `rejected`. Rows over
    /// [`MAX_RECORD_BYTES`] are left out.
    pub fn recent(&self, limit: usize, rejected: bool) -> Result<Vec<Record>, CatalogError> {
        let filter = if rejected {
            "AND event = 'media.rejected'"
        } else {
            ""
        };
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT record FROM messages WHERE octet_length(record) <= {MAX_RECORD_BYTES} {filter}
             ORDER BY processed_at DESC, rowid DESC LIMIT ?1"
        ))?;
        let rows = stmt.query_map([limit as i64], |r| r.get::<_, String>(0))?;
        rows.map(|b| Ok(serde_json::from_str(&b?)?)).collect()
    }

    /// Per sink that has any: deliveries still waiting (due, retrying or claimed) and dead
    /// letters, in sink order.
    pub fn backlog(&self) -> Result<Vec<(String, u64, u64)>, CatalogError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT sink, COUNT(*) FILTER (WHERE dead_ms IS NULL), COUNT(*) FILTER (WHERE dead_ms IS NOT NULL)
             FROM deliveries WHERE delivered_at IS NULL GROUP BY sink ORDER BY sink",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records matching `filter`, oldest first; rows over [`MAX_RECORD_BYTES`] are named, not
    /// read.
    pub fn query(&self, filter: &QueryFilter) -> Result<Found, CatalogError> {
        let mut sql = format!(
            "SELECT record_id, CASE WHEN octet_length(record) <= {MAX_RECORD_BYTES} THEN record END
             FROM messages WHERE 1 = 1"
        );
        let mut args: Vec<String> = Vec::new();
        let mut add = |clause: &str, value: &Option<String>| {
            if let Some(v) = value {
                args.push(v.clone());
                sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
            }
        };
        add(" AND customer_id = ?", &filter.customer);
        add(" AND chat_id = ?", &filter.chat);
        add(" AND kind = ?", &filter.kind);
        add(
            " AND EXISTS (SELECT 1 FROM json_each(messages.tags) WHERE json_each.value = ?)",
            &filter.tag,
        );
        add(" AND COALESCE(received_at, processed_at) >= ?", &filter.since);
        add(" AND COALESCE(received_at, processed_at) <= ?", &filter.until);
        sql.push_str(" ORDER BY COALESCE(received_at, processed_at), record_id");
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })?;
        let mut found = Found::default();
        for row in rows {
            match row? {
                (_, Some(body)) => found.records.push(serde_json::from_str(&body)?),
                (record_id, None) => found.withheld.push(record_id),
            }
        }
        Ok(found)
    }
}

/// What [`Catalog::query`] found.
#[derive(Debug, Default)]
pub struct Found {
    pub records: Vec<Record>,
    /// Ids of matching records over [`MAX_RECORD_BYTES`], left out.
    pub withheld: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::ContentHash;
    use crate::records::Event;

    fn record(event: Event, name: &str, at: &str) -> Record {
        let hash = ContentHash::parse(&"ab".repeat(32)).unwrap();
        let mut r = Record::new(
            event,
            name,
            Some(&hash),
            SourceInfo {
                file_name: name.into(),
                ..Default::default()
            },
        );
        r.processed_at = at.to_string();
        if event == Event::Rejected {
            r.error = Some(Failure::new(ErrorCode::TIMEOUT, "slow"));
        }
        r
    }

    #[test]
    fn a_commit_is_the_record_the_verdict_and_one_delivery_per_sink() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open_path(&dir.path().join("c.db")).unwrap();
        let r = record(Event::Stored, "a.ogg", "2026-11-01T00:00:00Z");
        c.commit(
            "job-1",
            "a.ogg",
            &r,
            None,
            &JobVerdict::Done,
            &["ndjson", "stdout"],
        )
        .unwrap();
        assert_eq!(c.finished_job("job-1").unwrap(), Some(JobVerdict::Done));
        assert_eq!(c.finished_job("job-2").unwrap(), None);
        let now = now_ms();
        let pending = c.claim_deliveries("ndjson", "me", now, 10, 1000).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(
            c.claim_deliveries("stdout", "me", now, 10, 1000).unwrap().len(),
            1
        );
        let delivered = [Settlement::Delivered { seq: pending[0].seq }];
        c.settle_deliveries("ndjson", &delivered).unwrap();
        assert!(c
            .claim_deliveries("ndjson", "me", now, 10, 1000)
            .unwrap()
            .is_empty());
        // Not delivered to stdout yet: nothing is pruned.
        assert_eq!(c.prune_delivered("2030-01-01T00:00:00Z").unwrap(), 0);
        c.settle_deliveries("stdout", &delivered).unwrap();
        assert_eq!(
            c.prune_delivered("2026-10-01T00:00:00Z").unwrap(),
            0,
            "too recent"
        );
        assert_eq!(c.prune_delivered("2030-01-01T00:00:00Z").unwrap(), 1);
        assert_eq!(
            c.query(&QueryFilter::default()).unwrap().records.len(),
            1,
            "the record itself stays"
        );
    }

    #[test]
    fn recent_records_backlog_and_ping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let c = Catalog::open_path(&path).unwrap();
        c.ping().unwrap();
        let stored = record(Event::Stored, "a.ogg", "2026-11-01T00:00:00Z");
        let rejected = record(Event::Rejected, "b.ogg", "2026-11-02T00:00:00Z");
        let verdict = JobVerdict::Failed(Failure::new(ErrorCode::TIMEOUT, "slow"));
        c.commit("j1", "a.ogg", &stored, None, &JobVerdict::Done, &["ndjson"])
            .unwrap();
        c.commit("j2", "b.ogg", &rejected, None, &verdict, &["ndjson", "stdout"])
            .unwrap();
        let ids = |rs: Vec<Record>| rs.into_iter().map(|r| r.record_id).collect::<Vec<_>>();
        let (r, s) = (rejected.record_id.clone(), stored.record_id.clone());
        assert_eq!(ids(c.recent(10, false).unwrap()), [r.clone(), s]);
        assert_eq!(ids(c.recent(10, true).unwrap()), std::slice::from_ref(&r));
        assert_eq!(ids(c.recent(1, false).unwrap()), [r]);
        assert_eq!(
            c.record(&stored.record_id).unwrap().unwrap().source.file_name,
            "a.ogg"
        );
        assert!(c.record("nope").unwrap().is_none());
        assert_eq!(
            c.backlog().unwrap(),
            [("ndjson".to_string(), 2, 0), ("stdout".to_string(), 1, 0)]
        );
        let moved = dir.path().join("moved.db");
        std::fs::rename(&path, &moved).unwrap();
        assert!(c.ping().is_err(), "a catalog file that is gone does not answer");
        std::fs::rename(&moved, &path).unwrap();
        c.ping().unwrap();
    }

    #[test]
    fn only_a_message_that_was_not_rejected_counts_as_a_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open_path(&dir.path().join("c.db")).unwrap();
        let hash = format!("blake3:{}", "ab".repeat(32));
        let failed = record(Event::Rejected, "m1", "2026-11-01T00:00:00Z");
        let verdict = JobVerdict::Failed(Failure::new(ErrorCode::TIMEOUT, "slow"));
        c.commit("job-1", "m1", &failed, None, &verdict, &["ndjson"])
            .unwrap();
        assert!(
            c.record_of_message("m1", &hash).unwrap().is_none(),
            "a rejection is tried again"
        );
        let stored = record(Event::Stored, "m1", "2026-11-02T00:00:00Z");
        c.commit("job-2", "m1", &stored, None, &JobVerdict::Done, &["ndjson"])
            .unwrap();
        assert_eq!(
            c.record_of_message("m1", &hash).unwrap().unwrap().record_id,
            stored.record_id
        );
    }
}
