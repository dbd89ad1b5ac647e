//! Video thumbnails: choose a representative frame while transcoding, write it as a JPEG.
//!
//! In: the upright, scaled yuv420p frames on their way to the encoder. Out: a JPEG of the
//! frame with the most detail among a few candidates spread over the first half of the video
//! (a fade from black, a blank title card or a covered lens loses to a real picture). Fails with
//! [`MediaError::Thumbnail`] only when no frame was seen or the JPEG cannot be written.

use std::path::Path;

use ffmpeg::{format, frame, software::scaling};
use ffmpeg_next as ffmpeg;

use super::{MediaError, Thumbnail};
use crate::profile::ThumbnailSettings;

/// Keeps the best-scoring candidate frame seen so far.
pub struct FramePicker {
    /// Media times at which a frame is considered, ascending.
    checkpoints: Vec<f64>,
    next: usize,
    best: Option<(f64, frame::Video)>,
}

/// A frame that scores at least this is good enough; later candidates must beat it clearly.
const GOOD_ENOUGH: f64 = 40.0;

impl FramePicker {
    /// `duration` is the declared duration (a guess: candidates past the real end never come).
    pub fn new(duration: f64) -> FramePicker {
        let duration = if duration.is_finite() && duration > 0.0 {
            duration
        } else {
            10.0
        };
        let mut checkpoints: Vec<f64> = [0.0, 0.05, 0.1, 0.2, 0.33, 0.5]
            .iter()
            .map(|f| f * duration)
            .collect();
        checkpoints.dedup_by(|a, b| (*a - *b).abs() < 0.04);
        FramePicker {
            checkpoints,
            next: 0,
            best: None,
        }
    }

    pub fn offer(&mut self, frame: &frame::Video, at: f64) {
        if self.best.is_none() {
            // Always hold some frame, even if no checkpoint is ever reached.
            self.best = Some((score(frame), frame.clone()));
            self.skip_past(at);
            return;
        }
        if self.next >= self.checkpoints.len() || at + 1e-6 < self.checkpoints[self.next] {
            return;
        }
        self.skip_past(at);
        let s = score(frame);
        let best = self.best.as_ref().map_or(f64::MIN, |(b, _)| *b);
        // Earlier frames are more representative of what the sender meant: only a clearly
        // better picture replaces one that is already good.
        let margin = if best >= GOOD_ENOUGH { 1.5 } else { 1.0 };
        if s > best * margin {
            self.best = Some((s, frame.clone()));
        }
    }

    fn skip_past(&mut self, at: f64) {
        while self.next < self.checkpoints.len() && self.checkpoints[self.next] <= at + 1e-6 {
            self.next += 1;
        }
    }

    pub fn take_frame(&mut self) -> Option<frame::Video> {
        self.best.take().map(|(_, f)| f)
    }
}

/// Detail of a yuv420p frame: the spread of its luma, with near-black and near-white frames
/// pushed down. Samples a grid rather than every pixel.
fn score(frame: &frame::Video) -> f64 {
    if frame.format() != format::Pixel::YUV420P || frame.width() == 0 || frame.height() == 0 {
        return 0.0;
    }
    let (w, h, stride) = (frame.width() as usize, frame.height() as usize, frame.stride(0));
    let data = frame.data(0);
    let step = (w.min(h) / 64).max(1);
    let (mut n, mut sum, mut sum_sq) = (0f64, 0f64, 0f64);
    for y in (0..h).step_by(step) {
        let row = &data[y * stride..y * stride + w];
        for &v in row.iter().step_by(step) {
            let v = f64::from(v);
            n += 1.0;
            sum += v;
            sum_sq += v * v;
        }
    }
    let mean = sum / n;
    let spread = (sum_sq / n - mean * mean).max(0.0).sqrt();
    let exposure = if !(24.0..=232.0).contains(&mean) {
        0.25
    } else {
        1.0
    };
    spread * exposure
}

/// The thumbnail size for a `width`x`height` picture: its long edge at most `bound`, aspect
/// kept, never enlarged.
pub fn fit_within(width: u32, height: u32, bound: u32) -> (u32, u32) {
    let scale = (f64::from(bound) / f64::from(width.max(height))).min(1.0);
    let side = |v: u32| ((f64::from(v) * scale).round() as u32).max(1);
    (side(width), side(height))
}

/// Scales `frame` to fit the thumbnail size (aspect kept) and writes it as JPEG at `path`.
pub fn write_jpeg(
    frame: &frame::Video,
    settings: &ThumbnailSettings,
    path: &Path,
) -> Result<Thumbnail, MediaError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| MediaError::Thumbnail {
        detail: format!("{what}: {e}"),
    };
    let (width, height) = fit_within(frame.width(), frame.height(), settings.width);
    let mut scaler = scaling::Context::get(
        frame.format(),
        frame.width(),
        frame.height(),
        format::Pixel::RGB24,
        width,
        height,
        scaling::Flags::BICUBIC,
    )
    .map_err(|e| fail("scaler", &e))?;
    let mut rgb = frame::Video::empty();
    scaler.run(frame, &mut rgb).map_err(|e| fail("scaling", &e))?;
    let image = rgb_image(&rgb);
    write_rgb_jpeg(&image, settings.quality, path)?;
    Ok(Thumbnail {
        path: path.to_path_buf(),
        mime: "image/jpeg".into(),
        extension: "jpg".into(),
        width,
        height,
    })
}

/// Copies an RGB24 frame into an image, row by row: libav pads rows to its alignment.
fn rgb_image(rgb: &frame::Video) -> image::RgbImage {
    let (w, h, stride) = (rgb.width() as usize, rgb.height() as usize, rgb.stride(0));
    let data = rgb.data(0);
    let mut pixels = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        pixels.extend_from_slice(&data[y * stride..y * stride + w * 3]);
    }
    image::RgbImage::from_raw(w as u32, h as u32, pixels).expect("buffer sized for the image")
}

pub fn write_rgb_jpeg(image: &image::RgbImage, quality: u8, path: &Path) -> Result<(), MediaError> {
    let file = std::fs::File::create(path).map_err(|e| MediaError::io("creating thumbnail", e))?;
    let mut out = std::io::BufWriter::new(file);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(image)
        .map_err(|e| MediaError::Thumbnail {
            detail: format!("JPEG: {e}"),
        })?;
    use std::io::Write;
    out.flush().map_err(|e| MediaError::io("writing thumbnail", e))
}
