//! Command-line definitions (clap). Parsing only; `commands` does the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "mediaspool",
    version,
    about = "Media optimisation and transcoding daemon: spool in, verified MP3/MP4 and CRM records out",
    after_help = examples::MEDIASPOOL
)]
pub struct Cli {
    /// Configuration file (default ./mediaspool.toml; no file means all defaults).
    #[arg(short, long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// More detail in logs (-v mediaspool's debug lines, -vv the libraries' too); MEDIASPOOL_LOG=... overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Warnings and errors only: no start, per-job or stop lines, no summary, no progress bar.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

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
    #[command(after_help = examples::PROBE)]
    Probe {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run the whole pipeline once on the given files: one record per file in the outbox, and a
    /// summary on stderr.
    #[command(after_help = examples::PROCESS)]
    Process {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also print each record on stdout (one JSON object per line), as its file is done.
        #[arg(long)]
        json: bool,
    },
    /// The daemon: take files from the spool until SIGINT/SIGTERM.
    #[command(after_help = examples::WATCH)]
    Watch,
    /// Search the catalog; prints matching records as NDJSON.
    #[command(after_help = examples::QUERY)]
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
    /// Apply retention now: delete the media, thumbnails, originals and records of every
    /// message whose retention has run out, and emit a media.deleted record for each (the
    /// daemon also does this every policy.purge_interval).
    #[command(after_help = examples::PURGE)]
    Purge {
        /// List what would go (one JSON object per message, then the objects), delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Erase every object and catalog row of one customer or one chat, and its files in
    /// done/ and failed/; print a summary to keep (JSON on stdout). Exit 1 if anything could
    /// not be deleted.
    #[command(after_help = examples::FORGET)]
    Forget {
        #[arg(
            long,
            value_name = "ID",
            required_unless_present = "chat",
            conflicts_with = "chat"
        )]
        customer: Option<String>,
        #[arg(long, value_name = "ID")]
        chat: Option<String>,
    },
    /// Validate configuration and profiles, and reach the store and sinks (each HTTP sink's
    /// request is rendered for a sample record of every event).
    #[command(after_help = examples::CHECK)]
    Check,
    /// Print a fresh link to a stored object: a presigned URL when the store has no public
    /// base URL (its expiry goes to stderr). A record id prints its media's link.
    #[command(after_help = examples::LINK)]
    Link {
        #[arg(value_name = "KEY|RECORD_ID")]
        target: String,
    },
    /// List records not yet delivered to a sink (or, with --dead, given up on), with the last
    /// error.
    #[command(after_help = examples::DELIVERIES)]
    Deliveries {
        /// Only this sink (ndjson, stdout or a [sinks.NAME]).
        #[arg(long, value_name = "NAME")]
        sink: Option<String>,
        /// Dead letters: deliveries given up on after give_up_after, or that cannot be made.
        #[arg(long)]
        dead: bool,
    },
    /// Put dead-lettered deliveries back in line (and re-enable sinks disabled by 410 Gone).
    #[command(after_help = examples::REDRIVE)]
    Redrive {
        /// Only this sink.
        #[arg(long, value_name = "NAME")]
        sink: Option<String>,
        /// Only this record.
        #[arg(long, value_name = "ID")]
        record: Option<String>,
    },
    /// Compare profiles on inputs: size, ratio, bitrate, speed and quality (SSIM/PSNR for video
    /// and pictures, SNR/log-spectral distance for audio), as a table, JSON, CSV or a chart.
    #[command(after_help = examples::BENCH)]
    Bench(BenchArgs),
    /// Print a shell completion script for SHELL on stdout.
    #[command(after_help = examples::COMPLETIONS)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) of mediaspool, or of one of its commands, on stdout; or
    /// write every page into a directory.
    #[command(after_help = examples::MAN)]
    Man {
        /// The command whose page to print (default: mediaspool's own).
        #[arg(value_name = "COMMAND", conflicts_with = "dir")]
        command: Option<String>,
        /// Write mediaspool.1 and one mediaspool-COMMAND.1 per command into DIR instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// A media worker (started by the daemon; speaks JSON lines on stdin/stdout).
    #[command(hide = true)]
    Worker,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Files, or folders (walked recursively).
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// A profile to try on every input of its kind (repeatable). Default: the profile routing
    /// picks for each input.
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
    /// Write JSON (rows, per-profile summary, skipped inputs) to FILE, or to stdout without
    /// a value (`--json` or `--json=FILE`).
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true, default_missing_value = "-")]
    pub json: Option<PathBuf>,
    /// Write CSV (one line per profile × input) to FILE, or to stdout without a value.
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true, default_missing_value = "-")]
    pub csv: Option<PathBuf>,
    /// Draw size against quality per profile into an SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<PathBuf>,
    /// Instead of benchmarking: find, for each video input and video profile, the highest CRF
    /// whose SSIM on samples of the input reaches X (0–1), and print the profile setting.
    #[arg(long, value_name = "X")]
    pub target_ssim: Option<f64>,
    /// Lowest CRF the search may answer.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=51))]
    pub min_crf: u8,
    /// Highest CRF the search may answer.
    #[arg(long, default_value_t = 51, value_parser = clap::value_parser!(u8).range(0..=51))]
    pub max_crf: u8,
    /// Samples the search encodes from an input long enough to have them.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
    pub samples: u64,
    /// Length of each sample, seconds (a sample ends on the keyframe after it).
    #[arg(long, default_value_t = 4.0)]
    pub sample_seconds: f64,
}

/// The examples each command's `--help` ends with (and its manual page shows).
pub mod examples {
    pub const MEDIASPOOL: &str = "\
Examples:
  mediaspool watch                       # the daemon on ./spool with the defaults
  mediaspool -c /etc/mediaspool.toml check";

    pub const PROBE: &str = "\
Examples:
  mediaspool probe voice.ogg clip.mp4
  mediaspool probe clip.mp4 | jq .streams";

    pub const PROCESS: &str = "\
Examples:
  mediaspool process inbox/*.ogg                     # summary on stderr, records in the outbox
  mediaspool process --json clip.mp4 > records.ndjson";

    pub const WATCH: &str = "\
Examples:
  mediaspool watch                                   # ./spool, ./media, ./mediaspool.db, ./records.ndjson
  mediaspool watch -c /etc/mediaspool.toml -q        # warnings and errors only";

    pub const QUERY: &str = "\
Examples:
  mediaspool query --customer c-42 --kind audio
  mediaspool query --tag product-issue --since 2026-11-01 --until 2026-11-30";

    pub const PURGE: &str = "\
Examples:
  mediaspool purge --dry-run | jq -r .record_id
  MEDIASPOOL_NOW=2027-06-01 mediaspool purge --dry-run   # what will have gone by then
  mediaspool purge";

    pub const FORGET: &str = "\
Examples:
  mediaspool forget --customer c-42 > erasure-c-42.json
  mediaspool forget --chat 'wa:+34600000000'";

    pub const CHECK: &str = "\
Examples:
  mediaspool check
  mediaspool check -c staging.toml";

    pub const LINK: &str = "\
Examples:
  mediaspool link 4f9c0d6e2b7a41c3a8e5d2f1b0c9e8d7
  mediaspool link ab/ab12…/9dfb88b6bab1c7d7/media.mp3";

    pub const DELIVERIES: &str = "\
Examples:
  mediaspool deliveries                              # summary on stderr, one JSON line each
  mediaspool deliveries --sink crm --dead | jq .last_error";

    pub const REDRIVE: &str = "\
Examples:
  mediaspool redrive --sink crm                      # every dead letter of crm, sink re-enabled
  mediaspool redrive --record 3f2a9c1e7b4d5a60c8e1f2d3b4a59687";

    pub const BENCH: &str = "\
Examples:
  mediaspool bench --profile voice --profile music notes/
  mediaspool bench --target-ssim 0.95 clip.mp4";

    pub const COMPLETIONS: &str = "\
Examples:
  mediaspool completions bash > /etc/bash_completion.d/mediaspool
  mediaspool completions zsh > \"${fpath[1]}/_mediaspool\"
  mediaspool completions fish > ~/.config/fish/completions/mediaspool.fish";

    pub const MAN: &str = "\
Examples:
  mediaspool man | man -l -
  mediaspool man --dir /usr/local/share/man/man1";
}
