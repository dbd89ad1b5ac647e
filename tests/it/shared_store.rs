//! Daemons that share a store but not a catalog (each its own SQLite): a second daemon given
//! bytes the first already transcoded finds their outputs marker in the store and records them
//! as stored without media work and without writing any output again — on a moto S3 bucket
//! (versioned, so every write of an object shows) and on a local directory. A set of outputs
//! without its marker (a daemon that died between outputs), or whose rendition is gone, is
//! not taken as done.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::http::{http_address, scrape, value};
use crate::spool_support::{outputs_marker, referenced_keys, tone_wav, Daemon};
use crate::store_support::{distinct_pictures, Bucket, S3Server, AWS_ENV};

const LONG: Duration = Duration::from_secs(180);

/// Where the daemons store.
enum Shared {
    S3(Bucket),
    Local(tempfile::TempDir),
}

impl Shared {
    fn s3() -> Shared {
        Shared::S3(Bucket::create_versioned(&S3Server::shared()))
    }

    fn local() -> Shared {
        Shared::Local(tempfile::tempdir().unwrap())
    }

    /// A daemon of its own (spool, SQLite catalog, NDJSON file) on this store, serving
    /// metrics.
    fn daemon(&self) -> Daemon {
        let store = match self {
            Shared::S3(bucket) => bucket.config(""),
            Shared::Local(dir) => format!("[store]\nroot = \"{}\"\n", dir.path().display()),
        };
        let mut d = Daemon::new("", &format!("{store}[http]\nlisten = \"127.0.0.1:0\"\n"));
        for (k, v) in AWS_ENV {
            d = d.with_env(k, v);
        }
        d
    }

    /// Removes an object, as an operator or a crash could leave the store.
    fn remove(&self, key: &str) {
        match self {
            Shared::S3(bucket) => {
                bucket.s3api(&["delete-object", "--bucket", &bucket.name, "--key", key]);
            }
            Shared::Local(dir) => std::fs::remove_file(dir.path().join(key)).unwrap(),
        }
    }

    fn exists(&self, key: &str) -> bool {
        match self {
            Shared::S3(bucket) => {
                let listed = bucket.s3api(&["list-objects-v2", "--bucket", &bucket.name, "--prefix", key]);
                listed["Contents"]
                    .as_array()
                    .is_some_and(|objects| objects.iter().any(|o| o["Key"] == key))
            }
            Shared::Local(dir) => dir.path().join(key).exists(),
        }
    }
}

/// A voice note (duration, a waveform thumbnail) and a picture (dimensions, a thumbnail).
fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let picture: PathBuf = distinct_pictures(dir, 1).remove(0);
    vec![
        ("note.wav".into(), tone_wav(523.0, 1500)),
        ("picture.png".into(), std::fs::read(picture).unwrap()),
    ]
}

/// Gives `d` the inputs under `prefix`-ed names, waits for their records and stops it; its
/// records by input name (without the prefix), and its metrics as they were at the end.
fn run(
    d: &mut Daemon,
    inputs: &[(String, Vec<u8>)],
    prefix: &str,
) -> (BTreeMap<String, Value>, HashMap<String, f64>) {
    d.start();
    let names: Vec<String> = inputs.iter().map(|(n, _)| format!("{prefix}{n}")).collect();
    for ((_, bytes), name) in inputs.iter().zip(&names) {
        d.drop_file(name, bytes);
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let records = d.wait_for(&refs, LONG);
    let metrics = scrape(&http_address(d));
    assert_eq!(d.stop(LONG).code(), Some(0), "{}", d.log());
    assert!(d.names_in("failed").is_empty(), "{}", d.log());
    let by_name = records
        .into_iter()
        .map(|r| {
            let name = r["source"]["file_name"].as_str().unwrap();
            (name.strip_prefix(prefix).unwrap().to_string(), r.clone())
        })
        .collect();
    (by_name, metrics)
}

/// What a record says about the media: everything but the links and the record's identity.
fn media_facts(r: &Value) -> Value {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("url");
        }
        v
    };
    serde_json::json!({
        "media": strip(&r["media"]),
        "thumbnail": strip(&r["thumbnail"]),
        "mime": r["source"]["mime"],
        "container": r["source"]["container"],
        "codecs": r["source"]["codecs"],
        "bytes": r["source"]["bytes"],
    })
}

fn count(metrics: &HashMap<String, f64>, key: &str) -> f64 {
    metrics.get(key).copied().unwrap_or(0.0)
}

/// Two daemons, one store, two catalogs: the second makes nothing again.
fn second_daemon_reuses_what_the_first_stored(store: Shared) {
    let dir = tempfile::tempdir().unwrap();
    let inputs = inputs(dir.path());
    let mut first = store.daemon();
    let (made, first_metrics) = run(&mut first, &inputs, "a-");
    assert_eq!(count(&first_metrics, "mediaspool_outputs_reused{}"), 0.0);
    let mut second = store.daemon();
    let (reused, metrics) = run(&mut second, &inputs, "b-");
    for (name, _) in &inputs {
        let (a, b) = (&made[name], &reused[name]);
        assert_eq!(a["event"], "media.stored", "{a:#}");
        assert_eq!(b["event"], "media.stored", "{b:#}");
        assert_eq!(
            b["duplicate_of"],
            Value::Null,
            "the second catalog has not seen it"
        );
        assert_ne!(a["record_id"], b["record_id"]);
        assert_eq!(media_facts(b), media_facts(a), "{name}: the same keys and facts");
        assert!(a["thumbnail"]["key"].is_string(), "{a:#}");
        assert!(b["media"]["url"].as_str().is_some_and(|u| !u.is_empty()));
    }
    assert!(made["note.wav"]["media"]["duration_ms"]
        .as_u64()
        .is_some_and(|ms| ms > 1000));
    assert!(made["picture.png"]["media"]["width"].as_u64().is_some());
    // No media work in the second daemon, and it put nothing at all.
    let log = second.log();
    assert_eq!(
        log.matches("outputs already in the store").count(),
        inputs.len(),
        "{log}"
    );
    assert!(!log.contains("media work done"), "{log}");
    assert!(first.log().contains("media work done"));
    assert_eq!(
        count(&metrics, "mediaspool_outputs_reused{}"),
        inputs.len() as f64
    );
    assert_eq!(
        value(&metrics, "mediaspool_jobs{outcome=stored,profile=voice}"),
        1.0
    );
    assert_eq!(
        count(&metrics, "mediaspool_store_requests{operation=put,outcome=ok}"),
        0.0,
        "{metrics:#?}"
    );
    if let Shared::S3(bucket) = &store {
        let records: Vec<Value> = made.values().chain(reused.values()).cloned().collect();
        let keys = referenced_keys(&records);
        let versions = bucket.versions();
        for key in &keys {
            assert_eq!(versions.get(key), Some(&1), "{key} written once");
        }
        assert_eq!(versions.len(), keys.len(), "nothing else: {versions:?}");
    }
}

#[test]
fn s3_a_daemon_with_its_own_catalog_reuses_outputs_another_stored() {
    second_daemon_reuses_what_the_first_stored(Shared::s3());
}

#[test]
fn local_a_daemon_with_its_own_catalog_reuses_outputs_another_stored() {
    second_daemon_reuses_what_the_first_stored(Shared::local());
}

/// A first daemon stores the inputs; then `damage` removes one object of the note's outputs;
/// a second daemon must render the note again (and may reuse the picture), and leave the set
/// whole: a third daemon then reuses both.
fn an_incomplete_set_is_made_again(store: Shared, damage: fn(&Value) -> String) {
    let dir = tempfile::tempdir().unwrap();
    let inputs = inputs(dir.path());
    let (made, _) = run(&mut store.daemon(), &inputs, "a-");
    let note = &made["note.wav"];
    let removed = damage(note);
    store.remove(&removed);
    let mut second = store.daemon();
    let (again, metrics) = run(&mut second, &inputs, "b-");
    assert_eq!(again["note.wav"]["event"], "media.stored");
    assert_eq!(media_facts(&again["note.wav"]), media_facts(note));
    assert_eq!(
        count(&metrics, "mediaspool_outputs_reused{}"),
        1.0,
        "the picture only"
    );
    let log = second.log();
    assert_eq!(log.matches("media work done").count(), 1, "the note: {log}");
    assert!(store.exists(&removed), "{removed} is stored again");
    if let Shared::S3(bucket) = &store {
        // The objects that were there were not written again.
        let versions = bucket.versions();
        for key in referenced_keys(std::slice::from_ref(note)) {
            let expected = if key == removed { 2 } else { 1 };
            assert_eq!(versions.get(&key), Some(&expected), "{key}: {versions:?}");
        }
    }
    let mut third = store.daemon();
    let (_, metrics) = run(&mut third, &inputs, "c-");
    assert_eq!(count(&metrics, "mediaspool_outputs_reused{}"), 2.0);
}

fn marker(record: &Value) -> String {
    outputs_marker(record).expect("a rendition has a marker")
}

fn rendition(record: &Value) -> String {
    record["media"]["key"].as_str().unwrap().to_string()
}

#[test]
fn s3_outputs_without_their_marker_are_not_taken_as_done() {
    an_incomplete_set_is_made_again(Shared::s3(), marker);
}

#[test]
fn local_outputs_without_their_marker_are_not_taken_as_done() {
    an_incomplete_set_is_made_again(Shared::local(), marker);
}

#[test]
fn s3_a_marker_whose_rendition_is_gone_is_not_trusted() {
    an_incomplete_set_is_made_again(Shared::s3(), rendition);
}
