//! How this process logs: the filter from `-q`/`-v`/`MEDIASPOOL_LOG`, human or JSON lines on
//! stderr, every line redacted on its way out (`privacy::redact`). In: the command line's
//! logging flags. Out: the global `tracing` subscriber, and the same flags for every worker
//! process this one starts, so that a worker's lines (libav's messages among them) come at the
//! parent's level and in the parent's format. Never fails: a second initialisation is ignored.

use std::sync::OnceLock;

use crate::cli::LogFormat;
use crate::privacy::redact::{self, LineFormat};

/// The flags a worker process is started with; set once, at initialisation.
static WORKER_FLAGS: OnceLock<Vec<&'static str>> = OnceLock::new();

pub fn init(format: LogFormat, verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    // mediaspool's own lines at info (the daemon's start, per-job and stop lines); more detail
    // is mediaspool's own first, the libraries' (symphonia's stream notes…) only at -vv.
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "warn,mediaspool=info",
        (false, 1) => "warn,mediaspool=debug",
        (false, _) => "debug",
    };
    let _ = WORKER_FLAGS.set(worker_flags(format, verbose, quiet));
    let mut filter = EnvFilter::try_from_env("MEDIASPOOL_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // The PostgreSQL driver's debug lines carry every statement's parameters: customer and
    // chat ids, whole records. It stays at info unless a filter names it.
    let named = std::env::var("MEDIASPOOL_LOG").is_ok_and(|f| f.contains("tokio_postgres"));
    if !named {
        filter = filter.add_directive("tokio_postgres=info".parse().expect("a valid directive"));
    }
    // Every line passes redaction on its way out: no phone number, name, token or secret,
    // whatever wrote it (see `privacy::redact`).
    redact::register_environment_secrets();
    // Colours only on a terminal: a log file or journal gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Human => builder.with_writer(redact::Stderr(LineFormat::Human)).try_init(),
        LogFormat::Json => builder
            .json()
            .with_writer(redact::Stderr(LineFormat::Json))
            .try_init(),
    };
}

/// The logging flags for a worker process (before its `worker` subcommand); `MEDIASPOOL_LOG`
/// reaches it through the environment.
pub fn flags_for_worker() -> &'static [&'static str] {
    WORKER_FLAGS.get().map(Vec::as_slice).unwrap_or(&[])
}

fn worker_flags(format: LogFormat, verbose: u8, quiet: bool) -> Vec<&'static str> {
    let mut flags = Vec::new();
    if format == LogFormat::Json {
        flags.extend(["--log-format", "json"]);
    }
    if quiet {
        flags.push("--quiet");
    }
    flags.extend(std::iter::repeat_n("--verbose", usize::from(verbose.min(2))));
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_gets_the_parents_format_and_level() {
        assert!(worker_flags(LogFormat::Human, 0, false).is_empty());
        assert_eq!(
            worker_flags(LogFormat::Json, 0, true),
            ["--log-format", "json", "--quiet"]
        );
        assert_eq!(
            worker_flags(LogFormat::Human, 5, false),
            ["--verbose", "--verbose"]
        );
    }
}
