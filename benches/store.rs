//! Uploads to an S3 server: mediaspool against the AWS CLI, same server, same files, same run.
//! Needs the test services: `scripts/bench-store.sh` starts them and runs this.
//!
//!     scripts/bench-store.sh              # large, small, memory
//!     scripts/bench-store.sh small        # any subset
//!
//! - large: one 500 MB file kept as it came (`mediaspool process`: hash, probe, multipart
//!   upload) against `aws s3 cp` of the same file.
//! - small: 200 small files (20 KB each) through `mediaspool process` against one `aws s3 cp`
//!   per file, as the shell pipeline does.
//! - memory: peak resident memory of a running `mediaspool watch` while it takes a 500 MB file
//!   into the store (VmHWM of the daemon, read before it stops).
//!
//! Each case runs `ROUNDS` times (the large one `LARGE_ROUNDS`, taking turns at going first),
//! the two sides in turn, each round into a fresh bucket;
//! the ratio is the median over rounds of the CLI's time / mediaspool's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{median, run_ok, AWS_ENV};

const ROUNDS: usize = 3;
/// Even, so that each side goes first as often as the other.
const LARGE_ROUNDS: usize = 4;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wants = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    let server = Server::from_env();
    let dir = tempfile::tempdir().expect("temp dir");
    if wants("large") {
        large(&server, dir.path());
    }
    if wants("small") {
        small(&server, dir.path());
    }
    if wants("memory") {
        memory(&server, dir.path());
    }
}

struct Server {
    endpoint: String,
    aws: PathBuf,
}

impl Server {
    fn from_env() -> Server {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/bench-store.sh"))
        };
        Server {
            endpoint: var("MEDIASPOOL_TEST_S3_ENDPOINT"),
            aws: var("MEDIASPOOL_TEST_AWS_CLI").into(),
        }
    }

    fn aws(&self) -> Command {
        let mut cmd = Command::new(&self.aws);
        cmd.args(["--endpoint-url", &self.endpoint]).envs(AWS_ENV);
        cmd
    }

    /// A fresh bucket, emptied and removed by `drop_bucket` (the server keeps objects in memory).
    fn bucket(&self, name: &str) -> String {
        run_ok(self.aws().args(["s3api", "create-bucket", "--bucket", name]));
        name.to_string()
    }

    fn drop_bucket(&self, name: &str) {
        run_ok(self.aws().args(["s3", "rb", &format!("s3://{name}"), "--force"]));
    }

    /// A directory with a `mediaspool.toml` storing into `bucket`.
    fn workdir(&self, parent: &Path, bucket: &str) -> PathBuf {
        let dir = parent.join(format!("run-{bucket}"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "[spool]\njobs = 2\nquiet_period = \"200ms\"\nmanifest_grace = \"0s\"\n\n[store]\nkind = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{}\"\npath_style = true\n",
            self.endpoint
        );
        std::fs::write(dir.join("mediaspool.toml"), config).unwrap();
        dir
    }
}

fn mediaspool() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediaspool"));
    cmd.envs(AWS_ENV);
    cmd
}

fn timed(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    run_ok(cmd);
    start.elapsed()
}

/// `bytes` of incompressible data (a file that is not media, kept as it came).
fn data_file(path: &Path, bytes: usize, seed: u64) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut block = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(block.len());
        file.write_all(&block[..n]).unwrap();
        left -= n;
    }
}

fn report(case: &str, ours: &[Duration], theirs: &[Duration]) {
    let secs = |d: &[Duration]| d.iter().map(Duration::as_secs_f64).collect::<Vec<_>>();
    let ratios: Vec<f64> = ours
        .iter()
        .zip(theirs)
        .map(|(o, t)| t.as_secs_f64() / o.as_secs_f64())
        .collect();
    println!(
        "{case:<40} aws cli {:>8.2} s   mediaspool {:>8.2} s   ratio {:>6.2}x   (rounds: {:?})",
        median(secs(theirs)),
        median(secs(ours)),
        median(ratios.clone()),
        ratios
            .iter()
            .map(|r| (r * 100.0).round() / 100.0)
            .collect::<Vec<_>>()
    );
}

fn large(server: &Server, dir: &Path) {
    let file = dir.join("large.bin");
    data_file(&file, 500 << 20, 1);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..LARGE_ROUNDS {
        let cli = |theirs: &mut Vec<Duration>| {
            let bucket = server.bucket(&format!("bench-large-cli-{round}"));
            theirs.push(timed(
                server
                    .aws()
                    .args(["s3", "cp", "--quiet"])
                    .arg(&file)
                    .arg(format!("s3://{bucket}/large.bin")),
            ));
            server.drop_bucket(&bucket);
        };
        let mediaspool_side = |ours: &mut Vec<Duration>| {
            let bucket = server.bucket(&format!("bench-large-ms-{round}"));
            let work = server.workdir(dir, &bucket);
            ours.push(timed(mediaspool().current_dir(&work).arg("process").arg(&file)));
            server.drop_bucket(&bucket);
            std::fs::remove_dir_all(&work).unwrap();
        };
        // Sides take turns at going first: the server slows as it holds and frees hundreds of
        // megabytes, and the one that always came second would pay for it.
        if round % 2 == 0 {
            cli(&mut theirs);
            mediaspool_side(&mut ours);
        } else {
            mediaspool_side(&mut ours);
            cli(&mut theirs);
        }
    }
    report("one 500 MB file", &ours, &theirs);
}

fn small(server: &Server, dir: &Path) {
    let files: Vec<PathBuf> = (0..200)
        .map(|i| {
            let path = dir.join(format!("small-{i:03}.bin"));
            data_file(&path, 20 << 10, 1000 + i);
            path
        })
        .collect();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let bucket = server.bucket(&format!("bench-small-cli-{round}"));
        let start = Instant::now();
        for f in &files {
            let name = f.file_name().unwrap().to_string_lossy();
            run_ok(
                server
                    .aws()
                    .args(["s3", "cp", "--quiet"])
                    .arg(f)
                    .arg(format!("s3://{bucket}/{name}")),
            );
        }
        theirs.push(start.elapsed());
        server.drop_bucket(&bucket);
        let bucket = server.bucket(&format!("bench-small-ms-{round}"));
        let work = server.workdir(dir, &bucket);
        ours.push(timed(mediaspool().current_dir(&work).arg("process").args(&files)));
        server.drop_bucket(&bucket);
        std::fs::remove_dir_all(&work).unwrap();
    }
    report("200 files of 20 KB, one CLI call each", &ours, &theirs);
}

/// Peak resident memory of the daemon while a 500 MB file goes into the store.
fn memory(server: &Server, dir: &Path) {
    let file = dir.join("memory.bin");
    data_file(&file, 500 << 20, 2);
    let bucket = server.bucket("bench-memory");
    let work = server.workdir(dir, &bucket);
    let incoming = work.join("spool/incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    let mut daemon = mediaspool()
        .current_dir(&work)
        .arg("watch")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let start = Instant::now();
    std::fs::rename(&file, incoming.join("memory.bin")).unwrap();
    let outbox = work.join("records.ndjson");
    while std::fs::read_to_string(&outbox)
        .unwrap_or_default()
        .lines()
        .count()
        < 1
    {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "no record after 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = start.elapsed();
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.id())).unwrap();
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: ?")
        .to_string();
    // SAFETY: kill takes no pointers; the pid is our own child, not yet reaped.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let _ = daemon.wait();
    server.drop_bucket(&bucket);
    println!(
        "daemon taking a 500 MB file into the store: {:.2} s, peak resident memory {}",
        took.as_secs_f64(),
        peak.trim_start_matches("VmHWM:").trim()
    );
}
