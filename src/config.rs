//! The configuration contract of SPEC.md: `mediaspool.toml`, its defaults, and environment
//! overrides.
//!
//! In: an optional TOML file and the process environment (`MEDIASPOOL_SECTION__KEY=value`,
//! e.g. `MEDIASPOOL_SPOOL__JOBS=4`). Out: [`Config`]. Reading goes past bad keys: every unknown
//! key and every value of the wrong type, in every section, is listed (the key is left at its
//! default meanwhile); [`Config::problems`] then checks meaning without touching the
//! environment (no I/O); the commands report both kinds, and the profiles' problems, in one
//! message. Only TOML that does not parse at all stops at the first error. No file at the default path means all defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use crate::profile::{MediaKind, ProfileSet};
pub use crate::store::settings::{Checksum, StoreConfig, StoreKind};

pub const DEFAULT_PATH: &str = "mediaspool.toml";
const ENV_PREFIX: &str = "MEDIASPOOL_";
/// Bounds of `spool.max_manifest_bytes`: a manifest is a message's metadata, and a larger limit
/// only lets a producer's mistake cost more memory (the fields inside have their own limits).
const MIN_MANIFEST_BYTES: u64 = 1024;
const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// TOML syntax: nothing past it can be read.
    #[error("invalid config {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub spool: SpoolConfig,
    pub catalog: CatalogConfig,
    pub store: StoreConfig,
    pub routing: RoutingConfig,
    pub records: RecordsConfig,
    /// HTTP sinks by name (`[sinks.NAME]`).
    pub sinks: BTreeMap<String, SinkConfig>,
    pub policy: PolicyConfig,
    pub http: HttpConfig,
    /// Directory of `NAME.toml` profiles that add to or override the built-in ones.
    pub profiles_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    Events,
    Poll,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    pub watch: WatchMode,
    #[serde(with = "humantime_serde")]
    pub quiet_period: Duration,
    pub keep_originals: bool,
    /// Concurrent media jobs; 0 means one per core.
    pub jobs: usize,
    /// How long after its media a manifest may still arrive.
    #[serde(with = "humantime_serde")]
    pub manifest_grace: Duration,
    /// Events mode: how often `incoming/` is scanned for files events missed.
    #[serde(with = "humantime_serde")]
    pub rescan_interval: Duration,
    /// At shutdown, how long in-flight jobs may take before they are put back.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Wall time a worker may spend on one file, on top of the media's own duration.
    #[serde(with = "humantime_serde")]
    pub job_timeout: Duration,
    /// Resident memory a worker may use.
    pub job_memory: ByteSize,
    /// Largest `NAME.meta.json` read; a larger one quarantines its pair unread.
    pub max_manifest_bytes: ByteSize,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: "spool".into(),
            watch: WatchMode::Events,
            quiet_period: Duration::from_secs(2),
            keep_originals: true,
            jobs: 0,
            manifest_grace: Duration::from_millis(500),
            rescan_interval: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            job_timeout: Duration::from_secs(600),
            job_memory: ByteSize::gib(2),
            max_manifest_bytes: ByteSize::kib(64),
        }
    }
}

/// The cores this process may run on.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl SpoolConfig {
    pub fn effective_jobs(&self) -> usize {
        if self.jobs > 0 {
            self.jobs
        } else {
            cores()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// `sqlite://PATH`, or `postgres://…` shared by several daemons.
    pub url: String,
    /// How long a daemon's claim on some bytes lasts without a heartbeat: a daemon killed
    /// mid-job blocks other daemons' jobs on the same bytes for at most this long.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig {
            url: "sqlite://mediaspool.db".into(),
            lease: Duration::from_secs(30),
        }
    }
}

/// What to do with a file that is neither audio, video nor image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtherRoute {
    Store,
    Reject,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    pub audio: String,
    pub video: String,
    pub image: String,
    pub other: OtherRoute,
    /// Manifest tag → profile; the first tag that names a profile of the file's kind wins.
    pub tags: BTreeMap<String, String>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            audio: "voice".into(),
            video: "video-720p".into(),
            image: "image".into(),
            other: OtherRoute::Store,
            tags: BTreeMap::new(),
        }
    }
}

impl RoutingConfig {
    /// The profile name for a file of `kind` carrying `tags`; `None` for kind `other`.
    pub fn profile_for(&self, kind: MediaKind, tags: &[String], profiles: &ProfileSet) -> Option<String> {
        let by_tag = tags
            .iter()
            .filter_map(|t| self.tags.get(t))
            .find(|name| profiles.get(name).is_some_and(|p| p.kind() == kind));
        if let Some(name) = by_tag {
            return Some(name.clone());
        }
        match kind {
            MediaKind::Audio => Some(self.audio.clone()),
            MediaKind::Video => Some(self.video.clone()),
            MediaKind::Image => Some(self.image.clone()),
            MediaKind::Other => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordsConfig {
    pub outbox: PathBuf,
    pub stdout: bool,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        RecordsConfig {
            outbox: "records.ndjson".into(),
            stdout: false,
        }
    }
}

/// One HTTP sink. `url`, `headers`, `params` and `secret` may name environment variables as
/// `${VAR}`; `url`, `headers` and the template may use template expressions over the record.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    pub url: String,
    /// Empty: the preset's method (POST for `standard-webhooks`).
    pub method: String,
    /// Empty: `standard-webhooks`.
    pub preset: String,
    /// A JSON skeleton for the body (a JSON string or a TOML table), over the preset's.
    #[serde(deserialize_with = "template_json", serialize_with = "template_json_out")]
    pub template: Option<serde_json::Value>,
    /// Standard Webhooks signing secrets (`whsec_…`), space-separated while rotating.
    pub secret: String,
    pub headers: BTreeMap<String, String>,
    /// Per-account values presets and templates read as `params.NAME`.
    pub params: BTreeMap<String, String>,
    /// Events delivered; empty: all.
    pub events: Vec<String>,
    /// Only records carrying one of these tags; empty: all.
    pub tags: Vec<String>,
    /// Only media of these kinds (audio, video, image, other); empty: all.
    pub kinds: Vec<String>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub give_up_after: Duration,
    /// Chats delivered at once (one record at a time within a chat).
    pub concurrency: usize,
    /// First retry delay; it doubles (with jitter) up to `retry_max`.
    #[serde(with = "humantime_serde")]
    pub retry_min: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            url: String::new(),
            method: String::new(),
            preset: String::new(),
            template: None,
            secret: String::new(),
            headers: BTreeMap::new(),
            params: BTreeMap::new(),
            events: Vec::new(),
            tags: Vec::new(),
            kinds: Vec::new(),
            timeout: Duration::from_secs(10),
            give_up_after: Duration::from_secs(72 * 3600),
            concurrency: 4,
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(3600),
        }
    }
}

impl std::fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL, secret, headers and params may be credentials.
        f.debug_struct("SinkConfig")
            .field("preset", &self.preset)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

fn template_json<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    use serde::de::Error;
    match Option::<toml::Value>::deserialize(d)? {
        None => Ok(None),
        Some(toml::Value::String(text)) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| D::Error::custom(format!("template is not JSON: {e}"))),
        Some(other) => serde_json::to_value(other).map(Some).map_err(D::Error::custom),
    }
}

fn template_json_out<S: serde::Serializer>(v: &Option<serde_json::Value>, s: S) -> Result<S::Ok, S::Error> {
    v.as_ref().map(|v| v.to_string()).serialize(s)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub require_consent: bool,
    /// Days a message's media and record are kept; 0 keeps them forever.
    pub retention_days: u32,
    /// Days by tag, overriding `retention_days` and a profile's own (see `privacy::retention`).
    pub retention_tags: BTreeMap<String, u32>,
    /// How often the daemon applies retention.
    #[serde(with = "humantime_serde")]
    pub purge_interval: Duration,
    pub max_input_bytes: ByteSize,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            require_consent: false,
            retention_days: 0,
            retention_tags: BTreeMap::new(),
            purge_interval: Duration::from_secs(3600),
            max_input_bytes: ByteSize::gb(2),
        }
    }
}

/// The HTTP server: metrics, health, the status page and media cards. Off unless `listen` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `HOST:PORT` to serve on; empty means no server.
    pub listen: String,
    /// Required for the status page (bearer or `?token=`); without one, only loopback clients see it.
    pub token: String,
    /// Base URL the cards are reached at from outside (`https://media.example.com`); with
    /// `card_secret`, records carry a signed `card_url`.
    pub public_url: String,
    /// Keys that sign card links (at least 32 characters each); the first signs, any verifies,
    /// so a new one can be put first while links signed with the old one still work.
    pub card_secret: String,
    /// How long a card link is valid.
    #[serde(with = "humantime_serde")]
    pub card_ttl: Duration,
    /// Origins allowed to embed cards in a frame (`https://crm.example.com`); none by default.
    pub frame_ancestors: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: String::new(),
            token: String::new(),
            public_url: String::new(),
            card_secret: String::new(),
            card_ttl: Duration::from_secs(30 * 24 * 3600),
            frame_ancestors: Vec::new(),
        }
    }
}

/// Shortest card signing key accepted.
pub const MIN_CARD_SECRET_CHARS: usize = 32;

impl HttpConfig {
    fn problems(&self, problems: &mut Vec<String>) {
        if !self.listen.is_empty() && self.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(format!(
                "http.listen = {:?}: use IP:PORT, e.g. \"127.0.0.1:9464\"",
                self.listen
            ));
        }
        if !self.public_url.is_empty() {
            if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
                problems.push(format!(
                    "http.public_url = {:?}: use an http:// or https:// URL",
                    self.public_url
                ));
            }
            if self.card_secret.is_empty() {
                problems.push("http.public_url needs http.card_secret to sign card links".into());
            }
        }
        if self
            .card_secret
            .split_whitespace()
            .any(|key| key.chars().count() < MIN_CARD_SECRET_CHARS)
        {
            problems.push(format!(
                "http.card_secret: each key needs at least {MIN_CARD_SECRET_CHARS} characters"
            ));
        }
        for origin in &self.frame_ancestors {
            let scheme_ok = origin.starts_with("https://") || origin.starts_with("http://");
            if !scheme_ok || origin.contains([' ', ';', ',', '\'', '"']) {
                problems.push(format!(
                    "http.frame_ancestors: {origin:?} is not an origin like \"https://crm.example.com\""
                ));
            }
        }
    }
}

impl Config {
    /// Reads `path` (or `./mediaspool.toml` if it exists) and the environment, as far as they
    /// go: keys with problems keep their defaults and are listed.
    pub fn read(path: Option<&Path>) -> Result<(Config, Vec<String>), ConfigError> {
        let (text, origin) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.into(),
                    source,
                })?;
                (text, p.display().to_string())
            }
            None => match std::fs::read_to_string(DEFAULT_PATH) {
                Ok(text) => (text, DEFAULT_PATH.to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    (String::new(), "(defaults)".to_string())
                }
                Err(source) => {
                    return Err(ConfigError::Read {
                        path: DEFAULT_PATH.into(),
                        source,
                    })
                }
            },
        };
        Self::read_sources(&text, &origin, std::env::vars())
    }

    /// Parses `text` with overrides from `env` (pairs of name and value); fails with every
    /// problem of the keys.
    pub fn from_sources(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        match Self::read_sources(text, origin, env)? {
            (config, problems) if problems.is_empty() => Ok(config),
            (_, problems) => Err(ConfigError::Invalid(problems)),
        }
    }

    /// Parses `text` with overrides from `env`, as far as it goes: every unknown key and every
    /// value of the wrong type is listed, and left out (at its default) to read the rest.
    pub fn read_sources(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.message().trim().to_string(),
        })?;
        let mut problems = Vec::new();
        // Keys set by the environment, to name the variable in their problems.
        let mut from_env = BTreeMap::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            // Only SECTION__KEY (and the one top-level key) are configuration; other
            // MEDIASPOOL_* variables (MEDIASPOOL_LOG…) belong to the process.
            if !rest.contains("__") && rest != "PROFILES_DIR" {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            match set_path(&mut table, &path, env_value(&value)) {
                Ok(()) => {
                    from_env.insert(path.join("."), name);
                }
                Err(m) => problems.push(format!("{name}: {m}")),
            }
        }
        let mut value = toml::Value::Table(table);
        let config = loop {
            let mut unknown = Vec::new();
            let read: Result<Config, _> = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
                value.clone(),
                &mut |path: serde_ignored::Path| unknown.push(path.to_string()),
            ));
            match read {
                Ok(config) => {
                    problems.extend(unknown.iter().map(|key| format!("{key}: unknown key")));
                    break config;
                }
                Err(e) => {
                    let key = e.path().to_string();
                    let source = match from_env.get(&key) {
                        Some(var) => format!(" (from {var})"),
                        None => String::new(),
                    };
                    problems.push(format!("{key}{source}: {}", e.inner().message().trim()));
                    let path: Vec<_> = e.path().iter().collect();
                    if !remove_at(&mut value, &path) {
                        break Config::default();
                    }
                }
            }
        };
        Ok((config, problems))
    }

    /// Checks meaning: every problem, at once, without I/O.
    pub fn validate(&self, profiles: &ProfileSet) -> Result<(), ConfigError> {
        match self.problems(Some(profiles)) {
            problems if problems.is_empty() => Ok(()),
            problems => Err(ConfigError::Invalid(problems)),
        }
    }

    /// What does not make sense, without I/O; profile names are checked only against
    /// `profiles` given (`None` when they could not be loaded).
    pub fn problems(&self, profiles: Option<&ProfileSet>) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(profiles) = profiles {
            self.routing_problems(profiles, &mut problems);
        }
        let url = &self.catalog.url;
        if !["sqlite://", "postgres://", "postgresql://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            let scheme = url.split_once("://").map_or(url.as_str(), |(s, _)| s);
            problems.push(format!(
                "catalog.url: {scheme:?} is not a catalog; use sqlite://PATH or postgres://…"
            ));
        }
        if self.catalog.lease < Duration::from_secs(1) {
            problems.push("catalog.lease must be at least 1s".into());
        }
        for (name, sink) in &self.sinks {
            problems.extend(crate::delivery::check_sink_config(name, sink));
        }
        self.store.validate(&mut problems);
        self.http.problems(&mut problems);
        if self.policy.retention_days > crate::ingest::manifest::MAX_RETENTION_DAYS {
            problems.push(format!(
                "policy.retention_days = {}: at most 36500",
                self.policy.retention_days
            ));
        }
        for (tag, days) in &self.policy.retention_tags {
            if *days > crate::ingest::manifest::MAX_RETENTION_DAYS {
                problems.push(format!("policy.retention_tags.{tag} = {days}: at most 36500"));
            }
        }
        if self.policy.purge_interval < Duration::from_secs(1) {
            problems.push("policy.purge_interval: at least 1s".into());
        }
        if !(MIN_MANIFEST_BYTES..=MAX_MANIFEST_BYTES).contains(&self.spool.max_manifest_bytes.as_u64()) {
            problems.push(format!(
                "spool.max_manifest_bytes = {}: between 1 KiB and 16 MiB",
                self.spool.max_manifest_bytes.display().iec()
            ));
        }
        if self.spool.jobs > 256 {
            problems.push(format!("spool.jobs = {}: at most 256", self.spool.jobs));
        }
        problems
    }

    fn routing_problems(&self, profiles: &ProfileSet, problems: &mut Vec<String>) {
        for (key, name, kind) in [
            ("routing.audio", &self.routing.audio, MediaKind::Audio),
            ("routing.video", &self.routing.video, MediaKind::Video),
            ("routing.image", &self.routing.image, MediaKind::Image),
        ] {
            match profiles.get(name) {
                None => problems.push(format!("{key} = {name:?}: no such profile")),
                Some(p) if p.kind() != kind => problems.push(format!(
                    "{key} = {name:?}: that profile makes {}, not {kind}",
                    p.kind()
                )),
                Some(_) => {}
            }
        }
        for (tag, name) in &self.routing.tags {
            if profiles.get(name).is_none() {
                problems.push(format!("routing.tags.{tag} = {name:?}: no such profile"));
            }
        }
    }
}

/// Removes the value at `path` (or, failing that, the nearest enclosing one), so the rest can
/// be read; false when nothing could be removed.
fn remove_at(parent: &mut toml::Value, path: &[&serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment;
    let Some((segment, deeper)) = path.split_first() else {
        return false;
    };
    let child = match (&mut *parent, segment) {
        (toml::Value::Table(t), Segment::Map { key }) => t.get_mut(key.as_str()),
        (toml::Value::Array(a), Segment::Seq { index }) => a.get_mut(*index),
        _ => None,
    };
    if child.is_some_and(|child| remove_at(child, deeper)) {
        return true;
    }
    match (parent, segment) {
        (toml::Value::Table(t), Segment::Map { key }) => t.remove(key.as_str()).is_some(),
        (toml::Value::Array(a), Segment::Seq { index }) if *index < a.len() => {
            a.remove(*index);
            true
        }
        _ => false,
    }
}

/// An environment value as TOML when it parses as a scalar or array, else as a string:
/// `4` → integer, `true` → boolean, `2s` → string.
fn env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_table())
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut current = table;
    for key in parents {
        let entry = current
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| format!("{key} is not a section"))?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Vec<(String, String)> {
        vec![]
    }

    #[test]
    fn empty_means_spec_defaults() {
        let c = Config::from_sources("", "t", no_env()).unwrap();
        assert_eq!(c.spool.dir, PathBuf::from("spool"));
        assert_eq!(c.spool.quiet_period, Duration::from_secs(2));
        assert_eq!(c.catalog.url, "sqlite://mediaspool.db");
        assert_eq!(c.store.root, PathBuf::from("media"));
        assert_eq!(c.store.presign_ttl, Duration::from_secs(7 * 86400));
        assert_eq!(c.routing.audio, "voice");
        assert_eq!(c.routing.other, OtherRoute::Store);
        assert_eq!(c.records.outbox, PathBuf::from("records.ndjson"));
        assert_eq!(c.policy.max_input_bytes, ByteSize::gb(2));
        assert!(c.http.listen.is_empty(), "no server by default");
        c.validate(&ProfileSet::built_in()).unwrap();
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = Config::from_sources("[spool]\ndirr = \"x\"\n", "t", no_env()).unwrap_err();
        assert!(e.to_string().contains("unknown field `dirr`"), "{e}");
        let e = Config::from_sources("[spoool]\n", "t", no_env()).unwrap_err();
        assert!(e.to_string().contains("spoool"), "{e}");
    }

    #[test]
    fn every_key_problem_is_listed_and_the_rest_is_read() {
        let text =
            "[spool]\ndirr = \"x\"\njobs = \"four\"\ndir = \"in\"\n[store]\npath_style = \"yes\"\n[spoool]\n";
        let env = vec![(
            "MEDIASPOOL_POLICY__RETENTION_DAYS".to_string(),
            "forever".to_string(),
        )];
        let (c, problems) = Config::read_sources(text, "t", env).unwrap();
        assert_eq!(c.spool.dir, PathBuf::from("in"), "good keys are read");
        assert_eq!(c.spool.jobs, 0, "a bad key keeps its default");
        assert_eq!(problems.len(), 5, "{problems:?}");
        for expected in [
            "spool.dirr: unknown field `dirr`, expected one of",
            "spool.jobs: invalid type: string \"four\"",
            "store.path_style: invalid type: string \"yes\", expected a boolean",
            "spoool: unknown field `spoool`",
            "policy.retention_days (from MEDIASPOOL_POLICY__RETENTION_DAYS): invalid type",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(expected)),
                "{expected:?} in {problems:?}"
            );
        }
        let e = Config::from_sources(text, "t", no_env()).unwrap_err();
        assert!(matches!(&e, ConfigError::Invalid(p) if p.len() == 4), "{e}");
        let e = Config::from_sources("[spool\n", "t", no_env()).unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = vec![
            ("MEDIASPOOL_SPOOL__JOBS".to_string(), "4".to_string()),
            ("MEDIASPOOL_SPOOL__QUIET_PERIOD".to_string(), "5s".to_string()),
            (
                "MEDIASPOOL_SINKS__CRM__SECRET".to_string(),
                "whsec_s3cret".to_string(),
            ),
            ("MEDIASPOOL_LOG".to_string(), "debug".to_string()),
            ("OTHER__THING".to_string(), "x".to_string()),
        ];
        let c = Config::from_sources("[spool]\njobs = 1\ndir = \"in\"\n", "t", env).unwrap();
        assert_eq!(c.spool.jobs, 4);
        assert_eq!(c.spool.dir, PathBuf::from("in"));
        assert_eq!(c.spool.quiet_period, Duration::from_secs(5));
        assert_eq!(c.sinks["crm"].secret, "whsec_s3cret");
    }

    #[test]
    fn wrong_environment_keys_are_errors_too() {
        let env = vec![("MEDIASPOOL_SPOOL__JOBZ".to_string(), "4".to_string())];
        assert!(Config::from_sources("", "t", env).is_err());
    }

    #[test]
    fn validation_lists_every_problem() {
        let text = "[routing]\naudio = \"nope\"\nvideo = \"voice\"\n[catalog]\nurl = \"mysql://x\"\n[store]\nsse = \"rot13\"\n";
        let c = Config::from_sources(text, "t", no_env()).unwrap();
        let ConfigError::Invalid(problems) = c.validate(&ProfileSet::built_in()).unwrap_err() else {
            panic!()
        };
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[1].contains("makes audio, not video"), "{problems:?}");
    }

    #[test]
    fn http_problems_are_listed_together() {
        let text = "[http]\nlisten = \"localhost\"\npublic_url = \"media.example.com\"\nframe_ancestors = [\"crm.example.com\"]\n";
        let c = Config::from_sources(text, "t", no_env()).unwrap();
        let ConfigError::Invalid(problems) = c.validate(&ProfileSet::built_in()).unwrap_err() else {
            panic!()
        };
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[2].contains("card_secret"), "{problems:?}");
        let text = "[http]\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://m.example.com\"\ncard_secret = \"short\"\n";
        let c = Config::from_sources(text, "t", no_env()).unwrap();
        let ConfigError::Invalid(problems) = c.validate(&ProfileSet::built_in()).unwrap_err() else {
            panic!()
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        let e = Config::from_sources("[metrics]\nlisten = \"127.0.0.1:1\"\n", "t", no_env()).unwrap_err();
        assert!(e.to_string().contains("metrics"), "{e}");
    }

    #[test]
    fn the_manifest_size_limit_is_accepted_at_its_bounds_and_refused_past_them() {
        let profiles = ProfileSet::built_in();
        let with = |limit: &str| {
            let text = format!("[spool]\nmax_manifest_bytes = \"{limit}\"\n");
            Config::from_sources(&text, "t", no_env())
                .unwrap()
                .validate(&profiles)
        };
        for limit in ["1KiB", "16MiB"] {
            with(limit).unwrap();
        }
        for limit in ["1023B", "16777217B"] {
            let e = with(limit).unwrap_err().to_string();
            assert!(
                e.contains("spool.max_manifest_bytes") && e.contains("between 1 KiB and 16 MiB"),
                "{e}"
            );
        }
    }

    #[test]
    fn tags_route_to_a_profile_of_the_right_kind() {
        let c = Config::from_sources("[routing.tags]\nmusic = \"music\"\n", "t", no_env()).unwrap();
        let p = ProfileSet::built_in();
        assert_eq!(
            c.routing
                .profile_for(MediaKind::Audio, &["music".into()], &p)
                .unwrap(),
            "music"
        );
        assert_eq!(
            c.routing
                .profile_for(MediaKind::Video, &["music".into()], &p)
                .unwrap(),
            "video-720p"
        );
        assert_eq!(c.routing.profile_for(MediaKind::Audio, &[], &p).unwrap(), "voice");
        assert_eq!(c.routing.profile_for(MediaKind::Other, &[], &p), None);
    }
}
