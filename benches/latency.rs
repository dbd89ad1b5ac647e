//! Drop-to-record latency of the daemon: a file renamed into `incoming/`, until its record is in
//! the NDJSON outbox.
//!
//!     cargo bench --bench latency              # voice and video
//!     cargo bench --bench latency -- video     # either one
//!
//! - voice: a 10 s WhatsApp-like voice note (Ogg/Opus, mono 16 kHz, 16 kbps), 50 drops one at a
//!   time after one warm-up drop; median and p95. Two producer styles: a manifest written before
//!   the media (the recommended order), and no manifest at all with `spool.manifest_grace = "0s"`.
//!   A third run adds an HTTP sink (Standard Webhooks, signed) to a receiver on 127.0.0.1 that
//!   verifies each signature: drop → accepted by the receiver, and what that adds over the
//!   NDJSON path for the same drop.
//! - video: one 10 s and one 60 s phone-like 1080p30 clip (H.264 High ~12 Mbit/s + AAC), dropped
//!   with its manifest first into a daemon on the default configuration, against the `ffmpeg` CLI
//!   alone with the `video-720p` profile's settings (transcode only: no hash, probe, thumbnail or
//!   verification) and against the shell pipeline on that one file; the three in turn (which
//!   goes first turns each round), seven rounds. Medians of wall and CPU time (user + system:
//!   for the daemon, of it and its workers during the drop) and of the rounds' ratios, with the
//!   lowest and highest wall ratio of the rounds.
//!
//! Needs `ffmpeg` and `espeak-ng` (scripts/deps.sh installs them).

mod support;

// The integration tests' receiver; not all of it is used here.
#[allow(dead_code)]
#[path = "../tests/it/receiver.rs"]
mod receiver;

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use receiver::{Answer, Receiver};
use support::{median_of, ratios, Daemon, Took, VIDEO_720P_ARGS};

const DROPS: usize = 50;
const VIDEO_ROUNDS: usize = 7;
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wants = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    let dir = tempfile::tempdir().expect("temp dir");
    if wants("voice") {
        voice(dir.path());
    }
    if wants("video") {
        for seconds in [10, 60] {
            video(dir.path(), seconds);
        }
    }
}

fn voice(dir: &Path) {
    let notes = make_voice_notes(dir, DROPS + 1);
    let mut summary = Vec::new();
    for (label, manifest, grace) in [
        ("manifest first", true, "500ms"),
        ("no manifest, grace 0s", false, "0s"),
    ] {
        let run_dir = dir.join(label.replace([' ', ','], "-"));
        std::fs::create_dir_all(&run_dir).unwrap();
        let (latencies, _) = run(&run_dir, &notes, manifest, grace, None);
        let (median, p95) = (percentile(&latencies, 50.0), percentile(&latencies, 95.0));
        println!(
            "voice note {label:>24}: median {:6.1} ms   p95 {:6.1} ms   min {:6.1} ms   max {:6.1} ms   ({} drops)",
            ms(median),
            ms(p95),
            ms(percentile(&latencies, 0.0)),
            ms(percentile(&latencies, 100.0)),
            latencies.len()
        );
        summary.push(format!(
            "{{\"case\": \"{label}\", \"median_ms\": {:.1}, \"p95_ms\": {:.1}}}",
            ms(median),
            ms(p95)
        ));
    }
    let receiver = Receiver::start(Some(SECRET), |_, _| Answer::status(204));
    let run_dir = dir.join("http-sink");
    std::fs::create_dir_all(&run_dir).unwrap();
    let (_, accepted) = run(&run_dir, &notes, true, "500ms", Some(&receiver));
    let mut added: Vec<Duration> = accepted.iter().map(|a| a.added).collect();
    let mut total: Vec<Duration> = accepted.iter().map(|a| a.total).collect();
    added.sort();
    total.sort();
    for (label, sorted) in [("drop → accepted (HTTP)", &total), ("HTTP over NDJSON", &added)] {
        println!(
            "voice note {label:>24}: median {:6.1} ms   p95 {:6.1} ms   min {:6.1} ms   max {:6.1} ms   ({} drops)",
            ms(percentile(sorted, 50.0)),
            ms(percentile(sorted, 95.0)),
            ms(percentile(sorted, 0.0)),
            ms(percentile(sorted, 100.0)),
            sorted.len()
        );
    }
    summary.push(format!(
        "{{\"case\": \"HTTP sink, added over NDJSON\", \"median_ms\": {:.1}, \"p95_ms\": {:.1}}}",
        ms(percentile(&added, 50.0)),
        ms(percentile(&added, 95.0))
    ));
    println!("[{}]", summary.join(", "));
}

/// One drop through an HTTP sink: drop → accepted, and how much later than its NDJSON line.
struct Accepted {
    total: Duration,
    added: Duration,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i]
}

/// `count` distinct 10 s voice notes (the same speech; a different comment tag in each, so
/// each has its own bytes and none is a duplicate of another).
fn make_voice_notes(dir: &Path, count: usize) -> Vec<PathBuf> {
    let wav = dir.join("speech.wav");
    let text = "Hello, this is a voice note about my order. The parcel arrived yesterday but the box \
                was damaged, and one of the cups inside is broken. Could you send a replacement, please? \
                Thank you very much, talk to you soon.";
    support::run_ok(
        Command::new("espeak-ng")
            .args(["-s", "150", "-w"])
            .arg(&wav)
            .arg(text),
    );
    (0..count)
        .map(|i| {
            let out = dir.join(format!("note{i:03}.ogg"));
            support::run_ok(
                Command::new("ffmpeg")
                    .args(["-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i"])
                    .arg(&wav)
                    .args([
                        "-t", "10", "-ac", "1", "-ar", "16000", "-c:a", "libopus", "-b:a", "16k",
                    ])
                    .args(["-application", "voip", "-metadata", &format!("comment=drop {i}")])
                    .arg(&out),
            );
            out
        })
        .collect()
}

/// Drops each note in turn into a daemon on `dir`; returns the sorted drop → NDJSON latencies
/// and, with a receiver, each drop's acceptance there.
fn run(
    dir: &Path,
    notes: &[PathBuf],
    manifest: bool,
    grace: &str,
    receiver: Option<&Receiver>,
) -> (Vec<Duration>, Vec<Accepted>) {
    let mut config = format!("[spool]\nmanifest_grace = \"{grace}\"\n");
    if let Some(r) = receiver {
        config.push_str(&format!(
            "[sinks.crm]\nurl = \"{}\"\nsecret = \"{SECRET}\"\n",
            r.url("/hook")
        ));
    }
    std::fs::write(dir.join("mediaspool.toml"), config).unwrap();
    let daemon = Daemon::start(dir);
    let incoming = dir.join("spool/incoming");
    let mut outbox = Outbox::new(dir.join("records.ndjson"));
    let mut latencies = Vec::with_capacity(notes.len() - 1);
    let mut accepted = Vec::new();
    for (i, note) in notes.iter().enumerate() {
        let name = format!("wamid.{i:03}.ogg");
        let staged = incoming.join(format!(".{name}.part"));
        std::fs::copy(note, &staged).unwrap();
        if manifest {
            let meta =
                format!(r#"{{"customer_id": "c-1", "message_id": "wamid.{i:03}", "channel": "whatsapp"}}"#);
            std::fs::write(incoming.join(format!("{name}.meta.json")), meta).unwrap();
        }
        let start = Instant::now();
        std::fs::rename(&staged, incoming.join(&name)).unwrap();
        outbox.wait_for(&name, Duration::from_secs(60));
        let took = start.elapsed();
        let arrived = receiver.map(|r| arrival(r, &name, Duration::from_secs(60)) - start);
        if i > 0 {
            latencies.push(took);
            if let Some(total) = arrived {
                accepted.push(Accepted {
                    total,
                    added: total.saturating_sub(took),
                });
            }
        }
    }
    daemon.stop();
    latencies.sort();
    (latencies, accepted)
}

/// When the receiver took in the record of `name` (it accepts every request).
fn arrival(receiver: &Receiver, name: &str, limit: Duration) -> Instant {
    let needle = format!("\"file_name\":\"{name}\"");
    let start = Instant::now();
    loop {
        let log = receiver.log.lock().unwrap();
        if let Some(r) = log
            .requests
            .iter()
            .find(|r| String::from_utf8_lossy(&r.body).contains(&needle))
        {
            return r.at;
        }
        drop(log);
        assert!(start.elapsed() < limit, "{name} not accepted");
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Times a command to completion (its CPU from the kernel's accounting of waited children).
fn took(mut cmd: Command) -> Took {
    let (start, cpu) = (Instant::now(), support::children_cpu_seconds());
    support::run_ok(&mut cmd);
    Took {
        wall: start.elapsed().as_secs_f64(),
        cpu: support::children_cpu_seconds() - cpu,
    }
}

fn video(dir: &Path, seconds: u32) {
    let work = dir.join(format!("video-{seconds}s"));
    let inputs = work.join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    let clip = work.join("clip.mp4");
    support::phone_clip(&clip, seconds, 1);
    // Other bytes for every drop (the daemon would find a duplicate otherwise); drop 0 warms up.
    let copies: Vec<PathBuf> = (0..=VIDEO_ROUNDS)
        .map(|round| {
            let copy = inputs.join(format!("wamid.v{round}.mp4"));
            support::distinct_copy(&clip, &copy, &format!("drop {round}"));
            copy
        })
        .collect();

    let spool = work.join("daemon");
    let daemon = Daemon::start(&spool);
    let mut outbox = Outbox::new(spool.join("records.ndjson"));
    let incoming = spool.join("spool/incoming");
    let drop_file = |outbox: &mut Outbox, copy: &Path| -> Took {
        let name = copy.file_name().unwrap().to_string_lossy().to_string();
        let staged = incoming.join(format!(".{name}.part"));
        std::fs::copy(copy, &staged).unwrap();
        let meta = format!(r#"{{"customer_id": "c-1", "message_id": "{name}", "channel": "whatsapp"}}"#);
        std::fs::write(incoming.join(format!("{name}.meta.json")), meta).unwrap();
        let (start, cpu) = (Instant::now(), support::process_tree_cpu_seconds(daemon.0.id()));
        std::fs::rename(&staged, incoming.join(&name)).unwrap();
        outbox.wait_for(&name, Duration::from_secs(600));
        Took {
            wall: start.elapsed().as_secs_f64(),
            cpu: support::process_tree_cpu_seconds(daemon.0.id()) - cpu,
        }
    };
    drop_file(&mut outbox, &copies[0]);

    let (mut ours, mut cli, mut shell) = (Vec::new(), Vec::new(), Vec::new());
    for (round, copy) in copies.iter().enumerate().skip(1) {
        // Which of the three goes first turns with each round, so none always runs on a
        // machine warmed (or slowed) by the one before it.
        for turn in 0..3 {
            match (round + turn) % 3 {
                0 => ours.push(drop_file(&mut outbox, copy)),
                1 => {
                    let mut alone = support::ffmpeg();
                    alone
                        .arg("-i")
                        .arg(&clip)
                        .args(VIDEO_720P_ARGS.split_whitespace())
                        .arg(work.join("cli.mp4"));
                    cli.push(took(alone));
                }
                _ => {
                    let one = work.join(format!("shell{round}"));
                    let one_in = one.join("in");
                    std::fs::create_dir_all(&one_in).unwrap();
                    std::fs::hard_link(copy, one_in.join(copy.file_name().unwrap())).unwrap();
                    shell.push(took(support::baseline(
                        &one_in,
                        &one,
                        ("VIDEO_ARGS", VIDEO_720P_ARGS),
                    )));
                }
            }
        }
    }
    daemon.stop();

    let (wall, cpu) = (Took::wall, Took::cpu);
    println!(
        "video {seconds} s 1080p, drop → record ({VIDEO_ROUNDS} rounds, medians): mediaspool watch {:.2} s (CPU {:.2} s) | \
         ffmpeg CLI alone {:.2} s (CPU {:.2} s), ours / CLI wall {}, CPU {:.2}x | \
         shell pipeline {:.2} s (CPU {:.2} s), shell / ours wall {}, CPU {:.2}x",
        median_of(&ours, wall),
        median_of(&ours, cpu),
        median_of(&cli, wall),
        median_of(&cli, cpu),
        ratios(&ours, &cli, wall).summary(2, "x"),
        ratios(&ours, &cli, cpu).median,
        median_of(&shell, wall),
        median_of(&shell, cpu),
        ratios(&shell, &ours, wall).summary(2, "x"),
        ratios(&shell, &ours, cpu).median,
    );
}

/// Follows the NDJSON outbox as it grows.
struct Outbox {
    path: PathBuf,
    offset: u64,
}

impl Outbox {
    fn new(path: PathBuf) -> Outbox {
        Outbox { path, offset: 0 }
    }

    fn wait_for(&mut self, name: &str, limit: Duration) {
        let needle = format!("\"file_name\":\"{name}\"");
        let start = Instant::now();
        loop {
            if let Ok(mut file) = std::fs::File::open(&self.path) {
                file.seek(SeekFrom::Start(self.offset)).unwrap();
                let mut reader = BufReader::new(file);
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap() > 0 {
                    if !line.ends_with('\n') {
                        break;
                    }
                    self.offset += line.len() as u64;
                    if line.contains(&needle) {
                        return;
                    }
                    line.clear();
                }
            }
            assert!(start.elapsed() < limit, "no record for {name}");
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}
