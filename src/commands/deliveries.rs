//! `mediaspool deliveries [--sink NAME] [--dead]` and `mediaspool redrive [--sink NAME]
//! [--record ID]`: what waits for the sinks, and dead letters put back in line.

use super::{block_on, open_catalog, EXIT_OK, EXIT_USAGE};
use crate::catalog::{now_ms, DeliveryRow};
use crate::config::Config;

/// At most this many rows are listed per run.
const LIMIT: usize = 10_000;

/// The sinks to report on: the configured ones, or the one asked for.
fn sink_names(config: &Config, only: Option<&str>) -> Vec<String> {
    if let Some(name) = only {
        return vec![name.to_string()];
    }
    let mut names = vec!["ndjson".to_string()];
    if config.records.stdout {
        names.push("stdout".into());
    }
    names.extend(config.sinks.keys().cloned());
    names
}

pub fn list(config: &Config, sink: Option<&str>, dead: bool) -> u8 {
    block_on(list_deliveries(config, sink, dead))
}

async fn list_deliveries(config: &Config, sink: Option<&str>, dead: bool) -> u8 {
    let Some(catalog) = open_catalog(config).await else {
        return EXIT_USAGE;
    };
    for name in sink_names(config, sink) {
        match catalog.sink_backlog(&name).await {
            Ok(b) => {
                let state = match &b.disabled {
                    Some((at, reason)) => format!("DISABLED since {} ({reason})", rfc3339(*at)),
                    None => "active".into(),
                };
                eprintln!("sink {name}: {} waiting, {} dead, {state}", b.waiting, b.dead);
            }
            Err(e) => {
                eprintln!("mediaspool: {e}");
                return EXIT_USAGE;
            }
        }
    }
    let rows = match catalog.list_deliveries(sink, dead, LIMIT).await {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("mediaspool: {e}");
            return EXIT_USAGE;
        }
    };
    for row in &rows {
        println!("{}", line(row));
    }
    EXIT_OK
}

/// One delivery as a JSON line: what a script can read and a person can scan.
fn line(row: &DeliveryRow) -> String {
    let record: serde_json::Value = serde_json::from_str(&row.body).unwrap_or_default();
    serde_json::json!({
        "sink": row.sink,
        "record_id": row.record_id,
        "event": record["event"],
        "file_name": record["source"]["file_name"],
        "chat_id": row.chat_id,
        "attempts": row.attempts,
        "queued_at": rfc3339(row.queued_ms),
        "next_attempt_at": (row.dead_ms.is_none() && row.next_attempt_ms > now_ms()).then(|| rfc3339(row.next_attempt_ms)),
        "dead_at": row.dead_ms.map(rfc3339),
        "last_error": row.last_error,
    })
    .to_string()
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

pub fn redrive(config: &Config, sink: Option<&str>, record: Option<&str>) -> u8 {
    block_on(async {
        let Some(catalog) = open_catalog(config).await else {
            return EXIT_USAGE;
        };
        redrive_dead(&*catalog, sink, record).await
    })
}

async fn redrive_dead(catalog: &dyn crate::catalog::Catalog, sink: Option<&str>, record: Option<&str>) -> u8 {
    match catalog.redrive(sink, record).await {
        Ok(n) => {
            eprintln!("{n} dead-lettered deliveries put back in line");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("mediaspool: {e}");
            EXIT_USAGE
        }
    }
}
