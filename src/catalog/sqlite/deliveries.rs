//! The outbox as the sinks see it, in SQLite: per sink, the records waiting, claimed, delivered
//! or given up.
//!
//! A sink's task claims a batch of due deliveries (in outbox order, never a record whose chat has
//! an earlier one still waiting or out on another claim), tries them, and settles each: delivered,
//! failed with the time of its next attempt (or dead-lettered), or released untried. A claim is a
//! lease: rows a process claimed and never settled (it was killed) are claimable again once the
//! lease lapses, so delivery is at least once. A claim is one IMMEDIATE transaction, so
//! claimers (threads or processes sharing the file) take turns. Times are Unix milliseconds.
//! Blocking.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::Db;
use crate::catalog::{now_ms, CatalogError, ClaimedDelivery, DeliveryRow, Settlement, SinkBacklog};
use crate::records::MAX_RECORD_BYTES;

const WAITING: &str = "d.delivered_at IS NULL AND d.dead_ms IS NULL";

impl Db {
    pub fn claim_deliveries(
        &self,
        sink: &str,
        owner: &str,
        now: i64,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<ClaimedDelivery>, CatalogError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let claimed = {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT d.seq, o.record_id, o.body, o.chat_id, d.attempts, d.queued_ms
                 FROM deliveries d JOIN outbox o ON o.seq = d.seq
                 WHERE d.sink = ?1 AND {WAITING} AND d.next_attempt_ms <= ?2 AND d.claimed_until_ms <= ?2
                   AND octet_length(o.body) <= {MAX_RECORD_BYTES}
                   AND NOT EXISTS (
                     SELECT 1 FROM outbox p JOIN deliveries e ON e.seq = p.seq AND e.sink = d.sink
                     WHERE p.chat_id = o.chat_id AND p.seq < o.seq
                       AND e.delivered_at IS NULL AND e.dead_ms IS NULL
                       AND (e.next_attempt_ms > ?2 OR e.claimed_until_ms > ?2))
                 ORDER BY d.seq LIMIT ?3"
            ))?;
            let rows = stmt.query_map(params![sink, now, limit as i64], |r| {
                Ok(ClaimedDelivery {
                    seq: r.get(0)?,
                    record_id: r.get(1)?,
                    body: r.get(2)?,
                    chat_id: r.get(3)?,
                    attempts: r.get(4)?,
                    queued_ms: r.get(5)?,
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE deliveries SET claimed_by = ?1, claimed_until_ms = ?2 WHERE seq = ?3 AND sink = ?4",
            )?;
            for c in &claimed {
                stmt.execute(params![owner, now + lease_ms, c.seq, sink])?;
            }
        }
        tx.commit()?;
        Ok(claimed)
    }

    pub fn renew_claims(&self, sink: &str, owner: &str, until_ms: i64) -> Result<(), CatalogError> {
        self.conn().execute(
            "UPDATE deliveries SET claimed_until_ms = ?3
             WHERE sink = ?1 AND claimed_by = ?2 AND delivered_at IS NULL AND dead_ms IS NULL",
            params![sink, owner, until_ms],
        )?;
        Ok(())
    }

    pub fn settle_deliveries(&self, sink: &str, settled: &[Settlement]) -> Result<(), CatalogError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let now = now_ms();
        let delivered_at = crate::records::now_rfc3339();
        for s in settled {
            match s {
                Settlement::Delivered { seq } => tx.prepare_cached(
                    "UPDATE deliveries SET delivered_at = ?1, attempts = attempts + 1, last_error = NULL,
                     claimed_by = NULL, claimed_until_ms = 0 WHERE seq = ?2 AND sink = ?3",
                )?
                .execute(params![delivered_at, seq, sink])?,
                Settlement::Failed {
                    seq,
                    error,
                    next_attempt_ms,
                    dead,
                } => tx.prepare_cached(
                    "UPDATE deliveries SET attempts = attempts + 1, last_error = ?1, next_attempt_ms = ?2,
                     dead_ms = ?3, claimed_by = NULL, claimed_until_ms = 0 WHERE seq = ?4 AND sink = ?5",
                )?
                .execute(params![error, next_attempt_ms, dead.then_some(now), seq, sink])?,
                Settlement::Released { seq } => tx.prepare_cached(
                    "UPDATE deliveries SET claimed_by = NULL, claimed_until_ms = 0 WHERE seq = ?1 AND sink = ?2",
                )?
                .execute(params![seq, sink])?,
            };
        }
        tx.commit()?;
        Ok(())
    }

    pub fn dead_letter_expired(
        &self,
        sink: &str,
        queued_before_ms: i64,
        error: &str,
    ) -> Result<usize, CatalogError> {
        let now = now_ms();
        Ok(self.conn().execute(
            &format!(
                "UPDATE deliveries AS d SET dead_ms = ?1, last_error = COALESCE(last_error, ?2)
                 WHERE d.sink = ?3 AND {WAITING} AND d.queued_ms < ?4 AND d.claimed_until_ms <= ?1"
            ),
            params![now, error, sink, queued_before_ms],
        )?)
    }

    /// Dead-letters every waiting delivery to `sink` of a record over [`MAX_RECORD_BYTES`] (only
    /// an earlier version could write one; it is never read back) and returns them:
    /// (record id, bytes).
    pub fn dead_letter_oversized(&self, sink: &str) -> Result<Vec<(String, u64)>, CatalogError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let oversized: Vec<(i64, String, u64)> = {
            let mut stmt = tx.prepare(&format!(
                "SELECT o.seq, o.record_id, octet_length(o.body) FROM deliveries d JOIN outbox o ON o.seq = d.seq
                 WHERE d.sink = ?1 AND {WAITING} AND octet_length(o.body) > ?2 ORDER BY o.seq"
            ))?;
            let rows = stmt.query_map(params![sink, MAX_RECORD_BYTES], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        let now = now_ms();
        for (seq, _, bytes) in &oversized {
            tx.execute(
                "UPDATE deliveries SET dead_ms = ?1, last_error = ?2 WHERE seq = ?3 AND sink = ?4",
                params![
                    now,
                    format!("record of {bytes} bytes, over the {MAX_RECORD_BYTES}-byte limit: never sent"),
                    seq,
                    sink
                ],
            )?;
        }
        tx.commit()?;
        Ok(oversized.into_iter().map(|(_, id, bytes)| (id, bytes)).collect())
    }

    pub fn next_delivery_due(&self, sink: &str) -> Result<Option<i64>, CatalogError> {
        Ok(self.conn().query_row(
            &format!(
                "SELECT MIN(MAX(d.next_attempt_ms, d.claimed_until_ms))
                 FROM deliveries d JOIN outbox o ON o.seq = d.seq
                 WHERE d.sink = ?1 AND {WAITING} AND NOT EXISTS (
                     SELECT 1 FROM outbox p JOIN deliveries e ON e.seq = p.seq AND e.sink = d.sink
                     WHERE p.chat_id = o.chat_id AND p.seq < o.seq
                       AND e.delivered_at IS NULL AND e.dead_ms IS NULL)"
            ),
            [sink],
            |r| r.get(0),
        )?)
    }

    pub fn list_deliveries(
        &self,
        sink: Option<&str>,
        dead: bool,
        limit: usize,
    ) -> Result<Vec<DeliveryRow>, CatalogError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT d.sink, o.record_id,
                        CASE WHEN octet_length(o.body) <= {MAX_RECORD_BYTES} THEN o.body ELSE '{{}}' END,
                        o.chat_id, d.attempts, d.next_attempt_ms, d.queued_ms, d.last_error, d.dead_ms
                 FROM deliveries d JOIN outbox o ON o.seq = d.seq
                 WHERE d.delivered_at IS NULL AND (d.dead_ms IS NOT NULL) = ?1 AND (?2 IS NULL OR d.sink = ?2)
                 ORDER BY d.sink, d.seq LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![dead, sink, limit as i64], |r| {
            Ok(DeliveryRow {
                sink: r.get(0)?,
                record_id: r.get(1)?,
                body: r.get(2)?,
                chat_id: r.get(3)?,
                attempts: r.get(4)?,
                next_attempt_ms: r.get(5)?,
                queued_ms: r.get(6)?,
                last_error: r.get(7)?,
                dead_ms: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn sink_backlog(&self, sink: &str) -> Result<SinkBacklog, CatalogError> {
        let conn = self.conn();
        let (waiting, dead) = conn.query_row(
            "SELECT COUNT(*) FILTER (WHERE dead_ms IS NULL), COUNT(*) FILTER (WHERE dead_ms IS NOT NULL)
             FROM deliveries WHERE sink = ?1 AND delivered_at IS NULL",
            [sink],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )?;
        let disabled = conn
            .query_row(
                "SELECT disabled_ms, disabled_reason FROM sinks WHERE name = ?1 AND disabled_ms IS NOT NULL",
                [sink],
                |r| Ok((r.get(0)?, r.get::<_, Option<String>>(1)?.unwrap_or_default())),
            )
            .optional()?;
        Ok(SinkBacklog {
            waiting,
            dead,
            disabled,
        })
    }

    pub fn disable_sink(&self, sink: &str, reason: &str) -> Result<(), CatalogError> {
        self.conn().execute(
            "INSERT INTO sinks (name, disabled_ms, disabled_reason) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO UPDATE SET disabled_ms = excluded.disabled_ms, disabled_reason = excluded.disabled_reason",
            params![sink, now_ms(), reason],
        )?;
        Ok(())
    }

    pub fn sink_disabled(&self, sink: &str) -> Result<bool, CatalogError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM sinks WHERE name = ?1 AND disabled_ms IS NOT NULL",
                [sink],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    pub fn redrive(&self, sink: Option<&str>, record_id: Option<&str>) -> Result<usize, CatalogError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        // A record over the size limit stays dead: it is never sent.
        let n = tx.execute(
            &format!(
                "UPDATE deliveries SET dead_ms = NULL, attempts = 0, next_attempt_ms = 0, queued_ms = ?1,
                        claimed_by = NULL, claimed_until_ms = 0
                 WHERE delivered_at IS NULL AND dead_ms IS NOT NULL AND (?2 IS NULL OR sink = ?2)
                   AND seq IN (SELECT seq FROM outbox
                               WHERE (?3 IS NULL OR record_id = ?3) AND octet_length(body) <= {MAX_RECORD_BYTES})"
            ),
            params![now_ms(), sink, record_id],
        )?;
        tx.execute(
            "UPDATE sinks SET disabled_ms = NULL, disabled_reason = NULL WHERE ?1 IS NULL OR name = ?1",
            params![sink],
        )?;
        tx.commit()?;
        Ok(n)
    }
}
