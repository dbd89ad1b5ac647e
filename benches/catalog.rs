//! The catalog at scale, on each backend: a catalog of 1,000,000 records (and as many
//! renditions), then, through the `Catalog` interface the pipeline uses, the dedup lookup
//! (`media_for`), the message-repeat lookup (`record_of_message`), a commit, and `query
//! --customer` (100 records per customer), each timed call by call: p50 and p99.
//!
//! PostgreSQL: `MEDIASPOOL_TEST_POSTGRES_URL` names a server (`scripts/bench-catalog.sh`
//! starts a throwaway one); a fresh database is made on it. `MEDIASPOOL_BENCH_RECORDS` sets the
//! size (default 1,000,000). Rows are filled with one SQL statement per table (the same shape
//! the daemon writes); every measured call goes through the interface.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mediaspool::catalog::{self, Catalog, Commit, JobVerdict, QueryFilter, StoredMedia};
use mediaspool::hash::ContentHash;
use mediaspool::records::{Event, MediaInfo, Record, SourceInfo};

const CUSTOMERS: u64 = 10_000;
const LOOKUPS: usize = 20_000;
const QUERIES: usize = 300;
const COMMITS: usize = 2_000;

fn main() {
    let records: u64 = std::env::var("MEDIASPOOL_BENCH_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (record, media) = sample();
    println!("catalog of {records} records, {CUSTOMERS} customers; times per call (p50 / p99)");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let url = format!("sqlite://{}", path.display());
    let started = Instant::now();
    runtime.block_on(catalog::open(&url)).unwrap();
    fill_sqlite(&path, records, &record, &media);
    println!("sqlite: filled in {:.1} s", started.elapsed().as_secs_f64());
    let sqlite = runtime.block_on(catalog::open(&url)).unwrap();
    runtime.block_on(measure("sqlite", &sqlite, records, &record));

    let server = std::env::var("MEDIASPOOL_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "MEDIASPOOL_TEST_POSTGRES_URL is not set: run scripts/bench-catalog.sh, which starts PostgreSQL"
        )
    });
    let started = Instant::now();
    let url = runtime.block_on(fresh_database(&server));
    runtime.block_on(catalog::open(&url)).unwrap();
    runtime.block_on(fill_postgres(&url, records, &record, &media));
    println!("postgres: filled in {:.1} s", started.elapsed().as_secs_f64());
    let postgres = runtime.block_on(catalog::open(&url)).unwrap();
    runtime.block_on(measure("postgres", &postgres, records, &record));
}

/// A stored voice note's record and rendition, as the daemon writes them.
fn sample() -> (String, String) {
    let hash = ContentHash::parse(&"ab".repeat(32)).unwrap();
    let mut record = Record::new(
        Event::Stored,
        "note.ogg",
        Some(&hash),
        SourceInfo {
            file_name: "note.ogg".into(),
            ..Default::default()
        },
    );
    record.media = Some(MediaInfo {
        kind: "audio".into(),
        profile: Some("voice".into()),
        profile_id: Some("42607cf511b64403".into()),
        mime: "audio/mpeg".into(),
        bytes: 48_213,
        duration_ms: Some(11_520),
        width: None,
        height: None,
        url: format!(
            "file:///srv/media/ab/{}/42607cf511b64403/media.mp3",
            "ab".repeat(32)
        ),
        key: format!("ab/{}/42607cf511b64403/media.mp3", "ab".repeat(32)),
    });
    record.crm.customer_id = Some("c-1".into());
    record.crm.chat_id = Some("chat-1".into());
    let media = StoredMedia::from_record(&record).unwrap();
    (
        serde_json::to_string(&record).unwrap(),
        serde_json::to_string(&media).unwrap(),
    )
}

/// Row `i`'s content hash, message key and customer.
fn hash_of(i: u64) -> String {
    format!("blake3:{i:064x}")
}

fn fill_sqlite(path: &std::path::Path, n: u64, record: &str, media: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;")
        .unwrap();
    let series = "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < ?1)";
    conn.execute(
        &format!(
            "{series} INSERT INTO media (content_hash, profile_id, kind, info, first_record_id, created_at)
             SELECT printf('blake3:%064x', i), '42607cf511b64403', 'audio', ?2, 'r' || i, '2026-11-01T00:00:00Z' FROM s"
        ),
        rusqlite::params![n as i64, media],
    )
    .unwrap();
    conn.execute(
        &format!(
            "{series} INSERT INTO messages (record_id, message_key, content_hash, event, kind, customer_id, chat_id,
                 tags, received_at, processed_at, record)
             SELECT 'r' || i, 'm' || i, printf('blake3:%064x', i), 'media.stored', 'audio', 'c' || (i % {CUSTOMERS}),
                 'chat' || (i % 50000), '[]', NULL,
                 strftime('%Y-%m-%dT%H:%M:%SZ', 1767225600 + i, 'unixepoch'), ?2 FROM s"
        ),
        rusqlite::params![n as i64, record],
    )
    .unwrap();
}

async fn fresh_database(server: &str) -> String {
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let name = format!("bench_{}", std::process::id());
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (base, query) = server.split_once('?').unwrap_or((server, ""));
    let root = &base[..base.rfind('/').unwrap()];
    format!("{root}/{name}?{query}")
}

async fn fill_postgres(url: &str, n: u64, record: &str, media: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let n = n as i64 - 1;
    client
        .execute(
            "INSERT INTO media (content_hash, profile_id, kind, info, first_record_id, created_at)
             SELECT 'blake3:' || lpad(to_hex(i), 64, '0'), '42607cf511b64403', 'audio', $2, 'r' || i,
                 '2026-11-01T00:00:00Z' FROM generate_series(0, $1::bigint) AS i",
            &[&n, &media],
        )
        .await
        .unwrap();
    client
        .execute(
            &format!(
                "INSERT INTO messages (record_id, message_key, content_hash, event, kind, customer_id, chat_id,
                     tags, received_at, processed_at, record)
                 SELECT 'r' || i, 'm' || i, 'blake3:' || lpad(to_hex(i), 64, '0'), 'media.stored', 'audio',
                     'c' || (i % {CUSTOMERS}), 'chat' || (i % 50000), '[]', NULL,
                     to_char(to_timestamp(1767225600 + i) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), $2
                 FROM generate_series(0, $1::bigint) AS i"
            ),
            &[&n, &record],
        )
        .await
        .unwrap();
    client.batch_execute("VACUUM ANALYZE").await.unwrap();
}

/// A repeatable sequence of row numbers below `n`.
fn rows(n: u64) -> impl Iterator<Item = u64> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    std::iter::from_fn(move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        Some(seed % n)
    })
}

async fn measure(backend: &str, c: &Arc<dyn Catalog>, n: u64, record: &str) {
    let mut times = Vec::new();
    for i in rows(n).take(LOOKUPS) {
        let t = Instant::now();
        let found = c.media_for(&hash_of(i)).await.unwrap();
        times.push(t.elapsed());
        assert_eq!(found.len(), 1);
    }
    report(backend, "dedup lookup (media_for, known bytes)", &mut times);
    for i in rows(n).skip(LOOKUPS).take(LOOKUPS) {
        let t = Instant::now();
        let found = c.record_of_message(&format!("m{i}"), &hash_of(i)).await.unwrap();
        times.push(t.elapsed());
        assert!(found.is_some());
    }
    report(backend, "message-repeat lookup (record_of_message)", &mut times);
    for i in rows(CUSTOMERS).take(QUERIES) {
        let filter = QueryFilter {
            customer: Some(format!("c{i}")),
            ..Default::default()
        };
        let t = Instant::now();
        let found = c.query(&filter).await.unwrap();
        times.push(t.elapsed());
        assert_eq!(found.records.len() as u64, n / CUSTOMERS);
    }
    report(backend, "query --customer (100 records)", &mut times);
    let mut base: Record = serde_json::from_str(record).unwrap();
    for i in 0..COMMITS {
        base.record_id = format!("new-{i}");
        let job = format!("job-{i}");
        let t = Instant::now();
        c.commit(&Commit {
            job_id: &job,
            message_key: &job,
            record: &base,
            new_media: None,
            verdict: &JobVerdict::Done,
            sinks: &["ndjson"],
        })
        .await
        .unwrap();
        times.push(t.elapsed());
    }
    report(
        backend,
        "commit (record + outbox + delivery + verdict)",
        &mut times,
    );
}

fn report(backend: &str, what: &str, times: &mut Vec<Duration>) {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{backend:<9} {what:<48} p50 {:>7.3} ms  p99 {:>7.3} ms  ({} calls)",
        ms(at(0.50)),
        ms(at(0.99)),
        times.len()
    );
    times.clear();
}
