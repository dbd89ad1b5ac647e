//! The catalog, on each backend and across daemons.
//!
//!     scripts/bench-catalog.sh              # scale, then daemons (starts a throwaway PostgreSQL)
//!     scripts/bench-catalog.sh daemons      # either case alone
//!
//! - scale: a catalog of 1,000,000 records (and as many renditions), then, through the
//!   `Catalog` interface the pipeline uses, the dedup lookup (`media_for`), the message-repeat
//!   lookup (`record_of_message`), a commit, and `query --customer` (100 records per customer),
//!   each timed call by call: p50 and p99. `MEDIASPOOL_BENCH_RECORDS` sets the size. Rows are
//!   filled with one SQL statement per table (the same shape the daemon writes); every
//!   measured call goes through the interface.
//! - daemons: the same 60 voice notes through 2 daemons with `spool.jobs = 1` each (separate
//!   spools, one PostgreSQL catalog, one store directory) and through 1 daemon with
//!   `spool.jobs = 2` on PostgreSQL, and on SQLite for reference, in turn over the rounds:
//!   seconds until the last record, and the ratio. Then one more run of the pair with every
//!   statement logged by the server: statements per job, and the server's CPU time per job.
//!
//! PostgreSQL: `MEDIASPOOL_TEST_POSTGRES_URL` names a server (`scripts/bench-catalog.sh`
//! starts a throwaway one, and exports its log as `MEDIASPOOL_TEST_POSTGRES_LOG`); each run
//! makes a fresh database on it.

mod support;

use std::path::{Path, PathBuf};
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
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wants = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    if wants("scale") {
        scale();
    }
    if wants("daemons") {
        daemons();
    }
}

fn postgres_server() -> String {
    std::env::var("MEDIASPOOL_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "MEDIASPOOL_TEST_POSTGRES_URL is not set: run scripts/bench-catalog.sh, which starts PostgreSQL"
        )
    })
}

fn scale() {
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

    let server = postgres_server();
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
    static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("bench_{}_{made}", std::process::id());
    // One statement each: several in one string would run as one transaction, which
    // CREATE DATABASE refuses.
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        client.batch_execute(&sql).await.unwrap();
    }
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

// --- daemons: coordination across daemons sharing one PostgreSQL -----------------------------

const NOTES: u32 = 60;
const ROUNDS: usize = 5;

/// One way of running the notes: how many daemons, jobs each, on which catalog.
#[derive(Clone, Copy, PartialEq)]
enum Setup {
    /// 2 daemons with `jobs = 1`, one PostgreSQL.
    Pair,
    /// 1 daemon with `jobs = 2` on PostgreSQL.
    One,
    /// 1 daemon with `jobs = 2` on SQLite (the default).
    OneSqlite,
}

impl Setup {
    fn daemons(self) -> usize {
        match self {
            Setup::Pair => 2,
            Setup::One | Setup::OneSqlite => 1,
        }
    }
}

fn daemons() {
    let server = postgres_server();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Mostly short, as real voice notes are (5–60 s, log-uniform); two more as warm-ups.
    let notes = support::voice_notes(&dir.path().join("notes"), NOTES + 2, |i| match i {
        i if i < NOTES => 5.0 * 12f64.powf(f64::from(i) / f64::from(NOTES - 1)),
        _ => 5.0,
    });
    let (notes, warm_ups) = notes.split_at(NOTES as usize);
    let speech: f64 = (0..NOTES)
        .map(|i| 5.0 * 12f64.powf(f64::from(i) / f64::from(NOTES - 1)))
        .sum();
    println!(
        "{NOTES} voice notes ({speech:.0} s of speech), {ROUNDS} rounds; seconds from the notes renamed in to the last record"
    );
    let (mut pair, mut one, mut sqlite, mut ratios) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // The order turns each round, so that neither setup always runs first.
        let order = match round % 3 {
            0 => [Setup::Pair, Setup::One, Setup::OneSqlite],
            1 => [Setup::One, Setup::OneSqlite, Setup::Pair],
            _ => [Setup::OneSqlite, Setup::Pair, Setup::One],
        };
        let mut times = [0.0; 3];
        for setup in order {
            let catalog = match setup {
                Setup::OneSqlite => None,
                _ => Some(runtime.block_on(fresh_database(&server))),
            };
            let root = dir.path().join(format!("round{round}-{}", setup as u8));
            let run = run_spools(&root, setup, catalog.as_deref(), notes, warm_ups);
            times[setup as usize] = run.seconds;
        }
        println!(
            "  round {round}: 2 daemons × 1 job {:.2} s, 1 daemon × 2 jobs {:.2} s (SQLite {:.2} s); {}",
            times[0],
            times[1],
            times[2],
            support::uptime()
        );
        pair.push(times[0]);
        one.push(times[1]);
        sqlite.push(times[2]);
        ratios.push(times[1] / times[0]);
    }
    let (pair, one, sqlite, ratio) = (
        support::median(pair),
        support::median(one),
        support::median(sqlite),
        support::median(ratios),
    );
    println!(
        "2 daemons × jobs = 1, one PostgreSQL: {pair:.2} s ({:.1} notes/s) | 1 daemon × jobs = 2, PostgreSQL: {one:.2} s ({:.1} notes/s) | \
         1 daemon × jobs = 2, SQLite: {sqlite:.2} s | throughput of the pair against the one daemon (median of the rounds): {:.1} %",
        f64::from(NOTES) / pair,
        f64::from(NOTES) / one,
        100.0 * ratio
    );

    // The statements a job costs the server, with every statement logged.
    let url = runtime.block_on(fresh_database(&server));
    let db = &url[url.rfind('/').unwrap() + 1..url.find('?').unwrap_or(url.len())];
    runtime.block_on(admin(
        &server,
        &format!("ALTER DATABASE {db} SET log_statement = 'all'"),
    ));
    let log = std::env::var_os("MEDIASPOOL_TEST_POSTGRES_LOG").map(PathBuf::from);
    let logged_before = log.as_deref().map_or(0, log_length);
    let run = run_spools(
        &dir.path().join("counted"),
        Setup::Pair,
        Some(&url),
        notes,
        warm_ups,
    );
    println!(
        "server CPU time while the pair ran (logging every statement): {:.1} ms per job",
        1000.0 * run.server_cpu / f64::from(NOTES)
    );
    match log {
        Some(log) => statements_per_job(&log, logged_before, &run),
        None => println!("MEDIASPOOL_TEST_POSTGRES_LOG is not set: statements not counted"),
    }
}

/// What a run of the notes took.
struct Run {
    /// From the notes renamed in to the last record in the NDJSON files.
    seconds: f64,
    /// CPU seconds the PostgreSQL server spent meanwhile.
    server_cpu: f64,
    /// Log length (bytes) when the notes went in, when the last record was out, and after the
    /// daemons idled for [`IDLE`].
    log_marks: [u64; 3],
}

const IDLE: Duration = Duration::from_secs(10);

/// Runs `setup` on fresh spools under `root` (one store directory for all): each daemon is
/// warmed up with a note of its own, then the notes are renamed into the spools together
/// (dealt in turn); seconds until every record is in the NDJSON files.
fn run_spools(
    root: &Path,
    setup: Setup,
    catalog: Option<&str>,
    notes: &[PathBuf],
    warm_ups: &[PathBuf],
) -> Run {
    let store = root.join("media");
    let log = std::env::var_os("MEDIASPOOL_TEST_POSTGRES_LOG").map(PathBuf::from);
    let mark = || log.as_deref().map_or(0, log_length);
    let dirs: Vec<PathBuf> = (0..setup.daemons()).map(|k| root.join(format!("d{k}"))).collect();
    let mut daemons = Vec::new();
    for dir in &dirs {
        std::fs::create_dir_all(dir.join("spool/incoming")).unwrap();
        let jobs = 2 / setup.daemons();
        let catalog = catalog.map_or_else(String::new, |url| format!("[catalog]\nurl = \"{url}\"\n"));
        std::fs::write(
            dir.join("mediaspool.toml"),
            format!(
                "[spool]\njobs = {jobs}\nmanifest_grace = \"0s\"\n{catalog}[store]\nroot = \"{}\"\n",
                store.display()
            ),
        )
        .unwrap();
        daemons.push(support::Daemon::start(dir));
    }
    let records = || -> usize {
        dirs.iter()
            .map(|d| std::fs::read_to_string(d.join("records.ndjson")).map_or(0, |t| t.lines().count()))
            .sum()
    };
    let wait_for = |n: usize| {
        let since = Instant::now();
        while records() < n {
            assert!(
                since.elapsed() < Duration::from_secs(600),
                "the daemons did not finish"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let drop_in = |dir: &Path, file: &Path, name: &str| {
        let incoming = dir.join("spool/incoming");
        let staged = incoming.join(format!(".{name}"));
        std::fs::copy(file, &staged).unwrap();
        (staged, incoming.join(name))
    };
    for (dir, warm) in dirs.iter().zip(warm_ups) {
        let (staged, name) = drop_in(dir, warm, "warm-up.ogg");
        std::fs::rename(staged, name).unwrap();
    }
    wait_for(dirs.len());
    let staged: Vec<(PathBuf, PathBuf)> = notes
        .iter()
        .enumerate()
        .map(|(i, note)| drop_in(&dirs[i % dirs.len()], note, &format!("in-{i:02}.ogg")))
        .collect();
    let cpu_before = server_cpu_seconds();
    let log_in = mark();
    let start = Instant::now();
    for (from, to) in &staged {
        std::fs::rename(from, to).unwrap();
    }
    wait_for(dirs.len() + notes.len());
    let seconds = start.elapsed().as_secs_f64();
    let server_cpu = server_cpu_seconds() - cpu_before;
    let log_out = mark();
    if log.is_some() && catalog.is_some() {
        std::thread::sleep(IDLE);
    }
    let log_idle = mark();
    for daemon in daemons {
        daemon.stop();
    }
    Run {
        seconds,
        server_cpu,
        log_marks: [log_in, log_out, log_idle],
    }
}

async fn admin(server: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
}

fn log_length(log: &Path) -> u64 {
    std::fs::metadata(log).map_or(0, |m| m.len())
}

/// CPU seconds of every PostgreSQL process on this machine: live ones, and the exited
/// connections the server has reaped (counted in its own children's time).
fn server_cpu_seconds() -> f64 {
    // SAFETY: sysconf takes no pointers and only reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((name, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") ")) else {
            continue;
        };
        if name != "postgres" {
            continue;
        }
        // After the name: state is field 0; utime, stime, cutime, cstime are 11–14.
        let fields: Vec<f64> = rest
            .split_whitespace()
            .skip(11)
            .take(4)
            .map(|v| v.parse().unwrap_or(0.0))
            .collect();
        total += fields.iter().sum::<f64>() / ticks;
    }
    total
}

/// Counts the statements the server logged while the notes ran (and while the daemons idled
/// after), by kind.
fn statements_per_job(log: &Path, from: u64, run: &Run) {
    let text = std::fs::read(log).unwrap();
    let slice = |a: u64, b: u64| String::from_utf8_lossy(&text[a.max(from) as usize..b as usize]).to_string();
    // `LOG:  statement: BEGIN`, `LOG:  execute s3: SELECT …`: kept as their first six words.
    let statements = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| {
                let (_, rest) = l.split_once("LOG:  ")?;
                let sql = rest.strip_prefix("statement: ").or_else(|| {
                    rest.strip_prefix("execute ")
                        .and_then(|r| r.split_once(": "))
                        .map(|(_, s)| s)
                })?;
                Some(sql.split_whitespace().take(6).collect::<Vec<_>>().join(" "))
            })
            .collect()
    };
    let [log_in, log_out, log_idle] = run.log_marks;
    let during = statements(&slice(log_in, log_out));
    let idle = statements(&slice(log_out, log_idle));
    let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
    for s in &during {
        *kinds.entry(s.as_str()).or_default() += 1;
    }
    println!(
        "statements the server ran while the pair did {NOTES} jobs (dedup, lease, commit, delivery to one sink, polls): {} = {:.1} per job; \
         idle afterwards: {:.1} per second for both daemons",
        during.len(),
        during.len() as f64 / f64::from(NOTES),
        idle.len() as f64 / IDLE.as_secs_f64()
    );
    let mut kinds: Vec<(&str, usize)> = kinds.into_iter().collect();
    kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
    for (kind, n) in kinds {
        println!("  {:>6.2} per job  {kind}", n as f64 / f64::from(NOTES));
    }
}
