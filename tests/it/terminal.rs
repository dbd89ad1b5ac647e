//! What a person sees on the terminal: the daemon's start, per-job and stop lines, `-q`,
//! `process`'s summary and `--json`, `--help` examples, shell completions (checked by the
//! shells themselves) and manual pages (rendered by groff).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::spool_support::{tone_wav, Daemon};

const T: Duration = Duration::from_secs(60);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// The summary `process` ends with: `mediaspool: N files in S s: …`.
fn summary_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("mediaspool: ") && l.contains(" in ") && l.contains(" s: "))
        .collect();
    assert_eq!(lines.len(), 1, "one summary line in:\n{stderr}");
    lines[0]
}

#[test]
fn process_ends_with_a_summary_whose_counts_match_the_records_and_json_prints_them() {
    let s = Scratch::new();
    let bad = s.path().join("bad.ogg");
    std::fs::write(&bad, b"OggS and then nothing an Ogg reader wants").unwrap();
    let copy = s.path().join("copy.ogg");
    std::fs::copy(fixture("voice_note.ogg"), &copy).unwrap();
    let missing = s.path().join("missing.ogg");
    let files = [
        fixture("voice_note.ogg"),
        copy,
        fixture("exif_rotated.jpg"),
        bad,
        missing,
    ];
    let mut args = vec!["process".to_string(), "--json".to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.run(&args, Duration::from_secs(300));
    assert_eq!(out.status.code(), Some(1), "two files are rejected");
    let stderr = text(&out.stderr);

    // --json: the same records as the outbox, one per line.
    let printed: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let records = s.records();
    assert_eq!(records.len(), files.len());
    let by_id = |rs: &[Value]| -> BTreeMap<String, Value> {
        rs.iter()
            .map(|r| (r["record_id"].as_str().unwrap().to_string(), r.clone()))
            .collect()
    };
    assert_eq!(by_id(&printed), by_id(&records));

    // The summary's counts are the records'.
    let count = |event: &str| records.iter().filter(|r| r["event"] == event).count();
    let (stored, duplicates, rejected) = (
        count("media.stored"),
        count("media.duplicate"),
        count("media.rejected"),
    );
    assert_eq!((stored, duplicates, rejected), (2, 1, 2));
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for r in records.iter().filter(|r| r["event"] == "media.rejected") {
        *codes
            .entry(r["error"]["code"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let sum = |field: &str| -> u64 {
        records
            .iter()
            .filter(|r| r["event"] == "media.stored")
            .map(|r| r.pointer(field).unwrap().as_u64().unwrap())
            .sum()
    };
    let (bytes_in, bytes_out) = (sum("/source/bytes"), sum("/media/bytes"));
    let codes: Vec<String> = codes.iter().map(|(c, n)| format!("{c} {n}")).collect();
    let expected = format!(
        ": {stored} stored ({} → {}), {duplicates} duplicate, {rejected} rejected ({})",
        bytesize::ByteSize(bytes_in),
        bytesize::ByteSize(bytes_out),
        codes.join(", ")
    );
    let line = summary_line(&stderr);
    assert!(
        line.starts_with(&format!("mediaspool: {} files in ", files.len())),
        "{line}"
    );
    assert!(
        line.ends_with(&expected),
        "{line}\nexpected it to end with {expected}"
    );
    let seconds: f64 = line
        .split(" in ")
        .nth(1)
        .unwrap()
        .split(" s:")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(seconds > 0.0, "{line}");
    // Each rejection on its own line too, before the summary.
    assert!(stderr.contains("bad.ogg: rejected (unreadable)"), "{stderr}");
    assert!(stderr.contains("missing.ogg: rejected (read-error)"), "{stderr}");
}

#[test]
fn with_the_stdout_sink_on_json_prints_each_record_once() {
    let s = Scratch::new();
    let note = fixture("voice_note.ogg");
    let out = s.run_env(
        &["process", "--json", &note.display().to_string()],
        &[("MEDIASPOOL_RECORDS__STDOUT", "true")],
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(lines.len(), 1, "one record, printed once:\n{}", text(&out.stdout));
    assert_eq!(lines[0]["record_id"], s.records()[0]["record_id"]);
}

#[test]
fn process_quiet_prints_rejections_but_no_summary_and_no_log_lines() {
    let s = Scratch::new();
    let bad = s.path().join("bad.ogg");
    std::fs::write(&bad, b"OggS and then nothing an Ogg reader wants").unwrap();
    let out = s.run(
        &[
            "process",
            "-q",
            fixture("voice_note.ogg").to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
        T,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "records only with --json");
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("bad.ogg: rejected (unreadable)"), "{stderr}");
    assert_eq!(s.records().len(), 2);
}

/// Worker processes log at their parent's level and in its format: with `-vv --log-format json`
/// a broken video's libav messages (logged in the worker that decodes it) come as JSON lines.
#[test]
fn workers_log_at_the_parents_level_and_in_its_format() {
    let s = Scratch::new();
    let broken = corpus().join("broken/exiftool__QuickTime.mov");
    let out = s.run(
        &["process", "-vv", "--log-format", "json", broken.to_str().unwrap()],
        T,
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let lines: Vec<Value> = stderr
        .lines()
        // The summary and the rejection are `process`'s own text, not log lines.
        .filter(|l| !l.starts_with("mediaspool: ") && !l.starts_with("exiftool__QuickTime.mov: "))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["target"] == "libav"),
        "the worker's libav messages at -vv:\n{stderr}"
    );
}

/// Every command a user can call, as `--help` lists them.
fn commands() -> Vec<String> {
    let s = Scratch::new();
    let out = s.run(&["--help"], T);
    let help = text(&out.stdout);
    let listed: Vec<String> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    for c in [
        "probe",
        "process",
        "watch",
        "query",
        "check",
        "bench",
        "completions",
        "man",
    ] {
        assert!(listed.iter().any(|l| l == c), "{c} in {listed:?}");
    }
    assert!(
        !listed.iter().any(|l| l == "worker"),
        "the worker is not a user's command"
    );
    listed
}

#[test]
fn every_commands_help_ends_with_examples_of_itself() {
    let s = Scratch::new();
    for command in commands() {
        let out = s.run(&[&command, "--help"], T);
        assert_eq!(out.status.code(), Some(0));
        let help = text(&out.stdout);
        let examples = help
            .split("Examples:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("{command} --help has no examples:\n{help}"));
        let calls: Vec<&str> = examples
            .lines()
            .filter(|l| l.trim_start().starts_with("mediaspool "))
            .collect();
        assert!(!calls.is_empty() && calls.len() <= 3, "{command}: {examples}");
        assert!(
            calls.iter().all(|l| l.contains(&command)),
            "{command}: {examples}"
        );
    }
}

/// A completion script for `shell`, written to a file in `dir`.
fn completion_script(s: &Scratch, shell: &str) -> std::path::PathBuf {
    let out = s.run(&["completions", shell], T);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let path = s.path().join(format!("mediaspool.{shell}"));
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

/// Runs `shell ARGS` (a Debian package that scripts/deps.sh installs); fails loudly if absent.
fn shell(name: &str, args: &[&str]) -> std::process::Output {
    Command::new(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name} must be installed (scripts/deps.sh): {e}"))
}

fn assert_syntax_ok(name: &str, script: &Path) {
    let out = shell(name, &["-n", script.to_str().unwrap()]);
    assert!(out.status.success(), "{name} -n: {}", text(&out.stderr));
}

#[test]
fn bash_completion_parses_and_completes_commands_and_options() {
    let s = Scratch::new();
    let script = completion_script(&s, "bash");
    assert_syntax_ok("bash", &script);
    let complete = |words: &str| -> Vec<String> {
        let program = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _mediaspool mediaspool \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let out = shell("bash", &["-c", &program]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).lines().map(str::to_string).collect()
    };
    assert_eq!(complete("mediaspool pro"), ["probe", "process"]);
    assert_eq!(complete("mediaspool w"), ["watch"], "no hidden worker");
    assert!(complete("mediaspool process --").contains(&"--json".to_string()));
    let shells = complete("mediaspool completions ''");
    for sh in ["bash", "zsh", "fish"] {
        assert!(shells.contains(&sh.to_string()), "{shells:?}");
    }
}

#[test]
fn fish_completion_parses_and_completes_commands_and_options() {
    let s = Scratch::new();
    let script = completion_script(&s, "fish");
    assert_syntax_ok("fish", &script);
    let complete = |line: &str| -> Vec<String> {
        let program = format!("source {}; complete -C '{line}'", script.display());
        let out = shell("fish", &["--no-config", "-c", &program]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(complete("mediaspool pro"), ["probe", "process"]);
    assert_eq!(complete("mediaspool w"), ["watch"], "no hidden worker");
    assert!(complete("mediaspool process --").contains(&"--json".to_string()));
}

#[test]
fn zsh_completion_parses_and_names_every_command() {
    let s = Scratch::new();
    let script = completion_script(&s, "zsh");
    assert_syntax_ok("zsh", &script);
    let body = std::fs::read_to_string(&script).unwrap();
    assert!(
        body.starts_with("#compdef mediaspool"),
        "a zsh completion function"
    );
    for command in commands() {
        assert!(body.contains(&format!("'{command}:")), "{command} offered");
    }
    assert!(!body.contains("'worker:"), "no hidden worker");
}

/// `groff -man -Tutf8 -ww` of a page: the rendered text; any warning fails.
fn render(roff: &[u8]) -> String {
    use std::io::Write;
    let mut groff = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("groff must be installed (scripts/deps.sh): {e}"));
    groff.stdin.take().unwrap().write_all(roff).unwrap();
    let out = groff.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "groff warns: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn man_pages_render_without_warnings_for_mediaspool_and_each_command() {
    let s = Scratch::new();
    let out = s.run(&["man"], T);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = render(&out.stdout);
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "SUBCOMMANDS",
        "EXAMPLES",
        "VERSION",
    ] {
        assert!(page.lines().any(|l| l == section), "{section} in\n{page}");
    }
    for command in commands() {
        assert!(
            page.contains(&format!("mediaspool-{command}(1)")),
            "{command} listed"
        );
    }

    let out = s.run(&["man", "--dir", "pages"], T);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut written: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    written.sort();
    let mut expected: Vec<String> = commands()
        .iter()
        .map(|c| format!("pages/mediaspool-{c}.1"))
        .chain(["pages/mediaspool.1".to_string()])
        .collect();
    expected.sort();
    assert_eq!(written, expected);
    for command in commands() {
        let page = render(&std::fs::read(s.path().join(format!("pages/mediaspool-{command}.1"))).unwrap());
        let name = page.split("\nNAME\n").nth(1).expect("a NAME section");
        assert!(
            name.trim_start().starts_with(&format!("mediaspool-{command} ")),
            "{page}"
        );
        let examples = page.split("\nEXAMPLES\n").nth(1).expect("an EXAMPLES section");
        let calls = examples
            .lines()
            .filter(|l| l.trim_start().starts_with("mediaspool "))
            .count();
        assert!(calls >= 1, "{command}: {examples}");
        // The page on stdout for one command is the same page.
        let one = s.run(&["man", &command], T);
        assert_eq!(render(&one.stdout), page);
    }
    // Characters beyond ASCII come through as themselves.
    let bench = render(&s.run(&["man", "bench"], T).stdout);
    assert!(bench.contains("(0–1)"), "{bench}");

    let out = s.run(&["man", "nope"], T);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no command \"nope\""));
}

/// Log lines of a daemon run at `level` (` INFO `, ` WARN `…), in order.
fn lines_at<'a>(log: &'a str, level: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(level)).collect()
}

#[test]
fn watch_says_what_it_runs_with_then_one_line_per_job_then_the_counts_of_the_run() {
    let mut d = Daemon::new("", "");
    d.start_with(&[]);
    let note = tone_wav(440.0, 1500);
    let manifest = r#"{"customer_id": "c-4242", "chat_id": "wa:+34600000000", "message_id": "wamid.1"}"#;
    d.drop_file("note.wav.meta.json", manifest.as_bytes());
    d.drop_file("note.wav", &note);
    d.drop_file("bad.ogg", b"OggS and then nothing an Ogg reader wants");
    d.wait_for(&["note.wav", "bad.ogg"], T);
    d.drop_file("again.wav", &note);
    let records = d.wait_for(&["note.wav", "bad.ogg", "again.wav"], T);
    assert_eq!(d.stop(T).code(), Some(0));
    let log = d.log();
    assert!(!log.contains('\u{1b}'), "no colours in a file:\n{log}");

    // The start line: version, spool, store, catalog, sinks, jobs, every profile with its id.
    let info = lines_at(&log, " INFO ");
    let start = info[0];
    assert!(
        start.contains(&format!(
            "mediaspool {} watching spool/incoming",
            env!("CARGO_PKG_VERSION")
        )),
        "{start}"
    );
    for part in [
        "store local ",
        "/media",
        &format!("catalog {}", d.catalog().shown()),
        "sinks ndjson",
        "2 jobs at a time",
    ] {
        assert!(start.contains(part), "{part} in {start}");
    }
    let check = text(&Scratch::new().run(&["check"], T).stdout);
    for line in check.lines().filter(|l| l.starts_with("profile ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (name, id) = (words[1], words[3]);
        assert!(start.contains(&format!("{name} {id}")), "{name} {id} in {start}");
    }

    // One line per job, with what the record says.
    for r in &records {
        let file = r["source"]["file_name"].as_str().unwrap();
        let event = r["event"].as_str().unwrap();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&format!(": {file}: ")))
            .collect();
        assert_eq!(lines.len(), 1, "one line for {file}:\n{log}");
        let line = lines[0];
        assert!(line.contains(&format!("{file}: {event} ")), "{line}");
        assert!(line.ends_with(" ms"), "{line}");
        match event {
            "media.rejected" => {
                assert!(line.contains(" WARN "), "{line}");
                assert!(line.contains(r["error"]["code"].as_str().unwrap()), "{line}");
            }
            _ => {
                let m = &r["media"];
                let sizes = format!(
                    "{} → {}",
                    bytesize::ByteSize(r["source"]["bytes"].as_u64().unwrap()),
                    bytesize::ByteSize(m["bytes"].as_u64().unwrap())
                );
                assert!(line.contains(" INFO "), "{line}");
                assert!(line.contains(&format!("{event} audio voice ")), "{line}");
                assert!(line.contains(&sizes), "{sizes} in {line}");
                let seconds = m["duration_ms"].as_f64().unwrap() / 1000.0;
                assert!(line.contains(&format!(" {seconds:.1} s,")), "{line}");
            }
        }
    }

    // The stop line: the counts of the run, as the records have them.
    let stop = *info.last().unwrap();
    let count = |event: &str| records.iter().filter(|r| r["event"] == event).count();
    assert_eq!(
        (
            count("media.stored"),
            count("media.duplicate"),
            count("media.rejected")
        ),
        (1, 1, 1)
    );
    assert!(stop.contains("stopped after "), "{stop}");
    assert!(
        stop.contains(": 3 jobs, 1 stored (") && stop.ends_with("), 1 duplicate, 1 rejected (unreadable 1)"),
        "{stop}"
    );

    // Nothing but info and warnings at the default level, and nobody's ids or phone number.
    assert!(
        log.lines().all(|l| l.contains(" INFO ") || l.contains(" WARN ")),
        "{log}"
    );
    for private in ["34600000000", "c-4242", "wamid.1"] {
        assert!(!log.contains(private), "{private} in the log:\n{log}");
    }
}

#[test]
fn watch_quiet_logs_warnings_only() {
    let mut d = Daemon::new("", "");
    d.start_with(&["-q"]);
    d.drop_file("note.wav", &tone_wav(523.0, 1000));
    d.drop_file("bad.ogg", b"OggS and then nothing an Ogg reader wants");
    d.wait_for(&["note.wav", "bad.ogg"], T);
    assert_eq!(d.stop(T).code(), Some(0));
    let log = d.log();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "only the rejection:\n{log}");
    assert!(
        lines[0].contains(" WARN ") && lines[0].contains("bad.ogg: media.rejected unreadable"),
        "{log}"
    );
}
