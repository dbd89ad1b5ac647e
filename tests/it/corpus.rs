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
