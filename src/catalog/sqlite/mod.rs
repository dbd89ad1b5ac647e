//! The SQLite catalog (`sqlite://PATH`): the zero-config default, one file, WAL. Several
//! daemons on one machine may share the file (writers wait for each other up to 10 s). Every
//! call runs on a blocking thread behind one connection's mutex.

mod deliveries;
mod erasure;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::{
    Catalog, CatalogError, ClaimedDelivery, Commit, DeliveryRow, Erased, Erasure, Found, JobVerdict,
    MessageRow, QueryFilter, Rendition, Settlement, SinkBacklog, Subject, UnneededMedia,
};
use crate::records::{Record, MAX_RECORD_BYTES};

pub struct SqliteCatalog {
    db: Arc<Db>,
}

/// The connection, and the blocking calls the [`Catalog`] methods run.
struct Db {
    conn: Mutex<Connection>,
    /// The database file, opened afresh by [`Db::ping`].
    path: PathBuf,
}

impl SqliteCatalog {
    /// Opens (creating and migrating if needed) the catalog file at `path`.
    pub async fn open(path: &Path) -> Result<SqliteCatalog, CatalogError> {
        let owned = path.to_path_buf();
        let db = tokio::task::spawn_blocking(move || Db::open(&owned))
            .await
            .expect("opening does not panic")?;
        Ok(SqliteCatalog { db: Arc::new(db) })
    }

    /// Runs `f` on a blocking thread with the connection.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db) -> Result<T, CatalogError> + Send + 'static,
    ) -> Result<T, CatalogError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .expect("catalog calls do not panic")
    }
}

impl Db {
    fn open(path: &Path) -> Result<Db, CatalogError> {
        let mut conn = Connection::open(path)?;
        // Several daemons may share the file; writers wait for each other briefly.
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // WAL with NORMAL survives a killed process; only a power cut may lose the last commits.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::migrate(&mut conn)?;
        Ok(Db {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    /// The file opened afresh (not created) and read: an open connection would go on working
    /// on a file that was removed or replaced.
    pub fn ping(&self) -> Result<(), CatalogError> {
        use rusqlite::OpenFlags;
        let conn = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.query_row("SELECT count(*) FROM (SELECT 1 FROM jobs LIMIT 1)", [], |r| {
            r.get::<_, i64>(0)
        })?;
        Ok(())
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

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

    pub fn media_for(&self, content_hash: &str) -> Result<Vec<Rendition>, CatalogError> {
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

    pub fn commit(&self, commit: &Commit<'_>) -> Result<(), CatalogError> {
        let Commit {
            job_id,
            message_key,
            record,
            new_media,
            verdict,
            sinks,
        } = *commit;
        let body = record.to_json()?;
        let mut conn = self.conn();
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
        enqueue(&tx, record, &body, sinks)?;
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

    pub fn record(&self, record_id: &str) -> Result<Option<Record>, CatalogError> {
        let body: Option<String> = self
            .conn()
            .query_row(
                "SELECT record FROM messages WHERE record_id = ?1 AND octet_length(record) <= ?2",
                params![record_id, MAX_RECORD_BYTES],
                |r| r.get(0),
            )
            .optional()?;
        Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
    }

    pub fn recent(&self, limit: usize, rejected: bool) -> Result<Vec<Record>, CatalogError> {
        let only = if rejected {
            "AND event = 'media.rejected'"
        } else {
            ""
        };
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT record FROM messages WHERE octet_length(record) <= {MAX_RECORD_BYTES} {only}
             ORDER BY processed_at DESC, rowid DESC LIMIT ?1"
        ))?;
        let rows = stmt.query_map([limit as i64], |r| r.get::<_, String>(0))?;
        rows.map(|b| Ok(serde_json::from_str(&b?)?)).collect()
    }

    pub fn take_lease(
        &self,
        key: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, CatalogError> {
        let holder: Option<String> = self
            .conn()
            .query_row(
                "INSERT INTO leases (key, owner, until_ms) VALUES (?1, ?2, ?4)
                 ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, until_ms = excluded.until_ms
                 WHERE leases.until_ms <= ?3 OR leases.owner = excluded.owner
                 RETURNING owner",
                params![key, owner, now_ms, until_ms],
                |r| r.get(0),
            )
            .optional()?;
        Ok(holder.is_some())
    }

    pub fn release_lease(&self, key: &str, owner: &str) -> Result<(), CatalogError> {
        self.conn().execute(
            "DELETE FROM leases WHERE key = ?1 AND owner = ?2",
            params![key, owner],
        )?;
        Ok(())
    }
}

/// A record in the outbox, waiting for each of `sinks`.
fn enqueue(
    tx: &rusqlite::Transaction<'_>,
    record: &Record,
    body: &str,
    sinks: &[&str],
) -> Result<(), CatalogError> {
    tx.execute(
        "INSERT INTO outbox (record_id, body, created_at, chat_id) VALUES (?1, ?2, ?3, ?4)",
        params![record.record_id, body, record.processed_at, record.crm.chat_id],
    )?;
    let seq = tx.last_insert_rowid();
    let queued = super::now_ms();
    for sink in sinks {
        tx.execute(
            "INSERT INTO deliveries (seq, sink, queued_ms) VALUES (?1, ?2, ?3)",
            params![seq, sink, queued],
        )?;
    }
    Ok(())
}

/// Each call copies its arguments onto a blocking thread and runs the [`Db`] call there.
#[async_trait::async_trait]
impl Catalog for SqliteCatalog {
    fn describe(&self) -> String {
        format!("sqlite://{}", self.db.path.display())
    }

    async fn ping(&self) -> Result<(), CatalogError> {
        self.run(|db| db.ping()).await
    }

    async fn finished_job(&self, job_id: &str) -> Result<Option<JobVerdict>, CatalogError> {
        let job_id = job_id.to_string();
        self.run(move |db| db.finished_job(&job_id)).await
    }

    async fn count_attempt(&self, job_id: &str, file_name: &str) -> Result<u32, CatalogError> {
        let (job_id, file_name) = (job_id.to_string(), file_name.to_string());
        self.run(move |db| db.count_attempt(&job_id, &file_name)).await
    }

    async fn media_for(&self, content_hash: &str) -> Result<Vec<Rendition>, CatalogError> {
        let hash = content_hash.to_string();
        self.run(move |db| db.media_for(&hash)).await
    }

    async fn record_of_message(
        &self,
        message_key: &str,
        content_hash: &str,
    ) -> Result<Option<Record>, CatalogError> {
        let (key, hash) = (message_key.to_string(), content_hash.to_string());
        self.run(move |db| db.record_of_message(&key, &hash)).await
    }

    async fn record(&self, record_id: &str) -> Result<Option<Record>, CatalogError> {
        let id = record_id.to_string();
        self.run(move |db| db.record(&id)).await
    }

    async fn recent(&self, limit: usize, rejected: bool) -> Result<Vec<Record>, CatalogError> {
        self.run(move |db| db.recent(limit, rejected)).await
    }

    async fn commit(&self, commit: &Commit<'_>) -> Result<(), CatalogError> {
        let (job_id, key) = (commit.job_id.to_string(), commit.message_key.to_string());
        let (record, verdict) = (commit.record.clone(), commit.verdict.clone());
        let media = commit
            .new_media
            .map(|(p, k, m)| (p.to_string(), k.to_string(), m.clone()));
        let sinks: Vec<String> = commit.sinks.iter().map(|s| s.to_string()).collect();
        self.run(move |db| {
            let sinks: Vec<&str> = sinks.iter().map(String::as_str).collect();
            db.commit(&Commit {
                job_id: &job_id,
                message_key: &key,
                record: &record,
                new_media: media.as_ref().map(|(p, k, m)| (p.as_str(), k.as_str(), m)),
                verdict: &verdict,
                sinks: &sinks,
            })
        })
        .await
    }

    async fn query(&self, filter: &QueryFilter) -> Result<Found, CatalogError> {
        let filter = filter.clone();
        self.run(move |db| db.query(&filter)).await
    }

    async fn prune_delivered(&self, before: &str) -> Result<usize, CatalogError> {
        let before = before.to_string();
        self.run(move |db| db.prune_delivered(&before)).await
    }

    async fn take_lease(
        &self,
        key: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, CatalogError> {
        let (key, owner) = (key.to_string(), owner.to_string());
        self.run(move |db| db.take_lease(&key, &owner, now_ms, until_ms))
            .await
    }

    async fn release_lease(&self, key: &str, owner: &str) -> Result<(), CatalogError> {
        let (key, owner) = (key.to_string(), owner.to_string());
        self.run(move |db| db.release_lease(&key, &owner)).await
    }

    async fn claim_deliveries(
        &self,
        sink: &str,
        owner: &str,
        now: i64,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<ClaimedDelivery>, CatalogError> {
        let (sink, owner) = (sink.to_string(), owner.to_string());
        self.run(move |db| db.claim_deliveries(&sink, &owner, now, limit, lease_ms))
            .await
    }

    async fn renew_claims(&self, sink: &str, owner: &str, until_ms: i64) -> Result<(), CatalogError> {
        let (sink, owner) = (sink.to_string(), owner.to_string());
        self.run(move |db| db.renew_claims(&sink, &owner, until_ms)).await
    }

    async fn settle_deliveries(&self, sink: &str, settled: &[Settlement]) -> Result<(), CatalogError> {
        let (sink, settled) = (sink.to_string(), settled.to_vec());
        self.run(move |db| db.settle_deliveries(&sink, &settled)).await
    }

    async fn dead_letter_expired(
        &self,
        sink: &str,
        queued_before_ms: i64,
        error: &str,
    ) -> Result<usize, CatalogError> {
        let (sink, error) = (sink.to_string(), error.to_string());
        self.run(move |db| db.dead_letter_expired(&sink, queued_before_ms, &error))
            .await
    }

    async fn dead_letter_oversized(&self, sink: &str) -> Result<Vec<(String, u64)>, CatalogError> {
        let sink = sink.to_string();
        self.run(move |db| db.dead_letter_oversized(&sink)).await
    }

    async fn next_delivery_due(&self, sink: &str) -> Result<Option<i64>, CatalogError> {
        let sink = sink.to_string();
        self.run(move |db| db.next_delivery_due(&sink)).await
    }

    async fn list_deliveries(
        &self,
        sink: Option<&str>,
        dead: bool,
        limit: usize,
    ) -> Result<Vec<DeliveryRow>, CatalogError> {
        let sink = sink.map(str::to_string);
        self.run(move |db| db.list_deliveries(sink.as_deref(), dead, limit))
            .await
    }

    async fn sink_backlog(&self, sink: &str) -> Result<SinkBacklog, CatalogError> {
        let sink = sink.to_string();
        self.run(move |db| db.sink_backlog(&sink)).await
    }

    async fn disable_sink(&self, sink: &str, reason: &str) -> Result<(), CatalogError> {
        let (sink, reason) = (sink.to_string(), reason.to_string());
        self.run(move |db| db.disable_sink(&sink, &reason)).await
    }

    async fn sink_disabled(&self, sink: &str) -> Result<bool, CatalogError> {
        let sink = sink.to_string();
        self.run(move |db| db.sink_disabled(&sink)).await
    }

    async fn redrive(&self, sink: Option<&str>, record_id: Option<&str>) -> Result<usize, CatalogError> {
        let (sink, record_id) = (sink.map(str::to_string), record_id.map(str::to_string));
        self.run(move |db| db.redrive(sink.as_deref(), record_id.as_deref()))
            .await
    }

    async fn expired(&self, now: &str, after: &str, limit: usize) -> Result<Vec<MessageRow>, CatalogError> {
        let (now, after) = (now.to_string(), after.to_string());
        self.run(move |db| db.expired(&now, &after, limit)).await
    }

    async fn messages_of(&self, subject: &Subject) -> Result<Vec<MessageRow>, CatalogError> {
        let subject = subject.clone();
        self.run(move |db| db.messages_of(&subject)).await
    }

    async fn unneeded_media(&self, record_ids: &[String]) -> Result<Vec<UnneededMedia>, CatalogError> {
        let ids = record_ids.to_vec();
        self.run(move |db| db.unneeded_media(&ids)).await
    }

    async fn erase(&self, erasure: &Erasure) -> Result<Erased, CatalogError> {
        let erasure = erasure.clone();
        self.run(move |db| db.erase(&erasure)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::contract;

    #[tokio::test]
    async fn keeps_every_promise_of_a_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let n = std::sync::atomic::AtomicUsize::new(0);
        contract::all(|| {
            let path = dir.path().join(format!(
                "c{}.db",
                n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            async move { Arc::new(SqliteCatalog::open(&path).await.unwrap()) as Arc<dyn Catalog> }
        })
        .await;
    }

    #[tokio::test]
    async fn a_catalog_file_that_is_gone_does_not_answer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let c = SqliteCatalog::open(&path).await.unwrap();
        c.ping().await.unwrap();
        let moved = dir.path().join("moved.db");
        std::fs::rename(&path, &moved).unwrap();
        assert!(c.ping().await.is_err());
        std::fs::rename(&moved, &path).unwrap();
        c.ping().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn daemons_opening_a_new_file_together_migrate_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                tokio::spawn(async move { SqliteCatalog::open(&path).await.map(|_| ()) })
            })
            .collect();
        for open in opens {
            open.await.unwrap().unwrap();
        }
    }
}
