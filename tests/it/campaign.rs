//! The mutation campaign (opt-in: `MEDIASPOOL_MUTANTS=1000 cargo test --test it campaign`):
//! corpus files and fixtures with bytes flipped, blocks zeroed, ends cut off and chunks
//! repeated, through `process` in batches. Every mutant ends with one record, stored or
//! rejected with a code from the error table; no worker crashes, overruns its time or memory
//! limit (the batch would be killed at its own limit), and `process` never dies. Without the
//! variable the test says so and checks nothing: it takes tens of minutes.
//! `MEDIASPOOL_MUTANTS_SEED` picks another set of mutants (default 1); mutants whose outcome
//! breaks the rules are kept in `MEDIASPOOL_MUTANTS_KEEP` (a directory) when it is set.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::*;

/// Each worker's limits in the campaign: well above what any mutant of these small files
/// needs (under a second of CPU each), also on a machine busy enough to give the campaign a
/// few percent of a core, so a job that reaches them is a hang or a leak.
const LIMIT_SECONDS: u64 = 300;
const CONFIG: &str = "[spool]\njob_timeout = \"300s\"\njob_memory = \"1GiB\"\n";
const BATCH: usize = 50;

#[derive(Debug, Clone, Copy)]
enum Mutation {
    FlipBytes,
    ZeroBlock,
    Truncate,
    RepeatChunk,
}

fn mutate(bytes: &[u8], how: Mutation, rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut d = bytes.to_vec();
    let len = d.len().max(1);
    match how {
        Mutation::FlipBytes => {
            for _ in 0..rng.usize(1..=16) {
                let at = rng.usize(..len);
                if let Some(b) = d.get_mut(at) {
                    *b ^= 1 << rng.u8(..8);
                }
            }
        }
        Mutation::ZeroBlock => {
            let at = rng.usize(..len);
            let end = (at + rng.usize(16..=4096)).min(d.len());
            d[at.min(end)..end].fill(0);
        }
        Mutation::Truncate => d.truncate(rng.usize(len / 10..=len * 19 / 20)),
        Mutation::RepeatChunk => {
            let at = rng.usize(..len);
            let end = (at + rng.usize(64..=8192)).min(d.len());
            let chunk = d[at.min(end)..end].to_vec();
            for _ in 0..rng.usize(1..=4) {
                d.splice(end..end, chunk.iter().copied());
            }
        }
    }
    d
}

/// The media the campaign mutates: the corpus's audio and video (up to 1 MB each) and the
/// fixtures that are media.
fn sources() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["audio", "video", "broken"]
        .iter()
        .flat_map(|s| corpus_files(s))
        .collect();
    files.extend(
        std::fs::read_dir(repo().join("fixtures"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                !matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("sh" | "md" | "tsv" | "txt")
                )
            }),
    );
    files.retain(|f| std::fs::metadata(f).unwrap().len() <= 1 << 20);
    files.sort();
    files
}

#[test]
fn mutants_of_real_media_are_stored_or_rejected_with_a_code_never_a_crash() {
    let Some(count) = std::env::var("MEDIASPOOL_MUTANTS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    else {
        eprintln!("mutation campaign not run: set MEDIASPOOL_MUTANTS=1000 to run it");
        return;
    };
    let seed = std::env::var("MEDIASPOOL_MUTANTS_SEED").map_or(1, |v| v.parse().unwrap());
    let keep = std::env::var_os("MEDIASPOOL_MUTANTS_KEEP").map(PathBuf::from);
    let mut rng = fastrand::Rng::with_seed(seed);
    let sources = sources();
    let hows = [
        Mutation::FlipBytes,
        Mutation::ZeroBlock,
        Mutation::Truncate,
        Mutation::RepeatChunk,
    ];

    let s = Scratch::new();
    std::fs::write(s.path().join("mediaspool.toml"), CONFIG).unwrap();
    let mutants_dir = s.path().join("mutants");
    std::fs::create_dir(&mutants_dir).unwrap();
    let mut mutants = Vec::new();
    for i in 0..count {
        let source = &sources[rng.usize(..sources.len())];
        let how = hows[i % hows.len()];
        let bytes = mutate(&std::fs::read(source).unwrap(), how, &mut rng);
        let name = source.file_name().unwrap().to_string_lossy();
        let path = mutants_dir.join(format!("{i:04}-{how:?}-{name}"));
        std::fs::write(&path, bytes).unwrap();
        mutants.push(path);
    }

    let started = Instant::now();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut broken = Vec::new();
    let mut seen = 0;
    for batch in mutants.chunks(BATCH) {
        let mut args = vec!["process".to_string()];
        args.extend(batch.iter().map(|f| f.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // Every job of the batch at its limit, one after the other, is the most a batch may
        // take; past that a limit did not hold.
        let out = s.run(&args, Duration::from_secs(LIMIT_SECONDS * BATCH as u64 + 60));
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "process died on {:?}..: {:?}\n{}",
            batch[0],
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let records = s.records();
        assert_eq!(records.len(), seen + batch.len(), "one record per mutant");
        for r in &records[seen..] {
            let name = r["source"]["file_name"].as_str().unwrap().to_string();
            let outcome = match r["event"].as_str().unwrap() {
                "media.stored" | "media.duplicate" => r["event"].as_str().unwrap().to_string(),
                "media.rejected" => {
                    let code = r["error"]["code"].as_str().unwrap();
                    if matches!(code, "worker-crashed" | "timeout" | "out-of-memory") {
                        broken.push(format!("{name}: {}", r["error"]));
                    }
                    format!("rejected {code}")
                }
                other => panic!("{name}: event {other}"),
            };
            *outcomes.entry(outcome).or_default() += 1;
        }
        seen = records.len();
    }
    eprintln!(
        "mutation campaign: {count} mutants of {} files (seed {seed}) in {:.0} s: {outcomes:?}",
        sources.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(keep) = &keep {
        std::fs::create_dir_all(keep).unwrap();
        for line in &broken {
            let name = line.split(':').next().unwrap();
            std::fs::copy(mutants_dir.join(name), keep.join(name)).unwrap();
        }
    }
    assert!(
        broken.is_empty(),
        "workers crashed or passed a limit:\n{}",
        broken.join("\n")
    );
}
