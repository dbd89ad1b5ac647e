//! A bench run as a person or a program reads it: a terminal table, JSON, CSV.
//!
//! In: rows, summaries and skipped inputs. Out: text. Pure formatting; the caller writes it.

use std::fmt::Write as _;
use std::path::Path;

use bytesize::ByteSize;
use serde::Serialize;

use super::crf_search::CrfChoice;
use super::{Row, Skipped, Stat, Summary};

/// Columns of the CSV output, in order: the fields of [`Row`].
pub const CSV_FIELDS: &[&str] = &[
    "input",
    "kind",
    "profile",
    "profile_id",
    "input_bytes",
    "output_bytes",
    "ratio",
    "duration_s",
    "bitrate_kbps",
    "encode_s",
    "speed_x",
    "width",
    "height",
    "ssim",
    "psnr_db",
    "frames",
    "snr_db",
    "lsd_db",
    "error",
];

/// The JSON document: `{"schema", "rows", "summary", "skipped"}`.
#[derive(Serialize)]
pub struct Document<'a> {
    pub schema: &'static str,
    pub rows: &'a [Row],
    pub summary: &'a [Summary],
    pub skipped: &'a [Skipped],
}

pub fn json(rows: &[Row], summary: &[Summary], skipped: &[Skipped]) -> String {
    let doc = Document {
        schema: "mediaspool.bench/v1",
        rows,
        summary,
        skipped,
    };
    serde_json::to_string_pretty(&doc).expect("bench rows serialise") + "\n"
}

pub fn csv(rows: &[Row]) -> String {
    let mut out = CSV_FIELDS.join(",");
    out.push('\n');
    for row in rows {
        let value = serde_json::to_value(row).expect("bench rows serialise");
        let cells: Vec<String> = CSV_FIELDS
            .iter()
            .map(|f| match &value[*f] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => csv_text(s),
                other => other.to_string(),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

fn csv_text(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The terminal table: one line per row, then the summary per profile.
pub fn table(rows: &[Row], summary: &[Summary], skipped: &[Skipped]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<28} {:<12} {:>9} {:>9} {:>7} {:>8} {:>7} {:>8}  quality",
        "input", "profile", "in", "out", "ratio", "kbit/s", "time s", "speed"
    );
    for r in rows {
        let name = Path::new(&r.input)
            .file_name()
            .map_or(r.input.clone(), |n| n.to_string_lossy().to_string());
        let _ = write!(
            out,
            "{:<28} {:<12} {:>9}",
            clip(&name, 28),
            clip(&r.profile, 12),
            ByteSize(r.input_bytes).to_string()
        );
        if let Some(e) = &r.error {
            let _ = writeln!(out, "  failed: {e}");
            continue;
        }
        let _ = writeln!(
            out,
            " {:>9} {:>7} {:>8} {:>7} {:>8}  {}",
            r.output_bytes.map_or("-".into(), |b| ByteSize(b).to_string()),
            num(r.ratio, 1),
            num(r.bitrate_kbps, 1),
            num(r.encode_s, 2),
            r.speed_x.map_or("-".into(), |s| format!("{s:.1}x")),
            quality(r)
        );
    }
    if !summary.is_empty() {
        let _ = writeln!(out, "\nper profile: median (p95)");
        for s in summary {
            let _ = write!(out, "{:<12} {} input(s)", s.profile, s.inputs);
            if s.failed > 0 {
                let _ = write!(out, ", {} failed", s.failed);
            }
            for (label, stat, digits) in [
                ("ratio", s.ratio, 1),
                ("kbit/s", s.bitrate_kbps, 1),
                ("speed x", s.speed_x, 1),
                ("SSIM", s.ssim, 4),
                ("PSNR dB", s.psnr_db, 2),
                ("SNR dB", s.snr_db, 2),
                ("LSD dB", s.lsd_db, 2),
            ] {
                if let Some(Stat { median, p95 }) = stat {
                    let _ = write!(out, "  {label} {median:.digits$} ({p95:.digits$})");
                }
            }
            out.push('\n');
        }
    }
    for s in skipped {
        let _ = writeln!(out, "skipped {}: {}", s.input, s.reason);
    }
    out
}

/// What `--target-ssim` prints: per input, the CRF found; then, per profile, the setting that
/// meets the target on every input (the lowest CRF found for it).
pub fn crf_choices(choices: &[CrfChoice]) -> String {
    let mut out = String::new();
    for c in choices {
        let _ = write!(
            out,
            "{} on {}: crf = {}  (SSIM {:.4} ≥ {} at {:.0} kbit/s on {} sample(s), {:.1} s",
            c.profile, c.input, c.crf, c.ssim, c.target_ssim, c.bitrate_kbps, c.samples, c.sample_seconds
        );
        match &c.next {
            Some(n) => {
                let _ = writeln!(
                    out,
                    "; crf {}: SSIM {:.4} at {:.0} kbit/s)",
                    n.crf, n.ssim, n.bitrate_kbps
                );
            }
            None => {
                let _ = writeln!(out, "; the highest CRF allowed)");
            }
        }
    }
    let mut profiles: Vec<&str> = choices.iter().map(|c| c.profile.as_str()).collect();
    profiles.dedup();
    for name in profiles {
        let Some(best) = choices.iter().filter(|c| c.profile == name).min_by_key(|c| c.crf) else {
            continue;
        };
        let _ = writeln!(
            out,
            "\nprofile {name} ([video] section, now crf = {}):\ncrf = {}\n# profile id with it: {} (now {})",
            best.profile_crf, best.crf, best.new_profile_id, best.profile_id
        );
    }
    out
}

fn quality(r: &Row) -> String {
    let mut parts = Vec::new();
    if let (Some(ssim), Some(psnr)) = (r.ssim, r.psnr_db) {
        parts.push(format!("SSIM {ssim:.4} PSNR {psnr:.2} dB"));
    }
    if let (Some(snr), Some(lsd)) = (r.snr_db, r.lsd_db) {
        parts.push(format!("SNR {snr:.2} dB LSD {lsd:.2} dB"));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

fn clip(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let head: String = s.chars().take(width - 1).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_every_row_field_and_quotes_text() {
        let row = Row {
            input: "a,b.mp4".into(),
            profile: "voice".into(),
            ratio: Some(2.5),
            error: Some("said \"no\"".into()),
            ..Row::default()
        };
        let value = serde_json::to_value(&row).unwrap();
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        let mut fields = CSV_FIELDS.to_vec();
        fields.sort();
        let mut keys = keys.clone();
        keys.sort();
        assert_eq!(fields, keys, "CSV columns are exactly the row's fields");
        let text = csv(&[row]);
        let line = text.lines().nth(1).unwrap();
        assert!(line.starts_with("\"a,b.mp4\",,voice,,0,,2.5,"), "{line}");
        assert!(line.ends_with(",\"said \"\"no\"\"\""), "{line}");
    }
}
