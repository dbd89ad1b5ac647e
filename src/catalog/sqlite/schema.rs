//! The catalog's tables, created or upgraded at open.

use rusqlite::{Connection, TransactionBehavior};

const VERSION: i64 = 4;

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS media (
    content_hash    TEXT NOT NULL,
    profile_id      TEXT NOT NULL,   -- 'as-is' for files stored as they came
    kind            TEXT NOT NULL,
    info            TEXT NOT NULL,   -- JSON: media, thumbnail and original as records show them
    first_record_id TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (content_hash, profile_id)
);
CREATE TABLE IF NOT EXISTS messages (
    record_id       TEXT PRIMARY KEY,
    message_key     TEXT NOT NULL,   -- the channel's message id, else the file name
    content_hash    TEXT,
    event           TEXT NOT NULL,
    kind            TEXT,
    customer_id     TEXT,
    chat_id         TEXT,
    tags            TEXT NOT NULL DEFAULT '[]',
    received_at     TEXT,
    processed_at    TEXT NOT NULL,
    retention_until TEXT,
    record          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_key ON messages (message_key, content_hash);
CREATE INDEX IF NOT EXISTS messages_by_customer ON messages (customer_id);
CREATE INDEX IF NOT EXISTS messages_by_chat ON messages (chat_id);
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id  TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    seq          INTEGER NOT NULL REFERENCES outbox (seq),
    sink         TEXT NOT NULL,
    delivered_at TEXT,
    PRIMARY KEY (seq, sink)
);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (sink, delivered_at);
CREATE TABLE IF NOT EXISTS jobs (
    job_id    TEXT PRIMARY KEY,
    file_name TEXT NOT NULL,
    attempts  INTEGER NOT NULL DEFAULT 0,  -- worker deaths so far
    verdict   TEXT,                        -- JSON, set in the commit that writes the record
    record_id TEXT
);
";

/// Per-delivery state (attempts, next attempt, last error, dead letter, claim) and per-sink
/// state (disabled by the receiver). Times are Unix milliseconds, compared as numbers.
const SCHEMA_V2: &str = "
ALTER TABLE outbox ADD COLUMN chat_id TEXT;        -- records of one chat are delivered in order
ALTER TABLE deliveries ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN next_attempt_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN queued_ms INTEGER NOT NULL DEFAULT 0;   -- in line since (commit or redrive)
ALTER TABLE deliveries ADD COLUMN last_error TEXT;
ALTER TABLE deliveries ADD COLUMN dead_ms INTEGER;                        -- dead-lettered at
ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;                        -- the process delivering it…
ALTER TABLE deliveries ADD COLUMN claimed_until_ms INTEGER NOT NULL DEFAULT 0; -- …until its claim lapses
DROP INDEX IF EXISTS deliveries_pending;
CREATE INDEX IF NOT EXISTS deliveries_waiting ON deliveries (sink, seq)
    WHERE delivered_at IS NULL AND dead_ms IS NULL;
CREATE INDEX IF NOT EXISTS outbox_by_chat ON outbox (chat_id, seq);
CREATE TABLE IF NOT EXISTS sinks (
    name            TEXT PRIMARY KEY,
    disabled_ms     INTEGER,           -- the receiver answered 410 Gone: nothing is sent until redrive
    disabled_reason TEXT
);
";

/// Content leases: who works on which bytes, until when (Unix milliseconds); records by time,
/// newest first for the status page.
const SCHEMA_V3: &str = "
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (processed_at);
CREATE TABLE IF NOT EXISTS leases (
    key      TEXT PRIMARY KEY,   -- the content hash
    owner    TEXT NOT NULL,      -- the daemon holding it
    until_ms INTEGER NOT NULL    -- it lapses then unless renewed
);
CREATE INDEX IF NOT EXISTS leases_by_owner ON leases (owner);
";

/// Messages by when they expire and by their bytes, outbox rows and jobs by record: what
/// retention and erasure look up.
const SCHEMA_V4: &str = "
CREATE INDEX IF NOT EXISTS messages_by_retention ON messages (retention_until);
CREATE INDEX IF NOT EXISTS messages_by_content ON messages (content_hash);
CREATE INDEX IF NOT EXISTS outbox_by_record ON outbox (record_id);
CREATE INDEX IF NOT EXISTS jobs_by_record ON jobs (record_id);
";

/// Brings the schema to [`VERSION`]; daemons opening the file together take turns (the write
/// lock is taken before the version is read).
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < 1 {
        tx.execute_batch(SCHEMA_V1)?;
    }
    if version < 2 {
        tx.execute_batch(SCHEMA_V2)?;
        tx.execute(
            "UPDATE deliveries SET queued_ms = ?1",
            [time::OffsetDateTime::now_utc().unix_timestamp() * 1000],
        )?;
    }
    if version < 3 {
        tx.execute_batch(SCHEMA_V3)?;
    }
    if version < 4 {
        tx.execute_batch(SCHEMA_V4)?;
    }
    if version < VERSION {
        tx.pragma_update(None, "user_version", VERSION)?;
    }
    tx.commit()
}
