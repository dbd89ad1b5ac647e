//! Profile TOML → `Profile::parse`: a profile exactly when no problem was found, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediaspool::profile::Profile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut problems = Vec::new();
    let profile = Profile::parse("fuzz", text, &mut problems);
    assert_eq!(profile.is_some(), problems.is_empty(), "{problems:?}");
});
