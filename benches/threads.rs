//! How to share the cores among video jobs: the schemes weighed against each other.
//!
//! libav fixes a codec's threads when it opens it, so a job's threads are decided when it starts.
//! Each scheme is run here as `ffmpeg` CLI processes with the `video-720p` settings, started the
//! way the daemon starts jobs (at most as many at once as there are cores, the next one as soon
//! as one ends), each with the threads the scheme gives it at its start (`-threads` for decoder
//! and encoder, `-filter_threads` for scaling):
//! - `fixed`: `cores / spool.jobs`, whatever runs (earlier versions);
//! - `load`: `cores / jobs running`, the job itself included;
//! - `load, at least 2`: the same, never fewer than two threads (the chosen scheme; on two cores
//!   it is also what full threading everywhere gives).
//!
//! Cases: one 10 s clip alone; a 60 s clip with two 10 s clips (jobs meet the cores unevenly:
//! the long one's tail runs alone); four 10 s clips (an even batch). The schemes run in turn,
//! three rounds; medians of wall and CPU time (user + system) and of the rounds' ratios to the
//! chosen scheme (above 1: the scheme is slower or costlier than the chosen one).
//!
//!     cargo bench --bench threads
//!
//! Needs `ffmpeg` (scripts/deps.sh installs it).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::{median_of, ratios, Took, VIDEO_720P_ARGS};

const ROUNDS: usize = 3;
const CORES: usize = 2;

#[derive(Clone, Copy)]
enum Scheme {
    Fixed,
    Load,
    LoadAtLeastTwo,
}

impl Scheme {
    const ALL: [Scheme; 3] = [Scheme::Fixed, Scheme::Load, Scheme::LoadAtLeastTwo];

    fn name(self) -> &'static str {
        match self {
            Scheme::Fixed => "fixed, cores / jobs",
            Scheme::Load => "load, cores / running",
            Scheme::LoadAtLeastTwo => "load, at least 2 (chosen)",
        }
    }

    /// Threads of a job starting while `running` jobs (itself included) run on `cores` cores,
    /// with `jobs` job slots.
    fn threads(self, cores: usize, jobs: usize, running: usize) -> usize {
        match self {
            Scheme::Fixed => (cores / jobs).max(1),
            Scheme::Load => (cores / running).max(1),
            Scheme::LoadAtLeastTwo => (cores / running).max(2).min(cores),
        }
    }
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clip = |seconds: u32, seed: u32| -> PathBuf {
        let path = dir.path().join(format!("clip{seconds}-{seed}.mp4"));
        support::phone_clip(&path, seconds, seed);
        path
    };
    let (ten_a, ten_b, ten_c, ten_d, sixty) =
        (clip(10, 1), clip(10, 2), clip(10, 3), clip(10, 4), clip(60, 5));
    let cases: [(&str, Vec<&Path>); 3] = [
        ("one 10 s clip", vec![&ten_a]),
        ("a 60 s and two 10 s clips", vec![&sixty, &ten_a, &ten_b]),
        ("four 10 s clips", vec![&ten_a, &ten_b, &ten_c, &ten_d]),
    ];
    println!(
        "{CORES} job slots on {CORES} cores; load: `uptime` = {}",
        support::uptime()
    );
    for (label, inputs) in &cases {
        let mut took: Vec<Vec<Took>> = vec![Vec::new(); Scheme::ALL.len()];
        for _ in 0..ROUNDS {
            for (i, scheme) in Scheme::ALL.iter().enumerate() {
                took[i].push(batch(inputs, *scheme, dir.path()));
            }
        }
        let chosen = &took[Scheme::ALL.len() - 1];
        println!("\n{label} (medians over {ROUNDS} rounds; ratio = scheme / chosen, round by round):");
        for (scheme, t) in Scheme::ALL.iter().zip(&took) {
            println!(
                "  {:<28} wall {:6.2} s ({:.2}x)   CPU {:6.2} s ({:.2}x)",
                scheme.name(),
                median_of(t, Took::wall),
                ratios(t, chosen, Took::wall).median,
                median_of(t, Took::cpu),
                ratios(t, chosen, Took::cpu).median,
            );
        }
    }
    println!("\nload after: `uptime` = {}", support::uptime());
}

/// Transcodes `inputs` as the daemon schedules jobs: `CORES` at once, in order, each with the
/// threads `scheme` gives it when it starts.
fn batch(inputs: &[&Path], scheme: Scheme, dir: &Path) -> Took {
    let (start, cpu) = (Instant::now(), support::children_cpu_seconds());
    let mut queue = inputs.iter().enumerate();
    let mut running: Vec<Child> = Vec::new();
    loop {
        while running.len() < CORES {
            let Some((i, input)) = queue.next() else { break };
            let threads = scheme.threads(CORES, CORES, running.len() + 1).to_string();
            let child = support::ffmpeg()
                .args(["-threads", &threads, "-i"])
                .arg(input)
                .args(["-filter_threads", &threads, "-threads", &threads])
                .args(VIDEO_720P_ARGS.split_whitespace())
                .arg(dir.join(format!("out{i}.mp4")))
                .stdout(Stdio::null())
                .spawn()
                .expect("ffmpeg starts");
            running.push(child);
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
        running.retain_mut(|child| match child.try_wait().expect("ffmpeg waits") {
            Some(status) => {
                assert!(status.success(), "ffmpeg failed: {status}");
                false
            }
            None => true,
        });
    }
    Took {
        wall: start.elapsed().as_secs_f64(),
        cpu: support::children_cpu_seconds() - cpu,
    }
}
