//! `mediaspool process FILE...`: the pipeline once on each file, then exit.
//!
//! Files are processed in place (not moved); a `FILE.meta.json` beside a file is its manifest.
//! Jobs run concurrently up to `spool.jobs`, in worker processes, with the catalog's dedup, and
//! records go through the outbox to the configured sinks like the daemon's. On stderr: each
//! rejection, then one summary line (counts by outcome and code, bytes, wall time); with
//! `--json`, each record on stdout as its file is done.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Semaphore;

use super::{DELIVERY_WITHIN, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE};
use crate::catalog::JobVerdict;
use crate::config::Config;
use crate::ingest::spool::{new_job_id, MANIFEST_SUFFIX};
use crate::pipeline::{self, JobInput, ManifestSource};
use crate::profile::ProfileSet;
use crate::records::{Record, Tally};

/// What `process` prints besides the rejections.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// Each record on stdout.
    pub json: bool,
    /// The summary line and the progress bar (off with `-q`).
    pub summary: bool,
}

pub fn run(config: Config, profiles: ProfileSet, files: &[PathBuf], report: Report) -> u8 {
    crate::media::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    runtime.block_on(process(config, profiles, files, report))
}

async fn process(config: Config, profiles: ProfileSet, files: &[PathBuf], report: Report) -> u8 {
    let started = Instant::now();
    let scratch = match tempfile::Builder::new().prefix("mediaspool-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("mediaspool: cannot create a scratch directory: {e}");
            return EXIT_USAGE;
        }
    };
    let jobs = config.spool.effective_jobs();
    let built = match crate::daemon::sinks(&config) {
        Ok(sinks) => crate::daemon::context(config, profiles, scratch.path().to_path_buf())
            .await
            .map(|ctx| (sinks, ctx)),
        Err(e) => Err(e),
    };
    let (sinks, ctx) = match built {
        Ok((s, c)) => (s, Arc::new(c)),
        Err(e) => {
            eprintln!("mediaspool: {e}");
            return EXIT_USAGE;
        }
    };
    let bar = if report.summary {
        ProgressBar::new(files.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}").expect("template parses"));
    let slots = Arc::new(Semaphore::new(jobs));
    let mut tasks = tokio::task::JoinSet::new();
    for file in files {
        let permit = Arc::clone(&slots)
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let name = file
            .file_name()
            .map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().to_string());
        let mut manifest = file.as_os_str().to_owned();
        manifest.push(MANIFEST_SUFFIX);
        let input = JobInput {
            job_id: new_job_id(),
            path: file.clone(),
            file_name: name.clone(),
            manifest: ManifestSource::File(PathBuf::from(manifest)),
            permit: Some(permit),
        };
        let (ctx, bar) = (Arc::clone(&ctx), bar.clone());
        tasks.spawn(async move {
            bar.set_message(name.clone());
            let result = pipeline::run(&ctx, input).await;
            bar.inc(1);
            match result {
                Ok(r) => {
                    match &r.verdict {
                        JobVerdict::Done => {}
                        JobVerdict::Failed(f) => {
                            bar.suspend(|| eprintln!("{name}: rejected ({}): {}", f.code, f.message))
                        }
                        JobVerdict::Removed => bar.suspend(|| {
                            eprintln!("{name}: refused: no consent in its manifest (file left in place)")
                        }),
                    }
                    Ok((r.verdict, r.record))
                }
                Err(e) => {
                    bar.suspend(|| eprintln!("{name}: {e}"));
                    Err(())
                }
            }
        });
    }
    let (mut tally, mut failed) = (Tally::default(), 0);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok((verdict, record))) => {
                if verdict != JobVerdict::Done {
                    failed += 1;
                }
                if let Some(record) = record {
                    tally.add(&record);
                    // With the stdout sink on, it prints each record once; `--json` adds
                    // nothing.
                    if report.json && !ctx.config.records.stdout {
                        print_record(&record);
                    }
                }
            }
            Ok(Err(())) | Err(_) => {
                failed += 1;
                tally.unrecorded += 1;
            }
        }
    }
    bar.finish_and_clear();
    ctx.workers.shutdown().await;
    sinks.deliver_due(&ctx.catalog, DELIVERY_WITHIN).await;
    if report.summary {
        let s = if tally.jobs() == 1 { "" } else { "s" };
        let took = started.elapsed().as_secs_f64();
        eprintln!("mediaspool: {} file{s} in {took:.2} s: {tally}", tally.jobs());
    }
    super::report_backlog(&sinks, &ctx.catalog).await;
    if failed > 0 {
        EXIT_SOME_FAILED
    } else {
        EXIT_OK
    }
}

/// One record as a line on stdout, for scripts; a closed stdout is not the batch's failure
/// (the records are in the outbox).
fn print_record(record: &Record) {
    let line = serde_json::to_string(record).expect("a record serialises");
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        tracing::warn!(error = %e, "cannot print a record on stdout");
    }
}
