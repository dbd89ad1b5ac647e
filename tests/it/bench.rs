//! `mediaspool bench` as a user runs it: quality numbers that move the way they must, one row
//! per profile × input in JSON and CSV, a valid chart, and a `--target-ssim` answer checked by
//! measuring its CRF and the next one independently.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const T: Duration = Duration::from_secs(120);

/// The documented fields of a row (README, `mediaspool bench`).
const ROW_FIELDS: &[&str] = &[
    "input",
    "kind",
    "profile",
    "profile_id",
    "input_bytes",
    "output_bytes",
    "ratio",
    "duration_s",
    "bitrate_kbps",
    "encode_s",
    "speed_x",
    "width",
    "height",
    "ssim",
    "psnr_db",
    "frames",
    "snr_db",
    "lsd_db",
    "error",
];

/// A profile made from a built-in one: (name, built-in base, [(from, to)] text edits).
type Variant<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// A scratch directory whose config adds profiles.
fn with_profiles(variants: &[Variant]) -> Scratch {
    let s = Scratch::new();
    let dir = s.path().join("profiles");
    std::fs::create_dir(&dir).unwrap();
    for (name, base, edits) in variants {
        let mut text = std::fs::read_to_string(repo().join(format!("profiles/{base}.toml"))).unwrap();
        for (from, to) in *edits {
            assert!(text.contains(from), "{base}.toml has no {from:?}");
            text = text.replacen(from, to, 1);
        }
        std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
    }
    std::fs::write(s.path().join("mediaspool.toml"), "profiles_dir = \"profiles\"\n").unwrap();
    s
}

fn bench_json(s: &Scratch, args: &[&str]) -> Value {
    let mut all = vec!["bench", "--json"];
    all.extend_from_slice(args);
    let out = s.run(&all, T);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bench --json printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn row<'a>(doc: &'a Value, profile: &str, input: &str) -> &'a Value {
    let found: Vec<&Value> = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["profile"] == profile && r["input"].as_str().unwrap().ends_with(input))
        .collect();
    assert_eq!(found.len(), 1, "one row for {profile} × {input}: {doc:#}");
    assert!(found[0]["error"].is_null(), "{:#}", found[0]);
    found[0]
}

fn num(v: &Value, field: &str) -> f64 {
    v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is not a number in {v:#}"))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn video_quality_falls_with_crf_against_the_upright_source() {
    let s = with_profiles(&[
        ("crf18", "video-720p", &[("crf = 26", "crf = 18")]),
        ("crf40", "video-720p", &[("crf = 26", "crf = 40")]),
    ]);
    let inputs = ["rot90_h264.mp4", "fps60_h264.mp4", "vfr_h264.mp4"].map(fixture);
    let mut args = vec!["--profile", "crf18", "--profile", "crf40"];
    args.extend(inputs.iter().map(|p| path(p)));
    let doc = bench_json(&s, &args);
    for input in ["rot90_h264.mp4", "fps60_h264.mp4", "vfr_h264.mp4"] {
        let (good, poor) = (row(&doc, "crf18", input), row(&doc, "crf40", input));
        assert!(
            num(good, "ssim") > num(poor, "ssim"),
            "{input}: {good:#} {poor:#}"
        );
        assert!(
            num(good, "psnr_db") > num(poor, "psnr_db"),
            "{input}: {good:#} {poor:#}"
        );
        assert!(num(good, "output_bytes") > num(poor, "output_bytes"));
        assert!(num(poor, "ratio") > num(good, "ratio"));
    }
    // The phone video is coded sideways: only an upright reference matches the output.
    let upright = row(&doc, "crf18", "rot90_h264.mp4");
    assert!(num(upright, "ssim") > 0.95, "{upright:#}");
    assert_eq!(
        (upright["width"].as_u64(), upright["height"].as_u64()),
        (Some(176), Some(320))
    );
    // 60 fps capped to 30: the reference drops the same frames, 2 s × 30 are compared.
    assert_eq!(row(&doc, "crf18", "fps60_h264.mp4")["frames"], 60);
    // Variable frame rate: every one of the 54 frames finds its counterpart by time.
    let vfr = row(&doc, "crf18", "vfr_h264.mp4");
    assert_eq!(vfr["frames"], 54);
    assert!(num(vfr, "ssim") > 0.95, "{vfr:#}");
}

/// The score measures the encoding: an HDR source is compared tone-mapped as the engine maps
/// it, and a video that starts after its container's start (ASF: the audio first) is paired on
/// the engine's timeline, not shifted by the output's own start.
#[test]
fn hdr_and_late_starting_video_are_scored_like_any_other() {
    let s = Scratch::new();
    let wmv = s.path().join("late-video.wmv");
    make_media(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=2",
            "-f",
            "lavfi",
            "-i",
            "sine=duration=2",
            "-c:v",
            "wmv2",
            "-q:v",
            "2",
            "-c:a",
            "wmav2",
        ],
        &wmv,
    );
    let probe = ffprobe(&wmv);
    let video_start: f64 = streams_of(&probe, "video")[0]["start_time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let file_start: f64 = probe["format"]["start_time"].as_str().unwrap().parse().unwrap();
    assert!(
        video_start > file_start,
        "the video starts late: {video_start} > {file_start}"
    );
    let hdr = fixture("hdr_hlg_hevc.mp4");
    let doc = bench_json(&s, &[path(&wmv), path(&hdr)]);
    let late = row(&doc, "video-720p", "late-video.wmv");
    assert!(num(late, "frames") >= 48.0, "{late:#}");
    assert!(num(late, "ssim") > 0.95, "{late:#}");
    let tone_mapped = row(&doc, "video-720p", "hdr_hlg_hevc.mp4");
    assert!(num(tone_mapped, "ssim") > 0.95, "{tone_mapped:#}");
    assert!(num(tone_mapped, "psnr_db") > 35.0, "{tone_mapped:#}");
}

#[test]
fn audio_score_is_finite_and_worse_for_a_starved_encode() {
    let s = with_profiles(&[(
        "voice-8k",
        "voice",
        &[
            ("bitrate_kbps = 32", "bitrate_kbps = 8"),
            ("sample_rate = 22050", "sample_rate = 8000"),
        ],
    )]);
    let doc = bench_json(
        &s,
        &[
            "--profile",
            "voice",
            "--profile",
            "voice-8k",
            path(&fixture("voice_note.ogg")),
        ],
    );
    let (voice, starved) = (
        row(&doc, "voice", "voice_note.ogg"),
        row(&doc, "voice-8k", "voice_note.ogg"),
    );
    for r in [voice, starved] {
        assert!(
            num(r, "snr_db").is_finite() && num(r, "lsd_db").is_finite(),
            "{r:#}"
        );
        assert!(num(r, "speed_x") > 1.0, "{r:#}");
    }
    assert!(
        num(voice, "snr_db") > num(starved, "snr_db") + 3.0,
        "{voice:#} {starved:#}"
    );
    assert!(
        num(voice, "lsd_db") < num(starved, "lsd_db"),
        "{voice:#} {starved:#}"
    );
    assert!(num(voice, "bitrate_kbps") > 2.0 * num(starved, "bitrate_kbps"));
    assert!(voice["ssim"].is_null(), "no picture score for sound");
}

#[test]
fn json_csv_and_chart_have_one_point_per_profile_and_input() {
    let s = Scratch::new();
    let inbox = s.path().join("inbox");
    std::fs::create_dir_all(inbox.join("more")).unwrap();
    std::fs::copy(fixture("voice_note.ogg"), inbox.join("voice_note.ogg")).unwrap();
    std::fs::copy(fixture("cover_art.mp3"), inbox.join("more/cover_art.mp3")).unwrap();
    std::fs::copy(fixture("not_media.txt"), inbox.join("not_media.txt")).unwrap();
    let out = s.run(
        &[
            "bench",
            "--profile",
            "voice",
            "--profile",
            "music",
            "--profile",
            "video-480p",
            "inbox",
            "--json=out.json",
            "--csv=out.csv",
            "--chart",
            "chart.svg",
        ],
        T,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("per profile: median (p95)"),
        "the table: {stdout}"
    );

    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(s.path().join("out.json")).unwrap()).unwrap();
    assert_eq!(doc["schema"], "mediaspool.bench/v1");
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "2 audio inputs × 2 audio profiles: {doc:#}");
    for r in rows {
        let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        let mut want = ROW_FIELDS.to_vec();
        want.sort();
        assert_eq!(keys, want);
        assert_eq!(r["kind"], "audio");
        let ratio = num(r, "input_bytes") / num(r, "output_bytes");
        assert!((num(r, "ratio") - ratio).abs() < 1e-9);
    }
    let summary = doc["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 2);
    for s in summary {
        assert_eq!(s["inputs"], 2);
        let snr = &s["snr_db"];
        assert!(num(snr, "p95") >= num(snr, "median"));
    }
    assert_eq!(doc["skipped"][0]["input"], "inbox/not_media.txt");

    let csv = std::fs::read_to_string(s.path().join("out.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], ROW_FIELDS.join(","));
    assert_eq!(lines.len(), 5);
    assert!(lines[1..]
        .iter()
        .all(|l| l.split(',').count() == ROW_FIELDS.len()));

    let svg = std::fs::read_to_string(s.path().join("chart.svg")).unwrap();
    let tree = roxmltree::Document::parse(&svg).expect("the chart is well-formed XML");
    assert_eq!(tree.root_element().tag_name().name(), "svg");
    let circles = tree.descendants().filter(|n| n.has_tag_name("circle")).count();
    assert_eq!(circles, 4 + 2, "four points and a legend mark per profile");
    assert!(
        svg.contains(">\nvoice\n<") || svg.contains(">voice<"),
        "legend names the profiles"
    );
}

#[test]
fn default_profiles_follow_routing_and_broken_inputs_set_exit_code_1() {
    let s = Scratch::new();
    let broken = s.path().join("broken.mp4");
    std::fs::write(&broken, b"\0\0\0\x20ftypisom but nothing else").unwrap();
    let out = s.run(
        &[
            "bench",
            "--csv",
            path(&fixture("voice_note.ogg")),
            path(&fixture("silent_video.mp4")),
            path(&fixture("exif_rotated.jpg")),
            path(&broken),
        ],
        T,
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    let profiles: Vec<&str> = rows.iter().map(|r| r[2]).collect();
    assert_eq!(profiles, ["voice", "video-720p", "image"]);
    // The photo is stored sideways with an EXIF orientation: only its upright self matches the
    // upright output.
    let column = |name: &str| ROW_FIELDS.iter().position(|f| *f == name).unwrap();
    let photo_ssim: f64 = rows[2][column("ssim")].parse().unwrap();
    assert!(photo_ssim > 0.95, "{csv}");
    assert_eq!(rows[2][column("duration_s")], "", "a picture has no duration");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broken.mp4: not readable as media"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.run(
        &["bench", "--profile", "nope", path(&fixture("voice_note.ogg"))],
        T,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no profile named \"nope\""));
}

/// Runs `--target-ssim` and checks its answer: the CRF reaches the target, the next does not.
fn search(s: &Scratch, input: &Path, target: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--target-ssim", target];
    args.extend_from_slice(extra);
    args.push(path(input));
    let doc = bench_json(s, &args);
    let choice = &doc[0];
    let target: f64 = target.parse().unwrap();
    let crf = choice["crf"].as_u64().unwrap();
    assert!(num(choice, "ssim") >= target, "{choice:#}");
    let next = &choice["next"];
    assert_eq!(next["crf"].as_u64(), Some(crf + 1), "{choice:#}");
    assert!(num(next, "ssim") < target, "{choice:#}");
    choice.clone()
}

#[test]
fn target_ssim_gives_the_last_crf_that_reaches_it() {
    let s = Scratch::new();
    let input = fixture("fps60_h264.mp4");
    let choice = search(&s, &input, "0.97", &[]);
    assert_eq!(choice["samples"], 1, "a 2 s input is its own sample");
    let crf = choice["crf"].as_u64().unwrap();

    // Measured independently, as profiles with that CRF and the next.
    let (at, above) = (format!("crf = {crf}"), format!("crf = {}", crf + 1));
    let s = with_profiles(&[
        ("found", "video-720p", &[("crf = 26", at.as_str())]),
        ("above", "video-720p", &[("crf = 26", above.as_str())]),
    ]);
    let doc = bench_json(&s, &["--profile", "found", "--profile", "above", path(&input)]);
    let (found, next) = (
        row(&doc, "found", "fps60_h264.mp4"),
        row(&doc, "above", "fps60_h264.mp4"),
    );
    assert!(num(found, "ssim") >= 0.97, "{found:#}");
    assert!(num(next, "ssim") < 0.97, "{next:#}");
    assert!((num(found, "ssim") - num(&choice, "ssim")).abs() < 0.002);
    // The printed profile id is that of the profile file with the new CRF.
    assert_eq!(choice["new_profile_id"], found["profile_id"]);
}

#[test]
fn target_ssim_samples_a_longer_video() {
    let s = Scratch::new();
    let clip = s.path().join("clip.mp4");
    make_media(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=480x270:rate=30:duration=12",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
        ],
        &clip,
    );
    let choice = search(&s, &clip, "0.96", &["--samples", "2", "--sample-seconds", "2"]);
    assert_eq!(choice["samples"], 2);
    // Keyframes every second: each sample is 2 s, ending before the next keyframe.
    let seconds = num(&choice, "sample_seconds");
    assert!((3.9..=4.2).contains(&seconds), "{choice:#}");
    let evaluations = choice["evaluations"].as_array().unwrap();
    assert!(evaluations.len() <= 8, "{choice:#}");
    let text = s.run(
        &[
            "bench",
            "--target-ssim",
            "0.96",
            "--samples",
            "2",
            "--sample-seconds",
            "2",
            path(&clip),
        ],
        T,
    );
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains(&format!("\ncrf = {}\n", choice["crf"])),
        "{stdout}"
    );
}
