//! `mediaspool watch`: the daemon around the pipeline.
//!
//! In: the spool, the configuration, and a shutdown trigger. Out: every file that appears in
//! `incoming/` ends as exactly one committed record and leaves the spool through `done/`,
//! `failed/` or deletion. The spool is the queue: a file is claimed only when a job slot is free
//! (`spool.jobs`), so nothing is read ahead without bound. What `work/` holds at start is
//! resumed first. On shutdown, intake stops at once, in-flight jobs get `spool.shutdown_grace`
//! to finish, and whatever is still running is stopped and put back into `incoming/`; the
//! outbox is drained one last time. Nothing is lost either way.
//!
//! [`run`] is three steps of a `Daemon`: `start` (open, resume), `serve` (take files in
//! until the shutdown trigger) and `stop`. Each job runs in its own task, with what it shares
//! in `Jobs`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::catalog::{Commit, JobVerdict};
use crate::config::Config;
use crate::delivery::Sinks;
use crate::failure::{ErrorCode, Failure};
use crate::ingest::spool::{new_job_id, JOB_SEPARATOR};
use crate::ingest::watch::{self as watcher, WatchSettings};
use crate::ingest::{Claim, Claimed, Spool, Went};
use crate::pipeline::{self, Ctx, JobError, JobInput, ManifestSource};
use crate::privacy::retention;
use crate::profile::ProfileSet;
use crate::records::{Event, Record, SourceInfo};
use crate::telemetry::{self, RunLog};
use crate::worker::pool::{Limits, WorkerPool};
use crate::worker::Setup;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("spool {path}: {source}")]
    Spool { path: String, source: std::io::Error },
    #[error("{0}")]
    Setup(String),
}

/// Tries of a job whose catalog error does not pass before it is quarantined.
const MAX_CATALOG_TRIES: u32 = 3;

/// How often a full store backlog is looked at again (see `Daemon::store_backlog_full`).
const STORE_BACKLOG_RECHECK: Duration = Duration::from_secs(1);

/// How long a job whose catalog call failed waits, still in `work/`, before it is tried again.
const CATALOG_RETRY: Duration = Duration::from_secs(5);

/// Builds the shared job context from configuration (store, catalog, workers).
pub async fn context(
    config: Config,
    profiles: ProfileSet,
    scratch: std::path::PathBuf,
) -> Result<Ctx, DaemonError> {
    let store = crate::store::open(&config.store)
        .await
        .map_err(|e| DaemonError::Setup(format!("store: {e}")))?;
    let catalog = crate::catalog::open(&config.catalog.url)
        .await
        .map_err(|e| DaemonError::Setup(e.to_string()))?;
    let setup = Setup {
        profiles: profiles.iter().cloned().collect(),
        routing: config.routing.clone(),
        memory_bytes: config.spool.job_memory.as_u64(),
    };
    let limits = Limits {
        timeout: config.spool.job_timeout,
        memory_bytes: config.spool.job_memory.as_u64(),
    };
    let workers = WorkerPool::new(&setup, limits).map_err(|e| DaemonError::Setup(format!("workers: {e}")))?;
    Ok(Ctx::new(config, profiles, store, catalog, workers, scratch))
}

pub fn sinks(config: &Config) -> Result<Sinks, DaemonError> {
    Sinks::from_config(config).map_err(|e| DaemonError::Setup(e.to_string()))
}

/// Runs until `shutdown` completes, then stops gracefully (see the module docs).
pub async fn run(
    config: Config,
    profiles: ProfileSet,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let mut daemon = Daemon::start(config, profiles).await?;
    daemon.serve(shutdown).await;
    daemon.stop().await;
    Ok(())
}

/// The running daemon: the intake, the job slots and what shutdown needs to stop them.
struct Daemon {
    /// What every job task shares with the daemon (context, spool, jobs in flight).
    jobs: Arc<Jobs>,
    /// One permit per job slot (`spool.jobs`): the CPU-bound media work is bounded by it,
    /// and a name is claimed from `incoming/` only once a permit is free, so the spool stays
    /// the queue. A job gives its permit back as soon as its media work is done.
    slots: Arc<Semaphore>,
    /// What waits for a slot, oldest first: names the watcher reported, jobs found in `work/`
    /// at start, jobs whose catalog call failed.
    queue: VecDeque<Pending>,
    /// The names in `queue`: a file reported by both an event and a rescan is queued once.
    queued: HashSet<String>,
    /// New names in `incoming/`, from the watcher (events and rescans).
    names: mpsc::UnboundedReceiver<String>,
    /// Where the retry timers deliver: a job whose catalog call failed comes back here after
    /// [`CATALOG_RETRY`].
    retries: mpsc::UnboundedReceiver<Claimed>,
    /// The job tasks, reaped as they end; what shutdown waits for, then aborts.
    tasks: JoinSet<()>,
    /// Stops the watcher: the first step of shutdown, so no new file is taken.
    stop_intake: watch::Sender<bool>,
    /// Stops the sinks' tasks: the last step of shutdown, once every job has ended, so every
    /// committed record is offered to its sinks.
    stop_delivery: watch::Sender<bool>,
    /// One task per sink, draining its share of the outbox.
    delivering: JoinSet<()>,
    /// The `[http]` server, if configured: it stops with delivery, so health and metrics
    /// stay visible while jobs end.
    http: Option<crate::http::Server>,
    /// Retention, applied at start and every `policy.purge_interval`; stops with intake.
    purging: JoinHandle<()>,
}

/// A job waiting for a slot: a name still in `incoming/`, or one already in `work/`.
enum Pending {
    Name(String),
    Claimed(Claimed),
}

/// What every job task shares with the daemon.
struct Jobs {
    ctx: Arc<Ctx>,
    spool: Spool,
    /// Jobs in flight, by id: what shutdown puts back into `incoming/` when the grace is over.
    running: Mutex<HashMap<String, Claimed>>,
    /// Tries so far, by job id, of jobs whose catalog error is not one that passes.
    catalog_failures: Mutex<HashMap<String, u32>>,
    /// Sends a job back to the daemon's queue (see `Daemon::retries`).
    retry: mpsc::UnboundedSender<Claimed>,
    /// The line each finished job logs, and the counts the stop line gives.
    log: RunLog,
}

impl Daemon {
    /// Opens the spool, builds the job context, starts one delivery task per sink and the
    /// watcher, and queues what `work/` holds.
    async fn start(config: Config, profiles: ProfileSet) -> Result<Daemon, DaemonError> {
        let spool_dir = config.spool.dir.display().to_string();
        let spool_err = |source| DaemonError::Spool {
            path: spool_dir.clone(),
            source,
        };
        let spool = Spool::open(&config.spool.dir).map_err(spool_err)?;
        spool.clear_abandoned_scratch();
        let slots = config.spool.effective_jobs();
        let settings = WatchSettings {
            mode: config.spool.watch,
            quiet_period: config.spool.quiet_period,
            rescan_interval: config.spool.rescan_interval,
        };
        let sinks = sinks(&config)?;
        let ctx = Arc::new(context(config, profiles, spool.scratch_root()).await?);
        settle_orphan_manifests(&ctx, &spool);

        let (stop_delivery, delivery_stopped) = watch::channel(false);
        let delivering = sinks.spawn(&ctx.catalog, &ctx.committed, delivery_stopped.clone());
        let http = crate::http::start(Arc::clone(&ctx), delivery_stopped)
            .await
            .map_err(|e| DaemonError::Setup(format!("http.listen {}: {e}", ctx.config.http.listen)))?;
        let (stop_intake, intake_stopped) = watch::channel(false);
        let purging = tokio::spawn(retention::run_periodically(
            Arc::clone(&ctx),
            intake_stopped.clone(),
        ));
        let names = watcher::start(&spool, settings, intake_stopped)
            .map_err(|e| DaemonError::Setup(format!("watch: {e}")))?;
        let resumed = spool.in_work().map_err(spool_err)?;
        if !resumed.is_empty() {
            tracing::info!(jobs = resumed.len(), "resuming jobs left in work/");
        }
        let sink_names: Vec<&str> = sinks.names().collect();
        telemetry::started(&ctx.config, &ctx.profiles, &ctx.store.describe(), &sink_names);
        let (retry, retries) = mpsc::unbounded_channel();
        Ok(Daemon {
            jobs: Arc::new(Jobs {
                ctx,
                spool,
                running: Mutex::default(),
                catalog_failures: Mutex::default(),
                retry,
                log: RunLog::default(),
            }),
            slots: Arc::new(Semaphore::new(slots)),
            queue: resumed.into_iter().map(Pending::Claimed).collect(),
            queued: HashSet::new(),
            names,
            retries,
            tasks: JoinSet::new(),
            stop_intake,
            stop_delivery,
            delivering,
            http,
            purging,
        })
    }

    /// Takes files in, one per free slot, until `shutdown` completes.
    async fn serve(&mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            // Finished tasks are reaped as they end, so the set does not grow.
            while self.tasks.try_join_next().is_some() {}
            let gated = self.store_backlog_full();
            let wanted = match gated {
                true => self.queue.iter().any(|p| matches!(p, Pending::Claimed(_))),
                false => !self.queue.is_empty(),
            };
            let slot = free_slot(Arc::clone(&self.slots), wanted);
            tokio::select! {
                _ = &mut shutdown => return,
                Some(name) = self.names.recv() => self.enqueue(name),
                Some(job) = self.retries.recv() => self.queue.push_back(Pending::Claimed(job)),
                _ = tokio::time::sleep(STORE_BACKLOG_RECHECK), if gated => {}
                permit = slot => self.start_next(permit, gated).await,
            }
        }
    }

    fn enqueue(&mut self, name: String) {
        if self.queued.insert(name.clone()) {
            self.queue.push_back(Pending::Name(name));
        }
    }

    /// While the store is down, jobs it did not take keep their rendered outputs: once
    /// `spool.jobs` of them wait, no new file is claimed (disk stays bounded); only jobs
    /// already in `work/` go on.
    fn store_backlog_full(&self) -> bool {
        self.jobs.ctx.rendered_waiting() >= self.jobs.ctx.config.spool.effective_jobs()
    }

    /// Gives a free slot to the next job in the queue, claiming it first if it is a name (not
    /// while `claimed_only`).
    async fn start_next(&mut self, permit: OwnedSemaphorePermit, claimed_only: bool) {
        let next = match claimed_only {
            true => self.queue.iter().position(|p| matches!(p, Pending::Claimed(_))),
            false => Some(0),
        };
        let Some(pending) = next.and_then(|i| self.queue.remove(i)) else {
            return;
        };
        let job = match pending {
            Pending::Claimed(job) => job,
            Pending::Name(name) => {
                self.queued.remove(&name);
                match self.jobs.claim(&name).await {
                    Some(job) => job,
                    None => return,
                }
            }
        };
        lock(&self.jobs.running).insert(job.job_id.clone(), job.clone());
        self.tasks.spawn(Arc::clone(&self.jobs).run(job, permit));
    }

    /// Stops intake, gives in-flight jobs `spool.shutdown_grace` to end, puts back what is
    /// still running, stops the workers and drains the outbox one last time.
    async fn stop(mut self) {
        while self.tasks.try_join_next().is_some() {}
        tracing::info!(in_flight = self.tasks.len(), "stopping: no new files taken");
        let _ = self.stop_intake.send(true);
        let grace = self.jobs.ctx.config.spool.shutdown_grace;
        let all_ended = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all_ended).await.is_err() {
            self.put_back_unfinished().await;
        }
        self.jobs.ctx.workers.shutdown().await;
        // A purge under way finishes, so its media.deleted records are delivered below.
        let _ = (&mut self.purging).await;
        let _ = self.stop_delivery.send(true);
        while self.delivering.join_next().await.is_some() {}
        if let Some(server) = self.http {
            server.stopped().await;
        }
        self.jobs.log.stopped();
    }

    /// The grace is over: stops the jobs still running and puts their inputs back into
    /// `incoming/` (what cannot be moved stays in `work/` and resumes at the next start).
    async fn put_back_unfinished(&mut self) {
        let left: Vec<Claimed> = lock(&self.jobs.running).values().cloned().collect();
        tracing::warn!(
            jobs = left.len(),
            "shutdown grace over; putting unfinished jobs back"
        );
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        for job in left {
            if let Err(e) = self.jobs.spool.put_back(&job) {
                tracing::error!(file = %job.name, error = %e, "cannot put back; it stays in work/ and resumes at next start");
            }
        }
    }
}

/// A slot once one is free; never, while nothing waits for one (so no permit is held idle).
async fn free_slot(slots: Arc<Semaphore>, wanted: bool) -> OwnedSemaphorePermit {
    if !wanted {
        std::future::pending::<()>().await;
    }
    slots.acquire_owned().await.expect("semaphore never closed")
}

impl Jobs {
    /// Claims `name` from `incoming/`: `None` when it has gone, cannot be claimed, or is not a
    /// regular file (then it is refused with a record).
    async fn claim(&self, name: &str) -> Option<Claimed> {
        match self.spool.claim(name) {
            Ok(Claim::Claimed(job)) => Some(job),
            Ok(Claim::Gone) => None,
            Ok(Claim::Refused { name, what, moved_to }) => {
                self.refuse(&name, what, &moved_to).await;
                None
            }
            Err(e) => {
                tracing::warn!(file = %name, error = %e, "cannot claim");
                None
            }
        }
    }

    /// One job, from its slot to where its input goes. A job whose catalog call failed stays
    /// in `work/` and goes back to the queue after [`CATALOG_RETRY`]; a stop in the meantime
    /// resumes it at the next start.
    async fn run(self: Arc<Self>, job: Claimed, permit: OwnedSemaphorePermit) {
        let began = Instant::now();
        let input = JobInput {
            job_id: job.job_id.clone(),
            path: job.path.clone(),
            file_name: job.name.clone(),
            manifest: ManifestSource::Spool {
                spool: Box::new(self.spool.clone()),
                job: job.clone(),
                deadline: Instant::now() + self.ctx.config.spool.manifest_grace,
            },
            permit: Some(permit),
        };
        let again = match pipeline::run(&self.ctx, input).await {
            Ok(result) => {
                self.finish(&job, &result.verdict);
                if let Some(record) = &result.record {
                    self.log.finished(record, began.elapsed());
                }
                false
            }
            Err(e) => self.interrupted(&job, &e),
        };
        lock(&self.running).remove(&job.job_id);
        if again {
            tokio::time::sleep(CATALOG_RETRY).await;
            let _ = self.retry.send(job);
        }
    }

    /// Whether a job that ended without a verdict is tried again: always when the error
    /// passes (a store that does not answer, a busy catalog), else until
    /// [`MAX_CATALOG_TRIES`]; then it is quarantined, without a record (the catalog cannot
    /// take one), with the reason for an operator.
    fn interrupted(&self, job: &Claimed, e: &JobError) -> bool {
        if e.is_transient() {
            tracing::warn!(file = %job.name, error = %e, "job waits in work/; trying again in 5 s");
            return true;
        }
        let tries = {
            let mut failures = lock(&self.catalog_failures);
            let tries = failures.entry(job.job_id.clone()).or_default();
            *tries += 1;
            *tries
        };
        if tries < MAX_CATALOG_TRIES {
            tracing::error!(file = %job.name, error = %e, tries, "catalog failed; trying again in 5 s");
            return true;
        }
        tracing::error!(file = %job.name, error = %e, "catalog failed {tries} times; quarantined without a record");
        self.finish(job, &JobVerdict::Failed(e.failure()));
        self.log.unrecorded();
        false
    }

    /// Moves a job's input where its verdict says; its catalog tries are forgotten.
    fn finish(&self, job: &Claimed, verdict: &JobVerdict) {
        let moved = match verdict {
            JobVerdict::Done => self.spool.release(job, self.ctx.config.spool.keep_originals),
            JobVerdict::Failed(failure) => self.spool.quarantine(job, failure),
            JobVerdict::Removed => self.spool.remove(job),
        };
        if let Err(e) = moved {
            tracing::error!(file = %job.name, error = %e, "cannot move the input out of work/; it will be resumed");
        }
        lock(&self.catalog_failures).remove(&job.job_id);
    }

    /// Something that is not a regular file was in `incoming/`: it has been moved to
    /// `failed/`; writes its error file and a rejected record.
    async fn refuse(&self, name: &str, what: &str, moved_to: &std::path::Path) {
        let began = Instant::now();
        let failure = Failure::new(
            ErrorCode::NOT_A_REGULAR_FILE,
            format!("{name} is {what}; only regular files are taken (it was not followed or opened)"),
        );
        if let Err(e) = self.spool.write_error(moved_to, &failure) {
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
        let committed = self
            .ctx
            .catalog
            .commit(&Commit {
                job_id: &new_job_id(),
                message_key: name,
                record: &record,
                new_media: None,
                verdict: &JobVerdict::Failed(failure),
                sinks: &self.ctx.routes.for_record(&record),
            })
            .await;
        if committed.is_ok() {
            self.log.finished(&record, began.elapsed());
        } else {
            let reason = record.error.as_ref().map_or("", |f| f.message.as_str());
            tracing::error!(file = name, "cannot record the refusal: {reason}");
            self.log.unrecorded();
        }
        self.ctx.committed.ring();
    }
}

/// A lock whose holder panicked still guards consistent data here (plain maps, no
/// invariants across entries).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Manifests left in `work/` without their media by a daemon that stopped mid-release go
/// where the catalog says their job's media went, once they are still orphans a few seconds
/// later (a live daemon on the same spool may be between the two moves). A manifest whose job
/// the catalog does not know stays where it is.
fn settle_orphan_manifests(ctx: &Arc<Ctx>, spool: &Spool) {
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
        for manifest in orphans {
            let name = manifest.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let job_id = name.split_once(JOB_SEPARATOR).map_or("", |(id, _)| id);
            let went = match ctx.catalog.finished_job(job_id).await {
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
            match spool.settle_orphan_manifest(&manifest, went, ctx.config.spool.keep_originals) {
                Ok(()) => {
                    tracing::info!(manifest = %manifest.display(), ?went, "manifest left in work/ settled")
                }
                Err(e) => {
                    tracing::warn!(manifest = %manifest.display(), error = %e, "cannot move a manifest left in work/")
                }
            }
        }
    });
}
