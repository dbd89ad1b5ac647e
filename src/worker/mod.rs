//! Media work in supervised worker processes.
//!
//! Decoding untrusted media must never take the daemon down. The daemon starts workers (the
//! same binary, `mediaspool worker`), keeps them alive across jobs, and talks to each over its
//! stdin/stdout, one JSON object per line:
//! - first the daemon sends a [`Setup`] (profiles and routing), once;
//! - then per job a [`Job`] (a [`Request`] and its threads); the worker answers [`Message::Probed`] as soon as it knows
//!   what the file is (the supervisor extends the time limit by the media's duration), then
//!   [`Message::Done`] with the [`MediaOutcome`].
//!
//! [`pool::WorkerPool`] is the supervisor: wall-time and memory limits per job, and a worker
//! that crashed, hung or ran out of memory is killed and replaced.

pub mod child;
pub mod job;
pub mod pool;
pub mod threads;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::RoutingConfig;
use crate::failure::Failure;
use crate::media::{Probe, Rendition};
use crate::profile::{MediaKind, Profile};

/// What every job of a worker needs, sent once at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Setup {
    pub profiles: Vec<Profile>,
    pub routing: RoutingConfig,
    /// The worker's resident-memory limit: decoders of very large pictures keep their threads
    /// within it (see [`crate::media::set_memory_limit`]).
    pub memory_bytes: u64,
}

/// One job as a worker receives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub request: Request,
    /// Threads its codecs may use: its share of the cores when it starts (see [`threads`]).
    pub threads: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub input: PathBuf,
    pub file_name: String,
    /// Manifest tags, for tag routing.
    pub tags: Vec<String>,
    /// Private directory for this job's outputs.
    pub work_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Message {
    Probed {
        kind: MediaKind,
        duration_ms: Option<u64>,
    },
    Done {
        outcome: Box<MediaOutcome>,
    },
}

/// The media part of a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum MediaOutcome {
    /// Transcoded and verified with `profile`.
    Rendered {
        probe: Box<Probe>,
        profile: String,
        rendition: Rendition,
    },
    /// Not audio, video or image: routing decides whether it is kept as is.
    NotMedia { probe: Box<Probe> },
    Failed {
        probe: Option<Box<Probe>>,
        failure: Failure,
    },
}
