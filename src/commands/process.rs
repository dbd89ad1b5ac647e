//! `mediaspool process FILE...`: the pipeline once on each file, then exit.
//!
//! Files are processed in place (not moved); a `FILE.meta.json` beside a file is its manifest.
//! Jobs run concurrently up to `spool.jobs`, in worker processes, with the catalog's dedup, and
//! records go through the outbox to the configured sinks like the daemon's.

use std::path::PathBuf;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Semaphore;

use super::{EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE};
use crate::catalog::JobVerdict;
use crate::config::Config;
use crate::ingest::spool::{new_job_id, MANIFEST_SUFFIX};
use crate::pipeline::{self, JobInput, ManifestSource};
use crate::profile::ProfileSet;

pub fn run(config: Config, profiles: ProfileSet, files: &[PathBuf]) -> u8 {
    crate::media::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    runtime.block_on(process(config, profiles, files))
}

async fn process(config: Config, profiles: ProfileSet, files: &[PathBuf]) -> u8 {
    let scratch = match tempfile::Builder::new().prefix("mediaspool-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("mediaspool: cannot create a scratch directory: {e}");
            return EXIT_USAGE;
        }
    };
    let jobs = config.spool.effective_jobs();
    let built = crate::daemon::sinks(&config).and_then(|sinks| {
        Ok((
            sinks,
            crate::daemon::context(config, profiles, scratch.path().to_path_buf())?,
        ))
    });
    let (sinks, ctx) = match built {
        Ok((s, c)) => (s, Arc::new(c)),
        Err(e) => {
            eprintln!("mediaspool: {e}");
            return EXIT_USAGE;
        }
    };
    let bar = ProgressBar::new(files.len() as u64);
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
                Ok(r) => match r.verdict {
                    JobVerdict::Done => true,
                    JobVerdict::Failed(f) => {
                        bar.suspend(|| eprintln!("{name}: rejected ({}): {}", f.code, f.message));
                        false
                    }
                    JobVerdict::Removed => {
                        bar.suspend(|| {
                            eprintln!("{name}: refused: no consent in its manifest (file left in place)")
                        });
                        false
                    }
                },
                Err(e) => {
                    bar.suspend(|| eprintln!("{name}: {e}"));
                    false
                }
            }
        });
    }
    let mut failed = 0;
    while let Some(ok) = tasks.join_next().await {
        if !matches!(ok, Ok(true)) {
            failed += 1;
        }
    }
    bar.finish_and_clear();
    ctx.workers.shutdown().await;
    if let Err(e) = sinks.drain(&ctx.catalog) {
        eprintln!("mediaspool: cannot deliver records: {e}");
        return EXIT_SOME_FAILED;
    }
    if failed > 0 {
        EXIT_SOME_FAILED
    } else {
        EXIT_OK
    }
}
