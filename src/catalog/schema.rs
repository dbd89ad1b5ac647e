//! The catalog's tables, created or upgraded at open.

use rusqlite::Connection;

const VERSION: i64 = 1;

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

pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < VERSION {
        conn.execute_batch(SCHEMA_V1)?;
        conn.pragma_update(None, "user_version", VERSION)?;
    }
    Ok(())
}
