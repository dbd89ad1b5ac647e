//! The pipeline over every file of the shared corpus.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;
use crate::spool_support::{referenced_keys, stored_files};

fn assert_no_staging_left(root: &Path) {
    if root.exists() {
        assert_eq!(
            std::fs::read_dir(root.join(".staging")).unwrap().count(),
            0,
            "staging left behind"
        );
    }
}

fn check_record_fields(r: &Value, source: &Path) {
    let name = source.file_name().unwrap().to_string_lossy();
    assert_eq!(r["schema"], "mediaspool.record/v1");
    let id = r["record_id"].as_str().unwrap();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "record_id {id}"
    );
    let bytes = std::fs::read(source).unwrap();
    assert_eq!(r["source"]["bytes"], bytes.len() as u64, "{name}");
    if !bytes.is_empty() {
        assert_eq!(
            r["content_hash"],
            format!("blake3:{}", blake3::hash(&bytes).to_hex()),
            "{name}"
        );
    }
    assert!(r["processed_at"].as_str().unwrap().ends_with('Z'));
}

/// A stored audio or video output, checked with ffprobe and a decode by the ffmpeg CLI.
fn check_media_output(s: &Scratch, r: &Value, source: &Path) {
    let name = source.file_name().unwrap().to_string_lossy().to_string();
    let media = &r["media"];
    let kind = media["kind"].as_str().unwrap();
    let out = s.stored(media["key"].as_str().unwrap());
    assert_eq!(
        std::fs::metadata(&out).unwrap().len(),
        media["bytes"].as_u64().unwrap(),
        "{name}"
    );
    let probe = ffprobe(&out);
    decodes_cleanly(&out).unwrap_or_else(|e| panic!("{name}: output does not decode cleanly: {e}"));
    let out_audio = decoded_audio_seconds(&out);
    let out_video = decoded_video_seconds(&out);
    let src_audio = decoded_audio_seconds(source);
    let src_video = decoded_video_seconds(source);
    match kind {
        "audio" => {
            assert_eq!(media["mime"], "audio/mpeg", "{name}");
            assert_eq!(probe["format"]["format_name"], "mp3", "{name}");
            let audio = streams_of(&probe, "audio");
            assert_eq!(audio.len(), 1, "{name}");
            assert_eq!(audio[0]["codec_name"], "mp3", "{name}");
            assert!(
                streams_of(&probe, "video").is_empty(),
                "{name}: audio output carries a picture"
            );
            let (out_a, src_a) = (out_audio.unwrap(), src_audio.unwrap());
            assert!(
                close(out_a, src_a),
                "{name}: output {out_a:.3} s, source decodes to {src_a:.3} s"
            );
            let d = media["duration_ms"].as_f64().unwrap() / 1000.0;
            assert!(
                close(d, out_a),
                "{name}: record says {d} s, output decodes to {out_a:.3} s"
            );
            assert_eq!(r["thumbnail"]["mime"], "image/png", "{name}");
        }
        "video" => {
            assert_eq!(media["mime"], "video/mp4", "{name}");
            assert!(
                probe["format"]["format_name"].as_str().unwrap().contains("mp4"),
                "{name}"
            );
            let boxes = mp4_boxes(&out);
            let moov = boxes.iter().position(|b| b == "moov").expect("moov");
            let mdat = boxes.iter().position(|b| b == "mdat").expect("mdat");
            assert!(moov < mdat, "{name}: boxes {boxes:?}");
            let video = streams_of(&probe, "video");
            assert_eq!(video.len(), 1, "{name}");
            assert_eq!(video[0]["codec_name"], "h264", "{name}");
            assert_eq!(video[0]["pix_fmt"], "yuv420p", "{name}");
            assert!(
                video[0].get("side_data_list").is_none(),
                "{name}: output keeps a display matrix"
            );
            let (w, h) = (
                video[0]["width"].as_u64().unwrap(),
                video[0]["height"].as_u64().unwrap(),
            );
            assert_eq!(
                (media["width"].as_u64(), media["height"].as_u64()),
                (Some(w), Some(h)),
                "{name}"
            );
            assert!(
                w % 2 == 0 && h % 2 == 0 && w.max(h) <= 1280 && w.min(h) <= 720,
                "{name}: {w}x{h}"
            );
            let (out_v, src_v) = (out_video.unwrap(), src_video.unwrap());
            assert!(
                close(out_v, src_v),
                "{name}: video {out_v:.3} s, source video decodes to {src_v:.3} s"
            );
            match (src_audio, out_audio) {
                (Some(src_a), Some(out_a)) => {
                    assert!(
                        close(out_a, src_a),
                        "{name}: audio {out_a:.3} s, source audio {src_a:.3} s"
                    )
                }
                (None, None) => {}
                (src, out) => panic!("{name}: source audio {src:?}, output audio {out:?}"),
            }
            let d = media["duration_ms"].as_f64().unwrap() / 1000.0;
            assert!(
                close(d, out_v.max(out_audio.unwrap_or(0.0))),
                "{name}: record says {d} s"
            );
            let thumb = &r["thumbnail"];
            assert_eq!(thumb["mime"], "image/jpeg", "{name}");
            let img = image::open(s.stored(thumb["key"].as_str().unwrap())).unwrap();
            assert_eq!(
                (img.width() as u64, img.height() as u64),
                (
                    thumb["width"].as_u64().unwrap(),
                    thumb["height"].as_u64().unwrap()
                )
            );
            assert!(img.width().max(img.height()) <= 320, "{name}");
            // Upright: the thumbnail has the output picture's shape.
            let (ta, oa) = (img.width() as f64 / img.height() as f64, w as f64 / h as f64);
            assert!(
                (ta / oa - 1.0).abs() < 0.05,
                "{name}: thumbnail aspect {ta}, video {oa}"
            );
        }
        other => panic!("{name}: unexpected kind {other}"),
    }
}

fn run_section(sections: &[&str]) -> (Scratch, Vec<PathBuf>, Vec<Value>) {
    let files: Vec<PathBuf> = sections.iter().flat_map(|s| corpus_files(s)).collect();
    let s = Scratch::new();
    let out = s.process(&files);
    let code = out.status.code();
    assert!(
        matches!(code, Some(0) | Some(1)),
        "exit {code:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = s.records();
    assert_eq!(records.len(), files.len(), "one record per input");
    (s, files, records)
}

#[test]
fn every_audio_and_video_file_becomes_a_verified_output() {
    let (s, files, records) = run_section(&["audio", "video"]);
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy();
        let r = record_for(&records, &name);
        assert_eq!(r["event"], "media.stored", "{name}: {}", r["error"]);
        check_record_fields(r, f);
        let expected_kind = if f.parent().unwrap().ends_with("audio") {
            "audio"
        } else {
            "video"
        };
        assert_eq!(r["media"]["kind"], expected_kind, "{name}");
        check_media_output(&s, r, f);
    }
    assert_eq!(
        stored_files(&s.path().join("media")),
        referenced_keys(&records),
        "store holds exactly what records name"
    );
    assert_no_staging_left(&s.path().join("media"));
}

#[test]
fn broken_and_odd_files_are_stored_or_rejected_never_a_crash() {
    let (s, files, records) = run_section(&["broken", "other"]);
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy();
        let r = record_for(&records, &name);
        check_record_fields(r, f);
        match r["event"].as_str().unwrap() {
            "media.rejected" => {
                let e = &r["error"];
                assert!(!e["code"].as_str().unwrap().is_empty(), "{name}");
                assert!(e["message"].as_str().unwrap().len() > 10, "{name}: {e}");
                assert!(!e["stage"].as_str().unwrap().is_empty(), "{name}");
                assert!(r["media"].is_null(), "{name}");
            }
            "media.stored" => match r["media"]["kind"].as_str().unwrap() {
                "audio" | "video" => check_media_output(&s, r, f),
                "other" => {
                    let stored = std::fs::read(s.stored(r["media"]["key"].as_str().unwrap())).unwrap();
                    assert_eq!(stored, std::fs::read(f).unwrap(), "{name}: kept byte for byte");
                }
                k => panic!("{name}: kind {k}"),
            },
            e => panic!("{name}: event {e}"),
        }
    }
    assert_eq!(
        stored_files(&s.path().join("media")),
        referenced_keys(&records),
        "no partial outputs"
    );
    assert_no_staging_left(&s.path().join("media"));
}

/// Copies of `bytes` whose header declares a length the bytes cannot hold, the way recorders
/// and pipes that do not know the length yet write it: a WAV's data size (and RIFF size) at
/// 0x7FFFF000 and at 0xFFFFFFFF, a FLAC's STREAMINFO sample count and a tagged MP3's Xing frame
/// count at their largest. Each copy is named by the lie it tells.
fn lying_copies(bytes: &[u8], extension: &str) -> Vec<(&'static str, Vec<u8>)> {
    let mut copies = Vec::new();
    match extension {
        "wav" => {
            let mut at = 12;
            while at + 8 <= bytes.len() && &bytes[at..at + 4] != b"data" {
                let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
                at += 8 + size + (size & 1);
            }
            if at + 8 <= bytes.len() {
                // Such writers never get to write chunks after the samples: the copy ends with
                // the data chunk.
                let real = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
                let end = (at + 8 + real).min(bytes.len());
                for (lie, size) in [("recorder", 0x7FFF_F000u32), ("pipe", u32::MAX)] {
                    let mut d = bytes[..end].to_vec();
                    d[4..8].copy_from_slice(&size.saturating_add(36).to_le_bytes());
                    d[at + 4..at + 8].copy_from_slice(&size.to_le_bytes());
                    copies.push((lie, d));
                }
            }
        }
        "flac" if bytes.starts_with(b"fLaC") && bytes[4] & 0x7F == 0 => {
            // STREAMINFO's last 36 bits before the MD5: the total sample count.
            let mut d = bytes.to_vec();
            d[21] |= 0x0F;
            d[22..26].fill(0xFF);
            copies.push(("samples", d));
        }
        "mp3" => {
            let head = &bytes[..bytes.len().min(1 << 16)];
            let tag = head.windows(4).position(|w| w == b"Xing" || w == b"Info");
            if let Some(at) = tag.filter(|at| head.len() >= at + 12 && head[at + 7] & 1 == 1) {
                let mut d = bytes.to_vec();
                d[at + 8..at + 12].copy_from_slice(&0x00FF_FFFFu32.to_be_bytes());
                copies.push(("frames", d));
            }
        }
        _ => {}
    }
    copies
}

/// Lying headers written into every corpus file that can carry one: each copy is stored with
/// the length its samples decode to (never `too-long`), and `probe` names the claim it did not
/// believe. The four lying fixtures test the formats; this tests the bound on real files of
/// other codecs and rates (ADPCM, A-law, 8-bit, 64-bit float, FLAC, MP3).
#[test]
fn lengths_the_bytes_cannot_hold_are_decoded_past_in_real_files() {
    let s = Scratch::new();
    let lying_dir = s.path().join("lying");
    std::fs::create_dir(&lying_dir).unwrap();
    let mut made: Vec<(PathBuf, PathBuf)> = Vec::new();
    for original in corpus_files("audio") {
        let extension = original.extension().unwrap().to_string_lossy().to_string();
        let stem = original.file_stem().unwrap().to_string_lossy().to_string();
        for (lie, bytes) in lying_copies(&std::fs::read(&original).unwrap(), &extension) {
            let copy = lying_dir.join(format!("{stem}.{lie}.{extension}"));
            std::fs::write(&copy, bytes).unwrap();
            made.push((original.clone(), copy));
        }
    }
    let formats = |ext: &str| made.iter().filter(|(_, c)| c.extension().unwrap() == ext).count();
    assert!(
        formats("wav") >= 10 && formats("flac") >= 2 && formats("mp3") >= 2,
        "lies made: {made:?}"
    );
    let copies: Vec<PathBuf> = made.iter().map(|(_, c)| c.clone()).collect();
    let records = s.process_ok(&copies);
    let mut args = vec!["probe".to_string()];
    args.extend(copies.iter().map(|c| c.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let probed = s.run(&args, std::time::Duration::from_secs(120));
    let probes: Vec<Value> = String::from_utf8_lossy(&probed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(probes.len(), made.len());
    for ((original, copy), probe) in made.iter().zip(&probes) {
        let name = copy.file_name().unwrap().to_string_lossy();
        let r = record_for(&records, &name);
        assert_eq!(r["event"], "media.stored", "{name}: {}", r["error"]);
        let stored = r["media"]["duration_ms"].as_f64().unwrap() / 1000.0;
        let real = decoded_audio_seconds(original).unwrap();
        assert!(
            close(stored, real),
            "{name}: stored {stored} s, the original decodes to {real} s"
        );
        // The lie is named, unless the only reader that saw the header was libav and it
        // already cut the length to the file (it does for WAV).
        let untrusted = &probe["untrusted_duration"];
        if untrusted.is_null() {
            assert_eq!(probe["duration_from"], "libav", "{name}: {probe}");
            let declared = probe["duration_ms"].as_f64().unwrap() / 1000.0;
            assert!(close(declared, real), "{name}: {probe}");
        } else {
            assert!(
                untrusted["declared_ms"].as_f64().unwrap() / 1000.0 > 100.0 * real,
                "{name}: {probe}"
            );
            assert!(!untrusted["reason"].as_str().unwrap().is_empty(), "{name}");
        }
    }

    // No believable length at all (FLAC and MP3 are not constant-rate): a real 10 s file that
    // declares years is decoded, and the decoded-length guard stops it one second past a 2 s
    // limit instead of decoding on.
    let limited = Scratch::new();
    std::fs::create_dir(limited.path().join("profiles")).unwrap();
    let voice = std::fs::read_to_string(repo().join("profiles/voice.toml")).unwrap();
    std::fs::write(
        limited.path().join("profiles/voice.toml"),
        voice.replace("max_duration = \"3h\"", "max_duration = \"2s\""),
    )
    .unwrap();
    std::fs::write(
        limited.path().join("mediaspool.toml"),
        "profiles_dir = \"profiles\"\n",
    )
    .unwrap();
    let flac = lying_dir.join("tracker__flac.samples.flac");
    assert_eq!(limited.process(&[flac]).status.code(), Some(1));
    let e = &limited.records()[0]["error"];
    assert_eq!(e["code"], "too-long", "{e}");
    let at: f64 = e["message"]
        .as_str()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3.0..3.3).contains(&at), "{e}");
}

/// Found by fuzzing: an M4A whose `moov` claims more than the file holds made symphonia ask for
/// 90 GB while reading its metadata, and the failed allocation aborted the worker, twice, so the
/// file came out `worker-crashed`. It is read by libav alone now and rejected for what it is.
#[test]
fn an_mp4_whose_boxes_claim_more_than_the_file_is_rejected_for_its_content_not_a_crash() {
    let s = Scratch::new();
    let file = s.path().join("runaway.m4a");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/probe/m4a-moov-past-the-end.m4a"),
        &file,
    )
    .unwrap();
    let out = s.process(std::slice::from_ref(&file));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = s.records();
    let error = &record_for(&records, "runaway.m4a")["error"];
    assert_eq!(error["code"], "no-stream", "{error}");
}
