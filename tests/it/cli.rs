//! The command line as a user meets it: exit codes, configuration errors, probe output.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::spool_support::{wav_header, WavFormat};

const T: Duration = Duration::from_secs(60);

#[test]
fn a_bad_file_does_not_stop_the_batch_and_sets_exit_code_1() {
    let s = Scratch::new();
    let bad = s.path().join("voice.ogg");
    std::fs::write(&bad, b"OggS but not really an ogg file at all").unwrap();
    let out = s.process(&[bad.clone(), fixture("voice_note.ogg")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("voice.ogg: rejected (unreadable)"), "{stderr}");
    let records = s.records();
    assert_eq!(record_for(&records, "voice.ogg")["event"], "media.rejected");
    assert_eq!(record_for(&records, "voice_note.ogg")["event"], "media.stored");
}

#[test]
fn all_good_files_exit_0_and_config_comes_from_file_and_environment() {
    let s = Scratch::new();
    std::fs::write(
        s.path().join("alt.toml"),
        "[records]\noutbox = \"out/alt.ndjson\"\n[store]\nroot = \"objects\"\n",
    )
    .unwrap();
    let voice = fixture("voice_note.ogg");
    // -c after the subcommand, and an environment override on top of the file.
    let out = s.run_env(
        &["process", voice.to_str().unwrap(), "-c", "alt.toml"],
        &[("MEDIASPOOL_ROUTING__AUDIO", "music")],
        T,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = read_records(&s.path().join("out/alt.ndjson"));
    assert_eq!(records[0]["media"]["profile"], "music");
    assert!(s
        .path()
        .join("objects")
        .join(records[0]["media"]["key"].as_str().unwrap())
        .is_file());
}

#[test]
fn configuration_problems_exit_2_and_are_listed_together() {
    let s = Scratch::new();
    std::fs::write(
        s.path().join("mediaspool.toml"),
        "[routing]\naudio = \"nope\"\nimage = \"voice\"\n",
    )
    .unwrap();
    let out = s.run(&["process", fixture("voice_note.ogg").to_str().unwrap()], T);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("routing.audio = \"nope\": no such profile"),
        "{stderr}"
    );
    assert!(
        stderr.contains("routing.image = \"voice\": that profile makes audio, not image"),
        "{stderr}"
    );
    assert!(
        !s.path().join("records.ndjson").exists(),
        "nothing processed with a bad config"
    );

    // Every problem at once: unknown keys and wrong types in every section, from the file and
    // the environment, and what validation finds in the rest.
    std::fs::write(
        s.path().join("mediaspool.toml"),
        "colour = 1\n[spool]\njobz = 3\nquiet_period = \"soon\"\n[store]\npath_style = \"yes\"\n\
         [routing]\naudio = \"nope\"\n[policy]\nmax_input_bytes = true\n",
    )
    .unwrap();
    let out = s.run_env(&["check"], &[("MEDIASPOOL_SPOOL__JOBS", "many")], T);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for problem in [
        "colour: unknown field `colour`",
        "spool.jobz: unknown field `jobz`",
        "spool.quiet_period: invalid value",
        "spool.jobs (from MEDIASPOOL_SPOOL__JOBS): invalid type: string \"many\"",
        "store.path_style: invalid type",
        "policy.max_input_bytes: invalid type",
        "routing.audio = \"nope\": no such profile",
    ] {
        assert!(stderr.contains(problem), "{problem:?} in {stderr}");
    }

    let out = s.run(&["check", "-c", "missing.toml"], T);
    assert_eq!(out.status.code(), Some(2));
    let out = s.run(&["frobnicate"], T);
    assert_eq!(out.status.code(), Some(2), "bad usage");
}

#[test]
fn check_lists_profiles_with_their_ids() {
    let s = Scratch::new();
    let out = s.run(&["check"], T);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for p in ["voice", "music", "video-720p", "video-480p", "image"] {
        assert!(stdout.contains(&format!("profile {p}")), "{stdout}");
    }
}

#[test]
fn profiles_dir_overrides_a_built_in_profile_and_changes_its_id() {
    let s = Scratch::new();
    std::fs::create_dir(s.path().join("profiles")).unwrap();
    let voice = std::fs::read_to_string(repo().join("profiles/voice.toml")).unwrap();
    std::fs::write(
        s.path().join("profiles/voice.toml"),
        voice.replace("bitrate_kbps = 32", "bitrate_kbps = 24"),
    )
    .unwrap();
    std::fs::write(s.path().join("mediaspool.toml"), "profiles_dir = \"profiles\"\n").unwrap();
    let out = s.process(&[fixture("voice_note.ogg")]);
    assert_eq!(out.status.code(), Some(0));
    let r = &s.records()[0];
    let out = s.stored(r["media"]["key"].as_str().unwrap());
    assert_eq!(streams_of(&ffprobe(&out), "audio")[0]["bit_rate"], "24000");

    let plain = Scratch::new();
    plain.process(&[fixture("voice_note.ogg")]);
    assert_ne!(
        plain.records()[0]["media"]["profile_id"],
        r["media"]["profile_id"]
    );
    assert_ne!(plain.records()[0]["media"]["key"], r["media"]["key"]);
}

#[test]
fn probe_prints_json_per_file_and_flags_failures() {
    let s = Scratch::new();
    let empty = s.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let out = s.run(
        &[
            "probe",
            fixture("cover_art.mp3").to_str().unwrap(),
            empty.to_str().unwrap(),
        ],
        T,
    );
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["kind"], "audio");
    assert!(lines[0]["streams"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["kind"] == "cover"));
    assert_eq!(lines[1]["error"]["code"], "empty-file");
    assert_documented(&lines[1]["error"]);
}

/// Bytes with no structure at all, as an encrypted or compressed document has.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[test]
fn a_name_alone_does_not_make_a_document_media() {
    // libav's text-art demuxers claim any `.bin`, `.nfo` or `.asc` by its extension and would
    // render it as a video; such files are documents, kept as they came.
    let s = Scratch::new();
    let mut args = vec!["probe".to_string()];
    for (i, name) in ["firmware.bin", "release.nfo", "key.asc"].iter().enumerate() {
        let path = s.path().join(name);
        std::fs::write(&path, noise(20 << 10, i as u64 + 1)).unwrap();
        args.push(path.to_string_lossy().into_owned());
    }
    // A signature libav trusts only as far as an extension (TAK) still makes media when the
    // name agrees, and so does an MP3 whose frames libav barely recognises.
    for name in [
        "other/mutagen__silence-44-s.tak",
        "broken/taglib__invalid-frames1.mp3",
    ] {
        args.push(corpus().join(name).to_string_lossy().into_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.run(&args, T);
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{}", String::from_utf8_lossy(&out.stderr));
    for doc in &lines[..3] {
        assert_eq!(doc["kind"], "other", "{doc}");
        assert_eq!(doc["mime"], "application/octet-stream", "{doc}");
    }
    for media in &lines[3..] {
        assert_eq!(media["kind"], "audio", "{media}");
    }
    assert_eq!(out.status.code(), Some(0));
}

/// A stereo 64-bit float WAV at 8 kHz holding `frames` sample pairs from `sample(i)`.
fn float64_wav(frames: usize, sample: impl Fn(usize) -> f64) -> Vec<u8> {
    let mut wav = wav_header(WavFormat::Float, 2, 8000, 64, (frames * 16) as u32);
    for i in 0..frames * 2 {
        wav.extend_from_slice(&sample(i).to_le_bytes());
    }
    wav
}

#[test]
fn float_audio_holding_nan_infinities_or_huge_values_is_encoded_not_a_crash() {
    // Found by fuzzing: such samples made LAME fail an assertion and abort the worker, twice,
    // and the file was quarantined as worker-crashed.
    let s = Scratch::new();
    let wav = s.path().join("damaged_float.wav");
    let odd = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e300,
        -1e30,
        f64::MIN_POSITIVE,
    ];
    let bytes = float64_wav(16_000, |i| {
        if i % 7 == 0 {
            odd[i / 7 % odd.len()]
        } else {
            (i as f64 * 0.05).sin() * 0.5
        }
    });
    std::fs::write(&wav, bytes).unwrap();
    let records = s.process_ok(&[wav]);
    let r = record_for(&records, "damaged_float.wav");
    assert_eq!(r["event"], "media.stored", "{r}");
    assert_eq!(r["media"]["mime"], "audio/mpeg");
    let d = r["media"]["duration_ms"].as_u64().unwrap();
    assert!((1900..=2100).contains(&d), "{d} ms");
}

/// Integrated loudness (LUFS) of a file, by FFmpeg's ebur128 filter in the CLI.
fn integrated_lufs(path: &std::path::Path) -> f64 {
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "info", "-i"])
        .arg(path)
        .args(["-af", "ebur128", "-f", "null", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let summary = text.rsplit("Summary:").next().unwrap();
    let line = summary
        .lines()
        .find(|l| l.trim_start().starts_with("I:"))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_profile_with_loudness_brings_quiet_speech_to_its_target() {
    let s = Scratch::new();
    let quiet = s.path().join("quiet.ogg");
    let voice = fixture("voice_note.ogg");
    make_media(
        &[
            "-i",
            voice.to_str().unwrap(),
            "-af",
            "volume=-24dB",
            "-c:a",
            "libopus",
            "-b:a",
            "24k",
        ],
        &quiet,
    );
    std::fs::create_dir(s.path().join("profiles")).unwrap();
    let voice = std::fs::read_to_string(repo().join("profiles/voice.toml")).unwrap();
    let leveled =
        format!("{voice}\n[loudness]\nintegrated_lufs = -16.0\ntrue_peak_db = -1.5\nrange_lu = 11.0\n");
    std::fs::write(s.path().join("profiles/voice-leveled.toml"), leveled).unwrap();
    std::fs::write(
        s.path().join("mediaspool.toml"),
        "profiles_dir = \"profiles\"\n[routing]\naudio = \"voice-leveled\"\n",
    )
    .unwrap();
    let out = s.process(std::slice::from_ref(&quiet));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = &s.records()[0];
    assert_eq!(r["media"]["profile"], "voice-leveled");
    let before = integrated_lufs(&quiet);
    let after = integrated_lufs(&s.stored(r["media"]["key"].as_str().unwrap()));
    assert!(before < -35.0, "the input is quiet: {before} LUFS");
    assert!((after + 16.0).abs() < 2.0, "output at {after} LUFS, target -16");
}

#[test]
fn lame_quality_reaches_the_encoder() {
    let plain = Scratch::new();
    plain.process(&[fixture("voice_note.ogg")]);
    let fast = Scratch::new();
    std::fs::create_dir(fast.path().join("profiles")).unwrap();
    let voice = std::fs::read_to_string(repo().join("profiles/voice.toml")).unwrap();
    std::fs::write(
        fast.path().join("profiles/voice.toml"),
        voice.replace("channels = 1", "channels = 1\nlame_quality = 9"),
    )
    .unwrap();
    std::fs::write(
        fast.path().join("mediaspool.toml"),
        "profiles_dir = \"profiles\"\n",
    )
    .unwrap();
    fast.process(&[fixture("voice_note.ogg")]);
    let (a, b) = (&plain.records()[0], &fast.records()[0]);
    let bytes = |s: &Scratch, r: &serde_json::Value| {
        std::fs::read(s.stored(r["media"]["key"].as_str().unwrap())).unwrap()
    };
    assert_ne!(
        bytes(&plain, a),
        bytes(&fast, b),
        "a different LAME quality makes different bytes"
    );
    assert_eq!(a["media"]["duration_ms"], b["media"]["duration_ms"]);
}

#[test]
fn animated_gifs_become_video_and_vector_pictures_and_animated_webp_are_kept_as_they_are() {
    let s = Scratch::new();
    let animation = |name: &str, codec: &[&str]| {
        let path = s.path().join(name);
        let mut args = vec!["-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=2"];
        args.extend_from_slice(codec);
        make_media(&args, &path);
        path
    };
    let gif = animation("dance.gif", &[]);
    let sticker = animation("sticker.webp", &["-c:v", "libwebp_anim", "-loop", "0"]);
    let svg = s.path().join("logo.svg");
    std::fs::write(&svg, r#"<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50"><rect width="100" height="50" fill="red"/></svg>"#).unwrap();
    let still = s.path().join("still.gif");
    image::RgbImage::from_pixel(40, 30, image::Rgb([0, 128, 255]))
        .save(&still)
        .unwrap();
    let records = s.process_ok(&[gif, svg.clone(), still, sticker.clone()]);
    let anim = record_for(&records, "dance.gif");
    assert_eq!(anim["media"]["kind"], "video");
    assert_eq!(anim["media"]["mime"], "video/mp4");
    assert_eq!(anim["source"]["mime"], "image/gif");
    let d = anim["media"]["duration_ms"].as_u64().unwrap();
    assert!((1800..=2100).contains(&d), "{d} ms");
    let logo = record_for(&records, "logo.svg");
    assert_eq!(logo["media"]["kind"], "other");
    assert_eq!(logo["media"]["mime"], "image/svg+xml");
    assert_eq!(
        std::fs::read(s.stored(logo["media"]["key"].as_str().unwrap())).unwrap(),
        std::fs::read(&svg).unwrap()
    );
    let still = record_for(&records, "still.gif");
    assert_eq!(still["media"]["kind"], "image", "a one-frame GIF is a picture");
    assert_eq!(still["media"]["mime"], "image/jpeg");
    let anim = record_for(&records, "sticker.webp");
    assert_eq!(anim["media"]["kind"], "other", "kept with its animation");
    assert_eq!(anim["media"]["mime"], "image/webp");
    assert_eq!(
        (anim["media"]["width"].as_u64(), anim["media"]["height"].as_u64()),
        (Some(160), Some(120))
    );
    assert_eq!(
        std::fs::read(s.stored(anim["media"]["key"].as_str().unwrap())).unwrap(),
        std::fs::read(&sticker).unwrap()
    );
}
