//! Arbitrary bytes in a file → the worker's job (probe, route, render, verify) with the setup
//! the daemon sends by default: built-in profiles, default routing, the default memory limit,
//! one thread. Every input
//! ends as an outcome that crosses the worker's pipe (JSON both ways); a failure carries a
//! code from the table. Crashes, hangs and memory growth are libFuzzer's to catch, as the
//! supervisor catches them in the daemon.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediaspool::config::{RoutingConfig, SpoolConfig};
use mediaspool::failure::ErrorCode;
use mediaspool::profile::ProfileSet;
use mediaspool::worker::{job, MediaOutcome, Request, Setup};

#[path = "panics.rs"]
mod panics;

fuzz_target!(|data: &[u8]| {
    static INIT: std::sync::Once = std::sync::Once::new();
    let memory_bytes = SpoolConfig::default().job_memory.as_u64();
    INIT.call_once(|| {
        panics::findings_only();
        mediaspool::media::init();
        mediaspool::media::set_threads(1);
        mediaspool::media::set_memory_limit(memory_bytes);
    });
    let profiles = ProfileSet::built_in();
    let setup = Setup {
        profiles: profiles.iter().cloned().collect(),
        routing: RoutingConfig::default(),
        memory_bytes,
    };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::write(&input, data).unwrap();
    let work_dir = dir.path().join("work");
    std::fs::create_dir(&work_dir).unwrap();
    let request = Request {
        input,
        file_name: "input".to_string(),
        tags: vec![],
        work_dir,
    };
    let outcome = job::run(&setup, &profiles, &request, |_| {});
    let line = serde_json::to_string(&outcome).unwrap();
    let outcome: MediaOutcome = serde_json::from_str(&line).expect("the outcome crosses the pipe");
    if let MediaOutcome::Failed { failure, .. } = outcome {
        assert_eq!(ErrorCode::find(failure.code.id()), Some(failure.code));
    }
});
