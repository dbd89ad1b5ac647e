//! The privacy lifecycle: what the logs never show.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::delivery::{sink, SECRET};
use crate::receiver::{Answer, Log, Receiver};
use crate::spool_support::*;
use crate::store_support::*;

const LONG: Duration = Duration::from_secs(120);

/// What must not reach a log line in any form the test's inputs carry it.
const PRIVATE: [&str; 9] = [
    "600111222",
    "600 111 333",
    "4155550100",
    "Maria",
    "Garcia",
    "grp-sales-7781",
    "mediaspool-test-secret",
    "c-privacy-1",
    "hunter2hunter2",
];

fn drop_with_manifest(d: &Daemon, name: &str, manifest: &str, bytes: &[u8]) {
    // The manifest first: its chat id and names are known before a line names the file.
    d.drop_file(&format!("{name}.meta.json"), manifest.as_bytes());
    d.drop_file(name, bytes);
}

/// A full run at `-vv` (every library's debug lines too) on the S3 test server, in human
/// and then JSON lines: files named by phone numbers, chat ids and customer names, manifests
/// carrying them, credentials in the environment and in the configuration.
#[test]
fn logs_at_every_level_carry_no_phone_number_name_chat_id_or_secret() {
    let server = S3Server::shared();
    let bucket = Bucket::create(&server);
    // A presigned link for every record: its query string is a credential.
    let mut d = Daemon::new("", &bucket.config("presign_ttl = \"1h\""))
        .with_env("MEDIASPOOL_STORE__ACCESS_KEY", "hunter2hunter2");
    for (k, v) in AWS_ENV {
        d = d.with_env(k, v);
    }
    d.start_with(&["-vv"]);
    drop_with_manifest(
        &d,
        "34600111222_voice.wav",
        r#"{"customer_id": "c-privacy-1", "chat_id": "wa:+34600111222", "message_id": "m1",
            "extra": {"customer_name": "Maria Garcia"}}"#,
        &tone_wav(440.0, 800),
    );
    drop_with_manifest(
        &d,
        "grp-sales-7781 Maria Garcia.wav",
        r#"{"chat_id": "grp-sales-7781", "message_id": "m2",
            "extra": {"contact": {"display_name": "Maria Garcia"}}}"#,
        &tone_wav(550.0, 800),
    );
    d.drop_file("+34 600 111 333.wav", &tone_wav(660.0, 800));
    d.wait_for(
        &[
            "34600111222_voice.wav",
            "grp-sales-7781 Maria Garcia.wav",
            "+34 600 111 333.wav",
        ],
        LONG,
    );
    assert_eq!(d.stop(LONG).code(), Some(0));
    let human = d.log();

    d.start_with(&["-vv", "--log-format", "json"]);
    drop_with_manifest(
        &d,
        "tel:+14155550100 Maria.wav",
        r#"{"chat_id": "tel:+14155550100", "message_id": "m3", "extra": {"customer_name": "Maria Garcia"}}"#,
        // The same bytes as the first: a duplicate line.
        &tone_wav(440.0, 800),
    );
    d.wait_for(&["tel:+14155550100 Maria.wav"], LONG);
    assert_eq!(d.stop(LONG).code(), Some(0));
    let json = d.log()[human.len()..].to_string();

    // The runs were logged, with what stood for the private values in their place.
    for (format, log) in [("human", &human), ("json", &json)] {
        assert!(
            log.lines().count() > 20,
            "{format}: a -vv run logs more than this:\n{log}"
        );
        for private in PRIVATE {
            assert!(!log.contains(private), "{format}: {private:?} in the log:\n{log}");
        }
    }
    assert!(human.contains("[phone]") && human.contains("[name]"), "{human}");
    assert!(
        human.contains("chat:"),
        "the chat id's tag stands in for it:\n{human}"
    );
    assert!(json.contains("[name]"), "{json}");
    for line in json.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    // Records are data, not logs: they keep what the CRM needs.
    let records = d.records();
    assert!(records.iter().any(|r| r["crm"]["chat_id"] == "wa:+34600111222"));
}

/// The catalog, opened directly: its message rows' record ids.
fn catalog_messages(path: &Path) -> BTreeSet<String> {
    let db = rusqlite::Connection::open(path).unwrap();
    let mut stmt = db.prepare("SELECT record_id FROM messages").unwrap();
    let ids = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    ids.map(Result::unwrap).collect()
}

/// Rows of `table` that name one of `record_ids`.
fn rows_naming(path: &Path, table: &str, record_ids: &BTreeSet<String>) -> usize {
    let db = rusqlite::Connection::open(path).unwrap();
    let mut stmt = db.prepare(&format!("SELECT record_id FROM {table}")).unwrap();
    let ids = stmt.query_map([], |r| r.get::<_, Option<String>>(0)).unwrap();
    ids.filter_map(Result::unwrap)
        .filter(|id| record_ids.contains(id))
        .count()
}

/// `mediaspool ARGS` at the test clock's `now`.
fn at(s: &Scratch, now: &str, args: &[&str]) -> std::process::Output {
    let mut env = AWS_ENV.to_vec();
    env.push(("MEDIASPOOL_NOW", now));
    let out = s.run_env(args, &env, LONG);
    assert!(
        out.status.success(),
        "{args:?} at {now}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The ids of the records that the media.deleted records the receiver accepted say went.
fn deleted_at_receiver(log: &Log) -> BTreeSet<String> {
    log.accepted()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .filter(|body| body["event"] == "media.deleted")
        .map(|body| body["deleted"]["record_id"].as_str().unwrap().to_string())
        .collect()
}

/// Retention by default, tag, profile and manifest, the most specific winning; bytes another
/// message still needs stay until their last message expires; what goes is absent from the
/// store (listed directly) and the catalog, and each message's media.deleted record reaches the
/// HTTP sink.
fn purge_applies_retention_by_default_tag_profile_and_manifest(store: StoreUnderTest) {
    let receiver = Receiver::start(Some(SECRET), |_, _| Answer::status(200));
    let s = Scratch::new();
    std::fs::create_dir(s.path().join("profiles")).unwrap();
    let voice = std::fs::read_to_string(crate::common::repo().join("profiles/voice.toml")).unwrap();
    std::fs::write(
        s.path().join("profiles/voice.toml"),
        format!("retention_days = 10\n{voice}"),
    )
    .unwrap();
    std::fs::write(
        s.path().join("mediaspool.toml"),
        format!(
            "profiles_dir = \"profiles\"\n[policy]\nretention_days = 30\nretention_tags = {{ legal-hold = 3650, marketing = 5 }}\n{}\n{}",
            sink(&receiver.url("/hook"), ""),
            store.config()
        ),
    )
    .unwrap();
    let dir = s.path().join("in");
    std::fs::create_dir(&dir).unwrap();
    let picture = distinct_pictures(&dir, 1).remove(0); // image profile: the default, 30 days
    let write = |name: &str, bytes: &[u8], manifest: Option<&str>| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        if let Some(m) = manifest {
            std::fs::write(dir.join(format!("{name}.meta.json")), m).unwrap();
        }
        path
    };
    let files = [
        picture,
        write("profile.wav", &tone_wav(300.0, 400), None), // voice profile: 10 days
        write(
            "tagged.wav",
            &tone_wav(350.0, 400),
            Some(r#"{"tags": ["marketing"]}"#),
        ), // 5
        write(
            "held.wav",
            &tone_wav(400.0, 400),
            Some(r#"{"tags": ["marketing", "legal-hold"]}"#),
        ), // 3650: the longest tag
        write(
            "manifest.wav",
            &tone_wav(450.0, 400),
            Some(r#"{"retention_days": 2, "tags": ["legal-hold"]}"#),
        ),
        // The bytes of profile.wav, held; and those of manifest.wav, kept 10 days.
        write(
            "profile-copy.wav",
            &tone_wav(300.0, 400),
            Some(r#"{"tags": ["legal-hold"]}"#),
        ),
        write("manifest-copy.wav", &tone_wav(450.0, 400), None),
    ];
    let mut args = vec!["process".to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    at(&s, "2026-01-01T00:00:00Z", &args);
    let records = s.records();
    assert_eq!(records.len(), 7);
    let id = |name: &str| {
        record_for(&records, name)["record_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let keys_of = |names: &[&str]| -> HashSet<String> {
        let chosen: Vec<Value> = names.iter().map(|n| record_for(&records, n).clone()).collect();
        referenced_keys(&chosen)
    };
    let until = |name: &str| record_for(&records, name)["retention_until"].clone();
    assert_eq!(until("pic-000.png"), "2026-01-31T00:00:00Z");
    assert_eq!(until("profile.wav"), "2026-01-11T00:00:00Z");
    assert_eq!(until("tagged.wav"), "2026-01-06T00:00:00Z");
    assert_eq!(until("held.wav"), "2035-12-30T00:00:00Z");
    assert_eq!(until("manifest.wav"), "2026-01-03T00:00:00Z");
    let db = s.path().join("mediaspool.db");
    let all: BTreeSet<String> = records
        .iter()
        .map(|r| r["record_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(catalog_messages(&db), all);

    // Nothing has expired yet: the dry run lists nothing, and nothing goes.
    let out = at(&s, "2026-01-02T23:59:59Z", &["purge", "--dry-run"]);
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));

    // Each step: (when, the messages that go, the names whose bytes leave the store).
    let steps: [(&str, &[&str], &[&str]); 4] = [
        // manifest.wav's bytes stay for manifest-copy.wav.
        ("2026-01-03T00:00:00Z", &["manifest.wav"], &[]),
        ("2026-01-06T12:00:00Z", &["tagged.wav"], &["tagged.wav"]),
        // profile.wav's bytes stay for the held copy; manifest-copy.wav was their last message.
        (
            "2026-01-11T00:00:01Z",
            &["profile.wav", "manifest-copy.wav"],
            &["manifest-copy.wav"],
        ),
        ("2026-02-01T00:00:00Z", &["pic-000.png"], &["pic-000.png"]),
    ];
    let mut gone = BTreeSet::new();
    for (now, messages, bytes) in steps {
        let going: BTreeSet<String> = messages.iter().map(|n| id(n)).collect();
        let dry = at(&s, now, &["purge", "--dry-run"]);
        let listed: BTreeSet<String> = String::from_utf8_lossy(&dry.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter_map(|l| l["record_id"].as_str().map(str::to_string))
            .collect();
        assert_eq!(listed, going, "dry run at {now}");
        let before = store.objects(s.path());
        at(&s, now, &["purge"]);
        gone.extend(going.iter().cloned());
        let left: BTreeSet<String> = all.difference(&gone).cloned().collect();
        assert_eq!(catalog_messages(&db), left, "catalog after the purge at {now}");
        assert_eq!(rows_naming(&db, "jobs", &gone), 0);
        let deleted: HashSet<String> = before.difference(&store.objects(s.path())).cloned().collect();
        assert_eq!(deleted, keys_of(bytes), "objects deleted at {now}");
        assert_eq!(
            rows_naming(&db, "outbox", &gone),
            0,
            "their outbox rows carry their data"
        );
        receiver.wait_for(LONG, "the media.deleted records", |log| {
            deleted_at_receiver(log).is_superset(&gone)
        });
    }
    // What is left is exactly what the held messages refer to.
    assert_eq!(
        store.objects(s.path()),
        keys_of(&["held.wav", "profile-copy.wav"])
    );
    assert_eq!(deleted_at_receiver(&receiver.log.lock().unwrap()), gone);
    let notices: Vec<Value> = s
        .records()
        .into_iter()
        .filter(|r| r["event"] == "media.deleted")
        .collect();
    assert_eq!(notices.len(), gone.len(), "one media.deleted record per message");
    assert!(notices.iter().all(|n| n["deleted"]["reason"] == "retention"));
    // A second purge at the same time finds nothing.
    at(&s, "2026-02-01T00:00:00Z", &["purge"]);
    assert_eq!(s.records().len(), records.len() + gone.len());
}

#[test]
fn purge_applies_retention_on_the_local_store() {
    purge_applies_retention_by_default_tag_profile_and_manifest(StoreUnderTest::Local);
}

#[test]
fn purge_applies_retention_on_the_s3_store() {
    let server = S3Server::shared();
    purge_applies_retention_by_default_tag_profile_and_manifest(StoreUnderTest::S3(Bucket::create(&server)));
}

/// Where a purge or forget test's objects live, listed directly.
enum StoreUnderTest {
    Local,
    S3(Bucket),
}

impl StoreUnderTest {
    fn config(&self) -> String {
        match self {
            StoreUnderTest::Local => "[store]\nupload_originals = true\n".into(),
            StoreUnderTest::S3(bucket) => bucket.config("upload_originals = true"),
        }
    }

    /// The objects in the store of the daemon or commands run in `dir`.
    fn objects(&self, dir: &Path) -> HashSet<String> {
        match self {
            StoreUnderTest::Local => stored_files(&dir.join("media")),
            StoreUnderTest::S3(bucket) => {
                let listed = bucket.s3api(&["list-objects-v2", "--bucket", &bucket.name]);
                listed["Contents"]
                    .as_array()
                    .map(|objects| {
                        objects
                            .iter()
                            .map(|o| o["Key"].as_str().unwrap().to_string())
                            .collect()
                    })
                    .unwrap_or_default()
            }
        }
    }
}

/// `forget --customer` on a customer with `other_files + 14` messages of every kind (one of
/// them quarantined in failed/), two of whose contents another customer's messages share: the
/// store, the catalog and the spool examined directly; a second run changes nothing.
fn forget_erases_a_customer_and_only_their_reference_to_shared_content(
    store: StoreUnderTest,
    other_files: usize,
) {
    let mut d = Daemon::new("", &store.config());
    for (k, v) in AWS_ENV {
        d = d.with_env(k, v);
    }
    let scratch = d.path().join("make");
    std::fs::create_dir(&scratch).unwrap();
    let video = scratch.join("clip.mp4");
    make_media(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=64x48:duration=0.5",
            "-pix_fmt",
            "yuv420p",
        ],
        &video,
    );
    let pictures = distinct_pictures(&scratch, 6);
    // (name, customer, bytes): the forgotten customer's files are named `a-…`.
    let mut files: Vec<(String, &str, Vec<u8>)> =
        vec![("a-clip.mp4".into(), "c-forget", std::fs::read(&video).unwrap())];
    for (i, p) in pictures.iter().enumerate() {
        files.push((format!("a-pic-{i}.png"), "c-forget", std::fs::read(p).unwrap()));
    }
    for i in 0..6 {
        files.push((
            format!("a-note-{i}.wav"),
            "c-forget",
            tone_wav(300.0 + 20.0 * i as f64, 300),
        ));
    }
    for i in 0..other_files {
        files.push((
            format!("a-doc-{i}.txt"),
            "c-forget",
            format!("invoice {i} of c-forget").into_bytes(),
        ));
    }
    files.push((
        "a-broken.ogg".into(),
        "c-forget",
        b"OggS and then nothing an Ogg reader wants".to_vec(),
    ));
    // The other customer: the same bytes as a picture and a voice note, and a file of its own.
    files.push(("b-pic.png".into(), "c-keep", std::fs::read(&pictures[0]).unwrap()));
    files.push(("b-note.wav".into(), "c-keep", tone_wav(300.0, 300)));
    files.push(("b-doc.txt".into(), "c-keep", b"c-keep's own".to_vec()));
    d.start();
    for (i, (name, customer, bytes)) in files.iter().enumerate() {
        let manifest =
            format!(r#"{{"customer_id": "{customer}", "chat_id": "chat-{customer}", "message_id": "m{i}"}}"#);
        d.drop_file(&format!("{name}.meta.json"), manifest.as_bytes());
        d.drop_file(name, bytes);
    }
    let names: Vec<&str> = files.iter().map(|(n, _, _)| n.as_str()).collect();
    let records = d.wait_for(&names, LONG);
    assert_eq!(d.stop(LONG).code(), Some(0));
    let forgotten: Vec<Value> = records
        .iter()
        .filter(|r| r["crm"]["customer_id"] == "c-forget")
        .cloned()
        .collect();
    let kept: Vec<Value> = records
        .iter()
        .filter(|r| r["crm"]["customer_id"] == "c-keep")
        .cloned()
        .collect();
    assert_eq!(forgotten.len(), other_files + 14);
    assert_eq!(record_for(&records, "a-broken.ogg")["event"], "media.rejected");
    let ids = |rs: &[Value]| -> BTreeSet<String> {
        rs.iter()
            .map(|r| r["record_id"].as_str().unwrap().to_string())
            .collect()
    };
    let (forgotten_ids, kept_ids) = (ids(&forgotten), ids(&kept));
    let (forgotten_keys, kept_keys) = (referenced_keys(&forgotten), referenced_keys(&kept));
    assert_eq!(
        store.objects(d.path()),
        &forgotten_keys | &kept_keys,
        "the store holds what records name"
    );
    assert!(d.names_in("failed").iter().any(|n| n.starts_with("a-broken.ogg")));
    let db = d.path().join("mediaspool.db");

    let out = d
        .scratch
        .run_env(&["forget", "--customer", "c-forget"], &AWS_ENV, LONG);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["subject"]["customer_id"], "c-forget");
    let erased: BTreeSet<String> = summary["record_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(erased, forgotten_ids);
    assert_eq!(summary["shared_contents_kept"], 2);
    assert_eq!(summary["not_deleted"], serde_json::json!([]));
    let objects_deleted: HashSet<String> = summary["objects_deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(objects_deleted, &forgotten_keys - &kept_keys);

    // Examined directly: the store, the catalog, the spool.
    let check_erased = |when: &str| {
        assert_eq!(
            store.objects(d.path()),
            kept_keys,
            "{when}: the store holds the other customer's objects only"
        );
        assert_eq!(catalog_messages(&db), kept_ids, "{when}: the catalog");
        for table in ["outbox", "jobs"] {
            assert_eq!(rows_naming(&db, table, &forgotten_ids), 0, "{when}: {table}");
        }
        for dir in ["done", "failed", "incoming", "work"] {
            let left: Vec<String> = d
                .names_in(dir)
                .into_iter()
                .filter(|n| n.starts_with("a-"))
                .collect();
            assert!(left.is_empty(), "{when}: {dir}/ still has {left:?}");
        }
        assert!(
            d.names_in("done").iter().any(|n| n == "b-doc.txt"),
            "{when}: the other customer's originals stay"
        );
    };
    check_erased("after forget");
    let notices: Vec<Value> = d
        .records()
        .into_iter()
        .filter(|r| r["event"] == "media.deleted")
        .collect();
    assert_eq!(
        notices.len(),
        forgotten.len(),
        "one media.deleted record per message"
    );
    let noticed: BTreeSet<String> = notices
        .iter()
        .map(|n| n["deleted"]["record_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(noticed, forgotten_ids);
    assert!(notices
        .iter()
        .all(|n| n["deleted"]["reason"] == "erasure" && n["crm"]["customer_id"] == "c-forget"));

    // Again: nothing found, nothing changed.
    let again = d
        .scratch
        .run_env(&["forget", "--customer", "c-forget"], &AWS_ENV, LONG);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let summary: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(summary["record_ids"], serde_json::json!([]));
    assert_eq!(summary["objects_deleted"], serde_json::json!([]));
    assert_eq!(summary["spool_files_deleted"], serde_json::json!([]));
    check_erased("after a second forget");
    assert_eq!(
        d.records().len(),
        records.len() + forgotten.len(),
        "no record the second time"
    );
}

#[test]
fn forget_erases_a_customer_of_50_messages_on_the_local_store() {
    forget_erases_a_customer_and_only_their_reference_to_shared_content(StoreUnderTest::Local, 36);
}

#[test]
fn forget_erases_a_customer_on_the_s3_store() {
    let server = S3Server::shared();
    forget_erases_a_customer_and_only_their_reference_to_shared_content(
        StoreUnderTest::S3(Bucket::create(&server)),
        6,
    );
}
