//! Delivery: committed records from the outbox to every configured sink, at least once, in
//! order per chat.
//!
//! In: outbox rows in the catalog (one delivery per record and sink, chosen at commit by
//! [`Routes`]) and a [`Wakeup`] rung after each commit. Out: each sink's records, delivered by
//! that sink's own task ([`task`]), with per-delivery state in the catalog: attempts, next
//! attempt, last error, dead letter. Sinks sit behind one narrow interface ([`sink::Sink`]):
//! the NDJSON file and stdout ([`file`]), and any number of HTTP sinks ([`http`]) whose
//! requests come from a preset ([`presets`]) or a template ([`request`]), signed per Standard
//! Webhooks ([`signing`]). A slow or failing sink delays only itself: the pipeline commits and
//! goes on, other sinks drain at their own pace.

pub mod file;
pub mod http;
mod presets;
pub mod request;
pub mod retry;
mod sample;
pub mod signing;
pub mod sink;
mod task;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::catalog::Catalog;
use crate::config::{Config, SinkConfig};
use crate::records::{Event, Record};
pub use file::{NdjsonSink, StdoutSink};
pub use http::HttpSink;
pub use presets::{Preset, PRESETS};
pub use sample::sample_records;
pub use sink::Sink;
use task::SinkTask;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("records.outbox {path}: {source}")]
    Outbox { path: String, source: std::io::Error },
    #[error("sinks.{name}: {}", .problems.join("; "))]
    Sink { name: String, problems: Vec<String> },
}

/// Names the file sinks use; `[sinks.NAME]` may not take them.
const RESERVED: [&str; 2] = ["ndjson", "stdout"];
const KINDS: [&str; 4] = ["audio", "video", "image", "other"];

/// What is wrong with `[sinks.NAME]`, without I/O (environment variables and templates are
/// checked when the sink is built).
pub fn check_sink_config(name: &str, sink: &SinkConfig) -> Vec<String> {
    let mut problems = Vec::new();
    let mut problem = |p: String| problems.push(format!("sinks.{name}: {p}"));
    if RESERVED.contains(&name)
        || name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        problem("a sink name is letters, digits, '-' and '_', and not \"ndjson\" or \"stdout\"".into());
    }
    match Preset::named(&sink.preset) {
        None => problem(format!(
            "preset = {:?}: use one of {}",
            sink.preset,
            Preset::names().collect::<Vec<_>>().join(", ")
        )),
        Some(p) if sink.url.is_empty() && p.default_base.is_empty() => problem("url is required".into()),
        Some(_) => {}
    }
    for event in &sink.events {
        if !Event::ALL.iter().any(|e| e.as_str() == event) {
            problem(format!(
                "events: {event:?} is not an event ({})",
                Event::ALL.map(Event::as_str).join(", ")
            ));
        }
    }
    for kind in &sink.kinds {
        if !KINDS.contains(&kind.as_str()) {
            problem(format!("kinds: {kind:?} is not one of {}", KINDS.join(", ")));
        }
    }
    if sink.timeout.is_zero() {
        problem("timeout must be more than 0".into());
    }
    if sink.concurrency == 0 || sink.concurrency > 64 {
        problem(format!("concurrency = {}: 1 to 64", sink.concurrency));
    }
    if sink.retry_min.is_zero() || sink.retry_max < sink.retry_min {
        problem("retry_min must be more than 0 and at most retry_max".into());
    }
    problems
}

/// Which records a sink takes: events, tags, kinds (each empty: all).
#[derive(Debug, Clone, Default)]
struct Filter {
    events: Vec<String>,
    tags: Vec<String>,
    kinds: Vec<String>,
}

impl Filter {
    fn takes(&self, record: &Record) -> bool {
        let kind = record.media.as_ref().map(|m| m.kind.as_str());
        (self.events.is_empty() || self.events.iter().any(|e| e == record.event.as_str()))
            && (self.tags.is_empty() || record.crm.tags.iter().any(|t| self.tags.contains(t)))
            && (self.kinds.is_empty() || kind.is_some_and(|k| self.kinds.iter().any(|f| f == k)))
    }
}

/// Which sinks each record goes to; decided at commit, so a record is in a sink's line from
/// the moment it exists (a sink added later gets the records committed after it).
#[derive(Debug, Clone)]
pub struct Routes {
    sinks: Vec<(String, Filter)>,
}

impl Routes {
    pub fn from_config(config: &Config) -> Routes {
        let mut sinks = vec![("ndjson".to_string(), Filter::default())];
        if config.records.stdout {
            sinks.push(("stdout".to_string(), Filter::default()));
        }
        for (name, sink) in &config.sinks {
            let filter = Filter {
                events: sink.events.clone(),
                tags: sink.tags.clone(),
                kinds: sink.kinds.clone(),
            };
            sinks.push((name.clone(), filter));
        }
        Routes { sinks }
    }

    /// Every sink's name, `ndjson` first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sinks.iter().map(|(name, _)| name.as_str())
    }

    /// The sinks `record` is delivered to.
    pub fn for_record(&self, record: &Record) -> Vec<&str> {
        self.sinks
            .iter()
            .filter(|(_, filter)| filter.takes(record))
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

/// Rung after each commit; every sink's task wakes (none misses a ring that came while it was
/// busy).
#[derive(Debug)]
pub struct Wakeup(watch::Sender<()>);

impl Default for Wakeup {
    fn default() -> Wakeup {
        Wakeup(watch::channel(()).0)
    }
}

impl Wakeup {
    pub fn ring(&self) {
        self.0.send_replace(());
    }

    fn subscribe(&self) -> watch::Receiver<()> {
        self.0.subscribe()
    }
}

/// The sinks of this process, built from configuration.
pub struct Sinks {
    sinks: Vec<Arc<dyn Sink>>,
    /// Names this process's claims on deliveries.
    owner: String,
}

impl Sinks {
    /// Opens the NDJSON file (and stdout when configured) and builds the HTTP sinks, reading
    /// their `${VAR}`s from the environment.
    pub fn from_config(config: &Config) -> Result<Sinks, DeliveryError> {
        let ndjson = NdjsonSink::open(&config.records.outbox).map_err(|source| DeliveryError::Outbox {
            path: config.records.outbox.display().to_string(),
            source,
        })?;
        let mut sinks: Vec<Arc<dyn Sink>> = vec![Arc::new(ndjson)];
        if config.records.stdout {
            sinks.push(Arc::new(StdoutSink));
        }
        for (_, sink) in build_http_sinks(config) {
            sinks.push(Arc::new(sink?));
        }
        let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        Ok(Sinks {
            sinks,
            owner: format!("{}-{nanos:x}", std::process::id()),
        })
    }

    fn tasks(&self, catalog: &Arc<dyn Catalog>, wakeup: &Wakeup) -> Vec<SinkTask> {
        self.sinks
            .iter()
            .map(|s| {
                SinkTask::new(
                    Arc::clone(s),
                    Arc::clone(catalog),
                    self.owner.clone(),
                    wakeup.subscribe(),
                )
            })
            .collect()
    }

    /// Starts one task per sink; they deliver until `stop` turns true, then make a last pass.
    pub fn spawn(
        &self,
        catalog: &Arc<dyn Catalog>,
        wakeup: &Wakeup,
        stop: watch::Receiver<bool>,
    ) -> JoinSet<()> {
        let mut set = JoinSet::new();
        for task in self.tasks(catalog, wakeup) {
            set.spawn(task.run(stop.clone()));
        }
        set.spawn(prune_periodically(Arc::clone(catalog), stop));
        set
    }

    /// Delivers what is due to every sink at once, each until nothing is due, something fails
    /// or `within` has passed (`mediaspool process`, before it exits).
    pub async fn deliver_due(&self, catalog: &Arc<dyn Catalog>, within: Duration) {
        let mut set = JoinSet::new();
        for mut task in self.tasks(catalog, &Wakeup::default()) {
            set.spawn(async move {
                task.set_aside_oversized().await;
                task.last_pass(within).await
            });
        }
        while set.join_next().await.is_some() {}
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sinks.iter().map(|s| s.name())
    }
}

/// Each `[sinks.NAME]` built, with `${VAR}`s from the process environment.
pub fn build_http_sinks(config: &Config) -> Vec<(String, Result<HttpSink, DeliveryError>)> {
    let env = |name: &str| std::env::var(name).ok();
    config
        .sinks
        .iter()
        .map(|(name, sink)| {
            let built = HttpSink::build(name, sink, &env).map_err(|problems| DeliveryError::Sink {
                name: name.clone(),
                problems,
            });
            (name.clone(), built)
        })
        .collect()
}

/// Delivered outbox rows are kept this long (for inspection), then forgotten; the records
/// stay in the catalog for `query`.
const KEEP_DELIVERED_DAYS: i64 = 7;
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

async fn prune_periodically(catalog: Arc<dyn Catalog>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stop.changed() => return,
        }
        let before = time::OffsetDateTime::now_utc() - time::Duration::days(KEEP_DELIVERED_DAYS);
        let before = before
            .format(&time::format_description::well_known::Rfc3339)
            .expect("formats");
        if let Err(e) = catalog.prune_delivered(&before).await {
            tracing::warn!(error = %e, "cannot prune the outbox");
        }
    }
}
