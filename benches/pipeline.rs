//! mediaspool against the shell pipeline people write instead (`../shared/baseline/pipeline.sh`:
//! sha256sum + ffprobe + ffmpeg + ffprobe per file, 2 at a time), on the same inputs, in the
//! same run, with the baseline's ffmpeg settings equal to the profile's.
//!
//!     cargo bench --bench pipeline                 # voice, video, duplicate, metrics
//!     cargo bench --bench pipeline -- memory       # peak memory on a 1 GB video (slow)
//!     cargo bench --bench pipeline -- voice video  # any subset
//!
//! - voice: 60 WhatsApp-like voice notes (espeak-ng speech, Ogg/Opus mono 16 kHz 16 kbps,
//!   5–60 s), twice: lengths spread evenly, and mostly short as real voice notes are →
//!   throughput of `mediaspool process` and of the baseline, and the encoder's own limit (one
//!   ffmpeg per core, each over half of the audio at once).
//! - video: batches of 1, 3, 4 and 8 phone-like 1080p30 H.264 + AAC clips of 8 s → the same,
//!   with probe, thumbnail, hash and verification included on our side.
//! - duplicate: a 100 MB file already stored, renamed in again under new names (each with its
//!   manifest written first) → time until its `media.duplicate` record is in the outbox
//!   (daemon, default settings).
//! - metrics: what `[http]` costs: the mostly-short voice notes through the daemon with `[http]`
//!   off and on (its `/metrics` scraped every second), in turn, nine rounds → wall time and the
//!   daemon's CPU time (its workers included) of each, and the ratios on / off. CPU time varies
//!   less between rounds than wall time on a busy machine, so it bounds a small cost better.
//! - memory: peak resident memory of `mediaspool process` (its largest process) on a 1 GB
//!   1080p video, and on a 4K HEVC 10-bit clip beside the ffmpeg CLI's.
//!
//! Set `MEDIASPOOL_BASELINE` to the baseline script if it is not at `../shared/baseline/`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{ffmpeg, median, median_of, ratios, run_ok, Took};

const ROUNDS: usize = 3;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wants = |name: &str| {
        if args.is_empty() {
            name != "memory"
        } else {
            args.iter().any(|a| a == name)
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    if wants("voice") {
        voice(dir.path(), Mix::Uniform);
        voice(dir.path(), Mix::MostlyShort);
    }
    if wants("video") {
        video(dir.path());
    }
    if wants("duplicate") {
        duplicate(dir.path());
    }
    if wants("metrics") {
        metrics_cost(dir.path());
    }
    if wants("memory") {
        memory(dir.path());
    }
}

fn timed(mut cmd: Command) -> Duration {
    let start = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("command runs");
    let took = start.elapsed();
    // `process` exits 1 when some inputs were rejected; none are here.
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// Medians over the rounds: `mediaspool process` (a batch, start-up included), a running
/// `mediaspool watch` (files renamed into its spool together, until the last record), the
/// baseline, and the per-round ratios baseline / ours.
struct Comparison {
    process: f64,
    daemon: f64,
    baseline: f64,
    ratio_process: f64,
    ratio_daemon: f64,
}

/// Runs ours (both ways) and the baseline in turn, each round on fresh output directories.
fn compare(work: &Path, inputs: &Path, profile_args: (&str, &str)) -> Comparison {
    let files: Vec<PathBuf> = {
        let mut f: Vec<PathBuf> = std::fs::read_dir(inputs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        f.sort();
        f
    };
    let (mut process, mut daemon, mut baseline, mut ratio_process, mut ratio_daemon) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let out = work.join(format!("ours{round}"));
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("mediaspool.toml"), "[spool]\njobs = 2\n").unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediaspool"));
        cmd.arg("process").args(&files).current_dir(&out);
        let a = timed(cmd).as_secs_f64();
        let d = daemon_run(&work.join(format!("daemon{round}")), &files, "").wall;
        let b = timed(support::baseline(
            inputs,
            &work.join(format!("base{round}")),
            profile_args,
        ))
        .as_secs_f64();
        process.push(a);
        daemon.push(d);
        baseline.push(b);
        ratio_process.push(b / a);
        ratio_daemon.push(b / d);
    }
    Comparison {
        process: median(process),
        daemon: median(daemon),
        baseline: median(baseline),
        ratio_process: median(ratio_process),
        ratio_daemon: median(ratio_daemon),
    }
}

/// A running daemon (default settings, no manifests expected, `config` added): after a warm-up
/// file, every input is renamed into `incoming/` at once. Wall: seconds from the renames until
/// the last record is in the outbox. CPU: the daemon's and its workers' over the daemon's whole
/// life (start, warm-up, the batch and the shutdown).
fn daemon_run(dir: &Path, files: &[PathBuf], config: &str) -> Took {
    let incoming = dir.join("spool/incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    std::fs::write(
        dir.join("mediaspool.toml"),
        format!("[spool]\njobs = 2\nmanifest_grace = \"0s\"\n{config}"),
    )
    .unwrap();
    let cpu_before = support::children_cpu_seconds();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mediaspool"))
        .arg("watch")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let outbox = dir.join("records.ndjson");
    let lines = || std::fs::read_to_string(&outbox).map_or(0, |t| t.lines().count());
    let wait_for = |n: usize, since: Instant| {
        while lines() < n {
            assert!(
                since.elapsed() < Duration::from_secs(600),
                "daemon did not finish"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        since.elapsed()
    };
    // A document of its own, not a copy of an input: a copy would make that input a duplicate,
    // recorded at once without any media work.
    let warm = incoming.join(".warm-up.txt");
    std::fs::write(&warm, b"warm-up\n").unwrap();
    std::fs::rename(&warm, incoming.join("warm-up.txt")).unwrap();
    wait_for(1, Instant::now());
    let staged: Vec<(PathBuf, PathBuf)> = files
        .iter()
        .map(|f| {
            let name = format!("in-{}", f.file_name().unwrap().to_string_lossy());
            let staged = incoming.join(format!(".{name}"));
            std::fs::copy(f, &staged).unwrap();
            (staged, incoming.join(name))
        })
        .collect();
    let start = Instant::now();
    for (from, to) in &staged {
        std::fs::rename(from, to).unwrap();
    }
    let took = wait_for(files.len() + 1, start);
    // SAFETY: kill takes no pointers; the pid is our own child, not yet reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    Took {
        wall: took.as_secs_f64(),
        cpu: support::children_cpu_seconds() - cpu_before,
    }
}

fn report(what: &str, c: &Comparison) -> String {
    format!(
        "{what} | mediaspool process {:.2} s ({:.2}x) | mediaspool watch {:.2} s ({:.2}x) | baseline {:.2} s",
        c.process, c.ratio_process, c.daemon, c.ratio_daemon, c.baseline
    )
}

/// How the 60 voice notes' lengths spread over 5–60 s.
#[derive(Clone, Copy)]
enum Mix {
    /// Evenly: as many 55 s notes as 5 s ones (mean 32.5 s).
    Uniform,
    /// Evenly on a log scale, as real voice notes go, most of them short (median 17 s, mean
    /// 22 s).
    MostlyShort,
}

impl Mix {
    fn seconds(self, i: u32) -> f64 {
        let at = f64::from(i) / 59.0;
        match self {
            Mix::Uniform => 5.0 + 55.0 * at,
            Mix::MostlyShort => 5.0 * 12f64.powf(at),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mix::Uniform => "5–60 s evenly",
            Mix::MostlyShort => "5–60 s mostly short",
        }
    }
}

/// 60 voice notes spread as `mix` says, in `work/voice-in`; returns that directory and the
/// seconds of audio in all.
fn voice_notes(work: &Path, mix: Mix) -> (PathBuf, f64) {
    let inputs = work.join("voice-in");
    support::voice_notes(&inputs, 60, |i| mix.seconds(i));
    let total: f64 = (0..60).map(|i| mix.seconds(i)).sum();
    (inputs, total)
}

fn voice(root: &Path, mix: Mix) {
    let work = &root.join(format!("voice-{}", mix as u8));
    let (inputs, total) = voice_notes(work, mix);
    // The encoder's own limit: all the audio through one ffmpeg per core, no per-file costs.
    // Notes grow with their number: odd and even ones split the audio into equal halves.
    let list = work.join("voice-list.txt");
    let list_b = work.join("voice-list-b.txt");
    let entry = |i: u32| format!("file '{}'", inputs.join(format!("note{i:02}.ogg")).display());
    let half = |parity: u32| (0..60).filter(|i| i % 2 == parity).map(entry).collect::<Vec<_>>();
    std::fs::write(&list, half(0).join("\n")).unwrap();
    std::fs::write(&list_b, half(1).join("\n")).unwrap();
    let script = format!(
        "ffmpeg -nostdin -v error -y -f concat -safe 0 -i {a} -vn -c:a libmp3lame -ac 1 -ar 22050 -b:a 32k {o}/a.mp3 & \
         ffmpeg -nostdin -v error -y -f concat -safe 0 -i {b} -vn -c:a libmp3lame -ac 1 -ar 22050 -b:a 32k {o}/b.mp3; wait",
        a = list.display(),
        b = list_b.display(),
        o = work.display()
    );
    let mut limit = Command::new("bash");
    limit.args(["-c", &script]);
    let limit = timed(limit).as_secs_f64();
    let c = compare(
        work,
        &inputs,
        ("AUDIO_ARGS", "-vn -c:a libmp3lame -ac 1 -ar 22050 -b:a 32k"),
    );
    println!(
        "{}",
        report(
            &format!("voice notes: 60 files, {}, {total:.0} s of audio", mix.name()),
            &c
        )
    );
    println!(
        "  encoder limit (two ffmpeg over all the audio, no per-file work) {limit:.2} s: baseline at {:.0} % of it, \
         mediaspool process at {:.0} %, watch at {:.0} %",
        100.0 * limit / c.baseline,
        100.0 * limit / c.process,
        100.0 * limit / c.daemon
    );
}

/// The daemon on the same voice notes with `[http]` off and on, its metrics scraped every
/// second while on; the two in turn (which goes first alternates), nine rounds.
fn metrics_cost(root: &Path) {
    const ROUNDS: usize = 9;
    let work = &root.join("metrics");
    let (inputs, _) = voice_notes(work, Mix::MostlyShort);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&inputs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let (mut off, mut on, mut scrapes) = (Vec::new(), Vec::new(), 0);
    for round in 0..ROUNDS {
        let run_off = || daemon_run(&work.join(format!("off{round}")), &files, "");
        let run_on = |scrapes: &mut usize| {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let scraper = {
                let stop = std::sync::Arc::clone(&stop);
                std::thread::spawn(move || scrape_every_second(port, &stop))
            };
            let run = daemon_run(
                &work.join(format!("on{round}")),
                &files,
                &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"),
            );
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            *scrapes += scraper.join().unwrap();
            run
        };
        let (a, b) = if round % 2 == 0 {
            let a = run_off();
            (a, run_on(&mut scrapes))
        } else {
            let b = run_on(&mut scrapes);
            (run_off(), b)
        };
        off.push(a);
        on.push(b);
    }
    assert!(scrapes > 0, "no scrape of /metrics succeeded");
    let (wall, cpu) = (Took::wall, Took::cpu);
    println!(
        "metrics: 60 voice notes through watch, median of {ROUNDS} rounds ({scrapes} scrapes) | \
         [http] off {:.2} s, CPU {:.2} s | on, scraped every second {:.2} s, CPU {:.2} s | \
         on / off wall {}, CPU {}",
        median_of(&off, wall),
        median_of(&off, cpu),
        median_of(&on, wall),
        median_of(&on, cpu),
        ratios(&on, &off, wall).summary(3, ""),
        ratios(&on, &off, cpu).summary(3, ""),
    );
}

/// GETs `/metrics` once a second until `stop`; returns how many answered 200.
fn scrape_every_second(port: u16, stop: &std::sync::atomic::AtomicBool) -> usize {
    use std::io::{Read, Write};
    let mut ok = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            let mut answer = Vec::new();
            if conn.read_to_end(&mut answer).is_ok() && answer.starts_with(b"HTTP/1.1 200") {
                ok += 1;
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    ok
}

/// Batches of phone-like clips: one (a customer's video alone), three and four (jobs meet
/// the cores unevenly and evenly), and eight.
fn video(work: &Path) {
    let clips = work.join("clips");
    std::fs::create_dir_all(&clips).unwrap();
    for batch in [1, 3, 4, 8] {
        let inputs = work.join(format!("video-in-{batch}"));
        std::fs::create_dir_all(&inputs).unwrap();
        for i in 0..batch {
            let clip = clips.join(format!("clip{i}.mp4"));
            if !clip.exists() {
                support::phone_clip(&clip, 8, i);
            }
            std::fs::hard_link(&clip, inputs.join(format!("clip{i}.mp4"))).unwrap();
        }
        let c = compare(
            &work.join(format!("video-{batch}")),
            &inputs,
            ("VIDEO_ARGS", support::VIDEO_720P_ARGS),
        );
        println!("{}", report(&format!("video: {batch} clips of 8 s 1080p30"), &c));
    }
}

fn duplicate(work: &Path) {
    let dir = work.join("dup");
    let incoming = dir.join("spool/incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    // Default settings; each copy comes with its manifest written first, as an integration
    // that knows the message's metadata does.
    // 100 MB of pseudo-random bytes (kept as is: kind other).
    let mut bytes = vec![0u8; 100 * 1024 * 1024];
    let mut x = 0x2545f4914f6cdd1du64;
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let source = dir.join("big.bin");
    std::fs::write(&source, &bytes).unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_mediaspool"))
        .arg("watch")
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let outbox = dir.join("records.ndjson");
    let drop_and_wait = |name: &str| -> Duration {
        let staged = incoming.join(format!(".{name}"));
        std::fs::copy(&source, &staged).unwrap();
        let manifest = format!(r#"{{"message_id": "wamid.{name}", "customer_id": "c-1"}}"#);
        std::fs::write(incoming.join(format!("{name}.meta.json")), manifest).unwrap();
        let start = Instant::now();
        std::fs::rename(&staged, incoming.join(name)).unwrap();
        let needle = format!("\"file_name\":\"{name}\"");
        loop {
            if std::fs::read_to_string(&outbox).is_ok_and(|t| t.contains(&needle)) {
                return start.elapsed();
            }
            assert!(start.elapsed() < Duration::from_secs(60), "no record for {name}");
            std::thread::sleep(Duration::from_micros(500));
        }
    };
    let first = drop_and_wait("first.bin");
    let mut times: Vec<f64> = (0..10)
        .map(|i| drop_and_wait(&format!("copy{i}.bin")).as_secs_f64())
        .collect();
    // SAFETY: kill takes no pointers; the pid is our own child, not yet reaped.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let _ = daemon.wait();
    let records = std::fs::read_to_string(&outbox).unwrap();
    assert_eq!(
        records.matches("\"media.duplicate\"").count(),
        10,
        "every copy is a duplicate"
    );
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "duplicate of a 100 MB file: record after median {:.3} s, max {:.3} s (10 copies; the first, stored, {:.3} s)",
        times[5],
        times[9],
        first.as_secs_f64()
    );
}

fn memory(work: &Path) {
    let dir = work.join("mem");
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("big.mp4");
    // ~1 GB: 1080p30 H.264 at 50 Mbit/s with grain, for 160 s, plus AAC.
    run_ok(
        ffmpeg()
            .args([
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=1920x1080:rate=30:duration=160,noise=alls=10:allf=t",
            ])
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:duration=160:sample_rate=48000",
            ])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-b:v",
                "50M",
                "-maxrate",
                "50M",
                "-bufsize",
                "50M",
            ])
            .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-shortest"])
            .arg(&big),
    );
    let size = std::fs::metadata(&big).unwrap().len();
    let mut ours = Command::new(env!("CARGO_BIN_EXE_mediaspool"));
    ours.arg("process").arg(&big).current_dir(&dir);
    let (mb, secs) = peak_rss(ours);
    println!(
        "memory: {:.0} MB video, 160 s 1080p30 → 720p | peak RSS {mb:.0} MB (largest process) | {secs:.1} s",
        size as f64 / 1e6,
    );

    // A phone's 4K HEVC 10-bit: the decoder's reference frames (25 MB each) dominate; the
    // ffmpeg CLI doing the same transcode, single-threaded, for comparison.
    let uhd = dir.join("uhd.mp4");
    run_ok(
        ffmpeg()
            .args(["-f", "lavfi", "-i", "testsrc2=size=3840x2160:rate=30:duration=3"])
            .args([
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p10le",
            ])
            .args(["-x265-params", "log-level=none", "-tag:v", "hvc1"])
            .arg(&uhd),
    );
    let uhd_dir = dir.join("uhd");
    std::fs::create_dir_all(&uhd_dir).unwrap();
    let mut ours = Command::new(env!("CARGO_BIN_EXE_mediaspool"));
    ours.arg("process").arg(&uhd).current_dir(&uhd_dir);
    let (mb, _) = peak_rss(ours);
    let mut cli = ffmpeg();
    cli.args(["-threads", "1", "-i"]).arg(&uhd);
    cli.args([
        "-vf",
        "scale=1280:720",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-threads",
        "1",
    ]);
    cli.arg(uhd_dir.join("cli.mp4"));
    let (cli_mb, _) = peak_rss(cli);
    println!("memory: 3 s 4K HEVC 10-bit → 720p | peak RSS {mb:.0} MB | the ffmpeg CLI, same transcode: {cli_mb:.0} MB");
}

/// Peak resident memory of a command's largest process, in MB, and its wall time in seconds.
fn peak_rss(cmd: Command) -> (f64, f64) {
    let program = cmd.get_program().to_owned();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M %e"])
        .arg(program)
        .args(cmd.get_args())
        .current_dir(cmd.get_current_dir().unwrap_or(Path::new(".")))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("/usr/bin/time runs (Debian package time)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default().to_string();
    let mut parts = last.split_whitespace();
    let kb: f64 = parts.next().and_then(|v| v.parse().ok()).expect("max RSS");
    let secs: f64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (kb / 1024.0, secs)
}
