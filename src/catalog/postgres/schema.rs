//! The catalog's tables in PostgreSQL, created or upgraded at open. The migration runs in one
//! transaction holding a transaction-level advisory lock: daemons starting together take
//! turns, the first one migrates, the others find the schema current. Times of leases and
//! deliveries are Unix milliseconds (BIGINT); record times are RFC 3339 text, compared as text
//! as the records carry them.

use super::{classify, PgCatalog};
use crate::catalog::CatalogError;

/// The advisory lock held while migrating ("mediaspool schema").
const MIGRATION_LOCK: i64 = 0x6d65_6469_6173_636d;

/// Each version's statements; the schema is at version N once the first N have run.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE media (
    content_hash    TEXT NOT NULL,
    profile_id      TEXT NOT NULL,   -- 'as-is' for files stored as they came
    kind            TEXT NOT NULL,
    info            TEXT NOT NULL,   -- JSON: media, thumbnail and original as records show them
    first_record_id TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (content_hash, profile_id)
);
CREATE TABLE messages (
    record_id       TEXT PRIMARY KEY,
    message_key     TEXT NOT NULL,   -- the channel's message id, else the file name
    content_hash    TEXT,
    event           TEXT NOT NULL,
    kind            TEXT,
    customer_id     TEXT,
    chat_id         TEXT,
    tags            JSONB NOT NULL DEFAULT '[]',
    received_at     TEXT,
    processed_at    TEXT NOT NULL,
    retention_until TEXT,
    record          TEXT NOT NULL
);
CREATE INDEX messages_by_key ON messages (message_key, content_hash);
CREATE INDEX messages_by_customer ON messages (customer_id, (COALESCE(received_at, processed_at)));
CREATE INDEX messages_by_chat ON messages (chat_id);
CREATE INDEX messages_by_time ON messages (processed_at);
CREATE TABLE outbox (
    seq        BIGSERIAL PRIMARY KEY,
    record_id  TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    chat_id    TEXT              -- records of one chat are delivered in order
);
CREATE INDEX outbox_by_chat ON outbox (chat_id, seq);
CREATE TABLE deliveries (
    seq              BIGINT NOT NULL REFERENCES outbox (seq),
    sink             TEXT NOT NULL,
    delivered_at     TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms  BIGINT NOT NULL DEFAULT 0,
    queued_ms        BIGINT NOT NULL DEFAULT 0,   -- in line since (commit or redrive)
    last_error       TEXT,
    dead_ms          BIGINT,                      -- dead-lettered at
    claimed_by       TEXT,                        -- the daemon delivering it…
    claimed_until_ms BIGINT NOT NULL DEFAULT 0,   -- …until its claim lapses
    PRIMARY KEY (seq, sink)
);
CREATE INDEX deliveries_waiting ON deliveries (sink, seq) WHERE delivered_at IS NULL AND dead_ms IS NULL;
CREATE TABLE sinks (
    name            TEXT PRIMARY KEY,
    disabled_ms     BIGINT,          -- the receiver answered 410 Gone: nothing is sent until redrive
    disabled_reason TEXT
);
CREATE TABLE jobs (
    job_id    TEXT PRIMARY KEY,
    file_name TEXT NOT NULL,
    attempts  INTEGER NOT NULL DEFAULT 0,  -- worker deaths so far
    verdict   TEXT,                        -- JSON, set in the commit that writes the record
    record_id TEXT
);
CREATE TABLE leases (
    key      TEXT PRIMARY KEY,   -- the content hash
    owner    TEXT NOT NULL,      -- the daemon holding it
    until_ms BIGINT NOT NULL     -- it lapses then unless renewed
);
CREATE INDEX leases_by_owner ON leases (owner);
",
    "
-- What retention and erasure look up: messages by expiry and by bytes, outbox rows and jobs by record.
CREATE INDEX messages_by_retention ON messages ((retention_until COLLATE \"C\"));
CREATE INDEX messages_by_content ON messages (content_hash);
CREATE INDEX outbox_by_record ON outbox (record_id);
CREATE INDEX jobs_by_record ON jobs (record_id);
",
];

/// Brings the schema to the last version in [`MIGRATIONS`].
pub async fn migrate(catalog: &PgCatalog) -> Result<(), CatalogError> {
    let mut client = catalog.client().await?;
    let tx = client.transaction().await.map_err(classify)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(classify)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS mediaspool_schema (version INTEGER NOT NULL)")
        .await
        .map_err(classify)?;
    let version: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM mediaspool_schema", &[])
        .await
        .map_err(classify)?
        .get(0);
    let known = MIGRATIONS.len() as i32;
    if version > known {
        return Err(CatalogError::Postgres(format!(
            "the catalog's schema is version {version}, newer than this mediaspool knows ({known}): upgrade mediaspool"
        )));
    }
    for (i, statements) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(statements).await.map_err(classify)?;
        tx.execute(
            "INSERT INTO mediaspool_schema (version) VALUES ($1)",
            &[&(i as i32 + 1)],
        )
        .await
        .map_err(classify)?;
    }
    tx.commit().await.map_err(classify)
}
