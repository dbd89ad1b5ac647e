//! Retention and erasure on SQLite. A set of messages is handed over as record ids in a
//! temporary table, so sets of any size cost one statement each.

use std::collections::HashSet;

use rusqlite::{params, Transaction};

use super::{enqueue, Db};
use crate::catalog::{CatalogError, Erased, Erasure, MessageRow, Subject, UnneededMedia};
use crate::records::{Crm, MAX_RECORD_BYTES};

const MESSAGE_COLUMNS: &str = "record_id, event, content_hash, retention_until, customer_id, chat_id, tags,
     CASE WHEN octet_length(record) <= ?1 THEN json_extract(record, '$.crm') END";

impl Db {
    pub fn expired(&self, now: &str, after: &str, limit: usize) -> Result<Vec<MessageRow>, CatalogError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE retention_until IS NOT NULL AND retention_until <= ?2 AND record_id > ?3
             ORDER BY record_id LIMIT ?4"
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params![MAX_RECORD_BYTES, now, after, limit as i64], message_row)?;
        rows.map(|r| r?).collect()
    }

    pub fn messages_of(&self, subject: &Subject) -> Result<Vec<MessageRow>, CatalogError> {
        let (column, id) = match subject {
            Subject::Customer(id) => ("customer_id", id),
            Subject::Chat(id) => ("chat_id", id),
        };
        let conn = self.conn();
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE {column} = ?2 ORDER BY record_id");
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params![MAX_RECORD_BYTES, id], message_row)?;
        rows.map(|r| r?).collect()
    }

    pub fn unneeded_media(&self, record_ids: &[String]) -> Result<Vec<UnneededMedia>, CatalogError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        fill_erase_set(&tx, record_ids)?;
        let rows = {
            let mut stmt = tx.prepare(
                "SELECT m.content_hash, m.profile_id, m.info FROM media m
                 WHERE m.content_hash IN (SELECT content_hash FROM messages
                                          WHERE record_id IN (SELECT record_id FROM temp.erase_set))
                   AND NOT EXISTS (SELECT 1 FROM messages x
                                   WHERE x.content_hash = m.content_hash AND x.event != 'media.rejected'
                                     AND x.record_id NOT IN (SELECT record_id FROM temp.erase_set))
                 ORDER BY m.content_hash, m.profile_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        tx.rollback()?;
        rows.into_iter()
            .map(|(content_hash, profile_id, info)| {
                Ok(UnneededMedia {
                    content_hash,
                    profile_id,
                    media: serde_json::from_str(&info)?,
                })
            })
            .collect()
    }

    pub fn erase(&self, erasure: &Erasure) -> Result<Erased, CatalogError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        fill_erase_set(&tx, &erasure.record_ids)?;
        let in_set = "IN (SELECT record_id FROM temp.erase_set)";
        tx.execute(
            &format!("DELETE FROM deliveries WHERE seq IN (SELECT seq FROM outbox WHERE record_id {in_set})"),
            [],
        )?;
        let outbox_rows = tx.execute(&format!("DELETE FROM outbox WHERE record_id {in_set}"), [])?;
        tx.execute(&format!("DELETE FROM jobs WHERE record_id {in_set}"), [])?;
        let gone: HashSet<String> = {
            let mut delete = tx.prepare(&format!(
                "DELETE FROM messages WHERE record_id {in_set} RETURNING record_id"
            ))?;
            let gone = delete.query_map([], |r| r.get(0))?;
            gone.collect::<Result<_, _>>()?
        };
        let mut media_rows = 0;
        for (hash, profile_id) in &erasure.media {
            media_rows += tx.execute(
                "DELETE FROM media WHERE content_hash = ?1 AND profile_id = ?2 AND NOT EXISTS
                 (SELECT 1 FROM messages x WHERE x.content_hash = ?1 AND x.event != 'media.rejected')",
                params![hash, profile_id],
            )?;
        }
        // Only messages this transaction removed are announced: another daemon's purge of the
        // same messages announced the rest.
        for (notice, sinks) in &erasure.notices {
            if notice
                .deleted
                .as_ref()
                .is_some_and(|d| gone.contains(&d.record_id))
            {
                let sinks: Vec<&str> = sinks.iter().map(String::as_str).collect();
                enqueue(&tx, notice, &notice.to_json()?, &sinks)?;
            }
        }
        tx.execute("DELETE FROM temp.erase_set", [])?;
        tx.commit()?;
        Ok(Erased {
            messages: gone.len(),
            outbox_rows,
            media_rows,
        })
    }
}

fn fill_erase_set(tx: &Transaction<'_>, record_ids: &[String]) -> Result<(), CatalogError> {
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS erase_set (record_id TEXT PRIMARY KEY);
         DELETE FROM temp.erase_set;",
    )?;
    let mut insert = tx.prepare("INSERT OR IGNORE INTO temp.erase_set (record_id) VALUES (?1)")?;
    for id in record_ids {
        insert.execute([id])?;
    }
    Ok(())
}

fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<MessageRow, CatalogError>> {
    let tags: String = r.get(6)?;
    let crm: Option<String> = r.get(7)?;
    let row = MessageRow {
        record_id: r.get(0)?,
        event: r.get(1)?,
        content_hash: r.get(2)?,
        retention_until: r.get(3)?,
        crm: Crm::default(),
    };
    let columns = (r.get::<_, Option<String>>(4)?, r.get::<_, Option<String>>(5)?);
    Ok(crate::catalog::erasure::with_crm(
        row,
        crm.as_deref(),
        &tags,
        columns,
    ))
}
