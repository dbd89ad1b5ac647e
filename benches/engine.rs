//! The in-process engine against the `ffmpeg` CLI with the same settings, on the same inputs,
//! in the same run: `cargo bench --bench engine`.
//!
//! Inputs are made at start in a temporary folder: a ~45 s WhatsApp-like voice note (espeak-ng
//! speech, libopus mono 16 kHz 16 kb/s, Ogg) and a 5 s phone-like 1080p30 clip (testsrc2,
//! H.264 High ~12 Mb/s + stereo AAC 48 kHz). Each path is timed twice:
//! - `in_process`: `media::probe` + `media::render` with the built-in profile (`voice`,
//!   `video-720p`) — transcode, thumbnail (waveform / frame) and verification (a full decode of
//!   the output), as the daemon does it;
//! - `ffmpeg_cli`: one `ffmpeg` process with the profile's settings (transcode only).
//!
//! After criterion's own report, a table gives the median time per file of each and the ratio
//! (CLI time / in-process time: above 1 means the engine is faster).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, SamplingMode};
use mediaspool::media;
use mediaspool::profile::ProfileSet;

const SAMPLES: usize = 10;

const SPEECH: &str = "Hello, this is a voice note for the support team. I ordered a pair of running \
shoes three weeks ago and they still have not arrived. The tracking number says the parcel left \
the warehouse on the second of the month, but since then nothing has changed. Could you please \
check what happened and tell me when I can expect the delivery? If the parcel is lost, I would \
like a refund or a replacement, whichever is faster. My order number is four five seven two \
nine one. You can reach me on this number any time after six in the evening, or by email. \
Thank you very much for your help, and have a nice day. One more thing: the shoes were a gift \
for my brother, and his birthday is next Saturday, so it would be great if the replacement \
could arrive before then. Thanks again, bye.";

/// Median seconds per file of each benchmark, recorded from criterion's measurement samples.
static TIMES: Mutex<Vec<(String, Vec<f64>)>> = Mutex::new(Vec::new());

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ffmpeg() -> Command {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-y", "-v", "error"]);
    cmd
}

fn make_voice_note(dir: &Path) -> PathBuf {
    let wav = dir.join("speech.wav");
    run(Command::new("espeak-ng")
        .args(["-s", "150", "-w"])
        .arg(&wav)
        .arg(SPEECH));
    let ogg = dir.join("voice.ogg");
    run(ffmpeg()
        .arg("-i")
        .arg(&wav)
        .args([
            "-ac",
            "1",
            "-ar",
            "16000",
            "-c:a",
            "libopus",
            "-b:a",
            "16k",
            "-application",
            "voip",
        ])
        .arg(&ogg));
    ogg
}

fn make_phone_clip(dir: &Path) -> PathBuf {
    let mp4 = dir.join("phone.mp4");
    run(ffmpeg()
        .args(["-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30:duration=5"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=5",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "high",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-b:v", "12M", "-maxrate", "12M", "-bufsize", "24M", "-g", "30"])
        .args([
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-ac",
            "2",
            "-movflags",
            "+faststart",
        ])
        .arg(&mp4));
    mp4
}

/// Times `routine` per call (criterion runs it `iters` times per sample) and keeps the
/// per-file times of the last [`SAMPLES`] samples: criterion's measurement, after warm-up.
fn bench(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    path: &str,
    name: &str,
    routine: impl Fn(),
) {
    let key = format!("{path}/{name}");
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                routine();
            }
            let elapsed = start.elapsed();
            let mut times = TIMES.lock().unwrap();
            let per_file = elapsed.as_secs_f64() / iters as f64;
            match times.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(per_file),
                None => times.push((key.clone(), vec![per_file])),
            }
            elapsed
        })
    });
}

fn in_process(input: &Path, profile: &str, out: &Path) {
    let profiles = ProfileSet::built_in();
    let profile = profiles.get(profile).expect("built-in profile");
    let probe = media::probe(input).expect("input probes");
    let dir = tempfile::tempdir_in(out).unwrap();
    media::render(input, &probe, profile, dir.path()).expect("input renders");
}

fn audio(c: &mut Criterion, input: &Path, out: &Path) {
    let mut group = c.benchmark_group("audio");
    group
        .sample_size(SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(15));
    bench(&mut group, "audio", "in_process", || {
        in_process(input, "voice", out)
    });
    let mp3 = out.join("cli.mp3");
    bench(&mut group, "audio", "ffmpeg_cli", || {
        run(ffmpeg()
            .arg("-i")
            .arg(input)
            .args(["-vn", "-af", "loudnorm=I=-16:TP=-1.5:LRA=11"])
            .args(["-c:a", "libmp3lame", "-ac", "1", "-ar", "22050", "-b:a", "32k"])
            .arg(&mp3))
    });
    group.finish();
}

fn video(c: &mut Criterion, input: &Path, out: &Path) {
    let mut group = c.benchmark_group("video");
    group
        .sample_size(SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(45));
    bench(&mut group, "video", "in_process", || {
        in_process(input, "video-720p", out)
    });
    let mp4 = out.join("cli.mp4");
    bench(&mut group, "video", "ffmpeg_cli", || {
        run(ffmpeg()
            .arg("-i")
            .arg(input)
            .args(["-vf", "scale=1280:720:flags=bicubic,setsar=1,format=yuv420p"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "26",
                "-profile:v",
                "high",
            ])
            .args(["-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2"])
            .args(["-movflags", "+faststart"])
            .arg(&mp4))
    });
    group.finish();
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn report() {
    let times = TIMES.lock().unwrap();
    let of = |key: &str| {
        times
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| median(&v[v.len().saturating_sub(SAMPLES)..]))
    };
    println!("\nmedian seconds per file (last {SAMPLES} samples); ratio = ffmpeg CLI / in-process");
    println!(
        "{:<8} {:>12} {:>12} {:>8}",
        "path", "in-process", "ffmpeg CLI", "ratio"
    );
    for path in ["audio", "video"] {
        if let (Some(ours), Some(cli)) = (
            of(&format!("{path}/in_process")),
            of(&format!("{path}/ffmpeg_cli")),
        ) {
            println!("{path:<8} {ours:>12.3} {cli:>12.3} {:>7.2}x", cli / ours);
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    media::init();
    let dir = tempfile::tempdir().expect("temporary folder");
    let voice = make_voice_note(dir.path());
    let clip = make_phone_clip(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    audio(&mut c, &voice, &out);
    video(&mut c, &clip, &out);
    c.final_summary();
    report();
}
