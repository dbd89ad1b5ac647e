//! Drop-to-record latency of the daemon: a 10 s WhatsApp-like voice note (Ogg/Opus, mono
//! 16 kHz, 16 kbps) renamed into `incoming/`, until its record is in the NDJSON outbox.
//! 50 drops, one at a time, after one warm-up drop; reports median and p95.
//!
//! Two producer styles: a manifest written before the media (the recommended order), and no
//! manifest at all with `spool.manifest_grace = "0s"`.
//!
//!     cargo bench --bench latency
//!
//! Needs `ffmpeg` and `espeak-ng` (scripts/deps.sh installs them).

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DROPS: usize = 50;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let notes = make_voice_notes(dir.path(), DROPS + 1);
    let mut summary = Vec::new();
    for (label, manifest, grace) in [
        ("manifest first", true, "500ms"),
        ("no manifest, grace 0s", false, "0s"),
    ] {
        let run_dir = dir.path().join(label.replace([' ', ','], "-"));
        std::fs::create_dir_all(&run_dir).unwrap();
        let latencies = run(&run_dir, &notes, manifest, grace);
        let (median, p95) = (percentile(&latencies, 50.0), percentile(&latencies, 95.0));
        println!(
            "{label:>24}: median {:6.1} ms   p95 {:6.1} ms   min {:6.1} ms   max {:6.1} ms   ({} drops)",
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
    println!("[{}]", summary.join(", "));
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
    run_ok(
        Command::new("espeak-ng")
            .args(["-s", "150", "-w"])
            .arg(&wav)
            .arg(text),
    );
    (0..count)
        .map(|i| {
            let out = dir.join(format!("note{i:03}.ogg"));
            run_ok(
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

fn run_ok(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed");
}

fn run(dir: &Path, notes: &[PathBuf], manifest: bool, grace: &str) -> Vec<Duration> {
    std::fs::write(
        dir.join("mediaspool.toml"),
        format!("[spool]\nmanifest_grace = \"{grace}\"\n"),
    )
    .unwrap();
    let incoming = dir.join("spool/incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_mediaspool"))
            .arg("watch")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("daemon starts"),
    );
    let mut outbox = Outbox::new(dir.join("records.ndjson"));
    let mut latencies = Vec::with_capacity(notes.len() - 1);
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
        if i > 0 {
            latencies.push(took);
        }
    }
    // SAFETY: kill takes no pointers; the pid is our own child, not yet reaped.
    unsafe { libc::kill(daemon.0.id() as i32, libc::SIGTERM) };
    let _ = daemon.0.wait();
    latencies.sort();
    latencies
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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
