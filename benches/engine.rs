//! The in-process engine against the `ffmpeg` CLI with the same settings, on the same inputs,
//! in the same run: `cargo bench --bench engine`.
//!
//! Inputs are made at start in a temporary folder: a ~50 s WhatsApp-like voice note (espeak-ng
//! speech, libopus mono 16 kHz 16 kb/s, Ogg) and a 5 s phone-like 1080p30 clip (testsrc2,
//! H.264 High ~12 Mb/s + stereo AAC 48 kHz). Each path is timed twice:
//! - `in_process`: `media::probe` + `media::render` with the built-in profile (`voice`,
//!   `video-720p`) — transcode, thumbnail (waveform / frame) and verification (for video, a
//!   decode of every packet beside the transcode and a demux of the written file; for audio, a
//!   full decode of the output), as the daemon does it;
//! - `ffmpeg_cli`: one `ffmpeg` process with the profile's settings (transcode only).
//!
//! For video, two more paths show what the checks cost:
//! - `without_thumbnail`: the same render with the profile's thumbnail turned off;
//! - `full_decode`: a decode of a whole output made once beforehand, what verifying after the
//!   transcode instead of beside it would add.
//!
//! The checks together cost `in_process` − `ffmpeg_cli` (the CLI does the transcode alone), the
//! thumbnail `in_process` − `without_thumbnail`. All of it runs as a job alone on the machine
//! does: with one thread per core.
//!
//! After criterion's own report (wall time), a table gives the median wall and CPU time
//! (user + system, this process and its waited-for children) per file of each, and the ratios
//! (CLI / in-process: above 1 means the engine is faster or cheaper), then the checks' share of
//! the transcode. CPU time is the steadier figure on a shared machine; wall time shows what a
//! caller waits.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, SamplingMode};
use mediaspool::media;
use mediaspool::profile::{Profile, ProfileSet};
use support::median;

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

/// Per-file (wall, CPU) seconds of each benchmark, one entry per criterion sample.
type Samples = Vec<(String, Vec<(f64, f64)>)>;
static TIMES: Mutex<Samples> = Mutex::new(Vec::new());

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ffmpeg -nostdin -y -v error` followed by the space-separated `args`.
fn ffmpeg(args: &str) -> Command {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-y", "-v", "error"])
        .args(args.split_whitespace());
    cmd
}

fn make_voice_note(dir: &Path) -> PathBuf {
    let wav = dir.join("speech.wav");
    run(Command::new("espeak-ng")
        .args(["-s", "150", "-w"])
        .arg(&wav)
        .arg(SPEECH));
    let ogg = dir.join("voice.ogg");
    run(ffmpeg("-i")
        .arg(&wav)
        .args("-ac 1 -ar 16000 -c:a libopus -b:a 16k -application voip".split(' '))
        .arg(&ogg));
    ogg
}

fn make_phone_clip(dir: &Path) -> PathBuf {
    let mp4 = dir.join("phone.mp4");
    run(ffmpeg(
        "-f lavfi -i testsrc2=size=1920x1080:rate=30:duration=5 \
         -f lavfi -i sine=frequency=440:sample_rate=48000:duration=5 \
         -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p \
         -b:v 12M -maxrate 12M -bufsize 24M -g 30 -c:a aac -b:a 128k -ac 2 -movflags +faststart",
    )
    .arg(&mp4));
    mp4
}

/// CPU seconds (user + system) used so far by this process and the children it waited for.
fn cpu_seconds() -> f64 {
    let of = |who| {
        // SAFETY: rusage is plain integers, for which all zeroes is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage fills `usage` through a pointer to this live local.
        unsafe { libc::getrusage(who, &mut usage) };
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        t(usage.ru_utime) + t(usage.ru_stime)
    };
    of(libc::RUSAGE_SELF) + of(libc::RUSAGE_CHILDREN)
}

/// Times `routine` per call (criterion runs it `iters` times per sample) and keeps the
/// per-file wall and CPU times of every sample, the last [`SAMPLES`] being criterion's
/// measurement (after its warm-up).
fn bench(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    path: &str,
    name: &str,
    routine: impl Fn(),
) {
    let key = format!("{path}/{name}");
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let (start, cpu) = (Instant::now(), cpu_seconds());
            for _ in 0..iters {
                routine();
            }
            let elapsed = start.elapsed();
            let per_file = (
                elapsed.as_secs_f64() / iters as f64,
                (cpu_seconds() - cpu) / iters as f64,
            );
            let mut times = TIMES.lock().unwrap();
            match times.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(per_file),
                None => times.push((key.clone(), vec![per_file])),
            }
            elapsed
        })
    });
}

fn built_in(name: &str) -> Profile {
    ProfileSet::built_in()
        .get(name)
        .expect("built-in profile")
        .clone()
}

fn in_process(input: &Path, profile: &Profile, out: &Path) {
    let probe = media::probe(input).expect("input probes");
    let dir = tempfile::tempdir_in(out).unwrap();
    media::render(input, &probe, profile, dir.path()).expect("input renders");
}

/// Benchmarks `profile` in-process against `ffmpeg -i INPUT CLI_ARGS OUTPUT` on `input`.
fn compare(c: &mut Criterion, path: &str, input: &Path, profile: &str, cli_args: &str, seconds: u64) {
    let out = tempfile::tempdir().expect("temporary folder");
    let mut group = c.benchmark_group(path);
    group
        .sample_size(SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(seconds));
    let full = built_in(profile);
    bench(&mut group, path, "in_process", || {
        in_process(input, &full, out.path())
    });
    if path == "video" {
        let mut without_thumbnail = full.clone();
        without_thumbnail.settings.thumbnail = None;
        bench(&mut group, path, "without_thumbnail", || {
            in_process(input, &without_thumbnail, out.path())
        });
        let probe = media::probe(input).expect("input probes");
        let rendered = media::render(input, &probe, &full, out.path()).expect("input renders");
        bench(&mut group, path, "full_decode", || {
            media::verify::check_output(&rendered.path, media::verify::Expect::Mp4 { audio: true })
                .expect("output verifies");
        });
    }
    let cli_out = out
        .path()
        .join(if path == "audio" { "cli.mp3" } else { "cli.mp4" });
    bench(&mut group, path, "ffmpeg_cli", || {
        run(ffmpeg("-i")
            .arg(input)
            .args(cli_args.split_whitespace())
            .arg(&cli_out))
    });
    group.finish();
}

/// The `voice` profile's settings.
const VOICE_CLI: &str = "-vn -c:a libmp3lame -ac 1 -ar 22050 -b:a 32k";

/// The `video-720p` profile's settings (the clip is 30 fps: no frame-rate cap applies).
const VIDEO_720P_CLI: &str = "-vf scale=1280:720:flags=bicubic,setsar=1,format=yuv420p \
    -c:v libx264 -preset veryfast -crf 26 -profile:v high \
    -c:a aac -b:a 96k -ar 48000 -ac 2 -movflags +faststart";

fn report() {
    let times = TIMES.lock().unwrap();
    let of = |key: &str| {
        let (_, v) = times.iter().find(|(k, _)| k == key)?;
        let last = &v[v.len().saturating_sub(SAMPLES)..];
        let wall: Vec<f64> = last.iter().map(|t| t.0).collect();
        let cpu: Vec<f64> = last.iter().map(|t| t.1).collect();
        Some((median(wall), median(cpu)))
    };
    println!("\nmedian seconds per file over the last {SAMPLES} samples; ratio = ffmpeg CLI / in-process");
    println!(
        "{:<6} {:>13} {:>13} {:>7}   {:>13} {:>13} {:>7}",
        "path", "wall in-proc", "wall CLI", "ratio", "CPU in-proc", "CPU CLI", "ratio"
    );
    for path in ["audio", "video"] {
        let (Some(ours), Some(cli)) = (
            of(&format!("{path}/in_process")),
            of(&format!("{path}/ffmpeg_cli")),
        ) else {
            continue;
        };
        println!(
            "{path:<6} {:>13.3} {:>13.3} {:>6.2}x   {:>13.3} {:>13.3} {:>6.2}x",
            ours.0,
            cli.0,
            cli.0 / ours.0,
            ours.1,
            cli.1,
            cli.1 / ours.1
        );
    }
    let (Some(full), Some(no_thumb), Some(cli), Some(decode)) = (
        of("video/in_process"),
        of("video/without_thumbnail"),
        of("video/ffmpeg_cli"),
        of("video/full_decode"),
    ) else {
        return;
    };
    for (what, full, no_thumb, cli, decode) in [
        ("wall", full.0, no_thumb.0, cli.0, decode.0),
        ("CPU", full.1, no_thumb.1, cli.1, decode.1),
    ] {
        println!(
            "video checks ({what}): the CLI's transcode {cli:.3} s; in-process with thumbnail and verification \
             {full:.3} s (+{:.1} %), of which the thumbnail {:.3} s; a full decode of the output after the \
             transcode would add {decode:.3} s (+{:.1} %)",
            100.0 * (full - cli) / cli,
            full - no_thumb,
            100.0 * decode / cli,
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    media::init();
    let dir = tempfile::tempdir().expect("temporary folder");
    let voice = make_voice_note(dir.path());
    let clip = make_phone_clip(dir.path());
    compare(&mut c, "audio", &voice, "voice", VOICE_CLI, 12);
    compare(&mut c, "video", &clip, "video-720p", VIDEO_720P_CLI, 20);
    c.final_summary();
    report();
}
