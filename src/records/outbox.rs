//! Draining the outbox: committed records to every configured sink, at least once.
//!
//! In: outbox rows in the catalog, each with one delivery row per sink. Out: the record's JSON
//! line written to the sink (the NDJSON file, stdout), then the delivery marked done. A crash
//! between the two writes the line again after restart: receivers drop repeats by `record_id`.
//! Blocking calls; the async loop runs them on a blocking thread.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::NdjsonSink;
use crate::catalog::{Catalog, CatalogError};
use crate::metrics;
use crate::pipeline::Ctx;

/// The sinks of this process.
pub struct Sinks {
    pub ndjson: NdjsonSink,
    pub stdout: bool,
}

const BATCH: usize = 256;
/// Delivered outbox rows are kept this long (for inspection), then forgotten; the records
/// stay in the catalog for `query`.
const KEEP_DELIVERED_DAYS: i64 = 7;
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Sinks {
    /// Delivers everything pending; returns how many lines were written.
    pub fn drain(&self, catalog: &Catalog) -> Result<usize, CatalogError> {
        let mut written = 0;
        loop {
            let batch = catalog.pending("ndjson", BATCH)?;
            if batch.is_empty() {
                break;
            }
            let started = std::time::Instant::now();
            for (_, body) in &batch {
                if let Err(e) = self.ndjson.append_line(body) {
                    metrics::delivered("ndjson", 0, false, started.elapsed());
                    tracing::error!(path = %self.ndjson.path().display(), error = %e, "cannot write records; will retry");
                    return Ok(written);
                }
                written += 1;
            }
            metrics::delivered("ndjson", batch.len() as u64, true, started.elapsed());
            catalog.mark_delivered("ndjson", &batch.iter().map(|(seq, _)| *seq).collect::<Vec<_>>())?;
        }
        if self.stdout {
            loop {
                let batch = catalog.pending("stdout", BATCH)?;
                if batch.is_empty() {
                    break;
                }
                let started = std::time::Instant::now();
                let mut out = std::io::stdout().lock();
                let result: std::io::Result<()> = batch
                    .iter()
                    .try_for_each(|(_, body)| writeln!(out, "{body}"))
                    .and_then(|()| out.flush());
                metrics::delivered("stdout", batch.len() as u64, result.is_ok(), started.elapsed());
                if let Err(e) = result {
                    tracing::error!(error = %e, "cannot write records to stdout; will retry");
                    return Ok(written);
                }
                catalog.mark_delivered("stdout", &batch.iter().map(|(seq, _)| *seq).collect::<Vec<_>>())?;
            }
        }
        Ok(written)
    }
}

/// Drains after every commit (and every second, for anything a failed write left behind),
/// until `stop` turns true; then drains one last time.
pub async fn run(ctx: Arc<Ctx>, sinks: Arc<Sinks>, mut stop: watch::Receiver<bool>) {
    let c = Arc::clone(&ctx);
    if let Ok(Ok(withheld)) = tokio::task::spawn_blocking(move || c.catalog.withheld("ndjson")).await {
        for (record_id, bytes) in withheld {
            tracing::warn!(record = %record_id, bytes, limit = super::MAX_RECORD_BYTES, "record over the size limit, written by an earlier version: never delivered");
        }
    }
    let mut last_prune = std::time::Instant::now();
    loop {
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = std::time::Instant::now();
            let c = Arc::clone(&ctx);
            let pruned = tokio::task::spawn_blocking(move || {
                let before = time::OffsetDateTime::now_utc() - time::Duration::days(KEEP_DELIVERED_DAYS);
                let before = before
                    .format(&time::format_description::well_known::Rfc3339)
                    .expect("formats");
                c.catalog.prune_delivered(&before)
            })
            .await;
            if let Ok(Err(e)) = pruned {
                tracing::warn!(error = %e, "cannot prune the outbox");
            }
        }
        let (c, s) = (Arc::clone(&ctx), Arc::clone(&sinks));
        match tokio::task::spawn_blocking(move || s.drain(&c.catalog)).await {
            Ok(Err(e)) => tracing::error!(error = %e, "outbox drain failed; will retry"),
            Err(e) => tracing::error!(error = %e, "outbox drain panicked; will retry"),
            Ok(Ok(_)) => {}
        }
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            _ = ctx.committed.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => {}
        }
    }
}
