//! mediaspool: a media optimisation and transcoding daemon.
//!
//! # Layout
//! The modules follow a file's way through the pipeline:
//! - [`cli`]: command-line definitions; [`commands`]: what each command does, exit codes;
//!   [`logging`]: the log filter and format, shared with worker processes.
//! - [`config`]: the `mediaspool.toml` contract, defaults, environment overrides, validation.
//! - [`profile`]: typed transcoding profiles, built in and from `profiles_dir`, with ids.
//! - [`ingest`]: the spool (claim, release, quarantine), watching it, manifests.
//! - [`hash`]: BLAKE3 content hashes.
//! - [`catalog`]: SQLite: known media (dedup), messages and their records, the outbox.
//! - [`media`]: the engine — probe, transcode (audio → MP3, video → MP4), images, thumbnails,
//!   verification. Synchronous, CPU-heavy.
//! - [`store`]: content-addressed keys and the local store.
//! - [`worker`]: media work in supervised worker processes (time and memory limits).
//! - [`records`]: the record format.
//! - [`delivery`]: the outbox to the sinks (NDJSON file, stdout), one task per sink, retries,
//!   dead letters, order per chat.
//! - [`pipeline`]: one job, from input file to committed record.
//! - [`privacy`]: retention and `purge`, erasure (`forget`), redaction of log lines.
//! - [`daemon`]: `watch`: intake, concurrency, shutdown; [`telemetry`]: its start, per-job
//!   and stop lines.
//! - [`metrics`]: what is counted and timed, and the jobs in flight; [`http`]: `[http]
//!   listen` — metrics, health, the status page, media cards.
//! - [`failure`]: the one shape of every failure (code, message, stage) and, in
//!   [`failure::codes`], the table of every error code.
//! - [`bench`]: `mediaspool bench` — size, speed and quality of profiles on inputs, and the CRF
//!   search for a target SSIM.
//!
//! ```text
//! incoming/ ─watch─▶ claim (rename into work/) ─▶ hash ─▶ catalog: seen these bytes? ─yes─▶ duplicate
//!                                                                 │ no
//!       worker process: probe ─▶ route (kind → profile) ─▶ render ─▶ verify
//!                                                                 ▼
//!            store ─▶ one catalog transaction: media + message + outbox ─▶ done/ | failed/
//!                                                                 ▼
//!                       one task per sink drains the outbox (NDJSON file, stdout)
//! ```

pub mod bench;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod failure;
pub mod hash;
pub mod http;
pub mod ingest;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod pipeline;
pub mod privacy;
pub mod profile;
pub mod records;
pub mod store;
pub mod telemetry;
pub mod worker;
