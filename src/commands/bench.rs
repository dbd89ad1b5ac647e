//! `mediaspool bench`: measure profiles on inputs, or search a CRF for a target SSIM.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

use super::{EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE};
use crate::bench::{self, crf_search, report, BenchError};
use crate::cli::BenchArgs;
use crate::config::Config;
use crate::profile::{MediaKind, ProfileSet};

pub fn run(config: &Config, profiles: &ProfileSet, args: &BenchArgs) -> u8 {
    crate::media::init();
    let result = bench::inputs::expand(&args.inputs).and_then(|inputs| match args.target_ssim {
        Some(target) => target_ssim(config, profiles, args, &inputs, target),
        None => measure(config, profiles, args, &inputs),
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mediaspool: {e}");
            if e.is_usage() {
                EXIT_USAGE
            } else {
                EXIT_SOME_FAILED
            }
        }
    }
}

/// A progress bar on stderr (hidden when it is not a terminal); the spinner turns during a
/// long render, so a slow input does not look like a hang.
fn bar(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bar:30} {pos}/{len} {elapsed} {wide_msg}")
            .expect("template parses"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

fn measure(
    config: &Config,
    profiles: &ProfileSet,
    args: &BenchArgs,
    inputs: &[PathBuf],
) -> Result<u8, BenchError> {
    let (jobs, skipped) = bench::plan(inputs, &args.profiles, profiles, &config.routing)?;
    for s in skipped.iter().filter(|s| s.failed) {
        eprintln!("{}: {}", s.input, s.reason);
    }
    let work_root = std::env::temp_dir();
    let progress = bar(jobs.len());
    let mut rows = Vec::with_capacity(jobs.len());
    for job in &jobs {
        progress.set_message(format!("{} × {}", job.profile.name, job.input.display()));
        let row = bench::measure(job, &work_root);
        if let Some(e) = &row.error {
            progress.suspend(|| eprintln!("{} × {}: {e}", row.profile, row.input));
        }
        rows.push(row);
        progress.inc(1);
    }
    progress.finish_and_clear();
    let summary = bench::summarise(&rows);

    let to_stdout = |p: &Option<PathBuf>| p.as_deref() == Some(Path::new("-"));
    if let Some(path) = &args.json {
        emit(path, &report::json(&rows, &summary, &skipped))?;
    }
    if let Some(path) = &args.csv {
        emit(path, &report::csv(&rows))?;
    }
    if let Some(path) = &args.chart {
        bench::chart::write(&rows, path)?;
    }
    if !to_stdout(&args.json) && !to_stdout(&args.csv) {
        print!("{}", report::table(&rows, &summary, &skipped));
    }
    let failed = rows.iter().any(|r| r.error.is_some()) || skipped.iter().any(|s| s.failed);
    Ok(if failed { EXIT_SOME_FAILED } else { EXIT_OK })
}

/// Writes `text` to `path`, or to stdout for `-`.
fn emit(path: &Path, text: &str) -> Result<(), BenchError> {
    if path == Path::new("-") {
        print!("{text}");
        return Ok(());
    }
    std::fs::write(path, text).map_err(|source| BenchError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn target_ssim(
    config: &Config,
    profiles: &ProfileSet,
    args: &BenchArgs,
    inputs: &[PathBuf],
    target: f64,
) -> Result<u8, BenchError> {
    if !(0.0..1.0).contains(&target) || args.min_crf > args.max_crf || args.sample_seconds <= 0.0 {
        eprintln!("mediaspool: --target-ssim must be in 0–1 (exclusive of 1), --min-crf ≤ --max-crf, --sample-seconds > 0");
        return Ok(EXIT_USAGE);
    }
    let names = if args.profiles.is_empty() {
        vec![config.routing.video.clone()]
    } else {
        args.profiles.clone()
    };
    for name in &names {
        let profile = profiles
            .get(name)
            .ok_or_else(|| BenchError::NoProfile(name.clone()))?;
        if profile.kind() != MediaKind::Video {
            return Err(BenchError::NotVideo {
                profile: name.clone(),
                kind: profile.kind(),
            });
        }
    }
    let (jobs, skipped) = bench::plan(inputs, &names, profiles, &config.routing)?;
    let settings = crf_search::SearchSettings {
        target,
        min_crf: args.min_crf,
        max_crf: args.max_crf,
        samples: args.samples as usize,
        sample_seconds: args.sample_seconds,
    };
    let work_root = std::env::temp_dir();
    let progress = bar(jobs.len());
    let mut choices = Vec::new();
    let mut failed = skipped.iter().any(|s| s.failed);
    for job in &jobs {
        progress.set_message(format!("{} × {}", job.profile.name, job.input.display()));
        match crf_search::find(&job.input, &job.probe, &job.profile, &settings, &work_root) {
            Ok(choice) => choices.push(choice),
            Err(e) => {
                failed = true;
                progress.suspend(|| eprintln!("mediaspool: {e}"));
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    match &args.json {
        Some(path) => emit(
            path,
            &(serde_json::to_string_pretty(&choices).expect("choices serialise") + "\n"),
        )?,
        None => print!("{}", report::crf_choices(&choices)),
    }
    for s in &skipped {
        eprintln!("skipped {}: {}", s.input, s.reason);
    }
    Ok(if failed { EXIT_SOME_FAILED } else { EXIT_OK })
}
