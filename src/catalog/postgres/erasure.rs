//! Retention and erasure on PostgreSQL. A set of messages is handed over as one array of
//! record ids. Times are compared as text in the "C" collation (RFC 3339 sorts as time there).

use std::collections::HashSet;

use tokio_postgres::Row;

use super::{classify, enqueue, PgCatalog};
use crate::catalog::{CatalogError, Erased, Erasure, MessageRow, Subject, UnneededMedia};
use crate::records::{Crm, MAX_RECORD_BYTES};

fn message_columns() -> String {
    format!(
        "record_id, event, content_hash, retention_until, customer_id, chat_id, tags::text,
         CASE WHEN octet_length(record) <= {MAX_RECORD_BYTES} THEN (record::jsonb -> 'crm')::text END"
    )
}

pub(super) async fn expired(
    c: &PgCatalog,
    now: &str,
    after: &str,
    limit: usize,
) -> Result<Vec<MessageRow>, CatalogError> {
    let sql = format!(
        "SELECT {} FROM messages
         WHERE retention_until COLLATE \"C\" <= $1 AND record_id COLLATE \"C\" > $2
         ORDER BY record_id COLLATE \"C\" LIMIT $3",
        message_columns()
    );
    let rows = c.query(&sql, &[&now, &after, &(limit as i64)]).await?;
    rows.iter().map(message_row).collect()
}

pub(super) async fn messages_of(c: &PgCatalog, subject: &Subject) -> Result<Vec<MessageRow>, CatalogError> {
    let (column, id) = match subject {
        Subject::Customer(id) => ("customer_id", id),
        Subject::Chat(id) => ("chat_id", id),
    };
    let sql = format!(
        "SELECT {} FROM messages WHERE {column} = $1 ORDER BY record_id COLLATE \"C\"",
        message_columns()
    );
    let rows = c.query(&sql, &[id]).await?;
    rows.iter().map(message_row).collect()
}

pub(super) async fn unneeded_media(
    c: &PgCatalog,
    record_ids: &[String],
) -> Result<Vec<UnneededMedia>, CatalogError> {
    let rows = c
        .query(
            "SELECT m.content_hash, m.profile_id, m.info FROM media m
             WHERE m.content_hash IN (SELECT content_hash FROM messages WHERE record_id = ANY($1))
               AND NOT EXISTS (SELECT 1 FROM messages x
                               WHERE x.content_hash = m.content_hash AND x.event <> 'media.rejected'
                                 AND NOT (x.record_id = ANY($1)))
             ORDER BY m.content_hash, m.profile_id",
            &[&record_ids],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(UnneededMedia {
                content_hash: r.get(0),
                profile_id: r.get(1),
                media: serde_json::from_str(r.get::<_, &str>(2))?,
            })
        })
        .collect()
}

pub(super) async fn erase(c: &PgCatalog, erasure: &Erasure) -> Result<Erased, CatalogError> {
    let ids = &erasure.record_ids;
    let mut client = c.client().await?;
    let tx = client.transaction().await.map_err(classify)?;
    tx.execute(
        "DELETE FROM deliveries WHERE seq IN (SELECT seq FROM outbox WHERE record_id = ANY($1))",
        &[ids],
    )
    .await
    .map_err(classify)?;
    let outbox_rows = tx
        .execute("DELETE FROM outbox WHERE record_id = ANY($1)", &[ids])
        .await
        .map_err(classify)?;
    tx.execute("DELETE FROM jobs WHERE record_id = ANY($1)", &[ids])
        .await
        .map_err(classify)?;
    let gone: HashSet<String> = tx
        .query(
            "DELETE FROM messages WHERE record_id = ANY($1) RETURNING record_id",
            &[ids],
        )
        .await
        .map_err(classify)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut media_rows = 0;
    for (hash, profile_id) in &erasure.media {
        media_rows += tx
            .execute(
                "DELETE FROM media WHERE content_hash = $1 AND profile_id = $2 AND NOT EXISTS
                 (SELECT 1 FROM messages x WHERE x.content_hash = $1 AND x.event <> 'media.rejected')",
                &[hash, profile_id],
            )
            .await
            .map_err(classify)?;
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
            enqueue(&tx, notice, &notice.to_json()?, &sinks).await?;
        }
    }
    tx.commit().await.map_err(classify)?;
    Ok(Erased {
        messages: gone.len(),
        outbox_rows: outbox_rows as usize,
        media_rows: media_rows as usize,
    })
}

fn message_row(r: &Row) -> Result<MessageRow, CatalogError> {
    let row = MessageRow {
        record_id: r.get(0),
        event: r.get(1),
        content_hash: r.get(2),
        retention_until: r.get(3),
        crm: Crm::default(),
    };
    crate::catalog::erasure::with_crm(row, r.get(7), r.get(6), (r.get(4), r.get(5)))
}
