//! `mediaspool.toml` text → `Config::from_sources`, then `validate` against the built-in
//! profiles: an error or a config, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediaspool::config::Config;
use mediaspool::profile::ProfileSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = Config::from_sources(text, "fuzz.toml", std::iter::empty()) {
        let _ = config.validate(&ProfileSet::built_in());
    }
});
