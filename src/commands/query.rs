//! `mediaspool query`: records from the catalog as NDJSON.

use super::{block_on, open_catalog, EXIT_OK, EXIT_USAGE};
use crate::catalog::QueryFilter;
use crate::config::Config;

pub fn run(config: &Config, filter: &QueryFilter) -> u8 {
    block_on(query(config, filter))
}

async fn query(config: &Config, filter: &QueryFilter) -> u8 {
    let Some(catalog) = open_catalog(config).await else {
        return EXIT_USAGE;
    };
    match catalog.query(filter).await {
        Ok(found) => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for r in found.records {
                let _ = writeln!(out, "{}", serde_json::to_string(&r).expect("record serialises"));
            }
            if !found.withheld.is_empty() {
                eprintln!(
                    "mediaspool: {} matching record(s) over the {} KiB record limit, written by an earlier version, left out: {}",
                    found.withheld.len(),
                    crate::records::MAX_RECORD_BYTES / 1024,
                    found.withheld.join(" ")
                );
            }
            EXIT_OK
        }
        Err(e) => {
            eprintln!("mediaspool: {e}");
            EXIT_USAGE
        }
    }
}

/// `--since`/`--until` as RFC 3339; a bare date means its midnight (UTC).
pub fn parse_time(text: &str) -> Result<String, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .expect("formats"));
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &date_format)
        .map(|d| d.midnight().assume_utc().format(&Rfc3339).expect("formats"))
        .map_err(|_| {
            format!("{text:?} is not a date (2026-11-28) or an RFC 3339 time (2026-11-28T10:00:00Z)")
        })
}
