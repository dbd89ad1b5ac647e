//! The outbox as the sinks see it: per sink, the records waiting, claimed, delivered or given up.
//!
//! A sink's task claims a batch of due deliveries (in outbox order, never a record whose chat has
//! an earlier one still waiting or out on another claim), tries them, and settles each: delivered,
//! failed with the time of its next attempt (or dead-lettered), or released untried. A claim is a
//! lease: rows a process claimed and never settled (it was killed) are claimable again once the
//! lease lapses, so delivery is at least once. These calls are shaped to translate to a server
//! catalog (a claim is `SELECT … FOR UPDATE SKIP LOCKED` + `UPDATE`, a settlement one
//! transaction). Times are Unix milliseconds. Blocking, like every catalog call.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{Catalog, CatalogError};
use crate::records::MAX_RECORD_BYTES;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
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

const WAITING: &str = "d.delivered_at IS NULL AND d.dead_ms IS NULL";

impl Catalog {
    /// Claims up to `limit` deliveries due for `sink` at `now`, oldest first, for `lease_ms`.
    /// A record is left out while an earlier record of the same chat waits for a later attempt
    /// or is claimed by someone else; records with no chat are not ordered.
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

    /// Extends every claim `owner` holds on `sink` to `until_ms` (a heartbeat while it delivers).
    pub fn renew_claims(&self, sink: &str, owner: &str, until_ms: i64) -> Result<(), CatalogError> {
        self.conn().execute(
            "UPDATE deliveries SET claimed_until_ms = ?3
             WHERE sink = ?1 AND claimed_by = ?2 AND delivered_at IS NULL AND dead_ms IS NULL",
            params![sink, owner, until_ms],
        )?;
        Ok(())
    }

    /// Records how claimed deliveries ended, all in one transaction, and lets go of their claims.
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

    /// Dead-letters every delivery to `sink` that entered its line before `queued_before_ms` and
    /// is not out on a claim, with `error` as its last error. Returns how many.
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

    /// The earliest time a delivery to `sink` may become due (its next attempt, or the end of a
    /// claim on it), counting only the first waiting record of each chat; `None` when nothing
    /// waits.
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

    /// Deliveries waiting (or, with `dead`, given up on), for one sink or all, oldest first.
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

    /// How many deliveries wait for and were given up on by `sink`, and whether it is disabled.
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

    /// Stops all delivery to `sink` until a redrive (the receiver answered 410 Gone).
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

    /// Puts dead-lettered deliveries (of one sink or all, of one record or all) back in line,
    /// due now with a fresh `give_up_after`, and re-enables the sink(s). Returns how many.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::JobVerdict;
    use crate::records::{Event, Record, SourceInfo};

    fn commit(c: &Catalog, name: &str, chat: Option<&str>) -> String {
        let mut r = Record::new(
            Event::Stored,
            name,
            None,
            SourceInfo {
                file_name: name.into(),
                ..Default::default()
            },
        );
        r.crm.chat_id = chat.map(str::to_string);
        c.commit(name, name, &r, None, &JobVerdict::Done, &["s"]).unwrap();
        r.record_id
    }

    fn names(claimed: &[ClaimedDelivery]) -> Vec<i64> {
        claimed.iter().map(|c| c.seq).collect()
    }

    #[test]
    fn a_later_record_of_a_chat_waits_for_the_earlier_one_and_other_chats_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open_path(&dir.path().join("c.db")).unwrap();
        commit(&c, "a1", Some("a"));
        commit(&c, "b1", Some("b"));
        commit(&c, "a2", Some("a"));
        commit(&c, "x", None);
        let now = now_ms();
        let batch = c.claim_deliveries("s", "me", now, 10, 1000).unwrap();
        assert_eq!(names(&batch), [1, 2, 3, 4], "all due, in order");
        assert!(
            c.claim_deliveries("s", "other", now, 10, 1000)
                .unwrap()
                .is_empty(),
            "claimed"
        );
        // a1 fails: a2 is released untried and must wait; b1 and x are delivered.
        c.settle_deliveries(
            "s",
            &[
                Settlement::Failed {
                    seq: 1,
                    error: "HTTP 500".into(),
                    next_attempt_ms: now + 60_000,
                    dead: false,
                },
                Settlement::Delivered { seq: 2 },
                Settlement::Released { seq: 3 },
                Settlement::Delivered { seq: 4 },
            ],
        )
        .unwrap();
        commit(&c, "b2", Some("b"));
        assert_eq!(
            names(&c.claim_deliveries("s", "me", now, 10, 1000).unwrap()),
            [5],
            "a2 waits for a1"
        );
        c.settle_deliveries("s", &[Settlement::Delivered { seq: 5 }])
            .unwrap();
        assert_eq!(
            c.next_delivery_due("s").unwrap(),
            Some(now + 60_000),
            "a2 is behind a1"
        );
        // Once a1 is due, a1 and a2 come in order.
        let later = c.claim_deliveries("s", "me", now + 60_000, 10, 1000).unwrap();
        assert_eq!(names(&later), [1, 3]);
        assert_eq!(later[0].attempts, 1);
    }

    #[test]
    fn a_lapsed_claim_is_taken_again() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open_path(&dir.path().join("c.db")).unwrap();
        commit(&c, "a1", Some("a"));
        commit(&c, "a2", Some("a"));
        let now = now_ms();
        assert_eq!(c.claim_deliveries("s", "dead", now, 1, 5000).unwrap().len(), 1);
        assert!(
            c.claim_deliveries("s", "me", now + 1000, 10, 5000)
                .unwrap()
                .is_empty(),
            "a2 waits behind the claim on a1"
        );
        c.renew_claims("s", "dead", now + 10_000).unwrap();
        assert!(
            c.claim_deliveries("s", "me", now + 6000, 10, 5000)
                .unwrap()
                .is_empty(),
            "renewed"
        );
        assert_eq!(
            names(&c.claim_deliveries("s", "me", now + 10_000, 10, 5000).unwrap()),
            [1, 2]
        );
    }

    #[test]
    fn dead_letters_are_listed_and_redriven() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open_path(&dir.path().join("c.db")).unwrap();
        let id = commit(&c, "a1", Some("a"));
        commit(&c, "b1", Some("b"));
        let now = now_ms();
        c.claim_deliveries("s", "me", now, 1, 1000).unwrap();
        c.settle_deliveries(
            "s",
            &[Settlement::Failed {
                seq: 1,
                error: "HTTP 422: no such contact".into(),
                next_attempt_ms: now,
                dead: true,
            }],
        )
        .unwrap();
        let dead = c.list_deliveries(Some("s"), true, 10).unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].record_id, id);
        assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 422: no such contact"));
        assert_eq!(c.list_deliveries(None, false, 10).unwrap().len(), 1, "b1 waits");
        assert_eq!(
            c.sink_backlog("s").unwrap(),
            SinkBacklog {
                waiting: 1,
                dead: 1,
                disabled: None
            }
        );
        // b1 expires unclaimed.
        assert_eq!(
            c.dead_letter_expired("s", now_ms() + 1, "receiver down").unwrap(),
            1
        );
        c.disable_sink("s", "410 Gone").unwrap();
        assert!(c.sink_disabled("s").unwrap());
        assert_eq!(c.redrive(Some("s"), Some(&id)).unwrap(), 1);
        assert!(!c.sink_disabled("s").unwrap());
        let back = c.claim_deliveries("s", "me", now_ms(), 10, 1000).unwrap();
        assert_eq!(names(&back), [1]);
        assert_eq!(back[0].attempts, 0);
        assert_eq!(c.redrive(None, None).unwrap(), 1);
    }
}
