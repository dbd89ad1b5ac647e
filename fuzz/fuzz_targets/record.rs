//! Record JSON (as a catalog row or an outbox line is read back) → `Record`. What parses
//! writes back within `MAX_RECORD_BYTES` or is refused as too large, and what is written reads
//! back to the same JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediaspool::records::{Record, MAX_RECORD_BYTES};

fuzz_target!(|data: &[u8]| {
    let Ok(record) = serde_json::from_slice::<Record>(data) else { return };
    let Ok(json) = record.to_json() else { return };
    assert!(json.len() <= MAX_RECORD_BYTES);
    let again: Record = serde_json::from_str(&json).expect("a written record reads back");
    assert_eq!(again.to_json().unwrap(), json);
});
