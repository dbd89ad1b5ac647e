//! `mediaspool watch` on a real spool: intake, dedup, manifests, isolation, crashes, shutdown.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::spool_support::*;

const LONG: Duration = Duration::from_secs(120);

fn by_name<'a>(records: &'a [Value], name: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["source"]["file_name"] == name)
        .collect()
}

/// Writes a file into `incoming/` in pieces, pausing between them, holding it open.
fn write_slowly(
    path: &std::path::Path,
    bytes: &[u8],
    pieces: usize,
    pause: Duration,
    mut between: impl FnMut(),
) {
    let mut f = std::fs::File::create(path).unwrap();
    for chunk in bytes.chunks(bytes.len().div_ceil(pieces)) {
        f.write_all(chunk).unwrap();
        f.flush().unwrap();
        std::thread::sleep(pause);
        between();
    }
}

fn slow_writer_is_taken_only_when_complete(watch: &str, quiet: &str, rescan: &str, pause: Duration) {
    let mut d = Daemon::new(
        &format!("watch = \"{watch}\"\nquiet_period = \"{quiet}\"\nrescan_interval = \"{rescan}\""),
        "",
    );
    // The table above sets the same keys earlier; TOML takes the last assignment only once,
    // so rewrite the file with this test's values alone.
    std::fs::write(
        d.path().join("mediaspool.toml"),
        format!("[spool]\njobs = 2\nwatch = \"{watch}\"\nquiet_period = \"{quiet}\"\nrescan_interval = \"{rescan}\"\nmanifest_grace = \"0s\"\n"),
    )
    .unwrap();
    d.start();
    std::thread::sleep(Duration::from_millis(300));
    let wav = tone_wav(440.0, 3000);
    let path = d.spool("incoming").join("slow.wav");
    write_slowly(&path, &wav, 5, pause, || {
        assert!(path.exists(), "taken from incoming/ while still being written");
        assert!(by_name(&d.records(), "slow.wav").is_empty());
    });
    let records = d.wait_for(&["slow.wav"], LONG);
    let r = by_name(&records, "slow.wav")[0];
    assert_eq!(r["event"], "media.stored", "{}", r["error"]);
    let d_ms = r["media"]["duration_ms"].as_u64().unwrap();
    assert!(
        (2900..=3100).contains(&d_ms),
        "the whole file was processed: {d_ms} ms"
    );
    assert_eq!(d.stop(LONG).code(), Some(0));
}

#[test]
fn a_slowly_written_file_is_never_taken_early_with_events() {
    // Pauses longer than the quiet period and the rescan interval: scans see the file quiet,
    // but held open for writing, and leave it.
    slow_writer_is_taken_only_when_complete("events", "500ms", "1s", Duration::from_millis(1500));
}

#[test]
fn a_slowly_written_file_is_never_taken_early_when_polling() {
    slow_writer_is_taken_only_when_complete("poll", "2500ms", "1s", Duration::from_millis(800));
}

#[test]
fn a_renamed_in_file_is_taken_by_its_event_alone() {
    // Scans would take an hour: only the rename event can bring the file in.
    let mut d = Daemon::new("", "");
    std::fs::write(
        d.path().join("mediaspool.toml"),
        "[spool]\nquiet_period = \"1h\"\nrescan_interval = \"1h\"\nmanifest_grace = \"0s\"\n",
    )
    .unwrap();
    d.start();
    std::thread::sleep(Duration::from_millis(300));
    d.drop_file("renamed.wav", &tone_wav(300.0, 500));
    let mut f = std::fs::File::create(d.spool("incoming").join("closed.wav")).unwrap();
    f.write_all(&tone_wav(350.0, 500)).unwrap();
    drop(f);
    let records = d.wait_for(&["renamed.wav", "closed.wav"], LONG);
    assert!(records.iter().all(|r| r["event"] == "media.stored"));
    assert_eq!(d.stop(LONG).code(), Some(0));
}

#[test]
fn a_file_hard_linked_into_incoming_is_taken_without_a_scan() {
    // No close or rename announces a hard link, and scans would take an hour: the link's
    // appearance alone must bring the file in, once it is quiet.
    let mut d = Daemon::new("", "");
    std::fs::write(
        d.path().join("mediaspool.toml"),
        "[spool]\nquiet_period = \"500ms\"\nrescan_interval = \"1h\"\nmanifest_grace = \"0s\"\n",
    )
    .unwrap();
    d.start();
    std::thread::sleep(Duration::from_millis(300));
    let old = d.path().join("old.wav");
    std::fs::write(&old, tone_wav(300.0, 500)).unwrap();
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    let fresh = d.path().join("fresh.wav");
    std::fs::write(&fresh, tone_wav(350.0, 500)).unwrap();
    std::fs::hard_link(&old, d.spool("incoming").join("old.wav")).unwrap();
    std::fs::hard_link(&fresh, d.spool("incoming").join("fresh.wav")).unwrap();
    let records = d.wait_for(&["old.wav", "fresh.wav"], Duration::from_secs(20));
    assert!(
        records.iter().all(|r| r["event"] == "media.stored"),
        "{records:?}"
    );
    assert_eq!(d.stop(LONG).code(), Some(0));
}

#[test]
fn polling_takes_a_file_once_it_is_quiet() {
    let mut d = Daemon::new("watch = \"poll\"", "");
    std::fs::write(
        d.path().join("mediaspool.toml"),
        "[spool]\nwatch = \"poll\"\nquiet_period = \"400ms\"\nmanifest_grace = \"0s\"\n",
    )
    .unwrap();
    d.start();
    d.drop_file("polled.wav", &tone_wav(500.0, 400));
    let records = d.wait_for(&["polled.wav"], LONG);
    assert_eq!(by_name(&records, "polled.wav")[0]["event"], "media.stored");
    assert_eq!(d.stop(LONG).code(), Some(0));
}

#[test]
fn the_same_bytes_under_five_names_are_transcoded_once() {
    let mut d = Daemon::new("", "");
    d.start();
    std::thread::sleep(Duration::from_millis(300));
    let video = std::fs::read(fixture("rot90_h264.mp4")).unwrap();
    let names = ["a.mp4", "b.mp4", "c.mp4", "d.mp4", "e.mp4"];
    // All five written first, then renamed in together: they overlap in flight.
    for n in names {
        std::fs::write(d.spool("incoming").join(format!(".{n}.part")), &video).unwrap();
    }
    for n in names {
        std::fs::rename(
            d.spool("incoming").join(format!(".{n}.part")),
            d.spool("incoming").join(n),
        )
        .unwrap();
    }
    let records = d.wait_for(&names, LONG);
    assert_eq!(records.len(), 5);
    let stored: Vec<&Value> = records.iter().filter(|r| r["event"] == "media.stored").collect();
    let dups: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"] == "media.duplicate")
        .collect();
    assert_eq!((stored.len(), dups.len()), (1, 4), "{records:#?}");
    for dup in &dups {
        assert_eq!(dup["duplicate_of"], stored[0]["record_id"]);
        assert_eq!(dup["media"]["key"], stored[0]["media"]["key"]);
        assert_eq!(dup["thumbnail"]["key"], stored[0]["thumbnail"]["key"]);
        assert_eq!(dup["content_hash"], stored[0]["content_hash"]);
        assert_eq!(
            dup["source"]["mime"], stored[0]["source"]["mime"],
            "what the bytes are is known without probing"
        );
        assert_eq!(dup["source"]["codecs"], stored[0]["source"]["codecs"]);
        assert_ne!(dup["source"]["file_name"], stored[0]["source"]["file_name"]);
    }
    let ids: HashSet<&str> = records.iter().map(|r| r["record_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 5, "each message has its own record id");
    // One rendition, one thumbnail and their marker in the store: one transcode.
    assert_eq!(stored_files(&d.path().join("media")).len(), 3);
    assert_eq!(d.names_in("done"), names.to_vec());
    assert_eq!(d.stop(LONG).code(), Some(0));
}

#[test]
fn a_changed_profile_makes_new_outputs_for_known_bytes() {
    let mut d = Daemon::new("", "");
    d.start();
    d.drop_file("first.wav", &tone_wav(600.0, 500));
    d.wait_for(&["first.wav"], LONG);
    assert_eq!(d.stop(LONG).code(), Some(0));
    let mut config = std::fs::read_to_string(d.path().join("mediaspool.toml")).unwrap();
    config.push_str("[routing]\naudio = \"music\"\n");
    std::fs::write(d.path().join("mediaspool.toml"), config).unwrap();
    d.start();
    d.drop_file("again.wav", &tone_wav(600.0, 500));
    d.drop_file("first-copy.wav", &tone_wav(600.0, 500));
    let records = d.wait_for(&["again.wav", "first-copy.wav"], LONG);
    let first = by_name(&records, "first.wav")[0];
    let again = by_name(&records, "again.wav")[0];
    let copy = by_name(&records, "first-copy.wav")[0];
    let new = if again["event"] == "media.stored" {
        again
    } else {
        copy
    };
    let dup = if again["event"] == "media.stored" {
        copy
    } else {
        again
    };
    assert_eq!(new["event"], "media.stored");
    assert_eq!(new["media"]["profile"], "music");
    assert_ne!(new["media"]["key"], first["media"]["key"]);
    assert_eq!(dup["event"], "media.duplicate");
    assert_eq!(dup["duplicate_of"], new["record_id"]);
    assert_eq!(d.stop(LONG).code(), Some(0));
}

#[test]
fn manifests_before_or_just_after_are_paired_and_copied_into_records() {
    let mut d = Daemon::new("", "");
    std::fs::write(
        d.path().join("mediaspool.toml"),
        "[spool]\njobs = 2\nmanifest_grace = \"3s\"\n[routing.tags]\nsong = \"music\"\n",
    )
    .unwrap();
    d.start();
    std::thread::sleep(Duration::from_millis(300));
    let before = r#"{"customer_id": "c-42", "chat_id": "wa:+34600000000", "message_id": "wamid.1",
        "channel": "whatsapp", "received_at": "2026-11-28T10:00:00Z", "tags": ["product-issue"],
        "consent": true, "retention_days": 30, "extra": {"ticket": 7}}"#;
    std::fs::write(d.spool("incoming").join("before.wav.meta.json"), before).unwrap();
    d.drop_file("before.wav", &tone_wav(700.0, 400));
    d.drop_file("after.wav", &tone_wav(710.0, 400));
    std::thread::sleep(Duration::from_millis(400));
    std::fs::write(
        d.spool("incoming").join("after.wav.meta.json"),
        r#"{"customer_id": "c-7", "tags": ["song"]}"#,
    )
    .unwrap();
    let records = d.wait_for(&["before.wav", "after.wav"], LONG);
    let b = by_name(&records, "before.wav")[0];
    assert_eq!(b["crm"]["customer_id"], "c-42");
    assert_eq!(b["crm"]["chat_id"], "wa:+34600000000");
    assert_eq!(b["crm"]["message_id"], "wamid.1");
    assert_eq!(b["crm"]["channel"], "whatsapp");
    assert_eq!(b["crm"]["tags"], serde_json::json!(["product-issue"]));
    assert_eq!(b["received_at"], "2026-11-28T10:00:00Z");
    assert_eq!(b["extra"]["ticket"], 7);
    assert!(b["retention_until"].as_str().unwrap().starts_with("20"));
    let a = by_name(&records, "after.wav")[0];
    assert_eq!(
        a["crm"]["customer_id"], "c-7",
        "late manifest paired within the grace period"
    );
    assert_eq!(a["media"]["profile"], "music", "tag routing");
    assert!(d.names_in("done").contains(&"before.wav.meta.json".to_string()));
    assert!(d.names_in("incoming").is_empty());
    assert_eq!(d.stop(LONG).code(), Some(0));
}

#[test]
fn bad_manifests_and_checksums_quarantine_the_pair_with_a_reason() {
    let mut d = Daemon::new("", "");
    d.start();
    std::thread::sleep(Duration::from_millis(300));
    let wav = tone_wav(800.0, 300);
    std::fs::write(d.spool("incoming").join("badjson.wav.meta.json"), "{not json").unwrap();
    d.drop_file("badjson.wav", &wav);
    std::fs::write(
        d.spool("incoming").join("badtype.wav.meta.json"),
        r#"{"customer_id": 5, "tags": "x"}"#,
    )
    .unwrap();
    d.drop_file("badtype.wav", &tone_wav(801.0, 300));
    std::fs::write(
        d.spool("incoming").join("corrupt.wav.meta.json"),
        format!(r#"{{"sha256": "{}"}}"#, "ab".repeat(32)),
    )
    .unwrap();
    d.drop_file("corrupt.wav", &tone_wav(802.0, 300));
    let good = tone_wav(803.0, 300);
    let sha: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&good)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    std::fs::write(
        d.spool("incoming").join("good.wav.meta.json"),
        format!(r#"{{"sha256": "{sha}"}}"#),
    )
    .unwrap();
    d.drop_file("good.wav", &good);
    let records = d.wait_for(&["badjson.wav", "badtype.wav", "corrupt.wav", "good.wav"], LONG);
    for (name, code, stage) in [
        ("badjson.wav", "bad-manifest", "manifest"),
        ("badtype.wav", "bad-manifest", "manifest"),
        ("corrupt.wav", "checksum-mismatch", "manifest"),
    ] {
        let r = by_name(&records, name)[0];
        assert_eq!(r["event"], "media.rejected", "{name}");
        assert_eq!(r["error"]["code"], code, "{name}");
        let e: Value = serde_json::from_slice(
            &std::fs::read(d.spool("failed").join(format!("{name}.error.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(
            (e["code"].as_str(), e["stage"].as_str()),
            (Some(code), Some(stage)),
            "{name}"
        );
        assert!(
            d.spool("failed").join(name).exists()
                && d.spool("failed").join(format!("{name}.meta.json")).exists()
        );
    }
    let msg = by_name(&records, "badtype.wav")[0]["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("customer_id must be a string") && msg.contains("tags must be an array of strings"),
        "{msg}"
    );
    assert_eq!(by_name(&records, "good.wav")[0]["event"], "media.stored");
    assert_eq!(d.stop(LONG).code(), Some(0));
}

#[test]
fn without_consent_nothing_is_stored_and_the_original_is_removed() {
    let mut d = Daemon::new("manifest_grace = \"2s\"", "[policy]\nrequire_consent = true\n");
    d.start();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(
        d.spool("incoming").join("yes.wav.meta.json"),
        r#"{"consent": true}"#,
    )
    .unwrap();
    d.drop_file("yes.wav", &tone_wav(900.0, 300));
    d.drop_file("no.wav", &tone_wav(901.0, 300));
    let records = d.wait_for(&["yes.wav", "no.wav"], LONG);
    assert_eq!(by_name(&records, "yes.wav")[0]["event"], "media.stored");
    let no = by_name(&records, "no.wav")[0];
    assert_eq!(no["error"]["code"], "no-consent");
    assert!(no["media"].is_null());
    assert!(
        !d.names_in("failed").iter().any(|n| n.starts_with("no.wav")),
        "removed, not kept"
    );
    assert!(!d.names_in("done").iter().any(|n| n.starts_with("no.wav")));
    assert_eq!(stored_files(&d.path().join("media")), referenced_keys(&records));
    // A consenting manifest just after its media (within the grace period) is waited for.
    d.drop_file("late.wav", &tone_wav(902.0, 300));
    std::thread::sleep(Duration::from_millis(100));
    std::fs::write(
        d.spool("incoming").join("late.wav.meta.json"),
        r#"{"consent": true}"#,
    )
    .unwrap();
    // The refused message again, now with consent: worked on again, not refused from memory.
    std::fs::write(
        d.spool("incoming").join("no.wav.meta.json"),
        r#"{"consent": true}"#,
    )
    .unwrap();
    d.drop_file("no.wav", &tone_wav(901.0, 300));
    let records = d.wait_for(&["late.wav"], LONG);
    assert_eq!(
        by_name(&records, "late.wav")[0]["event"],
        "media.stored",
        "consent came in time"
    );
    let start = std::time::Instant::now();
    while by_name(&d.records(), "no.wav").len() < 2 {
        assert!(start.elapsed() < LONG);
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(by_name(&d.records(), "no.wav")[1]["event"], "media.stored");
    assert_eq!(d.stop(LONG).code(), Some(0));
}

#[test]
fn links_fifos_and_directories_are_refused_not_followed() {
    let mut d = Daemon::new("", "");
    d.start();
    std::thread::sleep(Duration::from_millis(300));
    std::os::unix::fs::symlink(fixture("voice_note.ogg"), d.spool("incoming").join("link.ogg")).unwrap();
    let fifo = std::ffi::CString::new(d.spool("incoming").join("pipe.ogg").to_str().unwrap()).unwrap();
    // SAFETY: `fifo` is a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::fs::create_dir(d.spool("incoming").join("dir.ogg")).unwrap();
    let records = d.wait_for(&["link.ogg", "pipe.ogg", "dir.ogg"], LONG);
    for name in ["link.ogg", "pipe.ogg", "dir.ogg"] {
        let r = by_name(&records, name)[0];
        assert_eq!(r["error"]["code"], "not-a-regular-file", "{name}");
        assert!(
            d.spool("failed").join(format!("{name}.error.json")).exists(),
            "{name}"
        );
    }
    assert!(std::fs::symlink_metadata(d.spool("failed/link.ogg"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(d.is_running());
    assert_eq!(d.stop(LONG).code(), Some(0));
}

/// What no daemon would have claimed but finds in `work/` at start (swapped in after a claim, or
/// put there by hand) is quarantined without being opened or followed; a FIFO does not block
/// the start.
#[test]
fn links_and_fifos_found_in_work_at_start_are_quarantined_not_opened() {
    let mut d = Daemon::new("", "");
    let work = d.spool("work");
    std::fs::create_dir_all(&work).unwrap();
    std::os::unix::fs::symlink(fixture("voice_note.ogg"), work.join("01AAAA--link.ogg")).unwrap();
    let fifo = std::ffi::CString::new(work.join("01AAAB--pipe.ogg").to_str().unwrap()).unwrap();
    // SAFETY: `fifo` is a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    d.start();
    let records = d.wait_for(&["link.ogg", "pipe.ogg"], LONG);
    for name in ["link.ogg", "pipe.ogg"] {
        let r = by_name(&records, name);
        assert_eq!(r.len(), 1, "{name}");
        assert_eq!(
            r[0]["error"]["code"], "not-a-regular-file",
            "{name}: {}",
            r[0]["error"]
        );
        assert!(d.spool("failed").join(name).symlink_metadata().is_ok(), "{name}");
    }
    d.drop_file("after.wav", &tone_wav(700.0, 300));
    let records = d.wait_for(&["after.wav"], LONG);
    assert_eq!(by_name(&records, "after.wav")[0]["event"], "media.stored");
    assert_eq!(d.stop(LONG).code(), Some(0));
}

/// A catalog error that passes (busy, full) is waited out; one that comes back on every try (a
/// row the catalog cannot read) quarantines the file after three tries, and the daemon serves on.
#[test]
fn a_catalog_error_that_does_not_pass_quarantines_after_three_tries() {
    let mut d = Daemon::new("", "");
    d.start();
    let wav = tone_wav(660.0, 300);
    d.drop_file("first.wav", &wav);
    d.wait_for(&["first.wav"], LONG);
    d.catalog().execute("UPDATE media SET info = 'not json'");
    d.drop_file("again.wav", &wav);
    let error_file = d.spool("failed").join("again.wav.error.json");
    let start = std::time::Instant::now();
    while !error_file.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "not quarantined:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        start.elapsed() > Duration::from_secs(9),
        "tried three times, 5 s apart"
    );
    let error: serde_json::Value = serde_json::from_slice(&std::fs::read(&error_file).unwrap()).unwrap();
    assert_eq!(error["code"], "catalog-error");
    assert!(
        error["message"].as_str().unwrap().contains("corrupt row"),
        "{error}"
    );
    d.drop_file("other.wav", &tone_wav(661.0, 300));
    let records = d.wait_for(&["other.wav"], LONG);
    assert_eq!(by_name(&records, "other.wav")[0]["event"], "media.stored");
    assert_eq!(d.stop(LONG).code(), Some(0));
}

#[test]
fn a_crashing_hanging_or_bloating_worker_quarantines_only_its_file() {
    let mut d = Daemon::new("job_timeout = \"2s\"\njob_memory = \"300MiB\"", "")
        .with_env("MEDIASPOOL_FAULT", "crash:crashme,hang:hangme,oom:oomme");
    d.start();
    std::thread::sleep(Duration::from_millis(300));
    d.drop_file("crashme.wav", &tone_wav(1000.0, 300));
    d.drop_file("hangme.wav", &tone_wav(1001.0, 300));
    d.drop_file("oomme.wav", &tone_wav(1002.0, 300));
    d.drop_file("fine.wav", &tone_wav(1003.0, 300));
    let records = d.wait_for(&["crashme.wav", "hangme.wav", "oomme.wav", "fine.wav"], LONG);
    for (name, code) in [
        ("crashme.wav", "worker-crashed"),
        ("hangme.wav", "timeout"),
        ("oomme.wav", "out-of-memory"),
    ] {
        let r = by_name(&records, name);
        assert_eq!(r.len(), 1, "{name}: one record");
        assert_eq!(r[0]["error"]["code"], code, "{name}: {}", r[0]["error"]);
        assert_eq!(r[0]["error"]["stage"], "worker");
        assert!(
            r[0]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("after 2 attempts"),
            "retried once"
        );
        let e: Value = serde_json::from_slice(
            &std::fs::read(d.spool("failed").join(format!("{name}.error.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(e["code"], code);
    }
    assert_eq!(by_name(&records, "fine.wav")[0]["event"], "media.stored");
    // Still serving.
    d.drop_file("later.wav", &tone_wav(1004.0, 300));
    let records = d.wait_for(&["later.wav"], LONG);
    assert_eq!(by_name(&records, "later.wav")[0]["event"], "media.stored");
    assert_eq!(d.stop(LONG).code(), Some(0));
}

/// Pids of the live (not zombie) processes whose parent is `parent` and whose command line
/// holds `word`.
fn children_running(parent: u32, word: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // After the command name in parentheses: state, then parent pid.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if fields.len() > 1
            && fields[0] != "Z"
            && fields[1] == parent.to_string()
            && String::from_utf8_lossy(&cmdline).contains(word)
        {
            pids.push(pid);
        }
    }
    pids
}

fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn workers_of_a_killed_daemon_exit_even_mid_job() {
    let mut d = Daemon::new("job_timeout = \"10m\"", "").with_env("MEDIASPOOL_FAULT", "hang:stuck");
    d.start();
    d.drop_file("stuck.wav", &tone_wav(1000.0, 300));
    let start = std::time::Instant::now();
    while !d.names_in("work").iter().any(|n| n.ends_with("stuck.wav")) {
        assert!(start.elapsed() < LONG, "the job never started; log:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its worker has the job by now, and hangs in it.
    std::thread::sleep(Duration::from_secs(1));
    let workers = children_running(d.pid(), "worker");
    assert!(!workers.is_empty(), "no worker process; log:\n{}", d.log());
    d.kill9();
    let start = std::time::Instant::now();
    while workers.iter().any(|&w| is_alive(w)) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "workers {workers:?} outlived their daemon; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_mid_run_exits_0_and_the_next_start_completes_the_rest() {
    let mut d = Daemon::new("", "");
    d.start();
    std::thread::sleep(Duration::from_millis(300));
    let names: Vec<String> = (0..16).map(|i| format!("t{i:02}.mp4")).collect();
    let video = std::fs::read(fixture("fps60_h264.mp4")).unwrap();
    for (i, n) in names.iter().enumerate() {
        // Distinct bytes: the same video with a different trailing byte count is still a valid MP4.
        let mut bytes = video.clone();
        bytes.extend(std::iter::repeat_n(0u8, i + 1));
        d.drop_file(n, &bytes);
    }
    d.wait_for(&[names[0].as_str()], LONG);
    let status = d.stop(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "log:\n{}", d.log());
    assert!(
        d.names_in("work").is_empty(),
        "unfinished jobs were put back, not left half-done"
    );
    let first_run = d.records().len();
    assert!(
        first_run < names.len(),
        "stopped mid-run ({first_run} of {})",
        names.len()
    );
    d.start();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let records = d.wait_for(&refs, LONG);
    for n in &names {
        let ids: HashSet<&str> = by_name(&records, n)
            .iter()
            .map(|r| r["record_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 1, "{n}");
    }
    assert_eq!(d.stop(LONG).code(), Some(0));
    assert_eq!(d.names_in("done").len(), names.len());
}

/// kill -9 at random moments during a 100-file run, restarted each time, 10 rounds: every input
/// ends with exactly one distinct record id, nothing in incoming/ or work/, no orphan outputs.
#[test]
fn kill_9_at_random_moments_loses_and_doubles_nothing() {
    let mut d = Daemon::new("", "");
    let mut names = Vec::new();
    for i in 0..100u32 {
        let name = format!("f{i:03}.wav");
        // Every tenth file repeats earlier bytes under a new name; two are not media at all.
        let bytes = match i {
            13 | 57 => b"this is not audio at all".to_vec(),
            i if i % 10 == 9 => tone_wav(200.0 + f64::from(i - 1) * 7.0, 250),
            i => tone_wav(200.0 + f64::from(i) * 7.0, 250),
        };
        d.drop_file(&name, &bytes);
        names.push(name);
    }
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut random = move |lo: u64, hi: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        lo + seed % (hi - lo)
    };
    for _ in 0..10 {
        d.start();
        std::thread::sleep(Duration::from_millis(random(150, 900)));
        d.kill9();
    }
    d.start();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    d.wait_for(&refs, Duration::from_secs(300));
    assert_eq!(d.stop(LONG).code(), Some(0));

    let records = d.records();
    let mut ids: HashMap<&str, HashSet<&str>> = HashMap::new();
    for r in &records {
        ids.entry(r["source"]["file_name"].as_str().unwrap())
            .or_default()
            .insert(r["record_id"].as_str().unwrap());
    }
    for n in &names {
        assert_eq!(
            ids.get(n.as_str()).map(HashSet::len),
            Some(1),
            "{n}: {:?}",
            ids.get(n.as_str())
        );
    }
    assert_eq!(ids.len(), names.len(), "records only for the inputs");
    assert!(d.names_in("incoming").is_empty(), "{:?}", d.names_in("incoming"));
    assert!(d.names_in("work").is_empty(), "{:?}", d.names_in("work"));
    let mut settled: Vec<String> = d.names_in("done");
    settled.extend(
        d.names_in("failed")
            .into_iter()
            .filter(|n| !n.ends_with(".error.json")),
    );
    settled.sort();
    assert_eq!(settled, names, "every input in done/ or failed/, once");
    assert_eq!(
        stored_files(&d.path().join("media")),
        referenced_keys(&records),
        "no orphan outputs"
    );
}

#[test]
fn query_filters_the_catalog() {
    let mut d = Daemon::new("", "");
    d.start();
    std::thread::sleep(Duration::from_millis(300));
    let manifests = [
        (
            "q1.wav",
            r#"{"customer_id": "c-1", "chat_id": "chat-a", "tags": ["vip"], "received_at": "2026-11-01T09:00:00Z"}"#,
        ),
        (
            "q2.wav",
            r#"{"customer_id": "c-1", "chat_id": "chat-b", "received_at": "2026-11-20T09:00:00Z"}"#,
        ),
        (
            "q3.wav",
            r#"{"customer_id": "c-2", "chat_id": "chat-a", "tags": ["vip", "x"], "received_at": "2026-11-25T09:00:00Z"}"#,
        ),
    ];
    for (i, (name, m)) in manifests.iter().enumerate() {
        std::fs::write(d.spool("incoming").join(format!("{name}.meta.json")), m).unwrap();
        d.drop_file(name, &tone_wav(1200.0 + i as f64 * 10.0, 300));
    }
    std::fs::copy(fixture("photo.png"), d.spool("incoming").join(".q4.png")).unwrap();
    std::fs::rename(
        d.spool("incoming").join(".q4.png"),
        d.spool("incoming").join("q4.png"),
    )
    .unwrap();
    d.wait_for(&["q1.wav", "q2.wav", "q3.wav", "q4.png"], LONG);
    assert_eq!(d.stop(LONG).code(), Some(0));
    let query = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["query"];
        all.extend_from_slice(args);
        let out = d.run(&all, Duration::from_secs(30));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["source"]["file_name"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        names.sort();
        names
    };
    assert_eq!(query(&["--customer", "c-1"]), ["q1.wav", "q2.wav"]);
    assert_eq!(query(&["--chat", "chat-a"]), ["q1.wav", "q3.wav"]);
    assert_eq!(query(&["--tag", "vip", "--customer", "c-2"]), ["q3.wav"]);
    assert_eq!(query(&["--kind", "image"]), ["q4.png"]);
    assert_eq!(
        query(&["--since", "2026-11-10", "--until", "2026-11-21T00:00:00Z"]),
        ["q2.wav"]
    );
    assert_eq!(query(&[]).len(), 4);
    let out = d.run(&["query", "--since", "last tuesday"], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_second_daemon_on_the_same_spool_neither_steals_nor_doubles() {
    let mut a = Daemon::new("", "");
    let names: Vec<String> = (0..12).map(|i| format!("s{i:02}.mp4")).collect();
    let video = std::fs::read(fixture("fps60_h264.mp4")).unwrap();
    a.start();
    for (i, n) in names.iter().enumerate() {
        let mut bytes = video.clone();
        bytes.extend(std::iter::repeat_n(0u8, i + 1));
        a.drop_file(n, &bytes);
    }
    a.wait_for(&[names[0].as_str()], LONG);
    assert!(!a.names_in("work").is_empty(), "A has jobs in flight");
    // B starts while A has jobs in work/: it must not resume them, nor wipe A's scratch.
    let log = std::fs::File::create(a.path().join("daemon-b.log")).unwrap();
    let mut b = a
        .command()
        .args(["watch", "-v"])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    a.wait_for(&refs, LONG);
    // SAFETY: kill takes no pointers; the pid is our own child, not yet reaped.
    unsafe { libc::kill(b.id() as i32, libc::SIGTERM) };
    assert_eq!(b.wait().unwrap().code(), Some(0));
    assert_eq!(a.stop(LONG).code(), Some(0));
    let records = a.records();
    for n in &names {
        let rs = by_name(&records, n);
        let ids: HashSet<&str> = rs.iter().map(|r| r["record_id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 1, "{n}: {rs:#?}");
        assert_eq!(rs[0]["event"], "media.stored", "{n}: {}", rs[0]["error"]);
    }
    assert_eq!(a.names_in("done").len(), names.len());
    assert!(a.names_in("failed").is_empty(), "{:?}", a.names_in("failed"));
    assert!(a.names_in("work").is_empty());
    let b_log = std::fs::read_to_string(a.path().join("daemon-b.log")).unwrap();
    assert!(
        !b_log.contains("resuming"),
        "B took over jobs A was running:\n{b_log}"
    );
}
