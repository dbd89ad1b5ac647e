//! The outbox as the sinks see it, in PostgreSQL, where several daemons drain it at once.
//!
//! A claim is one transaction: a transaction-level advisory lock per sink (so claimers of one
//! sink take turns, and each sees the claims committed before it — what keeps a chat's records
//! in order across daemons), then the due rows `FOR UPDATE SKIP LOCKED` (rows a settlement or a
//! heartbeat is writing are passed over, never waited for) marked with the claimer and its
//! lease in the same statement. A settlement is one transaction. Times are Unix milliseconds.

use super::{classify, PgCatalog};
use crate::catalog::{now_ms, CatalogError, ClaimedDelivery, DeliveryRow, Settlement, SinkBacklog};
use crate::records::MAX_RECORD_BYTES;

/// The first key of the advisory locks claimers take (the second is the sink's name hashed).
const CLAIM_LOCK: i32 = 0x006d_7364; // "msd"

impl PgCatalog {
    pub(super) async fn claim(
        &self,
        sink: &str,
        owner: &str,
        now: i64,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<ClaimedDelivery>, CatalogError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(classify)?;
        let lock = tx
            .prepare_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .await
            .map_err(classify)?;
        tx.execute(&lock, &[&CLAIM_LOCK, &sink]).await.map_err(classify)?;
        let claim = tx
            .prepare_cached(&format!(
                "WITH due AS (
                     SELECT d.seq, o.record_id, o.body, o.chat_id, d.attempts, d.queued_ms
                     FROM deliveries d JOIN outbox o ON o.seq = d.seq
                     WHERE d.sink = $1 AND d.delivered_at IS NULL AND d.dead_ms IS NULL
                       AND d.next_attempt_ms <= $2 AND d.claimed_until_ms <= $2
                       AND octet_length(o.body) <= {MAX_RECORD_BYTES}
                       AND NOT EXISTS (
                         SELECT 1 FROM outbox p JOIN deliveries e ON e.seq = p.seq AND e.sink = d.sink
                         WHERE p.chat_id = o.chat_id AND p.seq < o.seq
                           AND e.delivered_at IS NULL AND e.dead_ms IS NULL
                           AND (e.next_attempt_ms > $2 OR e.claimed_until_ms > $2))
                     ORDER BY d.seq LIMIT $3
                     FOR UPDATE OF d SKIP LOCKED)
                 UPDATE deliveries SET claimed_by = $4, claimed_until_ms = $5
                 FROM due WHERE deliveries.seq = due.seq AND deliveries.sink = $1
                 RETURNING due.seq, due.record_id, due.body, due.chat_id, due.attempts, due.queued_ms"
            ))
            .await
            .map_err(classify)?;
        let rows = tx
            .query(&claim, &[&sink, &now, &(limit as i64), &owner, &(now + lease_ms)])
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        let mut claimed: Vec<ClaimedDelivery> = rows
            .iter()
            .map(|r| ClaimedDelivery {
                seq: r.get(0),
                record_id: r.get(1),
                body: r.get(2),
                chat_id: r.get(3),
                attempts: r.get::<_, i32>(4) as u32,
                queued_ms: r.get(5),
            })
            .collect();
        claimed.sort_by_key(|c| c.seq);
        Ok(claimed)
    }

    pub(super) async fn settle(&self, sink: &str, settled: &[Settlement]) -> Result<(), CatalogError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(classify)?;
        let delivered_at = crate::records::now_rfc3339();
        let now = now_ms();
        for s in settled {
            match s {
                Settlement::Delivered { seq } => {
                    let statement = tx
                        .prepare_cached(
                            "UPDATE deliveries SET delivered_at = $1, attempts = attempts + 1, last_error = NULL,
                             claimed_by = NULL, claimed_until_ms = 0 WHERE seq = $2 AND sink = $3",
                        )
                        .await
                        .map_err(classify)?;
                    tx.execute(&statement, &[&delivered_at, seq, &sink])
                        .await
                        .map_err(classify)?
                }
                Settlement::Failed {
                    seq,
                    error,
                    next_attempt_ms,
                    dead,
                } => {
                    let statement = tx
                        .prepare_cached(
                            "UPDATE deliveries SET attempts = attempts + 1, last_error = $1, next_attempt_ms = $2,
                             dead_ms = $3, claimed_by = NULL, claimed_until_ms = 0 WHERE seq = $4 AND sink = $5",
                        )
                        .await
                        .map_err(classify)?;
                    let dead_ms = dead.then_some(now);
                    tx.execute(&statement, &[error, next_attempt_ms, &dead_ms, seq, &sink])
                        .await
                        .map_err(classify)?
                }
                Settlement::Released { seq } => {
                    let statement = tx
                        .prepare_cached(
                            "UPDATE deliveries SET claimed_by = NULL, claimed_until_ms = 0
                             WHERE seq = $1 AND sink = $2",
                        )
                        .await
                        .map_err(classify)?;
                    tx.execute(&statement, &[seq, &sink]).await.map_err(classify)?
                }
            };
        }
        tx.commit().await.map_err(classify)
    }

    pub(super) async fn dead_letter_too_large(&self, sink: &str) -> Result<Vec<(String, u64)>, CatalogError> {
        let error = format!("over the {MAX_RECORD_BYTES}-byte limit: never sent");
        let rows = self
            .query(
                &format!(
                    "UPDATE deliveries AS d SET dead_ms = $2,
                            last_error = 'record of ' || octet_length(o.body) || ' bytes, ' || $3
                     FROM outbox o
                     WHERE o.seq = d.seq AND d.sink = $1 AND d.delivered_at IS NULL AND d.dead_ms IS NULL
                       AND octet_length(o.body) > {MAX_RECORD_BYTES}
                     RETURNING o.seq, o.record_id, octet_length(o.body)"
                ),
                &[&sink, &now_ms(), &error],
            )
            .await?;
        let mut oversized: Vec<(i64, String, u64)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get::<_, i32>(2) as u64))
            .collect();
        oversized.sort_by_key(|o| o.0);
        Ok(oversized.into_iter().map(|(_, id, bytes)| (id, bytes)).collect())
    }

    pub(super) async fn next_due(&self, sink: &str) -> Result<Option<i64>, CatalogError> {
        let rows = self
            .query(
                "SELECT MIN(GREATEST(d.next_attempt_ms, d.claimed_until_ms))
                 FROM deliveries d JOIN outbox o ON o.seq = d.seq
                 WHERE d.sink = $1 AND d.delivered_at IS NULL AND d.dead_ms IS NULL AND NOT EXISTS (
                     SELECT 1 FROM outbox p JOIN deliveries e ON e.seq = p.seq AND e.sink = d.sink
                     WHERE p.chat_id = o.chat_id AND p.seq < o.seq
                       AND e.delivered_at IS NULL AND e.dead_ms IS NULL)",
                &[&sink],
            )
            .await?;
        Ok(rows.first().and_then(|r| r.get(0)))
    }

    pub(super) async fn list(
        &self,
        sink: Option<&str>,
        dead: bool,
        limit: usize,
    ) -> Result<Vec<DeliveryRow>, CatalogError> {
        let rows = self
            .query(
                &format!(
                    "SELECT d.sink, o.record_id,
                            CASE WHEN octet_length(o.body) <= {MAX_RECORD_BYTES} THEN o.body ELSE '{{}}' END,
                            o.chat_id, d.attempts, d.next_attempt_ms, d.queued_ms, d.last_error, d.dead_ms
                     FROM deliveries d JOIN outbox o ON o.seq = d.seq
                     WHERE d.delivered_at IS NULL AND (d.dead_ms IS NOT NULL) = $1
                       AND ($2::text IS NULL OR d.sink = $2)
                     ORDER BY d.sink, d.seq LIMIT $3"
                ),
                &[&dead, &sink, &(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| DeliveryRow {
                sink: r.get(0),
                record_id: r.get(1),
                body: r.get(2),
                chat_id: r.get(3),
                attempts: r.get::<_, i32>(4) as u32,
                next_attempt_ms: r.get(5),
                queued_ms: r.get(6),
                last_error: r.get(7),
                dead_ms: r.get(8),
            })
            .collect())
    }

    pub(super) async fn backlog(&self, sink: &str) -> Result<SinkBacklog, CatalogError> {
        let counts = self
            .query(
                "SELECT COUNT(*) FILTER (WHERE dead_ms IS NULL), COUNT(*) FILTER (WHERE dead_ms IS NOT NULL)
                 FROM deliveries WHERE sink = $1 AND delivered_at IS NULL",
                &[&sink],
            )
            .await?;
        let (waiting, dead) = counts
            .first()
            .map_or((0, 0), |r| (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64));
        let disabled = self
            .query_opt(
                "SELECT disabled_ms, disabled_reason FROM sinks WHERE name = $1 AND disabled_ms IS NOT NULL",
                &[&sink],
            )
            .await?
            .map(|r| (r.get(0), r.get::<_, Option<String>>(1).unwrap_or_default()));
        Ok(SinkBacklog {
            waiting,
            dead,
            disabled,
        })
    }

    pub(super) async fn redrive_dead(
        &self,
        sink: Option<&str>,
        record_id: Option<&str>,
    ) -> Result<usize, CatalogError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(classify)?;
        // A record over the size limit stays dead: it is never sent.
        let n = tx
            .execute(
                &format!(
                    "UPDATE deliveries SET dead_ms = NULL, attempts = 0, next_attempt_ms = 0, queued_ms = $1,
                            claimed_by = NULL, claimed_until_ms = 0
                     WHERE delivered_at IS NULL AND dead_ms IS NOT NULL AND ($2::text IS NULL OR sink = $2)
                       AND seq IN (SELECT seq FROM outbox
                                   WHERE ($3::text IS NULL OR record_id = $3) AND octet_length(body) <= {MAX_RECORD_BYTES})"
                ),
                &[&now_ms(), &sink, &record_id],
            )
            .await
            .map_err(classify)?;
        tx.execute(
            "UPDATE sinks SET disabled_ms = NULL, disabled_reason = NULL WHERE $1::text IS NULL OR name = $1",
            &[&sink],
        )
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(n as usize)
    }
}
