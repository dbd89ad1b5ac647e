//! Retention over a large catalog on an S3 server: `mediaspool purge` of RECORDS expired
//! records (one object each: the catalog rows, the objects in `DeleteObjects` batches, one
//! `media.deleted` record per message) against the AWS CLI removing as many objects
//! (`aws s3 rm --recursive`, which knows no catalog), same server, same run.
//!
//!     scripts/bench-purge.sh [RECORDS]      (default 100000)
//!
//! The objects are written first (tiny bodies, 64 at a time), and the records committed to a
//! SQLite catalog with `retention_until` in the past; the clock runs over the whole `purge`
//! command (start, catalog, store, delivery of the records to the NDJSON file, exit).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt;
use mediaspool::catalog::{self, Commit, JobVerdict, StoredMedia};
use mediaspool::hash::ContentHash;
use mediaspool::records::{Event, MediaInfo, Record, SourceInfo};

mod support;

use support::{run_ok, AWS_ENV};

fn main() {
    let records: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/bench-purge.sh"))
    };
    let endpoint = var("MEDIASPOOL_TEST_S3_ENDPOINT");
    let aws = var("MEDIASPOOL_TEST_AWS_CLI");
    let aws_cli = || {
        let mut cmd = Command::new(&aws);
        cmd.args(["--endpoint-url", &endpoint]).envs(AWS_ENV);
        cmd
    };
    for (k, v) in AWS_ENV {
        std::env::set_var(k, v);
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let client = runtime.block_on(s3_client(&endpoint));
    let dir = tempfile::tempdir().expect("temp dir");
    let keys: Vec<String> = (0..records).map(|i| key(&hash(i))).collect();

    // mediaspool: the catalog and the objects, then `purge`.
    let bucket = format!("purge-ms-{}", std::process::id());
    run_ok(aws_cli().args(["s3api", "create-bucket", "--bucket", &bucket]));
    let started = Instant::now();
    runtime.block_on(put_all(&client, &bucket, &keys));
    eprintln!(
        "{records} objects written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    runtime.block_on(commit_expired(&dir.path().join("mediaspool.db"), records));
    eprintln!(
        "{records} records committed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    std::fs::write(
        dir.path().join("mediaspool.toml"),
        format!(
            "[store]\nkind = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\npath_style = true\n"
        ),
    )
    .unwrap();
    let start = Instant::now();
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_mediaspool"))
            .args(["purge", "-q"])
            .current_dir(dir.path())
            .envs(AWS_ENV)
            .env("MEDIASPOOL_NOW", "2026-06-01T00:00:00Z"),
    );
    let purge = start.elapsed();
    assert_eq!(
        count_objects(&mut aws_cli(), &bucket),
        0,
        "purge left objects behind"
    );
    let catalog = rusqlite::Connection::open(dir.path().join("mediaspool.db")).unwrap();
    let left: i64 = catalog
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0, "purge left messages behind");

    // The AWS CLI: as many objects, removed by prefix.
    let baseline = format!("purge-cli-{}", std::process::id());
    run_ok(aws_cli().args(["s3api", "create-bucket", "--bucket", &baseline]));
    runtime.block_on(put_all(&client, &baseline, &keys));
    let start = Instant::now();
    run_ok(aws_cli().args(["s3", "rm", &format!("s3://{baseline}"), "--recursive", "--quiet"]));
    let cli = start.elapsed();
    assert_eq!(count_objects(&mut aws_cli(), &baseline), 0);

    let rate = |took: Duration| records as f64 / took.as_secs_f64();
    println!(
        "{:>34}: {records} objects in {:7.2} s = {:7.0} objects/s",
        "mediaspool purge (catalog + store)",
        purge.as_secs_f64(),
        rate(purge)
    );
    println!(
        "{:>34}: {records} objects in {:7.2} s = {:7.0} objects/s",
        "aws s3 rm --recursive (store only)",
        cli.as_secs_f64(),
        rate(cli)
    );
    println!("{:>34}: {:.2}×", "ratio", cli.as_secs_f64() / purge.as_secs_f64());
    println!(
        "{{\"records\": {records}, \"purge_objects_per_s\": {:.0}, \"cli_objects_per_s\": {:.0}, \"ratio\": {:.2}}}",
        rate(purge),
        rate(cli),
        cli.as_secs_f64() / purge.as_secs_f64()
    );
}

fn hash(i: usize) -> ContentHash {
    ContentHash::parse(&blake3::hash(&i.to_le_bytes()).to_hex()).expect("a hash")
}

/// Where the store keeps a voice rendition of these bytes.
fn key(hash: &ContentHash) -> String {
    let hex = hash.to_string();
    let hex = hex.trim_start_matches("blake3:");
    format!("{}/{hex}/9dfb88b6bab1c7d7/media.mp3", &hex[..2])
}

async fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .load()
        .await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    )
}

async fn put_all(client: &aws_sdk_s3::Client, bucket: &str, keys: &[String]) {
    let puts: Vec<_> = keys
        .iter()
        .map(|key| {
            client
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(ByteStream::from_static(b"mp3"))
                .send()
        })
        .collect();
    let mut puts = futures::stream::iter(puts).buffer_unordered(64);
    while let Some(put) = puts.next().await {
        put.expect("put");
    }
}

/// `count` stored records, one rendition each, expired since 2026-01-01.
async fn commit_expired(path: &Path, count: usize) {
    let catalog = catalog::open(&format!("sqlite://{}", path.display()))
        .await
        .expect("catalog");
    for i in 0..count {
        let hash = hash(i);
        let name = format!("wamid.{i:06}.ogg");
        let mut record = Record::new(
            Event::Stored,
            &name,
            Some(&hash),
            SourceInfo {
                file_name: name.clone(),
                ..Default::default()
            },
        );
        record.crm.customer_id = Some(format!("c-{}", i % 1000));
        record.retention_until = Some("2026-01-01T00:00:00Z".into());
        record.media = Some(MediaInfo {
            kind: "audio".into(),
            profile: Some("voice".into()),
            profile_id: Some("9dfb88b6bab1c7d7".into()),
            mime: "audio/mpeg".into(),
            bytes: 3,
            duration_ms: Some(1000),
            width: None,
            height: None,
            url: String::new(),
            key: key(&hash),
        });
        let media = StoredMedia::from_record(&record).expect("media");
        catalog
            .commit(&Commit {
                job_id: &name,
                message_key: &name,
                record: &record,
                new_media: Some(("9dfb88b6bab1c7d7", "audio", &media)),
                verdict: &JobVerdict::Done,
                sinks: &["ndjson"],
            })
            .await
            .expect("commit");
    }
}

fn count_objects(aws: &mut Command, bucket: &str) -> usize {
    let out = aws
        .args([
            "s3api",
            "list-objects-v2",
            "--bucket",
            bucket,
            "--max-items",
            "10",
            "--output",
            "json",
        ])
        .output()
        .expect("aws runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return 0;
    }
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    listed["Contents"].as_array().map_or(0, Vec::len)
}
