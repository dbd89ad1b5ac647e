//! The S3 and Azure stores with the real binary, against moto and Azurite: what is stored and
//! how (content type, cache control, SSE, storage class, metadata, parts), links, `link`,
//! `check`, and outages (a server stopped mid-run, a server restarted empty).

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;
use crate::spool_support::Daemon;
use crate::store_support::*;

fn run_with_store(s: &Scratch, config: &str, args: &[&str]) -> std::process::Output {
    std::fs::write(s.path().join("mediaspool.toml"), config).unwrap();
    s.run_env(args, &AWS_ENV, Duration::from_secs(600))
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Downloads a record's object through its URL and checks what every stored object carries.
fn fetch_object(url: &str, to: &Path, mime: &str, hash: &str) -> std::collections::BTreeMap<String, String> {
    let (status, headers) = curl_get(url, to);
    assert_eq!(status, 200, "GET {url}");
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some(mime),
        "{url}"
    );
    assert_eq!(
        headers.get("cache-control").map(String::as_str),
        Some("public, max-age=31536000, immutable"),
        "{url}"
    );
    let meta = headers
        .get("x-amz-meta-content_hash")
        .or_else(|| headers.get("x-ms-meta-content_hash"));
    assert_eq!(meta.map(String::as_str), Some(hash), "{url}");
    headers
}

#[test]
fn s3_every_corpus_file_is_stored_with_its_headers_and_links() {
    let server = S3Server::shared();
    let bucket = Bucket::create(&server);
    let s = Scratch::new();
    let config = bucket.config(
        "sse = \"AES256\"\nstorage_class = \"STANDARD_IA\"\nupload_originals = true\noriginals_storage_class = \"GLACIER_IR\"",
    );
    let files: Vec<_> = ["audio", "video", "other"]
        .iter()
        .flat_map(|section| corpus_files(section))
        .collect();
    let mut args = vec!["process".to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_with_store(&s, &config, &args);
    let records = s.records();
    assert_eq!(records.len(), files.len(), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let mut stored = 0;
    let mut originals = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if r["event"] != "media.stored" {
            continue; // rejected (e.g. a file that only looks like media); covered elsewhere
        }
        stored += 1;
        let hash = r["content_hash"].as_str().unwrap();
        let name = r["source"]["file_name"].as_str().unwrap();
        let expires = r["links_expire_at"]
            .as_str()
            .expect("presigned links say when they expire");
        assert!(expires > r["processed_at"].as_str().unwrap(), "{name}");
        let media = &r["media"];
        let got = dir.path().join(format!("{i}.media"));
        let headers = fetch_object(
            media["url"].as_str().unwrap(),
            &got,
            media["mime"].as_str().unwrap(),
            hash,
        );
        assert_eq!(
            std::fs::metadata(&got).unwrap().len(),
            media["bytes"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            headers.get("x-amz-server-side-encryption").map(String::as_str),
            Some("AES256"),
            "{name}"
        );
        assert_eq!(
            headers.get("x-amz-storage-class").map(String::as_str),
            Some("STANDARD_IA"),
            "{name}"
        );
        if media["kind"] == "other" {
            let source = files.iter().find(|f| f.file_name().unwrap() == name).unwrap();
            assert_eq!(
                std::fs::read(&got).unwrap(),
                std::fs::read(source).unwrap(),
                "{name}: kept as it came"
            );
        } else {
            assert_eq!(
                headers.get("x-amz-meta-profile_id").map(String::as_str),
                media["profile_id"].as_str(),
                "{name}"
            );
            decodes_cleanly(&got).unwrap_or_else(|e| panic!("{name}: stored output does not decode: {e}"));
            originals.push(
                r["original"]["key"]
                    .as_str()
                    .expect("originals uploaded")
                    .to_string(),
            );
        }
        if let Some(t) = r["thumbnail"].as_object() {
            let got = dir.path().join(format!("{i}.thumb"));
            fetch_object(
                t["url"].as_str().unwrap(),
                &got,
                t["mime"].as_str().unwrap(),
                hash,
            );
        }
    }
    assert!(
        stored * 10 >= files.len() * 8,
        "only {stored} of {} stored",
        files.len()
    );
    // Exactly the objects the records name, and no multipart upload left open.
    let listed = bucket.s3api(&["list-objects-v2", "--bucket", &bucket.name]);
    let keys: HashSet<String> = listed["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, crate::spool_support::referenced_keys(&records));
    assert!(bucket.open_multipart_uploads().is_empty());
    // Archived originals in their own storage class, encrypted too.
    for o in listed["Contents"].as_array().unwrap() {
        if originals.iter().any(|k| o["Key"] == k.as_str()) {
            assert_eq!(o["StorageClass"], "GLACIER_IR", "{o}");
        }
    }
    let head = bucket.s3api(&["head-object", "--bucket", &bucket.name, "--key", &originals[0]]);
    assert_eq!(head["ServerSideEncryption"], "AES256", "{head}");
}

/// ~100 MB of raw video in AVI: cheap to make and to transcode at this size.
fn large_video(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("large.avi");
    make_media(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-t",
            "29",
            "-c:v",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
        ],
        &path,
    );
    path
}

#[test]
fn s3_a_large_file_goes_up_in_parts_and_an_upload_cut_off_leaves_nothing_open() {
    let server = S3Server::shared();
    let bucket = Bucket::create(&server);
    let mut d = Daemon::new(
        "",
        &bucket.config("upload_originals = true\nupload_concurrency = 1\npart_size = \"5MiB\""),
    );
    for (k, v) in AWS_ENV {
        d = d.with_env(k, v);
    }
    let video = large_video(d.path());
    let size = std::fs::metadata(&video).unwrap().len();
    assert!(size > 100_000_000, "{size}");
    d.start();
    std::fs::rename(&video, d.spool("incoming").join("large.avi")).unwrap();
    // Cut the daemon off while the original is going up in parts.
    let uploads_url = format!("{}/{}?uploads", bucket.endpoint, bucket.name);
    let listing = d.path().join("uploads.xml");
    let start = Instant::now();
    loop {
        let (status, _) = curl_get(&uploads_url, &listing);
        assert_eq!(status, 200);
        if std::fs::read_to_string(&listing).unwrap().contains("<UploadId>") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no multipart upload seen; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    d.kill9();
    assert_eq!(
        bucket.open_multipart_uploads().len(),
        1,
        "the upload was cut off half-way"
    );
    d.start();
    let records = d.wait_for(&["large.avi"], Duration::from_secs(180));
    let r = crate::common::record_for(&records, "large.avi");
    assert_eq!(r["event"], "media.stored", "{r}");
    assert!(
        bucket.open_multipart_uploads().is_empty(),
        "the cut-off upload was aborted"
    );
    let key = r["original"]["key"].as_str().unwrap();
    let head = bucket.s3api(&["head-object", "--bucket", &bucket.name, "--key", key]);
    assert_eq!(head["ContentLength"], size);
    let parts = size.div_ceil(5 << 20);
    assert!(
        head["ETag"].as_str().unwrap().ends_with(&format!("-{parts}\"")),
        "a multipart ETag of {parts} parts: {head}"
    );
    let got = d.path().join("original.avi");
    let (status, _) = curl_get(r["original"]["url"].as_str().unwrap(), &got);
    assert_eq!(status, 200);
    assert_eq!(std::fs::metadata(&got).unwrap().len(), size);
    assert_eq!(
        blake3::hash(&std::fs::read(&got).unwrap()).to_hex().to_string(),
        r["content_hash"].as_str().unwrap().trim_start_matches("blake3:")
    );
    d.stop(Duration::from_secs(30));
}

#[test]
fn link_mints_a_working_link_and_a_public_base_url_needs_none() {
    let server = S3Server::shared();
    let bucket = Bucket::create(&server);
    let s = Scratch::new();
    let note = fixture("voice_note.ogg");
    let out = run_with_store(&s, &bucket.config(""), &["process", note.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = &s.records()[0];
    let (id, key) = (
        r["record_id"].as_str().unwrap(),
        r["media"]["key"].as_str().unwrap(),
    );
    let config = bucket.config("");
    for target in [id, key] {
        let out = run_with_store(&s, &config, &["link", target]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("expires at"), "{}", stderr(&out));
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(url.contains("X-Amz-Signature"), "{url}");
        let got = s.path().join("linked.mp3");
        assert_eq!(curl_get(&url, &got).0, 200);
        assert_eq!(
            std::fs::metadata(&got).unwrap().len(),
            r["media"]["bytes"].as_u64().unwrap()
        );
    }
    let missing = run_with_store(&s, &config, &["link", "no/such/key"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("no object"), "{}", stderr(&missing));

    // A public base URL (a CDN in front of the bucket): plain links that do not expire.
    let s = Scratch::new();
    let base = format!("{}/{}", bucket.endpoint, bucket.name);
    let config = bucket.config(&format!("public_base_url = \"{base}/\""));
    let out = run_with_store(&s, &config, &["process", note.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = &s.records()[0];
    assert_eq!(r["links_expire_at"], Value::Null);
    assert_eq!(
        r["media"]["url"],
        format!("{base}/{}", r["media"]["key"].as_str().unwrap())
    );
}

#[test]
fn check_reaches_the_store_and_names_each_problem() {
    let server = S3Server::shared();
    let bucket = Bucket::create(&server);
    let s = Scratch::new();
    let ok = run_with_store(&s, &bucket.config(""), &["check"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(
        bucket.s3api(&["list-objects-v2", "--bucket", &bucket.name])["Contents"].is_null(),
        "the probe object is deleted"
    );

    // A missing bucket, and another problem: both listed, exit 2.
    std::fs::write(s.path().join("a-file"), b"").unwrap();
    let missing = Bucket {
        endpoint: server.endpoint.clone(),
        name: unique_name("missing"),
    };
    let out = run_with_store(
        &s,
        &format!(
            "{}\n[records]\noutbox = \"a-file/records.ndjson\"\n",
            missing.config("")
        ),
        &["check"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{:?} does not exist", missing.name)),
        "{err}"
    );
    assert!(err.contains("records.outbox"), "{err}");

    // Nothing listening.
    let unreachable = Bucket {
        endpoint: format!("http://127.0.0.1:{}", closed_port()),
        name: bucket.name.clone(),
    };
    let out = run_with_store(
        &s,
        &unreachable.config("timeout = \"2s\"\nretry_budget = \"1s\""),
        &["check"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot reach the store"),
        "{}",
        stderr(&out)
    );

    // Wrong credentials: a server that checks them (moto with its IAM checks on).
    let strict = S3Server::start_own(0, &[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let out = run_with_store(
        &s,
        &Bucket {
            endpoint: strict.endpoint.clone(),
            name: bucket.name.clone(),
        }
        .config(""),
        &["check"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("denied"), "{}", stderr(&out));
    assert!(stderr(&out).contains("check the credentials"), "{}", stderr(&out));

    // And on Azure, whose emulator checks keys too.
    let azurite = Azurite::shared();
    let container = azurite.create_container();
    let good = azurite.config(&container, "");
    let out = run_with_store(&s, &good, &["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let wrong_key = good.replace(AZURITE_KEY, "d3JvbmcgYnV0IHdlbGwtZm9ybWVkIGtleSBmb3IgdGVzdHM=");
    let out = run_with_store(&s, &wrong_key, &["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("denied"), "{}", stderr(&out));
    let out = run_with_store(&s, &azurite.config(&unique_name("missing"), ""), &["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[test]
fn azure_stores_with_headers_blocks_and_expiring_links() {
    let azurite = Azurite::shared();
    let container = azurite.create_container();
    let s = Scratch::new();
    let big = s.path().join("archive.bin");
    let mut bytes = vec![0u8; 40 << 20];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&(i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    }
    std::fs::write(&big, &bytes).unwrap();
    let note = fixture("voice_note.ogg");
    let config = azurite.config(&container, "presign_ttl = \"4s\"\npart_size = \"8MiB\"");
    let out = run_with_store(
        &s,
        &config,
        &["process", note.to_str().unwrap(), big.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let records = s.records();
    let dir = tempfile::tempdir().unwrap();
    for r in &records {
        assert_eq!(r["event"], "media.stored", "{r}");
        let media = &r["media"];
        let got = dir.path().join("got");
        fetch_object(
            media["url"].as_str().unwrap(),
            &got,
            media["mime"].as_str().unwrap(),
            r["content_hash"].as_str().unwrap(),
        );
        assert_eq!(
            std::fs::metadata(&got).unwrap().len(),
            media["bytes"].as_u64().unwrap()
        );
        if r["source"]["file_name"] == "archive.bin" {
            assert!(
                std::fs::read(&got).unwrap() == bytes,
                "the 40 MB file came back whole from its blocks"
            );
        }
    }
    // Already there: a second run with a fresh catalog creates nothing and keeps the objects.
    let again = Scratch::new();
    let out = run_with_store(&again, &config, &["process", note.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The two files of the first run finish in either order: find the voice note's record.
    let r = record_for(&records, "voice_note.ogg");
    assert_eq!(again.records()[0]["media"]["key"], r["media"]["key"]);

    // The SAS links stop working when the record says, and `link` mints a fresh one.
    let expires = time::OffsetDateTime::parse(
        r["links_expire_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let wait = (expires - time::OffsetDateTime::now_utc())
        .whole_milliseconds()
        .max(0) as u64
        + 2000;
    std::thread::sleep(Duration::from_millis(wait));
    let got = dir.path().join("late");
    let (status, _) = curl_get(r["media"]["url"].as_str().unwrap(), &got);
    assert_eq!(status, 403, "an expired SAS link is refused");
    let out = run_with_store(&s, &config, &["link", r["record_id"].as_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let fresh = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(curl_get(&fresh, &got).0, 200);
}

/// Renames each picture into the daemon's spool.
fn drop_pictures(d: &Daemon, pictures: &[std::path::PathBuf]) {
    for p in pictures {
        d.drop_file(
            &p.file_name().unwrap().to_string_lossy(),
            &std::fs::read(p).unwrap(),
        );
    }
}

fn file_names(pictures: &[std::path::PathBuf]) -> Vec<String> {
    pictures
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect()
}

/// Waits until `count` records are in, whatever they are.
fn wait_records(d: &Daemon, count: usize, limit: Duration) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let records = d.records();
        if records.len() >= count {
            return records;
        }
        assert!(
            start.elapsed() < limit,
            "{} of {count} records after {limit:?}; log:\n{}",
            records.len(),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Outage settings: short request timeouts and budget, so a stopped server is noticed fast.
const IMPATIENT: &str = "timeout = \"2s\"\nretry_budget = \"3s\"";

#[test]
fn s3_stopped_for_20_s_mid_run_loses_nothing_and_writes_each_object_once() {
    let server = S3Server::start_own(0, &[]);
    let bucket = Bucket::create_versioned(&server);
    let mut d = Daemon::new("", &bucket.config(IMPATIENT));
    for (k, v) in AWS_ENV {
        d = d.with_env(k, v);
    }
    let pictures = distinct_pictures(&tempfile::tempdir().unwrap().keep(), 50);
    d.start();
    drop_pictures(&d, &pictures[..20]);
    wait_records(&d, 10, Duration::from_secs(120));
    server.signal(libc::SIGSTOP);
    drop_pictures(&d, &pictures[20..]);
    std::thread::sleep(Duration::from_secs(20));
    server.signal(libc::SIGCONT);
    let names = file_names(&pictures);
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let records = d.wait_for(&name_refs, Duration::from_secs(180));
    d.stop(Duration::from_secs(30));

    assert_eq!(records.len(), 50, "one record per file");
    let ids: BTreeSet<&str> = records.iter().map(|r| r["record_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 50);
    assert!(
        records.iter().all(|r| r["event"] == "media.stored"),
        "none rejected"
    );
    assert!(
        d.names_in("failed").is_empty(),
        "nothing quarantined: {:?}",
        d.names_in("failed")
    );
    assert!(d.names_in("work").is_empty(), "{:?}", d.names_in("work"));
    let versions = bucket.versions();
    let keys = crate::spool_support::referenced_keys(&records);
    for key in &keys {
        assert_eq!(versions.get(key), Some(&1), "{key} written once");
    }
    assert_eq!(versions.len(), keys.len(), "no object that no record names");
    let log = d.log();
    assert_eq!(log.matches("uploads paused").count(), 1, "{log}");
    assert_eq!(log.matches("uploads resumed").count(), 1, "{log}");
    assert!(log.find("uploads paused") < log.find("uploads resumed"));
    assert!(log.contains("job waits in work/"), "{log}");
    assert!(
        log.contains("storing the outputs it rendered before the store failed"),
        "jobs that waited are not rendered again: {log}"
    );
}

#[test]
fn s3_restarted_empty_gets_every_output_again() {
    let mut server = S3Server::start_own(0, &[]);
    let mut bucket = Bucket::create(&server);
    let proxy = Proxy::start(server.port);
    let through_proxy = Bucket {
        endpoint: format!("http://127.0.0.1:{}", proxy.port),
        name: bucket.name.clone(),
    };
    let mut d = Daemon::new("", &through_proxy.config(IMPATIENT));
    for (k, v) in AWS_ENV {
        d = d.with_env(k, v);
    }
    let dir = tempfile::tempdir().unwrap();
    let pictures = distinct_pictures(dir.path(), 30);
    d.start();
    drop_pictures(&d, &pictures[..15]);
    wait_records(&d, 8, Duration::from_secs(120));
    // The server dies with everything it held; a new one comes up empty (same bucket name).
    proxy.set_target(None);
    server.kill();
    drop_pictures(&d, &pictures[15..]);
    std::thread::sleep(Duration::from_secs(8));
    server = S3Server::start_own(0, &[]);
    bucket.endpoint = server.endpoint.clone();
    bucket.s3api(&["create-bucket", "--bucket", &bucket.name]);
    proxy.set_target(Some(server.port));
    let names = file_names(&pictures);
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    d.wait_for(&name_refs, Duration::from_secs(180));
    // The same bytes again, under new names: their outputs were lost with the old server, so
    // they are made and stored again rather than pointing at nothing.
    let copies: Vec<std::path::PathBuf> = pictures
        .iter()
        .map(|p| {
            let copy = dir
                .path()
                .join(format!("again-{}", p.file_name().unwrap().to_string_lossy()));
            std::fs::copy(p, &copy).unwrap();
            copy
        })
        .collect();
    drop_pictures(&d, &copies);
    let names = file_names(&copies);
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let records = d.wait_for(&name_refs, Duration::from_secs(180));
    d.stop(Duration::from_secs(30));
    assert!(d.names_in("failed").is_empty(), "{:?}", d.names_in("failed"));
    let listed = bucket.s3api(&["list-objects-v2", "--bucket", &bucket.name]);
    let stored: HashSet<String> = listed["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Key"].as_str().unwrap().to_string())
        .collect();
    for r in records
        .iter()
        .filter(|r| names.contains(&r["source"]["file_name"].as_str().unwrap().to_string()))
    {
        let key = r["media"]["key"].as_str().unwrap();
        assert!(
            stored.contains(key),
            "{key} of {} is in the new server",
            r["source"]["file_name"]
        );
    }
}
