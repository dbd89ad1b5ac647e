//! What the benches share: making inputs with the `ffmpeg` CLI, the shell pipeline they are
//! compared with, the `video-720p` profile's settings as CLI arguments, and medians and ratios of timings.

#![allow(dead_code)] // each bench uses its own part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Credentials and settings for the S3 test server, with nothing read from the machine's own
/// AWS configuration.
pub const AWS_ENV: [(&str, &str); 6] = [
    ("AWS_ACCESS_KEY_ID", "mediaspool-bench"),
    ("AWS_SECRET_ACCESS_KEY", "mediaspool-bench-secret"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_CONFIG_FILE", "/dev/null"),
    ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
];

/// The `video-720p` profile's settings as `ffmpeg` arguments, for the CLI alone and for the
/// shell pipeline's `VIDEO_ARGS` (the phone clips are 30 fps: no frame-rate cap applies).
pub const VIDEO_720P_ARGS: &str = "-c:v libx264 -preset veryfast -crf 26 -profile:v high \
    -vf scale=w=1280:h=720:force_original_aspect_ratio=decrease:force_divisible_by=2 \
    -pix_fmt yuv420p -c:a aac -b:a 96k -ar 48000 -ac 2 -movflags +faststart";

/// `ffmpeg -nostdin -v error -y`.
pub fn ffmpeg() -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-nostdin", "-v", "error", "-y"]);
    c
}

pub fn run_ok(cmd: &mut Command) {
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A phone-like clip at `path`: 1080p30 with sensor-like grain (a different grain for each
/// `seed`), H.264 High at ~12 Mbit/s, stereo AAC.
pub fn phone_clip(path: &Path, seconds: u32, seed: u32) {
    run_ok(
        ffmpeg()
            .args(["-f", "lavfi", "-i"])
            .arg(format!(
                "testsrc2=size=1920x1080:rate=30:duration={seconds},noise=alls=12:allf=t+u:all_seed={seed}"
            ))
            .args([
                "-f",
                "lavfi",
                "-i",
                &format!(
                    "sine=frequency={}:duration={seconds}:sample_rate=48000",
                    300 + seed * 50
                ),
            ])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-b:v",
                "12M",
                "-pix_fmt",
                "yuv420p",
                "-profile:v",
                "high",
            ])
            .args(["-c:a", "aac", "-b:a", "128k", "-ac", "2", "-shortest"])
            .arg(path),
    );
}

/// `count` WhatsApp-like voice notes in `dir` (`note00.ogg`…, made if missing): espeak-ng
/// speech looped to `seconds(i)` long, Ogg/Opus mono 16 kHz 16 kbps. The speech itself is kept
/// beside `dir`.
pub fn voice_notes(dir: &Path, count: u32, seconds: impl Fn(u32) -> f64) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let speech = dir.with_extension("speech.wav");
    if !speech.exists() {
        run_ok(Command::new("espeak-ng").args(["-s", "150", "-w"]).arg(&speech).arg(
            "Hello, I am writing about my order from last week. The parcel arrived yesterday, but the box was \
             damaged and one of the cups inside is broken. I attach a photo of the box. Could you send a \
             replacement, or refund the cup? My order number is four five six seven eight. Thank you, and \
             have a nice day. By the way, the delivery driver was very kind, so please thank him too.",
        ));
    }
    (0..count)
        .map(|i| {
            let note = dir.join(format!("note{i:02}.ogg"));
            if !note.exists() {
                run_ok(
                    ffmpeg()
                        .args(["-stream_loop", "-1", "-i"])
                        .arg(&speech)
                        .args(["-t", &format!("{:.2}", seconds(i))])
                        .args(["-ac", "1", "-ar", "16000", "-c:a", "libopus", "-b:a", "16k"])
                        .args(["-application", "voip"])
                        .arg(&note),
                );
            }
            note
        })
        .collect()
}

/// A copy of `from` at `to` with other bytes (a comment tag), so it is not a duplicate.
pub fn distinct_copy(from: &Path, to: &Path, tag: &str) {
    run_ok(
        ffmpeg()
            .arg("-i")
            .arg(from)
            .args(["-map", "0", "-c", "copy", "-metadata", &format!("comment={tag}")])
            .arg(to),
    );
}

/// The shell pipeline (`../shared/baseline/pipeline.sh`, or `MEDIASPOOL_BASELINE`).
pub fn baseline_script() -> PathBuf {
    std::env::var_os("MEDIASPOOL_BASELINE").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/baseline/pipeline.sh"),
        PathBuf::from,
    )
}

/// The shell pipeline over every file of `inputs`, 2 at a time, with `ARGS_VAR=args`, its
/// store and records under `out`.
pub fn baseline(inputs: &Path, out: &Path, (var, args): (&str, &str)) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(baseline_script())
        .arg(inputs)
        .arg(out.join("store"))
        .arg(out.join("records.ndjson"))
        .env("JOBS", "2")
        .env(var, args);
    cmd
}

/// Wall and CPU seconds (user + system) of one side in one round.
#[derive(Clone, Copy, Debug)]
pub struct Took {
    pub wall: f64,
    pub cpu: f64,
}

impl Took {
    /// The wall time, as a measure for [`median_of`] and [`ratios`].
    pub fn wall(&self) -> f64 {
        self.wall
    }

    /// The CPU time, as a measure for [`median_of`] and [`ratios`].
    pub fn cpu(&self) -> f64 {
        self.cpu
    }
}

/// The median of one measure (`Took::wall` or `Took::cpu`) over rounds.
pub fn median_of(rounds: &[Took], measure: fn(&Took) -> f64) -> f64 {
    median(rounds.iter().map(measure).collect())
}

/// Ratios of `a` to `b` in one measure, taken round by round.
pub struct Ratios {
    pub median: f64,
    pub lowest: f64,
    pub highest: f64,
}

impl Ratios {
    /// `1.08x (rounds 1.01–1.16)`, with `digits` decimals and `unit` after the median.
    pub fn summary(&self, digits: usize, unit: &str) -> String {
        format!(
            "{:.digits$}{unit} (rounds {:.digits$}–{:.digits$})",
            self.median, self.lowest, self.highest
        )
    }
}

pub fn ratios(a: &[Took], b: &[Took], measure: fn(&Took) -> f64) -> Ratios {
    let mut r: Vec<f64> = a.iter().zip(b).map(|(a, b)| measure(a) / measure(b)).collect();
    r.sort_by(f64::total_cmp);
    Ratios {
        median: median(r.clone()),
        lowest: r[0],
        highest: r[r.len() - 1],
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// CPU seconds (user + system) of the children this process has waited for.
pub fn children_cpu_seconds() -> f64 {
    // SAFETY: rusage is plain integers, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills `usage` through a pointer to this live local.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

/// CPU seconds (user + system) a running process and its running children have used so far.
pub fn process_tree_cpu_seconds(pid: u32) -> f64 {
    // SAFETY: sysconf takes no pointers and only reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let of = |pid: &str| -> f64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return 0.0;
        };
        // Fields after the command name (which may hold spaces): utime is the 12th, stime 13th.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (num(11) + num(12)) / ticks
    };
    // Each thread lists the children it started.
    let children: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| list.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect();
    of(&pid.to_string()) + children.iter().map(|c| of(c)).sum::<f64>()
}

/// A running `mediaspool watch` in `dir` (its configuration in `dir/mediaspool.toml`, if any).
pub struct Daemon(pub Child);

impl Daemon {
    pub fn start(dir: &Path) -> Daemon {
        std::fs::create_dir_all(dir.join("spool/incoming")).unwrap();
        Daemon(
            Command::new(env!("CARGO_BIN_EXE_mediaspool"))
                .arg("watch")
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("daemon starts"),
        )
    }

    pub fn stop(mut self) {
        // SAFETY: kill takes no pointers; the pid is our own child, not yet reaped.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The load averages of the last 1, 5 and 15 minutes, as `uptime` shows them.
pub fn uptime() -> String {
    Command::new("uptime")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
