//! The media engine: one input file and one profile in, a verified output (plus thumbnail) out.
//!
//! In: a path to untrusted bytes, the [`Probe`] of them and the [`Profile`] chosen by routing.
//! Out: [`Rendition`] — the output file written into a work directory, its verified duration
//! and dimensions, and an optional thumbnail. Fails with [`MediaError`], whose stable
//! [`MediaError::code`] goes into records and `NAME.error.json`.
//!
//! Everything here is synchronous, CPU-heavy libav and `image` work: call it from a blocking
//! thread or a worker process, never from an async task. Nothing spawns the `ffmpeg` CLI.

mod audio_track;
mod decode;
pub mod duration;
mod error;
mod filters;
pub mod image;
mod libav;
mod mp4_boxes;
mod mux;
pub mod probe;
mod stream_check;
mod threads;
mod thumbnail;
mod transcode;
pub mod verify;
mod video_track;
mod waveform;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use error::MediaError;
pub(crate) use filters::{abuffer_args, fps_cap, simple_graph, tone_map_filters, upright_graph};
pub use libav::init;
pub(crate) use libav::{clear_last_error, is_again, take_last_error};
pub use probe::{probe, Probe, StreamInfo};
pub(crate) use threads::set_decoder_threading;
pub use threads::{set_memory_limit, set_threads, threads};

use crate::profile::{MediaKind, Profile};

/// An output made from one input with one profile, checked and ready to store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rendition {
    pub path: PathBuf,
    pub mime: String,
    pub extension: String,
    pub bytes: u64,
    /// Duration of the output as decoded during verification (absent for images).
    pub duration_ms: Option<u64>,
    /// Duration of the source as decoded while transcoding.
    pub source_duration_ms: Option<u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub thumbnail: Option<Thumbnail>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Thumbnail {
    pub path: PathBuf,
    pub mime: String,
    pub extension: String,
    pub width: u32,
    pub height: u32,
}

/// Makes the rendition of `input` for `profile` inside `work_dir` (which must exist and should
/// be private to this job: file names inside it are fixed).
pub fn render(
    input: &Path,
    probe: &Probe,
    profile: &Profile,
    work_dir: &Path,
) -> Result<Rendition, MediaError> {
    probe::check_limits(probe, &profile.settings.limits, &profile.name)?;
    match (probe.kind, profile.kind()) {
        (MediaKind::Audio, MediaKind::Audio) => transcode::audio_to_mp3(input, probe, profile, work_dir),
        (MediaKind::Video, MediaKind::Video) => transcode::video_to_mp4(input, probe, profile, work_dir),
        (MediaKind::Image, MediaKind::Image) => image::render(input, profile, work_dir),
        (found, wanted) => Err(MediaError::WrongKind {
            profile: profile.name.clone(),
            wanted,
            found,
        }),
    }
}
