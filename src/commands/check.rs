//! `mediaspool check`: configuration, profiles, store, catalog, spool and sinks, every problem
//! listed (creating what is missing, as the daemon would).

use std::time::Duration;

use super::{EXIT_OK, EXIT_USAGE};
use crate::config::Config;
use crate::delivery::{build_http_sinks, sample_records, NdjsonSink};
use crate::profile::ProfileSet;

pub fn run(loaded: Result<(Config, ProfileSet), String>) -> u8 {
    let (config, profiles) = match loaded {
        Ok(pair) => pair,
        Err(message) => {
            eprintln!("mediaspool: {message}");
            return EXIT_USAGE;
        }
    };
    let mut problems = store_problems(&config);
    // A catalog that cannot be reached is named at once, not waited for.
    let catalog = super::block_on(crate::catalog::open_within(&config.catalog.url, Duration::ZERO))
        .map_err(|e| problems.push(e.to_string()))
        .ok();
    if let Err(e) = crate::ingest::Spool::open(&config.spool.dir) {
        problems.push(format!("spool.dir {}: {e}", config.spool.dir.display()));
    }
    if let Err(e) = NdjsonSink::open(&config.records.outbox) {
        problems.push(format!("records.outbox {}: {e}", config.records.outbox.display()));
    }
    let mut sink_lines = Vec::new();
    for (name, built) in build_http_sinks(&config) {
        let sink = match built {
            Ok(sink) => sink,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        let mut line = format!("sink {name:<12}");
        for record in sample_records() {
            let json = serde_json::to_string(&record).expect("records serialise");
            match sink.render(&json) {
                Ok(r) => {
                    let host = reqwest::Url::parse(&r.url)
                        .ok()
                        .and_then(|u| u.host_str().map(str::to_string));
                    match host {
                        Some(host) if line.len() < 20 => line.push_str(&format!(" {} {host}…", r.method)),
                        Some(_) => {}
                        None => problems.push(format!(
                            "sinks.{name}: for a {} record the url is not a URL",
                            record.event.as_str()
                        )),
                    }
                }
                Err(e) => problems.push(format!(
                    "sinks.{name}: cannot render a {} record: {e}",
                    record.event.as_str()
                )),
            }
        }
        let backlog = catalog.as_ref().map(|c| super::block_on(c.sink_backlog(&name)));
        if let Some(Ok(b)) = backlog {
            line.push_str(&format!("  {} waiting, {} dead", b.waiting, b.dead));
            if let Some((_, reason)) = b.disabled {
                problems.push(format!(
                    "sinks.{name}: disabled ({reason}); `mediaspool redrive --sink {name}` enables it again"
                ));
            }
        }
        sink_lines.push(line);
    }
    if problems.is_empty() {
        for line in &sink_lines {
            println!("{line}");
        }
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
    super::block_on(async {
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
