//! Manifest bytes → `Manifest::parse`. Never panics or overflows the stack, however deep the
//! JSON nests; whatever it accepts is within every manifest limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediaspool::ingest::manifest::{
    Manifest, MAX_CHANNEL_BYTES, MAX_EXTRA_BYTES, MAX_EXTRA_DEPTH, MAX_ID_BYTES, MAX_RETENTION_DAYS, MAX_TAGS,
    MAX_TAG_BYTES, MAX_TIME_BYTES,
};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Manifest::parse(data) else { return };
    for id in [&m.customer_id, &m.chat_id, &m.message_id] {
        assert!(id.as_ref().map_or(0, String::len) <= MAX_ID_BYTES);
    }
    assert!(m.channel.as_ref().map_or(0, String::len) <= MAX_CHANNEL_BYTES);
    assert!(m.received_at.as_ref().map_or(0, String::len) <= MAX_TIME_BYTES);
    assert!(m.tags.len() <= MAX_TAGS);
    assert!(m.tags.iter().all(|t| t.len() <= MAX_TAG_BYTES));
    assert!(m.retention_days.unwrap_or(0) <= MAX_RETENTION_DAYS);
    if let Some(extra) = &m.extra {
        assert!(serde_json::to_string(extra).unwrap().len() <= MAX_EXTRA_BYTES);
        let depth = 1 + extra.values().map(depth).max().unwrap_or(0);
        assert!(depth <= MAX_EXTRA_DEPTH, "extra nests {depth} levels");
    }
});

/// Levels of arrays and objects in `v`.
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}
