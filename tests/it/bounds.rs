//! Bounded manifests and records: a producer's mistake costs a quarantine, not memory, and no
//! oversized record ever reaches a sink.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::catalog_support::sql_text;
use crate::spool_support::*;

const LONG: Duration = Duration::from_secs(120);

fn record_of<'a>(records: &'a [Value], name: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["source"]["file_name"] == name)
        .unwrap_or_else(|| panic!("no record for {name}"))
}

/// Peak resident memory of a process (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib * 1024
}

/// Writes a manifest under a hidden name in pieces (never whole in this process's memory),
/// then renames it in beside where its media will be.
fn put_manifest(d: &Daemon, media: &str, pieces: impl IntoIterator<Item = Vec<u8>>) -> u64 {
    let tmp = d.spool("incoming").join(format!(".{media}.meta.json.part"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap());
    let mut written = 0;
    for piece in pieces {
        f.write_all(&piece).unwrap();
        written += piece.len() as u64;
    }
    f.into_inner().unwrap().sync_all().unwrap();
    std::fs::rename(&tmp, d.spool("incoming").join(format!("{media}.meta.json"))).unwrap();
    written
}

#[test]
fn huge_manifests_are_quarantined_unread_with_their_media_and_the_daemon_stays_small() {
    // A limit above the 100,000-tag manifest's size, so its tag count is what refuses it.
    let mut d = Daemon::new("max_manifest_bytes = \"4MiB\"", "");
    d.start();

    // 300 MB: one string under `extra`, as a producer's bug would send it.
    let chunk = vec![b'a'; 1 << 20];
    let huge = put_manifest(
        &d,
        "huge.wav",
        std::iter::once(br#"{"customer_id": "c-1", "extra": {"caption": ""#.to_vec())
            .chain(std::iter::repeat_n(chunk, 300))
            .chain(std::iter::once(br#""}}"#.to_vec())),
    );
    let tags: Vec<String> = (0..100_000).map(|i| format!("\"tag-{i}\"")).collect();
    let many = put_manifest(
        &d,
        "many.wav",
        [format!(r#"{{"tags": [{}]}}"#, tags.join(",")).into_bytes()],
    );
    assert!(many < 4 << 20, "{many}");
    // Every field at its limit.
    let full = json!({
        "customer_id": "c".repeat(256), "chat_id": "h".repeat(256), "message_id": "m".repeat(256),
        "channel": "w".repeat(64), "received_at": "2026-11-28T10:00:00Z",
        "tags": (0..64).map(|i| format!("{i:064}")).collect::<Vec<_>>(),
        "extra": {"x": "e".repeat(16 * 1024 - r#"{"x":""}"#.len())},
    });
    put_manifest(&d, "full.wav", [full.to_string().into_bytes()]);

    let dropped = Instant::now();
    for (i, name) in ["huge.wav", "many.wav", "full.wav"].iter().enumerate() {
        d.drop_file(name, &tone_wav(900.0 + i as f64 * 10.0, 300));
    }
    let records = d.wait_for(&["huge.wav", "many.wav"], LONG);
    eprintln!("both refused {:?} after their media came", dropped.elapsed());
    for (name, names) in [
        (
            "huge.wav",
            format!("the manifest is {huge} bytes, over spool.max_manifest_bytes (4194304 bytes)"),
        ),
        ("many.wav", "tags has 100000 tags, at most 64".to_string()),
    ] {
        let r = record_of(&records, name);
        assert_eq!(r["event"], "media.rejected", "{name}");
        assert_eq!(r["error"]["code"], "bad-manifest", "{name}");
        assert_eq!(r["error"]["stage"], "manifest", "{name}");
        let message = r["error"]["message"].as_str().unwrap();
        assert!(message.contains(&names), "{name}: {message}");
        // The media is quarantined with its manifest, beside the reason.
        for file in [
            name.to_string(),
            format!("{name}.meta.json"),
            format!("{name}.error.json"),
        ] {
            assert!(d.spool("failed").join(&file).exists(), "failed/{file}");
        }
        assert!(
            r.to_string().len() < 4096,
            "a small record: {}",
            r.to_string().len()
        );
    }
    let records = d.wait_for(&["full.wav"], LONG);
    let r = record_of(&records, "full.wav");
    assert_eq!(r["event"], "media.stored", "{}", r["error"]);
    assert_eq!(r["crm"]["tags"].as_array().unwrap().len(), 64);
    assert_eq!(r["crm"]["customer_id"], full["customer_id"]);
    assert_eq!(r["extra"], full["extra"]);

    let peak = peak_rss(d.pid());
    eprintln!("daemon peak RSS: {} MiB", peak >> 20);
    assert!(peak < 100 << 20, "daemon peak RSS {} MiB", peak >> 20);
    assert_eq!(d.stop(LONG).code(), Some(0));
}

#[test]
fn an_oversized_record_from_an_earlier_version_is_never_delivered_nor_shown() {
    let mut d = Daemon::new("", "");
    d.start();
    d.drop_file("first.wav", &tone_wav(700.0, 300));
    let first = d.wait_for(&["first.wav"], LONG)[0].clone();
    assert_eq!(d.stop(LONG).code(), Some(0));

    // What an earlier version wrote for a 2 MB caption: the row is committed, not yet delivered.
    let mut old = first.clone();
    old["record_id"] = json!("0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld00");
    old["source"]["file_name"] = json!("old.wav");
    old["extra"] = json!({"caption": "z".repeat(2 << 20)});
    let text = |key: &str| sql_text(old[key].as_str().unwrap());
    let (id, hash, at) = (text("record_id"), text("content_hash"), text("processed_at"));
    let body = sql_text(&old.to_string());
    d.catalog().execute(&format!(
        "INSERT INTO messages (record_id, message_key, content_hash, event, kind, processed_at, record)
         VALUES ({id}, 'old.wav', {hash}, 'media.stored', 'audio', {at}, {body});
         INSERT INTO outbox (record_id, body, created_at) VALUES ({id}, {body}, {at});
         INSERT INTO deliveries (seq, sink) SELECT seq, 'ndjson' FROM outbox WHERE record_id = {id};"
    ));

    d.start();
    d.drop_file("next.wav", &tone_wav(710.0, 300));
    let records = d.wait_for(&["next.wav"], LONG);
    assert_eq!(record_of(&records, "next.wav")["event"], "media.stored");
    assert!(
        records.iter().all(|r| r["source"]["file_name"] != "old.wav"),
        "the oversized record never reaches the sink"
    );
    assert!(
        d.log().contains("0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld00"),
        "the daemon names it:\n{}",
        d.log()
    );
    assert_eq!(d.stop(LONG).code(), Some(0));

    let out = d.run(&["query"], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0));
    let shown: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = shown
        .iter()
        .map(|r| r["source"]["file_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first.wav", "next.wav"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 matching record(s) over the 256 KiB record limit") && stderr.contains("0ld0ld"),
        "{stderr}"
    );
}
