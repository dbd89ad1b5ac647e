//! mediaspool: a media optimisation and transcoding daemon.
//!
//! # Layout
//! The modules follow a file's way through the pipeline:
//! - [`cli`]: command-line definitions; [`commands`]: what each command does, exit codes.
//! - [`config`]: the `mediaspool.toml` contract, defaults, environment overrides, validation.
//! - [`profile`]: typed transcoding profiles, built in and from `profiles_dir`, with ids.
//! - [`hash`]: BLAKE3 content hashes.
//! - [`media`]: the engine — probe, transcode (audio → MP3, video → MP4), images, thumbnails,
//!   verification. Synchronous, CPU-heavy.
//! - [`store`]: content-addressed keys and the local store.
//! - [`records`]: the record format and the NDJSON sink.
//! - [`pipeline`]: one job, from input file to record.
//! - [`bench`]: `mediaspool bench` — size, speed and quality of profiles on inputs, and the CRF
//!   search for a target SSIM.
//!
//! ```text
//! file ─▶ hash (BLAKE3) ─▶ probe ─▶ route (kind → profile) ─▶ render ─▶ verify ─▶ store ─▶ record
//! ```

pub mod bench;
pub mod cli;
pub mod commands;
pub mod config;
pub mod hash;
pub mod media;
pub mod pipeline;
pub mod profile;
pub mod records;
pub mod store;
