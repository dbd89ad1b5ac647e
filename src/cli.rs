//! Command-line definitions (clap). Parsing only; `commands` does the work.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "mediaspool",
    version,
    about = "Media optimisation and transcoding daemon: spool in, verified MP3/MP4 and CRM records out"
)]
pub struct Cli {
    /// Configuration file (default ./mediaspool.toml; no file means all defaults).
    #[arg(short, long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// More detail in logs (-v info, -vv debug); MEDIASPOOL_LOG=... overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print what each file is, by content: kind, container, streams, codecs, duration,
    /// dimensions, rotation (one JSON object per line).
    Probe {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run the whole pipeline once on the given files: one record per file in the outbox.
    Process {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The daemon: take files from the spool until SIGINT/SIGTERM.
    Watch,
    /// Search the catalog; prints matching records as NDJSON.
    Query {
        #[arg(long, value_name = "ID")]
        customer: Option<String>,
        #[arg(long, value_name = "ID")]
        chat: Option<String>,
        /// audio, video, image or other.
        #[arg(long, value_parser = ["audio", "video", "image", "other"])]
        kind: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        /// Received at or after (RFC 3339 time or YYYY-MM-DD).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Received at or before (RFC 3339 time or YYYY-MM-DD).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
    },
    /// Validate configuration and profiles, and reach the store and sinks.
    Check,
    /// A media worker (started by the daemon; speaks JSON lines on stdin/stdout).
    #[command(hide = true)]
    Worker,
}
