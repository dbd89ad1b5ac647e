//! `mediaspool watch`: the daemon until SIGINT/SIGTERM; a second signal exits at once.

use tokio::signal::unix::{signal, SignalKind};

use super::{EXIT_OK, EXIT_USAGE};
use crate::config::Config;
use crate::profile::ProfileSet;

pub fn run(config: Config, profiles: ProfileSet) -> u8 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    runtime.block_on(async {
        // Handlers first, before anything slower: a signal during start-up is a shutdown
        // request like any other, not a kill.
        let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("mediaspool: cannot handle signals: {e}");
                return EXIT_USAGE;
            }
        };
        crate::media::init();
        let shutdown = async move {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            tracing::info!("signal received: finishing in-flight jobs (signal again to stop at once)");
            tokio::spawn(async move {
                tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                // Everything unfinished is still in work/ and resumes at next start.
                tracing::warn!("second signal: exiting now");
                std::process::exit(i32::from(EXIT_OK));
            });
        };
        match crate::daemon::run(config, profiles, shutdown).await {
            Ok(()) => EXIT_OK,
            Err(e) => {
                eprintln!("mediaspool: {e}");
                EXIT_USAGE
            }
        }
    })
}
