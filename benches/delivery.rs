//! Records per second through one HTTP sink (Standard Webhooks, signed) to a receiver on
//! 127.0.0.1 that verifies every signature, with connections kept alive; beside it, in the same
//! run, what a shell pipeline does: one `curl` per record with the same headers.
//!
//! The records (stored events in 200 chats) are committed to a SQLite catalog first; the clock
//! runs from the sink's start until the receiver has accepted every one. The sink runs with
//! its default concurrency (4 chats at once), next to the NDJSON sink, as in the daemon.
//!
//!     cargo bench --bench delivery [-- RECORDS]      (default 5000; curl sends 300)
//!
//! Needs `curl`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mediaspool::catalog::{self, Catalog, Commit, JobVerdict};
use mediaspool::config::Config;
use mediaspool::delivery::{Routes, Sinks, Wakeup};
use mediaspool::records::{Event, Record, SourceInfo};

// The integration tests' receiver; not all of it is used here.
#[allow(dead_code)]
#[path = "../tests/it/receiver.rs"]
mod receiver;

use receiver::{Answer, Receiver};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const CHATS: usize = 200;
const CURL_RECORDS: usize = 300;

fn main() {
    let records: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5000);
    let receiver = Receiver::start(Some(SECRET), |_, _| Answer::status(204));
    let dir = tempfile::tempdir().expect("temp dir");
    let toml = format!(
        "[records]\noutbox = \"{}/records.ndjson\"\n[sinks.crm]\nurl = \"{}\"\nsecret = \"{SECRET}\"\n",
        dir.path().display(),
        receiver.url("/hook")
    );
    let config = Config::from_sources(&toml, "bench", Vec::new()).expect("config");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let catalog = runtime.block_on(catalog::open(&url)).expect("catalog");
    let bodies = runtime.block_on(commit(&*catalog, &Routes::from_config(&config), records));

    let sinks = Sinks::from_config(&config).expect("sinks");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let mut tasks = runtime.block_on(async { sinks.spawn(&catalog, &Wakeup::default(), stopped) });
    receiver.wait_for(Duration::from_secs(600), "every record accepted", |log| {
        log.accepted().len() >= records
    });
    let took = start.elapsed();
    let _ = stop.send(true);
    runtime.block_on(async { while tasks.join_next().await.is_some() {} });
    {
        let log = receiver.log.lock().unwrap();
        assert!(log.forged.is_empty(), "unverified requests");
        assert_eq!(log.accepted_counts().len(), records, "each record once");
    }
    let sink_rate = records as f64 / took.as_secs_f64();

    let sample = &bodies[..CURL_RECORDS.min(bodies.len())];
    let start = Instant::now();
    for (id, body) in sample {
        curl(&receiver.url("/hook"), id, body);
    }
    let curl_rate = sample.len() as f64 / start.elapsed().as_secs_f64();
    {
        let log = receiver.log.lock().unwrap();
        assert!(log.forged.is_empty(), "unverified curl requests");
        assert_eq!(log.accepted().len(), records + sample.len());
    }

    println!(
        "{:>28}: {records:6} records in {:7.2} s = {sink_rate:8.0} records/s",
        "mediaspool HTTP sink",
        took.as_secs_f64()
    );
    println!(
        "{:>28}: {:6} records           = {curl_rate:8.0} records/s",
        "curl per record",
        sample.len()
    );
    println!("{:>28}: {:.1}×", "ratio", sink_rate / curl_rate);
    println!(
        "{{\"records\": {records}, \"sink_records_per_s\": {sink_rate:.0}, \"curl_records_per_s\": {curl_rate:.0}, \"ratio\": {:.1}}}",
        sink_rate / curl_rate
    );
}

/// Commits `count` stored records spread over the chats; returns each record's id and JSON.
async fn commit(catalog: &dyn Catalog, routes: &Routes, count: usize) -> Vec<(String, String)> {
    let mut bodies = Vec::with_capacity(count);
    for i in 0..count {
        let name = format!("wamid.{i:06}.ogg");
        let mut record = Record::new(
            Event::Stored,
            &name,
            None,
            SourceInfo {
                file_name: name.clone(),
                ..Default::default()
            },
        );
        record.crm.chat_id = Some(format!("chat-{}", i % CHATS));
        record.crm.customer_id = Some(format!("c-{}", i % CHATS));
        catalog
            .commit(&Commit {
                job_id: &name,
                message_key: &name,
                record: &record,
                new_media: None,
                verdict: &JobVerdict::Done,
                sinks: &routes.for_record(&record),
            })
            .await
            .expect("commit");
        let json = serde_json::to_string(&record).expect("record serialises");
        bodies.push((record.record_id, json));
    }
    bodies
}

/// One record the shell way: its signature made here (in the pipeline's favour), then one
/// `curl` process sending it.
fn curl(url: &str, id: &str, body: &str) {
    let secret = mediaspool::delivery::signing::Secret::parse(SECRET).expect("secret");
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature =
        mediaspool::delivery::signing::signature_header(&[secret], id, timestamp, body.as_bytes());
    let mut child = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--fail", "--data-binary", "@-"])
        .args(["-H", "content-type: application/json"])
        .args(["-H", &format!("webhook-id: {id}")])
        .args(["-H", &format!("webhook-timestamp: {timestamp}")])
        .args(["-H", &format!("webhook-signature: {signature}")])
        .arg(url)
        .stdin(Stdio::piped())
        .spawn()
        .expect("curl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("body written");
    assert!(child.wait().expect("curl ends").success(), "curl failed");
}
