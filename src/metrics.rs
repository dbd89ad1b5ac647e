//! What the daemon counts and times, and which jobs are in flight.
//!
//! In: calls from the pipeline and the daemon — a job starts, moves to a stage, ends with an
//! outcome; a worker is replaced; a delivery is made. Out: the OpenMetrics text served at
//! `/metrics` ([`render`]) and the in-flight jobs the status page lists ([`in_flight`]).
//! Recording is a few atomic operations and, per stage change, a short lock on the in-flight
//! table: it never blocks on I/O and cannot fail. Labels are low-cardinality only (outcome,
//! profile, code, stage, sink, cause): never a file name, a customer or a chat.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// A job's step, as the status page shows it and the stage histogram is labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Stage {
    /// Waiting for its manifest, or for another job on the same bytes.
    waiting,
    hash,
    media,
    store,
    catalog,
    delivery,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::waiting => "waiting",
            Stage::hash => "hash",
            Stage::media => "media",
            Stage::store => "store",
            Stage::catalog => "catalog",
            Stage::delivery => "delivery",
        }
    }
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Outcome {
    /// New media stored.
    stored,
    /// Known bytes: no new work.
    duplicate,
    /// A message seen before: its record again.
    repeat,
    rejected,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct JobLabels {
    outcome: Outcome,
    profile: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StageLabel {
    stage: Stage,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CodeLabel {
    code: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SinkLabel {
    sink: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DeliveryLabels {
    sink: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StoreLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OperationLabel {
    operation: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CauseLabel {
    cause: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    libavcodec: String,
}

/// Job durations: a voice note takes tens of milliseconds, a long video minutes.
const JOB_BUCKETS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 600.0,
];
/// Stage durations: a catalog commit takes a millisecond, a media step up to minutes.
const STAGE_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0,
];

struct Metrics {
    registry: Registry,
    jobs: Family<JobLabels, Counter>,
    rejections: Family<CodeLabel, Counter>,
    job_seconds: Family<OutcomeLabel, Histogram, fn() -> Histogram>,
    stage_seconds: Family<StageLabel, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    queued: Gauge,
    input_bytes: Counter,
    output_bytes: Counter,
    dedup_hits: Counter,
    outputs_reused: Counter,
    store_requests: Family<StoreLabels, Counter>,
    store_retries: Family<OperationLabel, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    sink_backlog: Family<SinkLabel, Gauge>,
    dead_letters: Family<SinkLabel, Gauge>,
    worker_restarts: Family<CauseLabel, Counter>,
    uploads_paused: Gauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mediaspool");
        let jobs = Family::<JobLabels, Counter>::default();
        registry.register("jobs", "Jobs ended, by outcome and profile", jobs.clone());
        let rejections = Family::<CodeLabel, Counter>::default();
        registry.register("rejections", "Jobs rejected, by error code", rejections.clone());
        let job_seconds: Family<OutcomeLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(JOB_BUCKETS));
        // Histograms carry their unit in the name only: OpenMetrics parsers differ on `# UNIT`
        // for them.
        registry.register(
            "job_duration_seconds",
            "Time from taking a file to committing its record",
            job_seconds.clone(),
        );
        let stage_seconds: Family<StageLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(STAGE_BUCKETS));
        registry.register(
            "stage_duration_seconds",
            "Time spent in each pipeline stage (hash, media, store, catalog, delivery)",
            stage_seconds.clone(),
        );
        let in_flight = Gauge::default();
        registry.register("jobs_in_flight", "Jobs being worked on now", in_flight.clone());
        let queued = Gauge::default();
        registry.register_with_unit(
            "queued",
            "Files waiting in incoming/",
            Unit::Other("files".into()),
            queued.clone(),
        );
        let input_bytes = Counter::default();
        registry.register_with_unit(
            "input",
            "Bytes of the inputs of ended jobs",
            Unit::Bytes,
            input_bytes.clone(),
        );
        let output_bytes = Counter::default();
        registry.register_with_unit(
            "output",
            "Bytes of the renditions stored",
            Unit::Bytes,
            output_bytes.clone(),
        );
        let dedup_hits = Counter::default();
        registry.register(
            "dedup_hits",
            "Inputs whose bytes were already stored: no new work",
            dedup_hits.clone(),
        );
        let outputs_reused = Counter::default();
        registry.register(
            "outputs_reused",
            "Inputs new to the catalog whose outputs were already in the store: no media work",
            outputs_reused.clone(),
        );
        let store_requests = Family::<StoreLabels, Counter>::default();
        registry.register(
            "store_requests",
            "Requests to the store, by operation and outcome",
            store_requests.clone(),
        );
        let store_retries = Family::<OperationLabel, Counter>::default();
        registry.register(
            "store_retries",
            "Store requests tried again after a transient error",
            store_retries.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "deliveries",
            "Records delivered to a sink, or failed attempts",
            deliveries.clone(),
        );
        let sink_backlog = Family::<SinkLabel, Gauge>::default();
        registry.register_with_unit(
            "sink_backlog",
            "Records not yet delivered to a sink",
            Unit::Other("records".into()),
            sink_backlog.clone(),
        );
        let dead_letters = Family::<SinkLabel, Gauge>::default();
        registry.register_with_unit(
            "sink_dead_letters",
            "Records a sink gave up on",
            Unit::Other("records".into()),
            dead_letters.clone(),
        );
        let worker_restarts = Family::<CauseLabel, Counter>::default();
        registry.register(
            "worker_restarts",
            "Worker processes replaced, by cause",
            worker_restarts.clone(),
        );
        let uploads_paused = Gauge::default();
        registry.register(
            "uploads_paused",
            "1 while uploads wait for the store to come back",
            uploads_paused.clone(),
        );
        registry.register(
            "build",
            "Version of mediaspool and of the libavcodec it runs on",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                libavcodec: libavcodec_version(),
            }),
        );
        Metrics {
            registry,
            jobs,
            rejections,
            job_seconds,
            stage_seconds,
            in_flight,
            queued,
            input_bytes,
            output_bytes,
            dedup_hits,
            outputs_reused,
            store_requests,
            store_retries,
            deliveries,
            sink_backlog,
            dead_letters,
            worker_restarts,
            uploads_paused,
        }
    }
}

fn libavcodec_version() -> String {
    let v = ffmpeg_next::codec::version();
    format!("{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff)
}

/// A job as the status page lists it.
#[derive(Debug, Clone)]
pub struct InFlight {
    pub file_name: String,
    pub stage: Stage,
    pub started: Instant,
}

static IN_FLIGHT: LazyLock<Mutex<BTreeMap<u64, InFlight>>> = LazyLock::new(Mutex::default);
static NEXT_JOB: AtomicU64 = AtomicU64::new(0);

fn in_flight_table() -> std::sync::MutexGuard<'static, BTreeMap<u64, InFlight>> {
    IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner())
}

/// The jobs in flight now, oldest first.
pub fn in_flight() -> Vec<InFlight> {
    let mut jobs: Vec<InFlight> = in_flight_table().values().cloned().collect();
    jobs.sort_by_key(|j| j.started);
    jobs
}

/// One job, from the moment it is taken until it ends. Dropping it without [`Job::finish`]
/// (the job goes back to the spool, or is tried again) counts no outcome.
pub struct Job {
    id: u64,
    started: Instant,
    stage: Option<(Stage, Instant)>,
    finished: bool,
}

impl Job {
    pub fn start(file_name: &str) -> Job {
        let id = NEXT_JOB.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        in_flight_table().insert(
            id,
            InFlight {
                file_name: file_name.to_string(),
                stage: Stage::waiting,
                started,
            },
        );
        METRICS.in_flight.inc();
        Job {
            id,
            started,
            stage: None,
            finished: false,
        }
    }

    /// Ends the current stage (its time goes into the stage histogram) and begins `stage`.
    pub fn stage(&mut self, stage: Stage) {
        self.end_stage();
        self.stage = Some((stage, Instant::now()));
        if let Some(job) = in_flight_table().get_mut(&self.id) {
            job.stage = stage;
        }
    }

    fn end_stage(&mut self) {
        if let Some((stage, since)) = self.stage.take() {
            if stage != Stage::waiting {
                observe_stage(stage, since.elapsed());
            }
        }
    }

    /// Counts the job's end: its outcome (under the profile that made the media, if any), the
    /// error code of a rejection, its input bytes, and for new media the bytes stored. Only
    /// the first call counts.
    pub fn finish(&mut self, ended: Ended<'_>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        self.end_stage();
        let m = &*METRICS;
        let profile = ended.profile.unwrap_or("none").to_string();
        m.jobs
            .get_or_create(&JobLabels {
                outcome: ended.outcome,
                profile,
            })
            .inc();
        m.job_seconds
            .get_or_create(&OutcomeLabel {
                outcome: ended.outcome,
            })
            .observe(self.started.elapsed().as_secs_f64());
        m.input_bytes.inc_by(ended.input_bytes);
        match ended.outcome {
            Outcome::stored => {
                m.output_bytes.inc_by(ended.output_bytes);
            }
            Outcome::duplicate => {
                m.dedup_hits.inc();
            }
            Outcome::rejected => {
                let code = ended.code.unwrap_or("unknown").to_string();
                m.rejections.get_or_create(&CodeLabel { code }).inc();
            }
            Outcome::repeat => {}
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        self.stage = None;
        in_flight_table().remove(&self.id);
        METRICS.in_flight.dec();
    }
}

/// What a job ended with.
#[derive(Debug, Clone, Copy)]
pub struct Ended<'a> {
    pub outcome: Outcome,
    pub profile: Option<&'a str>,
    pub code: Option<&'a str>,
    pub input_bytes: u64,
    pub output_bytes: u64,
}

fn observe_stage(stage: Stage, took: Duration) {
    METRICS
        .stage_seconds
        .get_or_create(&StageLabel { stage })
        .observe(took.as_secs_f64());
}

/// A worker process was replaced: `cause` is the code it failed with (`worker-crashed`,
/// `timeout`, `out-of-memory`, `worker-unavailable`).
pub fn worker_restarted(cause: &'static str) {
    METRICS.worker_restarts.get_or_create(&CauseLabel { cause }).inc();
}

/// One delivery round to `sink` ended after `took`: `delivered` records accepted, `failed`
/// attempts that did not go through (retried later or dead-lettered).
pub fn delivered(sink: &str, delivered: u64, failed: u64, took: Duration) {
    observe_stage(Stage::delivery, took);
    for (outcome, n) in [("delivered", delivered), ("failed", failed)] {
        if n > 0 {
            let labels = DeliveryLabels {
                sink: sink.to_string(),
                outcome,
            };
            METRICS.deliveries.get_or_create(&labels).inc_by(n);
        }
    }
}

/// A request to the store ended (`ok` or not); `retry` when it is a second or later try.
pub fn store_request(operation: &'static str, ok: bool, retry: bool) {
    let m = &*METRICS;
    let outcome = if ok { "ok" } else { "error" };
    m.store_requests
        .get_or_create(&StoreLabels { operation, outcome })
        .inc();
    if retry {
        m.store_retries.get_or_create(&OperationLabel { operation }).inc();
    }
}

/// A job found its outputs in the store, made by another daemon: no media work.
pub fn outputs_reused() {
    METRICS.outputs_reused.inc();
}

/// Uploads paused (the store is away) or resumed.
pub fn set_uploads_paused(paused: bool) {
    METRICS.uploads_paused.set(i64::from(paused));
}

pub fn uploads_paused() -> bool {
    METRICS.uploads_paused.get() != 0
}

/// What is read from outside at each scrape: the spool's queue and the sinks' state.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub queued: u64,
    /// (sink, records not yet delivered, dead letters)
    pub sinks: Vec<(String, u64, u64)>,
}

/// The metrics as OpenMetrics text, with `snapshot`'s gauges set first.
pub fn render(snapshot: &Snapshot) -> String {
    let m = &*METRICS;
    m.queued.set(snapshot.queued as i64);
    for (sink, backlog, dead) in &snapshot.sinks {
        let label = SinkLabel { sink: sink.clone() };
        m.sink_backlog.get_or_create(&label).set(*backlog as i64);
        m.dead_letters.get_or_create(&label).set(*dead as i64);
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &m.registry).expect("writing to a String");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_in_flight_until_dropped_and_counted_once_finished() {
        let mut job = Job::start("metrics-test.ogg");
        job.stage(Stage::hash);
        let listed = in_flight()
            .into_iter()
            .find(|j| j.file_name == "metrics-test.ogg")
            .expect("listed");
        assert_eq!(listed.stage, Stage::hash);
        job.stage(Stage::media);
        job.finish(Ended {
            outcome: Outcome::rejected,
            profile: Some("voice"),
            code: Some("metrics-test-code"),
            input_bytes: 10,
            output_bytes: 0,
        });
        drop(job);
        assert!(!in_flight().iter().any(|j| j.file_name == "metrics-test.ogg"));
        let text = render(&Snapshot {
            queued: 3,
            sinks: vec![("ndjson".into(), 2, 0)],
        });
        assert!(
            text.contains("mediaspool_rejections_total{code=\"metrics-test-code\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("mediaspool_jobs_total{outcome=\"rejected\",profile=\"voice\"}"),
            "{text}"
        );
        assert!(text.contains("mediaspool_queued_files 3\n"), "{text}");
        assert!(
            text.contains("mediaspool_sink_backlog_records{sink=\"ndjson\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("mediaspool_stage_duration_seconds_bucket{le=\"0.0005\",stage=\"hash\"}")
                || text.contains("mediaspool_stage_duration_seconds_bucket{stage=\"hash\",le=\"0.0005\"}"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
