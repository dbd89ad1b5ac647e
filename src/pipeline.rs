//! One job, from an input file to its record: hash → probe → route → render → store → record.
//!
//! In: a path (and the name the sender gave it). Out: exactly one [`Record`] — `media.stored`,
//! or `media.rejected` with a stable code, the stage and a message a person understands. A bad
//! file is an outcome, not an error: this function never fails and never panics on input; the
//! next file is processed normally. Outputs reach the store only after verification, and a job
//! that fails after putting some of them removes them again. Blocking: run it on a blocking
//! thread (or in a worker process).

use std::path::{Path, PathBuf};

use crate::config::{Config, OtherRoute};
use crate::hash::{hash_file, ContentHash};
use crate::media::{self, MediaError, Probe, Rendition, Stage};
use crate::profile::{MediaKind, Profile, ProfileSet};
use crate::records::{ErrorInfo, Event, MediaInfo, Record, SourceInfo, ThumbnailInfo};
use crate::store::{keys, Placed, Store, StoreError};

/// What every job needs: settings, profiles and the store.
pub struct Engine {
    pub config: Config,
    pub profiles: ProfileSet,
    pub store: Store,
    /// Parent of the per-job work directories.
    pub work_root: PathBuf,
}

/// Why a job did not store anything.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read the input: {0}")]
    Read(std::io::Error),
    #[error("{bytes} bytes is over policy.max_input_bytes ({limit} bytes)")]
    InputTooLarge { bytes: u64, limit: u64 },
    #[error("not audio, video or an image ({mime}), and routing.other = \"reject\"")]
    UnsupportedKind { mime: String },
    #[error("routing names profile {0:?}, which does not exist")]
    NoProfile(String),
}

impl JobError {
    pub fn code(&self) -> &'static str {
        match self {
            JobError::Media(e) => e.code(),
            JobError::Store(e) => e.code(),
            JobError::Read(_) => "read-error",
            JobError::InputTooLarge { .. } => "too-large",
            JobError::UnsupportedKind { .. } => "unsupported-kind",
            JobError::NoProfile(_) => "no-profile",
        }
    }

    pub fn stage(&self) -> Stage {
        match self {
            JobError::Media(e) => e.stage(),
            JobError::Store(_) => Stage::Store,
            JobError::Read(_) => Stage::Hash,
            JobError::InputTooLarge { .. } => Stage::Probe,
            JobError::UnsupportedKind { .. } | JobError::NoProfile(_) => Stage::Route,
        }
    }

    pub fn info(&self) -> ErrorInfo {
        ErrorInfo {
            code: self.code().to_string(),
            message: self.to_string(),
            stage: self.stage().as_str().to_string(),
        }
    }
}

impl Engine {
    pub fn new(config: Config, profiles: ProfileSet, store: Store, work_root: PathBuf) -> Engine {
        Engine {
            config,
            profiles,
            store,
            work_root,
        }
    }

    /// Runs the whole pipeline on `path`, reporting it as `file_name`.
    pub fn process(&self, path: &Path, file_name: &str) -> Record {
        let mut source = SourceInfo {
            file_name: file_name.to_string(),
            ..SourceInfo::default()
        };
        let mut hash = None;
        match self.try_process(path, &mut source, &mut hash) {
            Ok(record) => record,
            Err(e) => {
                tracing::info!(file = file_name, code = e.code(), "rejected: {e}");
                let mut record = Record::new(Event::Rejected, file_name, hash.as_ref(), source);
                record.error = Some(e.info());
                record
            }
        }
    }

    fn try_process(
        &self,
        path: &Path,
        source: &mut SourceInfo,
        hash: &mut Option<ContentHash>,
    ) -> Result<Record, JobError> {
        let bytes = std::fs::metadata(path).map_err(JobError::Read)?.len();
        source.bytes = bytes;
        let limit = self.config.policy.max_input_bytes.as_u64();
        if bytes > limit {
            return Err(JobError::InputTooLarge { bytes, limit });
        }
        let content = hash_file(path).map_err(JobError::Read)?;
        *hash = Some(content.clone());

        let probe = media::probe(path)?;
        source.mime = Some(probe.mime.clone());
        source.container = probe.container.clone();
        source.codecs = probe.codecs.clone();

        let Some(profile_name) = self.config.routing.profile_for(probe.kind, &[], &self.profiles) else {
            return self.store_as_is(path, &probe, &content, source);
        };
        let profile = self
            .profiles
            .get(&profile_name)
            .ok_or_else(|| JobError::NoProfile(profile_name.clone()))?;
        let work = tempfile::Builder::new()
            .prefix("job-")
            .tempdir_in(&self.work_root)
            .map_err(|e| MediaError::io("creating work directory", e))?;
        let rendition = media::render(path, &probe, profile, work.path())?;
        self.store_rendition(path, &content, profile, &probe, &rendition, source)
    }

    fn store_rendition(
        &self,
        input: &Path,
        content: &ContentHash,
        profile: &Profile,
        probe: &Probe,
        rendition: &Rendition,
        source: &SourceInfo,
    ) -> Result<Record, JobError> {
        let prefix = &self.config.store.prefix;
        let mut placed = Placed::new(&self.store);
        let thumbnail = match &rendition.thumbnail {
            Some(t) => {
                let key = keys::thumbnail(prefix, content, &profile.id, &t.extension);
                let object = placed.put(&key, &t.path)?;
                Some(ThumbnailInfo {
                    mime: t.mime.clone(),
                    width: t.width,
                    height: t.height,
                    url: object.url,
                    key: object.key,
                })
            }
            None => None,
        };
        let original = if self.config.store.upload_originals {
            Some(placed.put(&keys::original(prefix, content), input)?)
        } else {
            None
        };
        let key = keys::rendition(prefix, content, &profile.id, &rendition.extension);
        let object = placed.put(&key, &rendition.path)?;
        placed.keep();

        let mut record = Record::new(Event::Stored, &source.file_name, Some(content), source.clone());
        record.media = Some(MediaInfo {
            kind: probe.kind.as_str().to_string(),
            profile: Some(profile.name.clone()),
            profile_id: Some(profile.id.clone()),
            mime: rendition.mime.clone(),
            bytes: rendition.bytes,
            duration_ms: rendition.duration_ms,
            width: rendition.width,
            height: rendition.height,
            url: object.url,
            key: object.key,
        });
        record.thumbnail = thumbnail;
        record.original = original;
        record.retention_until = self.retention_until(profile.settings.retention_days);
        Ok(record)
    }

    /// Files that are not media: kept byte for byte, or refused, per `routing.other`.
    fn store_as_is(
        &self,
        input: &Path,
        probe: &Probe,
        content: &ContentHash,
        source: &SourceInfo,
    ) -> Result<Record, JobError> {
        if self.config.routing.other == OtherRoute::Reject {
            return Err(JobError::UnsupportedKind {
                mime: probe.mime.clone(),
            });
        }
        let key = keys::original(&self.config.store.prefix, content);
        let object = self.store.put_file(&key, input)?;
        let mut record = Record::new(Event::Stored, &source.file_name, Some(content), source.clone());
        record.media = Some(MediaInfo {
            kind: MediaKind::Other.as_str().to_string(),
            profile: None,
            profile_id: None,
            mime: probe.mime.clone(),
            bytes: probe.bytes,
            duration_ms: None,
            width: None,
            height: None,
            url: object.url.clone(),
            key: object.key.clone(),
        });
        record.original = Some(object);
        record.retention_until = self.retention_until(None);
        Ok(record)
    }

    fn retention_until(&self, profile_days: Option<u32>) -> Option<String> {
        let days = profile_days.unwrap_or(self.config.policy.retention_days);
        if days == 0 {
            return None;
        }
        let until = time::OffsetDateTime::now_utc() + time::Duration::days(i64::from(days));
        until.format(&time::format_description::well_known::Rfc3339).ok()
    }
}
