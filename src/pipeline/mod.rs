//! One job, from an input file to its committed record.
//!
//! In: a [`JobInput`] (the bytes, the name the sender gave them, and where a manifest may be).
//! Out: [`JobResult`] — the record, committed to the catalog together with the job's verdict,
//! which tells the caller where the input goes (`done/`, `failed/`, or deleted). The steps:
//! manifest → size policy → BLAKE3 → repeat of a known message? → duplicate of known bytes? →
//! outputs another daemon stored already ([`reuse`])? → worker (probe → route → render →
//! verify) → store → commit. A bad file is an outcome, not an
//! error: this never fails on input. Jobs on the same bytes run one after the other, in this
//! daemon and across every daemon sharing the catalog (a lease in the catalog, see
//! [`content_lock`]), so a copy dropped while the first is still being transcoded becomes a
//! duplicate, not a second transcode. Async; hashing and store calls run on blocking threads,
//! media work in a worker process.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::catalog::{Catalog, CatalogError, Commit, JobVerdict, StoredMedia};
use crate::config::{Config, OtherRoute};
use crate::delivery::{Routes, Wakeup};
use crate::failure::{ErrorCode, Failure};
use crate::hash::{hash_file, ContentHash};
use crate::ingest::manifest::Manifest;
use crate::media::Probe;
use crate::metrics::{self, Outcome};
use crate::privacy::{clock, retention};
use crate::profile::{MediaKind, ProfileSet};
use crate::records::{Crm, Event, Record, SourceInfo};
use crate::store::{Store, StoreError};
use crate::worker::pool::WorkerPool;
use crate::worker::{MediaOutcome, Request};

pub mod content_lock;
mod manifest;
mod outputs;
mod reuse;

use content_lock::{ContentLock, ContentLocks};

use manifest::{check_manifest, load_manifest};
use outputs::{store_as_is, store_rendition, AS_IS};

/// A worker that died is retried this many times in all before the file is quarantined.
const MAX_ATTEMPTS: u32 = 2;

/// What every job shares.
pub struct Ctx {
    pub config: Config,
    pub profiles: ProfileSet,
    pub store: Arc<dyn Store>,
    pub catalog: Arc<dyn Catalog>,
    pub workers: WorkerPool,
    /// Signs the card links records carry (and the status page's media links).
    pub card_links: crate::http::CardLinks,
    /// Which sinks each record is delivered to.
    pub routes: Routes,
    /// Rung after each commit, so the sinks deliver at once.
    pub committed: Wakeup,
    /// Parent of the per-job scratch directories.
    pub scratch: PathBuf,
    /// Who works on which bytes, across daemons.
    locks: ContentLocks,
    /// Media work of jobs whose outputs the store did not take (it was down), by job id: their
    /// next try stores these instead of rendering again.
    parked: Mutex<HashMap<String, Parked>>,
}

/// A job's rendered outputs, waiting for the store.
struct Parked {
    outcome: MediaOutcome,
    tags: Vec<String>,
    /// Holds the rendered files; removed with it.
    work_dir: tempfile::TempDir,
}

/// Where a job's manifest is, and how long to wait for one that has not arrived yet.
pub enum ManifestSource {
    None,
    File(PathBuf),
    /// In the spool: may still arrive in `incoming/` until the deadline.
    Spool {
        spool: Box<crate::ingest::Spool>,
        job: crate::ingest::Claimed,
        deadline: Instant,
    },
}

pub struct JobInput {
    pub job_id: String,
    pub path: PathBuf,
    pub file_name: String,
    pub manifest: ManifestSource,
    /// A slot of the CPU-bound job limit, given up as soon as the media work is done (waiting
    /// for a late manifest, storing and committing need no CPU).
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

#[derive(Debug)]
pub struct JobResult {
    /// The record committed now; `None` when the job had been committed before a crash.
    pub record: Option<Record>,
    pub verdict: JobVerdict,
}

/// Why a job stopped early, turned into a rejected record.
struct Rejection {
    failure: Failure,
    verdict: JobVerdict,
}

impl From<Failure> for Rejection {
    fn from(failure: Failure) -> Rejection {
        Rejection {
            verdict: JobVerdict::Failed(failure.clone()),
            failure,
        }
    }
}

/// Why a job stopped before its normal end.
enum Stop {
    /// An outcome for the record: rejected, with where the input goes.
    Reject(Rejection),
    /// Nothing is decided about the file; the job is tried again later.
    Retry(JobError),
}

/// A job that ended without a verdict: its input stays in `work/` to be tried again.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The store did not answer within its retry budget (a permanent store error rejects the
    /// file instead).
    #[error("store: {0}")]
    Store(StoreError),
}

impl JobError {
    /// Whether trying again can help (a catalog row that cannot be read never will).
    pub fn is_transient(&self) -> bool {
        match self {
            JobError::Catalog(e) => e.is_transient(),
            JobError::Store(_) => true,
        }
    }

    pub fn failure(&self) -> Failure {
        match self {
            JobError::Catalog(e) => e.failure(),
            JobError::Store(e) => e.failure(),
        }
    }
}

impl From<Rejection> for Stop {
    fn from(r: Rejection) -> Stop {
        Stop::Reject(r)
    }
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Stop {
        Stop::Reject(f.into())
    }
}

impl From<CatalogError> for Stop {
    fn from(e: CatalogError) -> Stop {
        Stop::Retry(JobError::Catalog(e))
    }
}

/// A transient store error waits; a permanent one rejects the file with the store's code.
impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Stop {
        if e.is_transient() {
            Stop::Retry(JobError::Store(e))
        } else {
            e.failure().into()
        }
    }
}

/// A job's result before it is committed: the record, the verdict, and new media to catalogue.
type Done = (Record, JobVerdict, Option<NewMedia>);

/// What is known about the input as the job goes.
struct Facts {
    source: SourceInfo,
    hash: Option<ContentHash>,
    manifest: Option<Manifest>,
    manifest_checked: bool,
    /// The per-content lock, once taken.
    same_bytes: Option<ContentLock>,
    /// The record is that of a message seen before.
    repeat: bool,
    /// What metrics see of the job: its stage, its time.
    job: metrics::Job,
}

impl Ctx {
    pub fn new(
        config: Config,
        profiles: ProfileSet,
        store: Arc<dyn Store>,
        catalog: Arc<dyn Catalog>,
        workers: WorkerPool,
        scratch: PathBuf,
    ) -> Ctx {
        Ctx {
            card_links: crate::http::CardLinks::from_config(&config.http),
            routes: Routes::from_config(&config),
            locks: ContentLocks::new(config.catalog.lease),
            config,
            profiles,
            store,
            catalog,
            workers,
            committed: Wakeup::default(),
            scratch,
            parked: Mutex::new(HashMap::new()),
        }
    }

    /// How many jobs have rendered outputs waiting for the store.
    pub fn rendered_waiting(&self) -> usize {
        self.parked.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn park(&self, job_id: &str, parked: Parked) {
        self.parked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job_id.to_string(), parked);
    }

    fn unpark(&self, job_id: &str) -> Option<Parked> {
        self.parked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(job_id)
    }

    async fn lock_bytes(&self, hash: &ContentHash) -> Result<ContentLock, CatalogError> {
        self.locks.lock(&self.catalog, hash).await
    }
}

/// Runs `f` on a blocking thread with a shared context.
async fn blocking<T: Send + 'static>(ctx: &Arc<Ctx>, f: impl FnOnce(&Ctx) -> T + Send + 'static) -> T {
    let ctx = Arc::clone(ctx);
    tokio::task::spawn_blocking(move || f(&ctx))
        .await
        .expect("blocking task does not panic")
}

pub async fn run(ctx: &Arc<Ctx>, mut input: JobInput) -> Result<JobResult, JobError> {
    let job_id = input.job_id.clone();
    if let Some(verdict) = ctx.catalog.finished_job(&job_id).await? {
        // Committed before a crash; only the move out of work/ was missing.
        return Ok(JobResult {
            record: None,
            verdict,
        });
    }
    let mut facts = Facts {
        source: SourceInfo {
            file_name: input.file_name.clone(),
            ..SourceInfo::default()
        },
        hash: None,
        manifest: None,
        manifest_checked: false,
        same_bytes: None,
        repeat: false,
        job: metrics::Job::start(&input.file_name),
    };
    let outcome = work(ctx, &mut input, &mut facts).await;
    let (mut record, verdict, new_media) = match outcome {
        Ok(done) => done,
        Err(Stop::Retry(e)) => return Err(e),
        Err(Stop::Reject(rejection)) => {
            tracing::debug!(file = %input.file_name, code = %rejection.failure.code, "rejected: {}", rejection.failure.message);
            let mut record = base_record(Event::Rejected, &facts);
            record.error = Some(rejection.failure);
            (record, rejection.verdict, None)
        }
    };
    if !facts.repeat && record.media.is_some() && record.event != Event::Rejected {
        record.card_url = ctx.card_links.card_url(&record.record_id);
    }
    record.retention_until = retention_until(ctx, &facts, &record);
    let key = message_key(&facts);
    facts.job.stage(metrics::Stage::catalog);
    ctx.catalog
        .commit(&Commit {
            job_id: &job_id,
            message_key: &key,
            record: &record,
            new_media: new_media.as_ref().map(|(p, k, m)| (p.as_str(), k.as_str(), m)),
            verdict: &verdict,
            sinks: &ctx.routes.for_record(&record),
        })
        .await?;
    if let Some(lock) = facts.same_bytes.take() {
        lock.release().await;
    }
    ctx.committed.ring();
    facts.job.finish(metrics::Ended {
        outcome: match record.event {
            _ if facts.repeat => Outcome::repeat,
            Event::Stored => Outcome::stored,
            Event::Duplicate => Outcome::duplicate,
            Event::Rejected | Event::Deleted => Outcome::rejected,
        },
        profile: record.media.as_ref().and_then(|m| m.profile.as_deref()),
        code: record.error.as_ref().map(|e| e.code.id()),
        input_bytes: facts.source.bytes,
        output_bytes: record.media.as_ref().map_or(0, |m| m.bytes),
    });
    if let Some(m) = record.media.as_ref() {
        tracing::debug!(
            file = %input.file_name, event = record.event.as_str(), kind = %m.kind, profile = ?m.profile,
            duration_ms = ?m.duration_ms, bytes = m.bytes, "done"
        );
    }
    Ok(JobResult {
        record: Some(record),
        verdict,
    })
}

/// When the message's media and record expire (see `privacy::retention`); the profile's
/// days are those of the profile its media was made with.
fn retention_until(ctx: &Ctx, facts: &Facts, record: &Record) -> Option<String> {
    let profile_days = record
        .media
        .as_ref()
        .and_then(|m| m.profile.as_deref())
        .and_then(|name| ctx.profiles.get(name))
        .and_then(|p| p.settings.retention_days);
    let manifest = facts.manifest.as_ref();
    let days = retention::days(
        &ctx.config.policy,
        manifest.and_then(|m| m.retention_days),
        manifest.map_or(&[][..], |m| &m.tags),
        profile_days,
    );
    retention::until(days, clock::now())
}

/// A new rendition to catalogue: (profile id, kind, what records say about it).
type NewMedia = (String, String, StoredMedia);

async fn work(ctx: &Arc<Ctx>, input: &mut JobInput, facts: &mut Facts) -> Result<Done, Stop> {
    let path = input.path.clone();
    let meta = std::fs::symlink_metadata(&path).map_err(|e| read_failure(&e))?;
    if !meta.is_file() {
        // Swapped for a link or a FIFO after it was claimed: never followed or opened.
        return Err(Failure::new(
            ErrorCode::NOT_A_REGULAR_FILE,
            format!(
                "{} is no longer a regular file; it was not followed or opened",
                input.file_name
            ),
        )
        .into());
    }
    let bytes = meta.len();
    facts.source.bytes = bytes;

    // Consent needs the manifest: wait for it now rather than after the work.
    let wait_now = ctx.config.policy.require_consent;
    load_manifest(ctx, &input.manifest, facts, wait_now).await?;
    let limit = ctx.config.policy.max_input_bytes.as_u64();
    if bytes > limit {
        return Err(Failure::new(
            ErrorCode::TOO_LARGE,
            format!("{bytes} bytes is over policy.max_input_bytes ({limit} bytes)"),
        )
        .into());
    }
    facts.job.stage(metrics::Stage::hash);
    let hash_path = path.clone();
    let hash = blocking(ctx, move |_| hash_file(&hash_path))
        .await
        .map_err(|e| read_failure(&e))?;
    facts.hash = Some(hash.clone());
    check_manifest(ctx, &path, facts, wait_now).await?;

    if let Some(done) = repeat(ctx, input, facts).await? {
        return Ok(done);
    }
    // Held until the record is committed (in `run`), so a copy waiting here sees this job's
    // rendition in the catalog and becomes its duplicate (or, for the same message, a repeat).
    facts.job.stage(metrics::Stage::waiting);
    facts.same_bytes = Some(ctx.lock_bytes(&hash).await?);
    if let Some(done) = repeat(ctx, input, facts).await? {
        return Ok(done);
    }
    if let Some(done) = duplicate(ctx, input, facts).await? {
        return Ok(done);
    }

    let parked = ctx.unpark(&input.job_id);
    if parked.is_none() {
        // Unknown to this catalog; another daemon sharing the store may have made the outputs.
        if let Some(done) = reuse::stored_before(ctx, input, facts).await? {
            return Ok(done);
        }
    }
    let (work_dir, mut request, outcome) = match parked {
        Some(parked) => {
            tracing::info!(file = %input.file_name, "storing the outputs it rendered before the store failed");
            let request = Request {
                input: path.clone(),
                file_name: input.file_name.clone(),
                tags: parked.tags,
                work_dir: parked.work_dir.path().to_path_buf(),
            };
            (parked.work_dir, request, Ok(parked.outcome))
        }
        None => {
            let work_dir = tempfile::Builder::new()
                .prefix(&format!("{}-", input.job_id))
                .tempdir_in(&ctx.scratch)
                .map_err(|e| {
                    Failure::new(
                        ErrorCode::WORK_DIR_ERROR,
                        format!("cannot create a work directory: {e}"),
                    )
                })?;
            let request = Request {
                input: path.clone(),
                file_name: input.file_name.clone(),
                tags: facts
                    .manifest
                    .as_ref()
                    .map(|m| m.tags.clone())
                    .unwrap_or_default(),
                work_dir: work_dir.path().to_path_buf(),
            };
            let started = Instant::now();
            facts.job.stage(metrics::Stage::media);
            let outcome = run_worker(ctx, &input.job_id, &request).await;
            tracing::debug!(file = %input.file_name, ms = started.elapsed().as_millis() as u64, "media work done");
            (work_dir, request, outcome)
        }
    };
    drop(input.permit.take());
    let mut outcome = outcome?;
    facts.job.stage(metrics::Stage::waiting);
    // A manifest may come just after its media: wait (within the grace period) before the
    // outcome becomes a record, and before anything is stored.
    load_manifest(ctx, &input.manifest, facts, true).await?;
    check_manifest(ctx, &path, facts, true).await?;
    // The manifest may name a message already seen (its id is the message's key).
    if let Some(done) = repeat(ctx, input, facts).await? {
        return Ok(done);
    }
    // Its tags may route the file to another profile: then the media work is redone.
    let tags = facts
        .manifest
        .as_ref()
        .map(|m| m.tags.clone())
        .unwrap_or_default();
    if let MediaOutcome::Rendered { probe, profile, .. } = &outcome {
        let wanted = ctx.config.routing.profile_for(probe.kind, &tags, &ctx.profiles);
        if tags != request.tags && wanted.as_ref() != Some(profile) {
            tracing::debug!(file = %input.file_name, "late manifest routes to another profile; rendering again");
            request.tags = tags;
            facts.job.stage(metrics::Stage::media);
            outcome = run_worker(ctx, &input.job_id, &request).await?;
        }
    }

    facts.job.stage(metrics::Stage::store);
    let stored = store_outcome(ctx, &path, &outcome, facts).await;
    if let Err(Stop::Retry(JobError::Store(_))) = &stored {
        ctx.park(
            &input.job_id,
            Parked {
                outcome,
                tags: request.tags,
                work_dir,
            },
        );
    }
    stored
}

/// The store step for the media work's outcome (or the rejection it is).
async fn store_outcome(
    ctx: &Arc<Ctx>,
    path: &std::path::Path,
    outcome: &MediaOutcome,
    facts: &mut Facts,
) -> Result<Done, Stop> {
    match outcome {
        MediaOutcome::Failed { probe, failure } => {
            if let Some(p) = probe {
                describe_source(facts, p);
            }
            Err(failure.clone().into())
        }
        MediaOutcome::NotMedia { probe } => {
            describe_source(facts, probe);
            store_as_is(ctx, path, probe, facts).await
        }
        MediaOutcome::Rendered {
            probe,
            profile,
            rendition,
        } => {
            describe_source(facts, probe);
            let profile = ctx
                .profiles
                .get(profile)
                .cloned()
                .ok_or_else(|| Failure::new(ErrorCode::NO_PROFILE, format!("no profile {profile:?}")))?;
            store_rendition(ctx, path, probe, &profile, rendition, facts).await
        }
    }
}

/// Media work with retries: a worker that died is given one more chance, then the file is
/// quarantined with the worker's code. Attempts are counted in the catalog, so a restart of
/// the daemon does not reset them and a poison file cannot crash-loop it.
async fn run_worker(ctx: &Arc<Ctx>, job_id: &str, request: &Request) -> Result<MediaOutcome, Stop> {
    loop {
        match ctx.workers.run(request).await {
            Ok(outcome) => return Ok(outcome),
            Err(e) => {
                let attempts = ctx.catalog.count_attempt(job_id, &request.file_name).await?;
                tracing::warn!(file = %request.file_name, attempts, code = %e.code(), "worker failed: {e}");
                metrics::worker_restarted(e.code().id());
                if attempts >= MAX_ATTEMPTS {
                    let mut failure = e.failure();
                    failure.message = format!("{} (after {attempts} attempts)", failure.message);
                    return Err(failure.into());
                }
            }
        }
    }
}

/// The profile id routing picks for bytes of `kind` with the manifest's tags, as catalogued.
fn wanted_profile_id(ctx: &Ctx, kind: MediaKind, facts: &Facts) -> Option<String> {
    let tags = facts
        .manifest
        .as_ref()
        .map(|m| m.tags.clone())
        .unwrap_or_default();
    match ctx.config.routing.profile_for(kind, &tags, &ctx.profiles) {
        Some(name) => ctx.profiles.get(&name).map(|p| p.id.clone()),
        None if ctx.config.routing.other == OtherRoute::Store => Some(AS_IS.to_string()),
        None => None,
    }
}

/// The same message again (same message key, same bytes) that was stored or deduplicated
/// before: its record again, with the same id, and nothing new. A message that was rejected
/// before is worked on again (the cause may have been passing).
async fn repeat(ctx: &Arc<Ctx>, input: &JobInput, facts: &mut Facts) -> Result<Option<Done>, Stop> {
    let Some(hash) = facts.hash.as_ref() else {
        return Ok(None);
    };
    let key = message_key(facts);
    let Some(previous) = ctx.catalog.record_of_message(&key, &hash.to_string()).await? else {
        return Ok(None);
    };
    tracing::debug!(file = %input.file_name, record = %previous.record_id, "repeat of a known message");
    facts.repeat = true;
    Ok(Some((previous, JobVerdict::Done, None)))
}

/// Known bytes already rendered with the profile routing picks now: a duplicate record, no
/// new work. A changed profile (new id) is not a duplicate: it makes new outputs.
async fn duplicate(ctx: &Arc<Ctx>, input: &JobInput, facts: &mut Facts) -> Result<Option<Done>, Stop> {
    let hash = facts.hash.clone().expect("hashed before dedup");
    let known = ctx.catalog.media_for(&hash.to_string()).await?;
    let Some((_, kind, _)) = known.first() else {
        return Ok(None);
    };
    let kind: MediaKind =
        serde_json::from_value(serde_json::Value::String(kind.clone())).unwrap_or(MediaKind::Other);
    let wanted = wanted_profile_id(ctx, kind, facts);
    let Some((_, _, stored)) = known
        .into_iter()
        .find(|(profile_id, _, _)| Some(profile_id) == wanted.as_ref())
    else {
        return Ok(None);
    };
    // The catalog may outlive what the store holds (a bucket emptied, a store restored from
    // an older copy): then the media is made and stored again rather than pointed at.
    if ctx.store.head(&stored.media.key).await?.is_none() {
        tracing::warn!(file = %input.file_name, key = %stored.media.key, "known media is missing from the store; making it again");
        return Ok(None);
    }
    // Known to be a duplicate: other copies need not wait while this one waits for a manifest.
    if let Some(lock) = facts.same_bytes.take() {
        lock.release().await;
    }
    load_manifest(ctx, &input.manifest, facts, true).await?;
    check_manifest(ctx, &input.path, facts, true).await?;
    if let Some(done) = repeat(ctx, input, facts).await? {
        return Ok(Some(done));
    }
    if wanted_profile_id(ctx, kind, facts) != wanted {
        // The late manifest's tags route these bytes to another profile: render after all.
        facts.same_bytes = Some(ctx.lock_bytes(&hash).await?);
        return Box::pin(duplicate(ctx, input, facts)).await;
    }
    tracing::debug!(file = %input.file_name, first = %stored.first_record_id, "duplicate");
    let mut record = base_record(Event::Duplicate, facts);
    record.duplicate_of = Some(stored.first_record_id.clone());
    record.media = Some(stored.media.clone());
    record.thumbnail = stored.thumbnail.clone();
    record.original = stored.original.clone();
    outputs::attach_links(ctx, &mut record).await?;
    record.source.describe(
        stored.source.mime.as_deref(),
        stored.source.container.as_deref(),
        &stored.source.codecs,
    );
    Ok(Some((record, JobVerdict::Done, None)))
}

fn describe_source(facts: &mut Facts, probe: &Probe) {
    facts
        .source
        .describe(Some(&probe.mime), probe.container.as_deref(), &probe.codecs);
}

/// The message's identity: the channel's message id when the manifest gives one, else the
/// file name.
fn message_key(facts: &Facts) -> String {
    facts
        .manifest
        .as_ref()
        .and_then(|m| m.message_id.clone())
        .unwrap_or_else(|| facts.source.file_name.clone())
}

/// A record with identity, source and CRM fields filled from what is known.
fn base_record(event: Event, facts: &Facts) -> Record {
    let mut record = Record::new(
        event,
        &message_key(facts),
        facts.hash.as_ref(),
        facts.source.clone(),
    );
    if let Some(m) = &facts.manifest {
        record.crm = Crm {
            customer_id: m.customer_id.clone(),
            chat_id: m.chat_id.clone(),
            message_id: m.message_id.clone(),
            channel: m.channel.clone(),
            tags: m.tags.clone(),
        };
        record.received_at = m.received_at.clone();
        if let Some(extra) = &m.extra {
            record.extra = serde_json::Value::Object(extra.clone());
        }
    }
    record
}

fn read_failure(e: &std::io::Error) -> Rejection {
    Failure::new(ErrorCode::READ_ERROR, format!("cannot read the input: {e}")).into()
}
