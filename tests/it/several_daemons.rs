//! Several daemons as one: each with its own spool and NDJSON file, all sharing one S3 bucket
//! (the moto test server, versioned so that every write of an object shows) and
//! one PostgreSQL catalog. The same bytes are transcoded once across all of them, every record
//! is delivered once to the NDJSON sink (by whichever daemon drains it), a daemon killed while
//! it holds a content lease blocks the others for one lease at most, and a catalog outage is
//! waited out with nothing quarantined.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::read_records;
use crate::pg_support::{fresh_database, wait, OwnServer};
use crate::spool_support::{referenced_keys, tone_wav, Daemon};
use crate::store_support::{Bucket, S3Server, AWS_ENV};

const LONG: Duration = Duration::from_secs(180);
/// Short, so that a killed daemon's lease lapses quickly; long enough that heartbeats (every
/// third of it) keep it on a loaded machine.
const LEASE: &str = "10s";

/// A daemon's configuration beside `catalog`, storing into the shared `bucket`.
fn daemon(catalog: &str, bucket: &Bucket, spool_extra: &str) -> Daemon {
    let jobs = if spool_extra.contains("jobs") {
        ""
    } else {
        "jobs = 1\n"
    };
    let mut d = Daemon::new(
        &format!("{jobs}{spool_extra}"),
        &format!(
            "[catalog]\nurl = \"{catalog}\"\nlease = \"{}\"\n{}",
            LEASE,
            bucket.config("")
        ),
    );
    for (k, v) in AWS_ENV {
        d = d.with_env(k, v);
    }
    d
}

/// Every object the records name was written once, and the bucket holds nothing else.
fn each_object_written_once(bucket: &Bucket, records: &[Value]) {
    let versions = bucket.versions();
    let keys = referenced_keys(records);
    for key in &keys {
        assert_eq!(versions.get(key), Some(&1), "{key} written once");
    }
    assert_eq!(
        versions.len(),
        keys.len(),
        "no object that no record names: {versions:?}"
    );
}

/// Every record in every daemon's NDJSON file.
fn all_records(daemons: &[Daemon]) -> Vec<Value> {
    daemons
        .iter()
        .flat_map(|d| read_records(&d.path().join("records.ndjson")))
        .collect()
}

fn wait_for_records(daemons: &[Daemon], count: usize, limit: Duration) -> Vec<Value> {
    wait(limit, &format!("{count} records"), || {
        let records = all_records(daemons);
        (records.len() >= count).then_some(records)
    })
}

fn twenty_notes() -> Vec<(String, Vec<u8>)> {
    (0..20u32)
        .map(|i| (format!("n{i:02}.wav"), tone_wav(300.0 + f64::from(i) * 11.0, 400)))
        .collect()
}

fn same_files_into_every_spool_are_stored_once(n: usize) {
    let catalog = fresh_database();
    let bucket = Bucket::create_versioned(&S3Server::shared());
    let mut daemons: Vec<Daemon> = (0..n).map(|_| daemon(&catalog, &bucket, "")).collect();
    for d in &mut daemons {
        d.start();
    }
    // The same bytes under a name of each spool's own: different messages. And one message
    // (same name, same bytes) that every daemon is given: a repeat for all but the first.
    let files = twenty_notes();
    let repeated = tone_wav(1234.0, 300);
    for (i, d) in daemons.iter().enumerate() {
        d.drop_file("repeated.wav", &repeated);
        for (name, bytes) in &files {
            d.drop_file(&format!("d{i}-{name}"), bytes);
        }
    }
    let all = wait_for_records(&daemons, (files.len() + 1) * n, LONG);
    // A moment for anything delivered twice to show.
    std::thread::sleep(Duration::from_secs(2));
    for d in &mut daemons {
        assert_eq!(d.stop(LONG).code(), Some(0), "{}", d.log());
    }
    assert_eq!(all_records(&daemons).len(), all.len(), "nothing delivered after");
    assert_eq!(all.len(), (files.len() + 1) * n, "one record per job, once");
    let (repeats, records): (Vec<Value>, Vec<Value>) = all
        .into_iter()
        .partition(|r| r["source"]["file_name"] == "repeated.wav");
    let ids: HashSet<&str> = records.iter().map(|r| r["record_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), records.len(), "each record delivered once");
    assert!(
        repeats
            .iter()
            .all(|r| r["record_id"] == repeats[0]["record_id"] && r["event"] == "media.stored"),
        "the message is one record whichever daemon saw it: {repeats:#?}"
    );

    let mut by_hash: HashMap<&str, Vec<&Value>> = HashMap::new();
    for r in &records {
        by_hash
            .entry(r["content_hash"].as_str().unwrap())
            .or_default()
            .push(r);
    }
    assert_eq!(by_hash.len(), files.len());
    for copies in by_hash.values() {
        let stored: Vec<&&Value> = copies.iter().filter(|r| r["event"] == "media.stored").collect();
        assert_eq!(
            stored.len(),
            1,
            "one transcode of each file: {copies:#?}\nwarnings: {:?}",
            daemons
                .iter()
                .flat_map(|d| d
                    .log()
                    .lines()
                    .filter(|l| l.contains("WARN"))
                    .map(str::to_string)
                    .collect::<Vec<_>>())
                .collect::<Vec<_>>()
        );
        for dup in copies.iter().filter(|r| r["event"] != "media.stored") {
            assert_eq!(dup["event"], "media.duplicate");
            assert_eq!(dup["duplicate_of"], stored[0]["record_id"]);
            assert_eq!(dup["media"]["key"], stored[0]["media"]["key"]);
        }
    }
    each_object_written_once(&bucket, &[records.as_slice(), &repeats[..1]].concat());
    assert_eq!(
        media_objects(&records),
        files.len(),
        "one rendition per file in the bucket"
    );
    for d in &daemons {
        assert_eq!(d.names_in("done").len(), files.len() + 1);
        assert!(d.names_in("failed").is_empty());
    }
}

#[test]
fn two_daemons_given_the_same_twenty_files_store_each_once() {
    same_files_into_every_spool_are_stored_once(2);
}

#[test]
fn four_daemons_given_the_same_twenty_files_store_each_once() {
    same_files_into_every_spool_are_stored_once(4);
}

/// A holds the bytes' lease when it is killed; B, given the same bytes, waits for the lease to
/// lapse and does the work; A, restarted, finds B's rendition.
#[test]
fn a_daemon_killed_holding_a_lease_blocks_the_others_for_one_lease_at_most() {
    let catalog = fresh_database();
    let bucket = Bucket::create_versioned(&S3Server::shared());
    let mut a = daemon(&catalog, &bucket, "job_timeout = \"60s\"").with_env("MEDIASPOOL_FAULT", "hang:stuck");
    let mut b = daemon(&catalog, &bucket, "");
    a.start();
    b.start();
    let bytes = tone_wav(777.0, 400);
    a.drop_file("stuck.wav", &bytes);
    // A has claimed the file and its worker hangs on it: A holds the lease.
    wait(LONG, "A working on stuck.wav", || {
        (a.names_in("work").iter().any(|n| n.ends_with("stuck.wav"))).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    // Its hung worker sees its daemon gone and exits too.
    a.kill9();
    let killed = Instant::now();
    b.drop_file("copy.wav", &bytes);
    let records = b.wait_for(&["copy.wav"], LONG);
    let waited = killed.elapsed();
    let copy = &records
        .iter()
        .find(|r| r["source"]["file_name"] == "copy.wav")
        .unwrap();
    assert_eq!(copy["event"], "media.stored", "B did the work: {copy:#}");
    assert!(
        waited < Duration::from_secs(60),
        "B waited for the lease only, not for A: {waited:?}"
    );
    // A restarted (without the fault) resumes stuck.wav from work/: a duplicate of B's.
    let mut a = {
        let mut again = daemon(&catalog, &bucket, "");
        // The same spool as before: A's scratch directory moves over.
        std::mem::swap(&mut again.scratch, &mut a.scratch);
        again
    };
    a.start();
    let all = wait(LONG, "both records", || {
        let mut all = read_records(&a.path().join("records.ndjson"));
        all.extend(b.records());
        (all.len() >= 2).then_some(all)
    });
    assert_eq!(a.stop(LONG).code(), Some(0));
    assert_eq!(b.stop(LONG).code(), Some(0));
    let stuck = all
        .iter()
        .find(|r| r["source"]["file_name"] == "stuck.wav")
        .unwrap();
    assert_eq!(stuck["event"], "media.duplicate");
    assert_eq!(stuck["duplicate_of"], copy["record_id"]);
    each_object_written_once(&bucket, &all);
    assert_eq!(media_objects(&all), 1, "one transcode");
    assert_eq!(a.names_in("done"), ["stuck.wav"]);
}

/// Distinct renditions the records name.
fn media_objects(records: &[Value]) -> usize {
    let keys: HashSet<&str> = records
        .iter()
        .filter_map(|r| r["media"]["key"].as_str())
        .collect();
    keys.len()
}

/// The catalog's server stopped for 30 s mid-run and started again: jobs wait in work/ and
/// resume; every file is stored, none quarantined.
#[test]
fn a_catalog_outage_of_thirty_seconds_is_waited_out() {
    let server = OwnServer::start();
    let bucket = Bucket::create_versioned(&S3Server::shared());
    let mut d = daemon(&server.url(), &bucket, "jobs = 2");
    d.start();
    let files = twenty_notes();
    for (name, bytes) in &files[..5] {
        d.drop_file(name, bytes);
    }
    d.wait_for(&["n00.wav", "n01.wav", "n02.wav", "n03.wav", "n04.wav"], LONG);
    server.stop();
    for (name, bytes) in &files[5..] {
        d.drop_file(name, bytes);
    }
    std::thread::sleep(Duration::from_secs(30));
    assert!(
        d.names_in("failed").is_empty(),
        "nothing quarantined while the catalog is down"
    );
    server.start_again();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let records = d.wait_for(&names, LONG);
    assert_eq!(d.stop(LONG).code(), Some(0));
    assert_eq!(records.len(), files.len(), "one record each");
    assert!(
        records.iter().all(|r| r["event"] == "media.stored"),
        "{records:#?}"
    );
    each_object_written_once(&bucket, &records);
    assert!(d.names_in("failed").is_empty());
    assert_eq!(d.names_in("done").len(), files.len());
    assert!(
        d.log().contains("catalog unavailable"),
        "the log names the outage"
    );
}
