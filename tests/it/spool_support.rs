//! Running the real daemon on a temporary spool, and making small distinct media files.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::catalog_support::TestCatalog;
use crate::common::*;

/// A `mediaspool watch` process on a scratch directory with its own spool, store and catalog.
pub struct Daemon {
    pub scratch: Scratch,
    config: String,
    /// Its catalog; a PostgreSQL one's URL reaches the daemon and its commands through `env`,
    /// so that a test may rewrite the configuration file and keep it.
    catalog: TestCatalog,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Daemon {
    /// `extra` is appended to a test configuration (small quiet period, two jobs).
    pub fn new(extra_spool: &str, extra: &str) -> Daemon {
        // Test defaults for [spool], each replaced by a line of `extra_spool` with the same key.
        let defaults = [
            "jobs = 2",
            "quiet_period = \"500ms\"",
            "rescan_interval = \"1s\"",
            "manifest_grace = \"300ms\"",
            "shutdown_grace = \"20s\"",
        ];
        let key = |line: &str| line.split('=').next().unwrap_or("").trim().to_string();
        let overridden: Vec<String> = extra_spool.lines().map(key).collect();
        let kept: Vec<&str> = defaults
            .iter()
            .copied()
            .filter(|d| !overridden.contains(&key(d)))
            .collect();
        let config = format!("[spool]\n{}\n{extra_spool}\n{extra}\n", kept.join("\n"));
        let scratch = Scratch::new();
        let catalog = TestCatalog::for_daemon(scratch.path(), &config);
        let env = match catalog.url() {
            Some(url) => vec![("MEDIASPOOL_CATALOG__URL".to_string(), url)],
            None => Vec::new(),
        };
        let d = Daemon {
            scratch,
            config,
            catalog,
            env,
            child: None,
        };
        std::fs::write(d.scratch.path().join("mediaspool.toml"), &d.config).unwrap();
        for dir in ["incoming", "work", "done", "failed"] {
            std::fs::create_dir_all(d.spool(dir)).unwrap();
        }
        d
    }

    pub fn with_env(mut self, key: &str, value: &str) -> Daemon {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn path(&self) -> &Path {
        self.scratch.path()
    }

    pub fn catalog(&self) -> &TestCatalog {
        &self.catalog
    }

    /// `mediaspool` in the daemon's directory with its environment (its catalog among it), for
    /// commands beside it (`query`, `deliveries`, `check`, a second `watch`).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(bin());
        cmd.current_dir(self.path());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `mediaspool ARGS` beside the daemon (see [`Daemon::command`]), killing it if it runs
    /// longer than `limit`.
    pub fn run(&self, args: &[&str], limit: Duration) -> std::process::Output {
        let mut cmd = self.command();
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        run_with_limit(cmd, limit)
    }

    pub fn spool(&self, sub: &str) -> PathBuf {
        self.path().join("spool").join(sub)
    }

    pub fn start(&mut self) {
        self.start_with(&["-v"]);
    }

    /// `mediaspool watch ARGS`; returns once its start line is logged (at once with `-q`,
    /// which leaves that line out: files dropped meanwhile are found by the first scan).
    pub fn start_with(&mut self, args: &[&str]) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join("daemon.log"))
            .unwrap();
        let mut cmd = self.command();
        cmd.arg("watch").args(args).stdout(Stdio::null()).stderr(log);
        let before = self.log().matches("watching").count();
        self.child = Some(cmd.spawn().unwrap());
        if args.contains(&"-q") {
            return;
        }
        // Ready once it says so (signal handlers, spool, catalog and watcher are set up).
        let start = Instant::now();
        while self.log().matches("watching").count() == before {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "daemon did not start; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill takes no pointers; the pid is our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(self.pid() as i32, signal) }, 0);
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGTERM, then the exit status (panics if it does not exit within `limit`).
    pub fn stop(&mut self, limit: Duration) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(limit)
    }

    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                panic!("daemon did not exit within {limit:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("daemon.log")).unwrap_or_default()
    }

    pub fn records(&self) -> Vec<Value> {
        self.scratch.records()
    }

    /// Waits until some record names each of `names` (panics after `limit`).
    pub fn wait_for(&self, names: &[&str], limit: Duration) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let records = self.records();
            if names
                .iter()
                .all(|n| records.iter().any(|r| r["source"]["file_name"] == *n))
            {
                return records;
            }
            if start.elapsed() > limit {
                panic!(
                    "no record for some of {names:?} after {limit:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Writes `bytes` under a hidden name, then renames it into `incoming/NAME`.
    pub fn drop_file(&self, name: &str, bytes: &[u8]) {
        let tmp = self.spool("incoming").join(format!(".{name}.part"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, self.spool("incoming").join(name)).unwrap();
    }

    pub fn names_in(&self, sub: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.spool(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The sample coding a WAV's `fmt ` chunk names.
#[derive(Clone, Copy)]
pub enum WavFormat {
    Pcm = 1,
    Float = 3,
}

/// The 44-byte header of a WAV whose `data` chunk of `data_len` bytes follows.
pub fn wav_header(format: WavFormat, channels: u16, rate: u32, bits: u16, data_len: u32) -> Vec<u8> {
    let block = channels * bits / 8;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&(format as u16).to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out
}

/// A WAV of `ms` milliseconds of a sine at `hz` (8 kHz mono 16-bit): distinct bytes per tone,
/// quick to transcode.
pub fn tone_wav(hz: f64, ms: u32) -> Vec<u8> {
    let rate = 8000u32;
    let samples = rate * ms / 1000;
    let data_len = samples * 2;
    let mut out = wav_header(WavFormat::Pcm, 1, rate, 16, data_len);
    for i in 0..samples {
        let v = (f64::from(i) / f64::from(rate) * hz * std::f64::consts::TAU).sin() * 12000.0;
        out.extend_from_slice(&(v as i16).to_le_bytes());
    }
    out
}

/// Every key records name (media, thumbnail, original), and the outputs marker beside each
/// rendition (files kept as they came have none).
pub fn referenced_keys(records: &[Value]) -> std::collections::HashSet<String> {
    let mut keys = std::collections::HashSet::new();
    for r in records {
        for part in ["media", "thumbnail", "original"] {
            if let Some(k) = r[part]["key"].as_str() {
                keys.insert(k.to_string());
            }
        }
        if let Some(marker) = outputs_marker(r) {
            keys.insert(marker);
        }
    }
    keys
}

/// The key of the marker saying a record's rendition and thumbnail are all stored.
pub fn outputs_marker(record: &Value) -> Option<String> {
    record["media"]["profile_id"].as_str()?;
    let key = record["media"]["key"].as_str()?;
    let (dir, _) = key.rsplit_once('/')?;
    Some(format!("{dir}/outputs.json"))
}

/// Files in a local store, relative to its root, staging area excluded.
pub fn stored_files(root: &Path) -> std::collections::HashSet<String> {
    fn walk(dir: &Path, root: &Path, out: &mut std::collections::HashSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = std::collections::HashSet::new();
    if root.exists() {
        for e in std::fs::read_dir(root).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && p.file_name().unwrap() != ".staging" {
                walk(&p, root, &mut out);
            }
        }
    }
    out
}
