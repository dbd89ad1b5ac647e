//! `mediaspool process FILE...`: the pipeline once on each file, records to the outbox.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use super::{EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE};
use crate::config::Config;
use crate::pipeline::Engine;
use crate::profile::ProfileSet;
use crate::records::{Event, NdjsonSink};
use crate::store::Store;

pub fn run(config: Config, profiles: ProfileSet, files: &[PathBuf]) -> u8 {
    crate::media::init();
    let store = match Store::from_config(&config.store) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mediaspool: {e}");
            return EXIT_USAGE;
        }
    };
    let sink = match NdjsonSink::open(&config.records.outbox) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "mediaspool: records.outbox {}: {e}",
                config.records.outbox.display()
            );
            return EXIT_USAGE;
        }
    };
    let stdout = config.records.stdout;
    let engine = Engine::new(config, profiles, store, std::env::temp_dir());
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}").expect("template parses"));
    let mut failed = 0usize;
    for file in files {
        let name = file
            .file_name()
            .map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().to_string());
        bar.set_message(name.clone());
        let record = engine.process(file, &name);
        if record.event == Event::Rejected {
            failed += 1;
            if let Some(e) = &record.error {
                bar.suspend(|| eprintln!("{name}: rejected ({}): {}", e.code, e.message));
            }
        }
        if let Err(e) = sink.append(&record) {
            bar.suspend(|| eprintln!("mediaspool: cannot write {}: {e}", sink.path().display()));
            failed += 1;
        }
        if stdout {
            bar.suspend(|| println!("{}", serde_json::to_string(&record).expect("record serialises")));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if failed > 0 {
        EXIT_SOME_FAILED
    } else {
        EXIT_OK
    }
}
