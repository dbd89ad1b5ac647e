//! Which panics count as findings. The product reads declared durations with symphonia inside
//! `catch_unwind` (a parser panic there only means "no answer"), but libFuzzer's hook aborts at
//! any panic, caught or not. This hook lets a panic raised in symphonia unwind to the product's
//! guard; every other panic, and a symphonia panic that escaped the guard (libFuzzer catches
//! what reaches it), is still a finding.

pub fn findings_only() {
    let libfuzzer = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.location().is_some_and(|l| l.file().contains("/symphonia")) {
            return;
        }
        libfuzzer(info);
    }));
}
