//! The supervisor: worker processes kept alive across jobs, each job under a wall-time and a
//! memory limit, with its share of the cores (see [`super::threads`]).
//!
//! In: [`Request`]s from job tasks. Out: the worker's [`MediaOutcome`], or a [`WorkerError`]
//! when the worker crashed (`worker-crashed`), overran its time (`timeout`) or its memory
//! (`out-of-memory`); such a worker is killed and not reused. Async; the waiting happens on the
//! runtime, the work in the child process.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

use super::threads::Share;
use super::{Job, MediaOutcome, Message, Request, Setup};
use crate::failure::{ErrorCode, Failure};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall time per job, plus the media's declared duration once the worker has probed it.
    pub timeout: Duration,
    /// Resident memory of the worker process.
    pub memory_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("the worker process died while working on this file ({0})")]
    Crashed(String),
    #[error("the worker took longer than {0:?} and was stopped")]
    Timeout(Duration),
    #[error("the worker used more than {0} MiB of memory and was stopped")]
    OutOfMemory(u64),
    #[error("cannot start a worker process: {0}")]
    Spawn(std::io::Error),
}

impl WorkerError {
    pub fn code(&self) -> ErrorCode {
        match self {
            WorkerError::Crashed(_) => ErrorCode::WORKER_CRASHED,
            WorkerError::Timeout(_) => ErrorCode::TIMEOUT,
            WorkerError::OutOfMemory(_) => ErrorCode::OUT_OF_MEMORY,
            WorkerError::Spawn(_) => ErrorCode::WORKER_UNAVAILABLE,
        }
    }

    pub fn failure(&self) -> Failure {
        Failure::new(self.code(), self.to_string())
    }
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

pub struct WorkerPool {
    exe: PathBuf,
    setup_line: String,
    limits: Limits,
    idle: Mutex<Vec<Worker>>,
    /// The jobs running now: each job's threads are its share of the cores when it starts.
    cores: Share,
}

/// How often resident memory is sampled while a job runs.
const MEMORY_SAMPLE: Duration = Duration::from_millis(20);

impl WorkerPool {
    pub fn new(setup: &Setup, limits: Limits) -> std::io::Result<WorkerPool> {
        Ok(WorkerPool {
            exe: std::env::current_exe()?,
            setup_line: serde_json::to_string(setup).map_err(std::io::Error::other)?,
            limits,
            idle: Mutex::new(Vec::new()),
            cores: Share::new(crate::config::cores()),
        })
    }

    async fn spawn(&self) -> std::io::Result<Worker> {
        let mut child = Command::new(&self.exe)
            .args(crate::logging::flags_for_worker())
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        stdin.write_all(self.setup_line.as_bytes()).await?;
        stdin.write_all(b"\n").await?;
        Ok(Worker { child, stdin, stdout })
    }

    fn take_idle(&self) -> Option<Worker> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn give_back(&self, worker: Worker) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(worker);
    }

    /// Runs one job in a worker. A worker that fails is dropped (and so killed).
    pub async fn run(&self, request: &Request) -> Result<MediaOutcome, WorkerError> {
        let mut worker = match self.take_idle() {
            Some(w) => w,
            None => self.spawn().await.map_err(WorkerError::Spawn)?,
        };
        let running = self.cores.start();
        tracing::debug!(file = %request.file_name, threads = running.threads, "job sent to a worker");
        let job = Job {
            request: request.clone(),
            threads: running.threads,
        };
        let mut line = serde_json::to_string(&job).expect("job serialises");
        line.push('\n');
        if let Err(e) = worker.stdin.write_all(line.as_bytes()).await {
            // An idle worker that died in between: try once with a fresh one.
            tracing::debug!(error = %e, "idle worker gone; starting another");
            worker = self.spawn().await.map_err(WorkerError::Spawn)?;
            worker
                .stdin
                .write_all(line.as_bytes())
                .await
                .map_err(|e| WorkerError::Crashed(e.to_string()))?;
        }
        let started = Instant::now();
        let mut allowed = self.limits.timeout;
        let pid = worker.child.id();
        let mut sample = tokio::time::interval(MEMORY_SAMPLE);
        loop {
            tokio::select! {
                line = worker.stdout.next_line() => match line {
                    Ok(Some(line)) => match serde_json::from_str::<Message>(&line) {
                        Ok(Message::Probed { duration_ms, .. }) => {
                            allowed = self.limits.timeout + Duration::from_millis(duration_ms.unwrap_or(0));
                        }
                        Ok(Message::Done { outcome }) => {
                            self.give_back(worker);
                            return Ok(*outcome);
                        }
                        Err(e) => return Err(WorkerError::Crashed(format!("unreadable answer: {e}"))),
                    },
                    Ok(None) | Err(_) => return Err(WorkerError::Crashed(exit_reason(&mut worker.child).await)),
                },
                _ = tokio::time::sleep_until(started + allowed) => {
                    let _ = worker.child.kill().await;
                    return Err(WorkerError::Timeout(allowed));
                }
                _ = sample.tick() => {
                    if let Some(rss) = pid.and_then(resident_bytes) {
                        if rss > self.limits.memory_bytes {
                            let _ = worker.child.kill().await;
                            return Err(WorkerError::OutOfMemory(self.limits.memory_bytes >> 20));
                        }
                    }
                }
            }
        }
    }

    /// Stops every idle worker (busy ones stop when their job task is dropped).
    pub async fn shutdown(&self) {
        let idle: Vec<Worker> = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        for mut w in idle {
            drop(w.stdin);
            let _ = tokio::time::timeout(Duration::from_secs(2), w.child.wait()).await;
            let _ = w.child.kill().await;
        }
    }
}

async fn exit_reason(child: &mut Child) -> String {
    match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        Ok(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (_, Some(signal)) => format!("killed by signal {signal}{}", signal_name(signal)),
                (Some(code), None) => format!("exited with status {code}"),
                (None, None) => "ended".to_string(),
            }
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => {
            let _ = child.kill().await;
            "stopped answering".to_string()
        }
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => ", SIGSEGV",
        libc::SIGABRT => ", SIGABRT",
        libc::SIGBUS => ", SIGBUS",
        libc::SIGKILL => ", SIGKILL",
        libc::SIGFPE => ", SIGFPE",
        libc::SIGILL => ", SIGILL",
        _ => "",
    }
}

/// Resident set size of a process, from `/proc/PID/statm`.
fn resident_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system setting; _SC_PAGESIZE is always defined on Linux.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}
