//! `--chart FILE.svg`: size against quality, one colour per profile, with `plotters`.
//!
//! In: rows. Out: an SVG file with one panel per kind of score present — video (SSIM against
//! bitrate), audio (SNR against bitrate), images (SSIM against output size). Fails with
//! [`BenchError::Chart`] when there is nothing to draw or the file cannot be written. SVG only:
//! no bitmap or system-font dependencies (text is written as SVG `<text>`, set by the viewer).

use std::path::Path;

use plotters::prelude::*;

use super::{BenchError, Row};

struct Panel {
    title: &'static str,
    x_desc: &'static str,
    y_desc: &'static str,
    /// The score's own ceiling (SSIM is at most 1): the axis does not pass it.
    y_max: f64,
    /// (profile, [(x, y)]) in the order profiles first appear.
    series: Vec<(String, Vec<(f64, f64)>)>,
}

fn panels(rows: &[Row]) -> Vec<Panel> {
    let ok = || rows.iter().filter(|r| r.error.is_none());
    let collect = |kind: &str, x: fn(&Row) -> Option<f64>, y: fn(&Row) -> Option<f64>| {
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for r in ok().filter(|r| r.kind == kind) {
            let (Some(x), Some(y)) = (x(r), y(r)) else {
                continue;
            };
            match series.iter_mut().find(|(p, _)| *p == r.profile) {
                Some((_, points)) => points.push((x, y)),
                None => series.push((r.profile.clone(), vec![(x, y)])),
            }
        }
        series
    };
    let all = [
        Panel {
            title: "video",
            x_desc: "bitrate (kbit/s)",
            y_desc: "SSIM",
            y_max: 1.0,
            series: collect("video", |r| r.bitrate_kbps, |r| r.ssim),
        },
        Panel {
            title: "audio",
            x_desc: "bitrate (kbit/s)",
            y_desc: "SNR (dB)",
            y_max: f64::INFINITY,
            series: collect("audio", |r| r.bitrate_kbps, |r| r.snr_db),
        },
        Panel {
            title: "images",
            x_desc: "output size (KB)",
            y_desc: "SSIM",
            y_max: 1.0,
            series: collect("image", |r| r.output_bytes.map(|b| b as f64 / 1000.0), |r| r.ssim),
        },
    ];
    all.into_iter().filter(|p| !p.series.is_empty()).collect()
}

/// Writes the chart of `rows` to `path`.
pub fn write(rows: &[Row], path: &Path) -> Result<(), BenchError> {
    let panels = panels(rows);
    let fail = |detail: String| BenchError::Chart {
        path: path.to_path_buf(),
        detail,
    };
    if panels.is_empty() {
        return Err(fail("no measured rows to draw".into()));
    }
    let root = SVGBackend::new(path, (560 * panels.len() as u32, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let areas = root.split_evenly((1, panels.len()));
    let mut index_of = Vec::<String>::new();
    for (panel, area) in panels.iter().zip(areas) {
        draw(panel, &area, &mut index_of).map_err(|e| fail(e.to_string()))?;
    }
    root.present().map_err(|e| fail(e.to_string()))?;
    Ok(())
}

fn range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.01).max(1e-3);
    (lo - pad)..(hi + pad)
}

fn draw<DB: DrawingBackend>(
    panel: &Panel,
    area: &DrawingArea<DB, plotters::coord::Shift>,
    colours: &mut Vec<String>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let points = || panel.series.iter().flat_map(|(_, p)| p.iter());
    let x = range(points().map(|p| p.0));
    let y = range(points().map(|p| p.1));
    let y = y.start..y.end.min(panel.y_max);
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc(panel.x_desc)
        .y_desc(panel.y_desc)
        .draw()?;
    for (profile, pts) in &panel.series {
        // The same profile keeps its colour across panels.
        let index = colours.iter().position(|p| p == profile).unwrap_or_else(|| {
            colours.push(profile.clone());
            colours.len() - 1
        });
        let colour = Palette99::pick(index).to_rgba();
        chart
            .draw_series(pts.iter().map(|&(x, y)| Circle::new((x, y), 4, colour.filled())))?
            .label(profile.as_str())
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, colour.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
