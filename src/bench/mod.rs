//! `mediaspool bench`: how each profile does on given inputs — size, speed and quality.
//!
//! In: input paths (files, or folders walked recursively) and profiles (named, or the one
//! routing picks for each input's kind). Out: one [`Row`] per profile × input — bytes in and
//! out, compression ratio, bitrate, render time and speed (× realtime), and quality: SSIM and
//! PSNR for pictures ([`video_quality`], libavfilter in-process), SNR and log-spectral distance
//! for sound ([`signal`]) — and a [`Summary`] per profile (median, p95); rendered as a table,
//! JSON, CSV ([`report`]) or an SVG chart ([`chart`]). [`crf_search`] finds the CRF that reaches
//! a target SSIM with the smallest output, on samples of an input ([`sample`]).
//!
//! A failing input is a row with an `error`, not a failed run; [`BenchError`] is for what stops
//! the whole command (no such input or profile, an output file that cannot be written).
//! Everything here is synchronous, CPU-heavy libav work.

pub mod audio_quality;
pub mod chart;
pub mod crf_search;
pub mod inputs;
pub mod report;
pub mod sample;
pub mod signal;
pub mod summary;
pub mod video_quality;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::RoutingConfig;
use crate::media::{self, MediaError, Probe};
use crate::profile::{MediaKind, Profile, ProfileSet};

pub use summary::{summarise, Stat, Summary};

/// What stops a bench run as a whole. Per-input failures are rows with an `error` instead.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}: no such file or directory")]
    NoInput(PathBuf),
    #[error("cannot read {path}: {source}")]
    ReadInput { path: PathBuf, source: std::io::Error },
    #[error("no profile named {0:?} (see `mediaspool check` for the list)")]
    NoProfile(String),
    #[error("profile {profile} makes {kind}; --target-ssim needs a video profile")]
    NotVideo { profile: String, kind: MediaKind },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("chart {path}: {detail}")]
    Chart { path: PathBuf, detail: String },
    #[error("{input}: {source}")]
    Media { input: PathBuf, source: MediaError },
    #[error(transparent)]
    Quality(#[from] QualityError),
    #[error("{input}: SSIM {target} is out of reach for {profile}: CRF {crf} gives only {ssim:.4}")]
    Unreachable {
        input: PathBuf,
        profile: String,
        target: f64,
        crf: u8,
        ssim: f64,
    },
    #[error("invalid profile built from {profile}: {detail}")]
    Profile { profile: String, detail: String },
}

impl BenchError {
    /// Whether the command line asked for something that is not there (exit code 2), rather
    /// than a measurement failing.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            BenchError::NoInput(_)
                | BenchError::ReadInput { .. }
                | BenchError::NoProfile(_)
                | BenchError::NotVideo { .. }
                | BenchError::Profile { .. }
        )
    }
}

/// A side of a comparison could not be decoded or compared.
#[derive(Debug, Clone, thiserror::Error)]
#[error("measuring quality of {path}: {detail}")]
pub struct QualityError {
    pub path: PathBuf,
    pub detail: String,
}

impl QualityError {
    pub fn new(path: &Path, detail: String) -> QualityError {
        QualityError {
            path: path.to_path_buf(),
            detail,
        }
    }
}

/// One profile on one input. Field names are those of the JSON and CSV outputs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Row {
    pub input: String,
    pub kind: String,
    pub profile: String,
    pub profile_id: String,
    pub input_bytes: u64,
    pub output_bytes: Option<u64>,
    /// `input_bytes / output_bytes`.
    pub ratio: Option<f64>,
    /// Decoded duration of the source, seconds (none for pictures).
    pub duration_s: Option<f64>,
    /// Output bits per second of output, in kbit/s.
    pub bitrate_kbps: Option<f64>,
    /// Wall time of the render: transcode, thumbnail and verification, as the daemon does it.
    pub encode_s: Option<f64>,
    /// `duration_s / encode_s`: how many times faster than realtime.
    pub speed_x: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Mean SSIM (0–1) of the output's frames against the upright source's.
    pub ssim: Option<f64>,
    /// PSNR over all frames, dB (capped at 100 for identical pictures).
    pub psnr_db: Option<f64>,
    /// Frames compared for `ssim` and `psnr_db`.
    pub frames: Option<u64>,
    /// SNR of the decoded output's sound against the decoded source's, dB.
    pub snr_db: Option<f64>,
    /// Log-spectral distance of the same, dB (lower is better).
    pub lsd_db: Option<f64>,
    /// Why this profile failed on this input, if it did.
    pub error: Option<String>,
}

/// One measurement to make.
#[derive(Debug, Clone)]
pub struct Job {
    pub input: PathBuf,
    pub probe: Probe,
    pub profile: Profile,
}

/// Inputs that could not be paired with any profile, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Skipped {
    pub input: String,
    pub reason: String,
    /// Whether the input is broken (it could not be probed), rather than of another kind.
    pub failed: bool,
}

/// Pairs every input with the named profiles of its kind, or with the profile routing picks for
/// it when `names` is empty. Inputs that are not media, or that no named profile fits, are
/// skipped with a reason.
pub fn plan(
    inputs: &[PathBuf],
    names: &[String],
    profiles: &ProfileSet,
    routing: &RoutingConfig,
) -> Result<(Vec<Job>, Vec<Skipped>), BenchError> {
    let chosen: Vec<&Profile> = names
        .iter()
        .map(|n| profiles.get(n).ok_or_else(|| BenchError::NoProfile(n.clone())))
        .collect::<Result<_, _>>()?;
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for input in inputs {
        let skip = |reason: String, failed: bool| Skipped {
            input: input.display().to_string(),
            reason,
            failed,
        };
        let probe = match media::probe(input) {
            Ok(p) => p,
            Err(e) => {
                skipped.push(skip(e.to_string(), true));
                continue;
            }
        };
        let fitting: Vec<Profile> = if chosen.is_empty() {
            routing
                .profile_for(probe.kind, &[], profiles)
                .and_then(|name| profiles.get(&name).cloned())
                .into_iter()
                .collect()
        } else {
            chosen
                .iter()
                .filter(|p| p.kind() == probe.kind)
                .map(|p| (*p).clone())
                .collect()
        };
        if fitting.is_empty() {
            skipped.push(skip(format!("no profile given for kind {}", probe.kind), false));
        }
        for profile in fitting {
            jobs.push(Job {
                input: input.clone(),
                probe: probe.clone(),
                profile,
            });
        }
    }
    Ok((jobs, skipped))
}

/// Renders `job` in a fresh directory under `work_root` and measures the result. Never fails:
/// a problem is the row's `error`.
pub fn measure(job: &Job, work_root: &Path) -> Row {
    let profile = &job.profile;
    let mut row = Row {
        input: job.input.display().to_string(),
        kind: job.probe.kind.to_string(),
        profile: profile.name.clone(),
        profile_id: profile.id.clone(),
        input_bytes: job.probe.bytes,
        ..Row::default()
    };
    if let Err(e) = measure_into(job, work_root, &mut row) {
        row.error = Some(e);
    }
    row
}

fn measure_into(job: &Job, work_root: &Path, row: &mut Row) -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("bench-")
        .tempdir_in(work_root)
        .map_err(|e| format!("work directory in {}: {e}", work_root.display()))?;
    let started = Instant::now();
    let rendition =
        media::render(&job.input, &job.probe, &job.profile, dir.path()).map_err(|e| e.to_string())?;
    let encode_s = started.elapsed().as_secs_f64();
    row.encode_s = Some(encode_s);
    row.output_bytes = Some(rendition.bytes);
    row.ratio = Some(job.probe.bytes as f64 / rendition.bytes.max(1) as f64);
    row.width = rendition.width;
    row.height = rendition.height;
    if let Some(ms) = rendition.source_duration_ms.filter(|ms| *ms > 0) {
        let seconds = ms as f64 / 1000.0;
        row.duration_s = Some(seconds);
        row.speed_x = Some(seconds / encode_s.max(1e-9));
    }
    if let Some(ms) = rendition.duration_ms.filter(|ms| *ms > 0) {
        row.bitrate_kbps = Some(rendition.bytes as f64 * 8.0 / (ms as f64 / 1000.0) / 1000.0);
    }
    let settings = &job.profile.settings;
    if matches!(job.probe.kind, MediaKind::Video | MediaKind::Image) {
        let max_fps = settings.video.as_ref().map(|v| v.max_fps);
        let picture = video_quality::measure(&job.input, &job.probe, max_fps, &rendition.path)
            .map_err(|e| e.to_string())?;
        row.ssim = Some(picture.ssim);
        row.psnr_db = Some(picture.psnr_db);
        row.frames = Some(picture.frames);
    }
    if let (Some(stream), Some(_)) = (job.probe.audio_stream, settings.audio.as_ref()) {
        if let Some(score) =
            audio_quality::measure(&job.input, stream, &rendition.path).map_err(|e| e.to_string())?
        {
            row.snr_db = Some(score.snr_db);
            row.lsd_db = Some(score.lsd_db);
        }
    }
    Ok(())
}
