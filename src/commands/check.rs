//! `mediaspool check`: configuration, profiles, store, catalog, spool and sinks, every problem
//! listed (creating what is missing, as the daemon would).

use super::{EXIT_OK, EXIT_USAGE};
use crate::config::Config;
use crate::profile::ProfileSet;
use crate::records::NdjsonSink;

pub fn run(loaded: Result<(Config, ProfileSet), String>) -> u8 {
    let (config, profiles) = match loaded {
        Ok(pair) => pair,
        Err(message) => {
            eprintln!("mediaspool: {message}");
            return EXIT_USAGE;
        }
    };
    let mut problems = store_problems(&config);
    if let Err(e) = crate::catalog::Catalog::open(&config.catalog.url) {
        problems.push(e.to_string());
    }
    if let Err(e) = crate::ingest::Spool::open(&config.spool.dir) {
        problems.push(format!("spool.dir {}: {e}", config.spool.dir.display()));
    }
    if let Err(e) = NdjsonSink::open(&config.records.outbox) {
        problems.push(format!("records.outbox {}: {e}", config.records.outbox.display()));
    }
    if problems.is_empty() {
        for p in profiles.iter() {
            println!("profile {:<12} {} {}  {}", p.name, p.kind(), p.id, p.description);
        }
        println!("ok");
        EXIT_OK
    } else {
        for p in &problems {
            eprintln!("mediaspool: {p}");
        }
        EXIT_USAGE
    }
}

/// Reaches the store: it opens, the bucket or container exists, a probe object can be written
/// and deleted.
fn store_problems(config: &Config) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    runtime.block_on(async {
        match crate::store::open(&config.store).await {
            Ok(store) => store
                .check()
                .await
                .into_iter()
                .map(|p| format!("store: {p}"))
                .collect(),
            Err(e) => vec![format!("store: {e}")],
        }
    })
}
