//! `mediaspool worker`: the worker process's loop.
//!
//! In: a [`Setup`] line, then [`Job`] lines on stdin. Out: [`Message`] lines on stdout.
//! Exits when stdin closes, and within a second of its daemon's death even mid-job (a daemon
//! killed with SIGKILL cannot close anything; its worker must not go on transcoding, or hang,
//! for nobody). Logs go to stderr (inherited from the daemon).
//!
//! For tests, `MEDIASPOOL_FAULT=crash:TEXT,hang:TEXT,oom:TEXT` makes the worker abort, hang
//! or allocate memory without bound on any file whose name contains TEXT. It changes nothing
//! when unset.

use std::io::{BufRead, Write};

use super::{job, Job, Message, Setup};
use crate::profile::ProfileSet;

pub fn run() -> u8 {
    exit_with_parent();
    crate::media::init();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let setup: Setup = match lines.next().map(|l| l.map(|l| serde_json::from_str(&l))) {
        Some(Ok(Ok(setup))) => setup,
        other => {
            eprintln!("mediaspool worker: expected a setup line on stdin, got {other:?}");
            return 2;
        }
    };
    crate::media::set_memory_limit(setup.memory_bytes);
    let profiles = ProfileSet::from_profiles(setup.profiles.clone());
    let faults = std::env::var("MEDIASPOOL_FAULT").unwrap_or_default();
    let stdout = std::io::stdout();
    for line in lines {
        let Ok(line) = line else { break };
        let Job { request, threads } = match serde_json::from_str(&line) {
            Ok(job) => job,
            Err(e) => {
                eprintln!("mediaspool worker: bad request: {e}");
                return 2;
            }
        };
        inject_fault(&faults, &request.file_name);
        crate::media::set_threads(threads);
        let send = |message: &Message| {
            let mut out = stdout.lock();
            let _ = serde_json::to_writer(&mut out, message);
            let _ = out.write_all(b"\n");
            let _ = out.flush();
        };
        let outcome = job::run(&setup, &profiles, &request, |probe| {
            send(&Message::Probed {
                kind: probe.kind,
                duration_ms: probe.duration_ms,
            })
        });
        send(&Message::Done {
            outcome: Box::new(outcome),
        });
    }
    0
}

/// Exits the process once it has been handed to another parent: the daemon that started it is
/// gone. Polls, so it holds whatever thread spawned the worker and any init or subreaper.
fn exit_with_parent() {
    // SAFETY: getppid takes nothing and cannot fail.
    let parent = unsafe { libc::getppid() };
    std::thread::Builder::new()
        .name("parent-watch".into())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(250));
            // SAFETY: as above.
            if unsafe { libc::getppid() } != parent {
                eprintln!("mediaspool worker: the daemon (pid {parent}) is gone; exiting");
                std::process::exit(3);
            }
        })
        .expect("spawn a thread");
}

fn inject_fault(faults: &str, file_name: &str) {
    for fault in faults.split(',').filter(|f| !f.is_empty()) {
        let Some((kind, text)) = fault.split_once(':') else {
            continue;
        };
        if text.is_empty() || !file_name.contains(text) {
            continue;
        }
        match kind {
            "crash" => std::process::abort(),
            "hang" => loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            },
            "oom" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 64 << 20]);
                }
            }
            _ => {}
        }
    }
}
