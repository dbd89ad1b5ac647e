//! `mediaspool watch`: the daemon around the pipeline.
//!
//! In: the spool, the configuration, and a shutdown trigger. Out: every file that appears in
//! `incoming/` ends as exactly one committed record and leaves the spool through `done/`,
//! `failed/` or deletion. The spool is the queue: a file is claimed only when a job slot is free
//! (`spool.jobs`), so nothing is read ahead without bound. What `work/` holds at start is
//! resumed first. On shutdown, intake stops at once, in-flight jobs get `spool.shutdown_grace`
//! to finish, and whatever is still running is stopped and put back into `incoming/`; the
//! outbox is drained one last time. Nothing is lost either way.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use crate::catalog::{Catalog, JobVerdict};
use crate::config::Config;
use crate::failure::{ErrorCode, Failure};
use crate::ingest::spool::{new_job_id, JOB_SEPARATOR};
use crate::ingest::watch::{self as watcher, WatchSettings};
use crate::ingest::{Claim, Claimed, Spool, Went};
use crate::pipeline::{self, Ctx, JobInput, ManifestSource};
use crate::profile::ProfileSet;
use crate::records::outbox::{self, Sinks};
use crate::records::{Event, NdjsonSink, Record, SourceInfo};
use crate::store::Store;
use crate::worker::pool::{Limits, WorkerPool};
use crate::worker::Setup;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("spool {path}: {source}")]
    Spool { path: String, source: std::io::Error },
    #[error("{0}")]
    Setup(String),
}

/// A job waiting for a slot: a name still in `incoming/`, or one already in `work/`.
enum Pending {
    Name(String),
    Claimed(Claimed),
}

/// Builds the shared job context from configuration (store, catalog, workers).
pub fn context(
    config: Config,
    profiles: ProfileSet,
    scratch: std::path::PathBuf,
) -> Result<Ctx, DaemonError> {
    let store = Store::from_config(&config.store).map_err(|e| DaemonError::Setup(e.to_string()))?;
    let catalog = Catalog::open(&config.catalog.url).map_err(|e| DaemonError::Setup(e.to_string()))?;
    let setup = Setup {
        profiles: profiles.iter().cloned().collect(),
        routing: config.routing.clone(),
        threads: config.spool.threads_per_job(),
    };
    let limits = Limits {
        timeout: config.spool.job_timeout,
        memory_bytes: config.spool.job_memory.as_u64(),
    };
    let workers = WorkerPool::new(&setup, limits).map_err(|e| DaemonError::Setup(format!("workers: {e}")))?;
    Ok(Ctx::new(config, profiles, store, catalog, workers, scratch))
}

pub fn sinks(config: &Config) -> Result<Sinks, DaemonError> {
    let ndjson = NdjsonSink::open(&config.records.outbox).map_err(|e| {
        DaemonError::Setup(format!("records.outbox {}: {e}", config.records.outbox.display()))
    })?;
    Ok(Sinks {
        ndjson,
        stdout: config.records.stdout,
    })
}

/// Runs until `shutdown` completes, then stops gracefully (see the module docs).
pub async fn run(
    config: Config,
    profiles: ProfileSet,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let spool_dir = config.spool.dir.display().to_string();
    let spool_err = |source| DaemonError::Spool {
        path: spool_dir.clone(),
        source,
    };
    let spool = Spool::open(&config.spool.dir).map_err(spool_err)?;
    spool.clear_abandoned_scratch();
    let jobs = config.spool.effective_jobs();
    let shutdown_grace = config.spool.shutdown_grace;
    let manifest_grace = config.spool.manifest_grace;
    let keep_originals = config.spool.keep_originals;
    let settings = WatchSettings {
        mode: config.spool.watch,
        quiet_period: config.spool.quiet_period,
        rescan_interval: config.spool.rescan_interval,
    };
    let sinks = Arc::new(sinks(&config)?);
    let ctx = Arc::new(context(config, profiles, spool.scratch_root())?);
    settle_orphan_manifests(&ctx, &spool, keep_originals);

    let (stop_tx, stop_rx) = watch::channel(false);
    // The outbox drains until every job has ended: its own stop comes last.
    let (drained_tx, drained_rx) = watch::channel(false);
    let drainer = tokio::spawn(outbox::run(Arc::clone(&ctx), Arc::clone(&sinks), drained_rx));
    let mut names = watcher::start(&spool, settings, stop_rx.clone())
        .map_err(|e| DaemonError::Setup(format!("watch: {e}")))?;

    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut queued: HashSet<String> = HashSet::new();
    let resumed = spool.in_work().map_err(spool_err)?;
    if !resumed.is_empty() {
        tracing::info!(jobs = resumed.len(), "resuming jobs left in work/");
    }
    queue.extend(resumed.into_iter().map(Pending::Claimed));

    let slots = Arc::new(Semaphore::new(jobs));
    let running: Arc<Mutex<HashMap<String, Claimed>>> = Arc::default();
    // Tries of jobs whose catalog error is not one that passes.
    let catalog_failures: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let (retry_tx, mut retry_rx) = mpsc::unbounded_channel::<Claimed>();
    tracing::info!(spool = %spool.root.display(), jobs, "watching");
    tokio::pin!(shutdown);

    loop {
        // Finished tasks are reaped as they end, so the set does not grow.
        while tasks.try_join_next().is_some() {}
        let idle = queue.is_empty();
        let next_slot = async {
            if idle {
                std::future::pending::<()>().await;
            }
            Arc::clone(&slots)
                .acquire_owned()
                .await
                .expect("semaphore never closed")
        };
        tokio::select! {
            _ = &mut shutdown => break,
            Some(name) = names.recv() => {
                if queued.insert(name.clone()) {
                    queue.push_back(Pending::Name(name));
                }
            }
            Some(job) = retry_rx.recv() => queue.push_back(Pending::Claimed(job)),
            permit = next_slot => {
                let Some(pending) = queue.pop_front() else { continue };
                let job = match pending {
                    Pending::Claimed(job) => job,
                    Pending::Name(name) => {
                        queued.remove(&name);
                        match spool.claim(&name) {
                            Ok(Claim::Claimed(job)) => job,
                            Ok(Claim::Gone) => continue,
                            Ok(Claim::Refused { name, what, moved_to }) => {
                                refuse(&ctx, &spool, &name, what, &moved_to).await;
                                continue;
                            }
                            Err(e) => {
                                tracing::warn!(file = %name, error = %e, "cannot claim");
                                continue;
                            }
                        }
                    }
                };
                running.lock().unwrap_or_else(|p| p.into_inner()).insert(job.job_id.clone(), job.clone());
                let (ctx, spool, running, retry) = (Arc::clone(&ctx), spool.clone(), Arc::clone(&running), retry_tx.clone());
                let catalog_failures = Arc::clone(&catalog_failures);
                tasks.spawn(async move {
                    let input = JobInput {
                        job_id: job.job_id.clone(),
                        path: job.path.clone(),
                        file_name: job.name.clone(),
                        manifest: ManifestSource::Spool { spool: Box::new(spool.clone()), job: job.clone(), deadline: Instant::now() + manifest_grace },
                        permit: Some(permit),
                    };
                    let again = match pipeline::run(&ctx, input).await {
                        Ok(result) => {
                            finish(&spool, &job, &result.verdict, keep_originals);
                            catalog_failures.lock().unwrap_or_else(|p| p.into_inner()).remove(&job.job_id);
                            false
                        }
                        Err(e) if e.is_transient() => {
                            tracing::error!(file = %job.name, error = %e, "catalog failed; trying again in 5 s");
                            true
                        }
                        Err(e) => {
                            let tries = {
                                let mut failures = catalog_failures.lock().unwrap_or_else(|p| p.into_inner());
                                let tries = failures.entry(job.job_id.clone()).or_default();
                                *tries += 1;
                                *tries
                            };
                            if tries < MAX_CATALOG_TRIES {
                                tracing::error!(file = %job.name, error = %e, tries, "catalog failed; trying again in 5 s");
                                true
                            } else {
                                // It will not pass: quarantined with the reason, for an operator.
                                tracing::error!(file = %job.name, error = %e, "catalog failed {tries} times; quarantined without a record");
                                finish(&spool, &job, &JobVerdict::Failed(e.failure()), keep_originals);
                                catalog_failures.lock().unwrap_or_else(|p| p.into_inner()).remove(&job.job_id);
                                false
                            }
                        }
                    };
                    running.lock().unwrap_or_else(|p| p.into_inner()).remove(&job.job_id);
                    if again {
                        // Still in work/: a stop in the meantime resumes it at the next start.
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        let _ = retry.send(job);
                    }
                });
            }
        }
    }

    while tasks.try_join_next().is_some() {}
    tracing::info!(in_flight = tasks.len(), "stopping: no new files taken");
    let _ = stop_tx.send(true);
    let deadline = tokio::time::sleep(shutdown_grace);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { break },
            _ = &mut deadline => {
                let left: Vec<Claimed> = running.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
                tracing::warn!(jobs = left.len(), "shutdown grace over; putting unfinished jobs back");
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                for job in left {
                    if let Err(e) = spool.put_back(&job) {
                        tracing::error!(file = %job.name, error = %e, "cannot put back; it stays in work/ and resumes at next start");
                    }
                }
                break;
            }
        }
    }
    ctx.workers.shutdown().await;
    let _ = drained_tx.send(true);
    let _ = drainer.await;
    tracing::info!("stopped");
    Ok(())
}

/// Tries of a job whose catalog error does not pass before it is quarantined.
const MAX_CATALOG_TRIES: u32 = 3;

/// Manifests left in `work/` without their media by a daemon that stopped mid-release go
/// where the catalog says their job's media went, once they are still orphans a few seconds
/// later (a live daemon on the same spool may be between the two moves). A manifest whose job
/// the catalog does not know stays where it is.
fn settle_orphan_manifests(ctx: &Arc<Ctx>, spool: &Spool, keep: bool) {
    let orphans = match spool.orphan_manifests() {
        Ok(orphans) if !orphans.is_empty() => orphans,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot look for manifests left in work/");
            return;
        }
    };
    let (ctx, spool) = (Arc::clone(ctx), spool.clone());
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let _ = tokio::task::spawn_blocking(move || {
            for manifest in orphans {
                let name = manifest.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                let job_id = name.split_once(JOB_SEPARATOR).map_or("", |(id, _)| id);
                let went = match ctx.catalog.finished_job(job_id) {
                    Ok(Some(JobVerdict::Done)) => Went::Done,
                    Ok(Some(JobVerdict::Failed(_))) => Went::Failed,
                    Ok(Some(JobVerdict::Removed)) => Went::Removed,
                    Ok(None) => {
                        tracing::warn!(manifest = %manifest.display(), "manifest of an unknown job left in work/");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(manifest = %manifest.display(), error = %e, "cannot settle a manifest left in work/");
                        continue;
                    }
                };
                match spool.settle_orphan_manifest(&manifest, went, keep) {
                    Ok(()) => tracing::info!(manifest = %manifest.display(), ?went, "manifest left in work/ settled"),
                    Err(e) => tracing::warn!(manifest = %manifest.display(), error = %e, "cannot move a manifest left in work/"),
                }
            }
        })
        .await;
    });
}

/// Moves a job's input where its verdict says.
fn finish(spool: &Spool, job: &Claimed, verdict: &JobVerdict, keep: bool) {
    let moved = match verdict {
        JobVerdict::Done => spool.release(job, keep),
        JobVerdict::Failed(failure) => spool.quarantine(job, failure).map(|_| ()),
        JobVerdict::Removed => spool.remove(job),
    };
    if let Err(e) = moved {
        tracing::error!(file = %job.name, error = %e, "cannot move the input out of work/; it will be resumed");
    }
}

/// Something that is not a regular file was in `incoming/`: it has been moved to `failed/`;
/// write its error file and a rejected record.
async fn refuse(ctx: &Arc<Ctx>, spool: &Spool, name: &str, what: &str, moved_to: &std::path::Path) {
    let failure = Failure::new(
        ErrorCode::NOT_A_REGULAR_FILE,
        format!("{name} is {what}; only regular files are taken (it was not followed or opened)"),
    );
    tracing::warn!(file = name, "{}", failure.message);
    if let Err(e) = spool.write_error(moved_to, &failure) {
        tracing::error!(file = name, error = %e, "cannot write the error file");
    }
    let mut record = Record::new(
        Event::Rejected,
        name,
        None,
        SourceInfo {
            file_name: name.to_string(),
            ..Default::default()
        },
    );
    record.error = Some(failure.clone());
    let (c, job_id, key) = (Arc::clone(ctx), new_job_id(), name.to_string());
    let committed = tokio::task::spawn_blocking(move || {
        c.catalog.commit(
            &job_id,
            &key,
            &record,
            None,
            &JobVerdict::Failed(failure),
            &c.sinks,
        )
    })
    .await;
    if !matches!(committed, Ok(Ok(()))) {
        tracing::error!(file = name, "cannot record the refusal");
    }
    ctx.committed.notify_one();
}
