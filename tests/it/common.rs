//! Helpers for the integration tests: run the real binary in a scratch directory, read its
//! records, and check outputs with the ffmpeg/ffprobe CLI (an independent decoder).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mediaspool")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("fixtures").join(name)
}

/// The shared corpus of third-party media (read-only): `MEDIASPOOL_CORPUS`, else
/// `../shared/corpus` beside the checkout, else `/work/shared/corpus`.
pub fn corpus() -> PathBuf {
    if let Some(dir) = std::env::var_os("MEDIASPOOL_CORPUS") {
        return PathBuf::from(dir);
    }
    let beside = repo().join("../shared/corpus");
    if beside.is_dir() {
        return beside;
    }
    PathBuf::from("/work/shared/corpus")
}

pub fn corpus_files(section: &str) -> Vec<PathBuf> {
    let dir = corpus().join(section);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no files in {}", dir.display());
    files
}

/// A scratch working directory for one run of the binary.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `mediaspool ARGS` here, killing it if it runs longer than `limit`.
    pub fn run(&self, args: &[&str], limit: Duration) -> Output {
        self.run_env(args, &[], limit)
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .current_dir(self.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_with_limit(cmd, limit)
    }

    pub fn process(&self, files: &[PathBuf]) -> Output {
        let mut args = vec!["process".to_string()];
        args.extend(files.iter().map(|f| f.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&args, Duration::from_secs(600))
    }

    /// Runs `process` on `files`, which must exit 0, and returns the records.
    pub fn process_ok(&self, files: &[PathBuf]) -> Vec<Value> {
        let out = self.process(files);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.records()
    }

    pub fn records(&self) -> Vec<Value> {
        read_records(&self.path().join("records.ndjson"))
    }

    pub fn stored(&self, key: &str) -> PathBuf {
        self.path().join("media").join(key)
    }
}

/// The records of an NDJSON file; each rejection's code must be one the README lists, at the
/// stage it lists. A last line without its newline is a record still being written by a
/// running daemon: it is left for the next read.
pub fn read_records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
    let records: Vec<Value> = complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad record line {l}: {e}")))
        .collect();
    for error in records.iter().map(|r| &r["error"]).filter(|e| !e.is_null()) {
        assert_documented(error);
    }
    records
}

/// Panics unless the README's error-code table lists `error`'s code at `error`'s stage.
pub fn assert_documented(error: &Value) {
    static TABLE: OnceLock<HashMap<String, String>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
        let section = readme
            .split_once("<!-- error codes")
            .and_then(|(_, rest)| rest.split_once("<!-- end of error codes"))
            .expect("README has an error-code table")
            .0;
        section
            .lines()
            .filter_map(|row| {
                let cells: Vec<&str> = row.split('|').map(str::trim).collect();
                let code = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((code.to_string(), cells.get(2)?.to_string()))
            })
            .collect()
    });
    let code = error["code"].as_str().unwrap_or_default();
    let stage = table
        .get(code)
        .unwrap_or_else(|| panic!("error code {code:?} is not in the README's table: {error}"));
    assert_eq!(
        error["stage"].as_str(),
        Some(stage.as_str()),
        "the README lists {code} at stage {stage}: {error}"
    );
}

pub fn run_with_limit(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd.spawn().expect("binary starts");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} still running after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The record whose source file name is `name`.
pub fn record_for<'a>(records: &'a [Value], name: &str) -> &'a Value {
    let found: Vec<&Value> = records
        .iter()
        .filter(|r| r["source"]["file_name"] == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one record for {name}, found {}",
        found.len()
    );
    found[0]
}

/// `ffprobe -show_streams -show_format` as JSON.
pub fn ffprobe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-show_format", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn streams_of(probe: &Value, kind: &str) -> Vec<Value> {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["codec_type"] == kind && s["disposition"]["attached_pic"] != 1)
        .cloned()
        .collect()
}

/// Decoded duration of the first audio stream, by the ffmpeg CLI: samples of 8 kHz mono PCM.
/// `None` if there is no audio stream.
pub fn decoded_audio_seconds(path: &Path) -> Option<f64> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "quiet", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-f", "s16le", "-ac", "1", "-ar", "8000", "-"])
        .output()
        .expect("ffmpeg runs");
    (!out.stdout.is_empty()).then(|| out.stdout.len() as f64 / 2.0 / 8000.0)
}

/// Decoded span of the first video stream by the ffmpeg CLI (framemd5 lists every frame's
/// pts and duration in the stream's time base). `None` if there is no video stream.
pub fn decoded_video_seconds(path: &Path) -> Option<f64> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "quiet", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-vsync", "0", "-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut tb = None;
    let (mut first, mut last, mut last_dur) = (None::<i64>, None::<i64>, 0i64);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#tb 0: ") {
            let (n, d) = rest.trim().split_once('/').unwrap();
            tb = Some(n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap());
        } else if !line.starts_with('#') {
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            if cols.len() < 4 {
                continue;
            }
            let pts: i64 = cols[2].parse().unwrap();
            let dur: i64 = cols[3].parse().unwrap();
            first = Some(first.map_or(pts, |f| f.min(pts)));
            if last.is_none_or(|l| pts >= l) {
                last = Some(pts);
                last_dur = dur;
            }
        }
    }
    Some((last? - first? + last_dur) as f64 * tb?)
}

/// Whether `ffmpeg -v error` decodes the file without printing any error.
pub fn decodes_cleanly(path: &Path) -> Result<(), String> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if out.status.success() && err.is_empty() {
        Ok(())
    } else {
        Err(err)
    }
}

/// Top-level MP4 box names in order.
pub fn mp4_boxes(path: &Path) -> Vec<String> {
    let data = std::fs::read(path).unwrap();
    let mut boxes = Vec::new();
    let mut at = 0usize;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        boxes.push(String::from_utf8_lossy(&data[at + 4..at + 8]).to_string());
        let size = match size {
            1 => u64::from_be_bytes(data[at + 8..at + 16].try_into().unwrap()) as usize,
            0 => data.len() - at,
            n => n,
        };
        if size < 8 {
            break;
        }
        at += size;
    }
    boxes
}

/// Makes a media file with the ffmpeg CLI: `args` (inputs, filters, codecs) then `out`.
pub fn make_media(args: &[&str], out: &Path) {
    let made = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .arg(out)
        .output()
        .expect("ffmpeg runs");
    assert!(
        made.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&made.stderr)
    );
}

/// The first frame of a video decoded by the ffmpeg CLI (which applies display rotation), as RGB.
pub fn first_frame_rgb(path: &Path) -> image::RgbImage {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("frame.png");
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-frames:v", "1"])
        .arg(&png)
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    image::open(&png).unwrap().to_rgb8()
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Colour {
    Red,
    Green,
    Blue,
    White,
    Other,
}

pub fn colour_at(img: &image::RgbImage, fx: f64, fy: f64) -> Colour {
    let x = ((img.width() as f64) * fx) as u32;
    let y = ((img.height() as f64) * fy) as u32;
    let [r, g, b] = img.get_pixel(x, y).0;
    match (r > 180, g > 180, b > 180, r < 70, g < 70, b < 70) {
        (true, true, true, ..) => Colour::White,
        (true, _, _, _, true, true) => Colour::Red,
        (_, true, _, true, _, true) => Colour::Green,
        (_, _, true, true, true, _) => Colour::Blue,
        _ => Colour::Other,
    }
}

/// Colours at the centres of the four quadrants: top-left, top-right, bottom-left, bottom-right.
pub fn quadrants(img: &image::RgbImage) -> [Colour; 4] {
    [
        colour_at(img, 0.25, 0.25),
        colour_at(img, 0.75, 0.25),
        colour_at(img, 0.25, 0.75),
        colour_at(img, 0.75, 0.75),
    ]
}

/// Within max(200 ms, 2 %).
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= (0.2f64).max(0.02 * a.max(b))
}
