//! Arbitrary bytes in a file → `media::probe`, as a worker probes every input: a probe or a
//! failure with a code from the table, never a panic, a hang or unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediaspool::failure::ErrorCode;

#[path = "panics.rs"]
mod panics;

fuzz_target!(|data: &[u8]| {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        panics::findings_only();
        mediaspool::media::init();
    });
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::write(&input, data).unwrap();
    match mediaspool::media::probe(&input) {
        Ok(probe) => {
            assert_eq!(probe.bytes, data.len() as u64);
            serde_json::to_string(&probe).unwrap();
        }
        Err(e) => {
            let code = e.failure().code;
            assert_eq!(ErrorCode::find(code.id()), Some(code));
        }
    }
});
