//! Audio thumbnails: a waveform picture of what the listener will hear.
//!
//! In: the float-planar frames going into the MP3 encoder (after loudness normalisation and
//! resampling). Out: a PNG of per-column peaks, drawn symmetric about the middle. Collecting
//! costs one comparison per sample and 4 bytes per 10 ms of audio.

use std::path::Path;

use ffmpeg_next::{format, frame};

use super::{MediaError, Thumbnail};

/// Peak amplitude per 10 ms block.
pub struct Peaks {
    block: usize,
    in_block: usize,
    current: f32,
    values: Vec<f32>,
}

impl Peaks {
    pub fn new(sample_rate: u32) -> Peaks {
        Peaks {
            block: (sample_rate as usize / 100).max(1),
            in_block: 0,
            current: 0.0,
            values: Vec::new(),
        }
    }

    pub fn add(&mut self, frame: &frame::Audio) {
        if frame.format() != format::Sample::F32(format::sample::Type::Planar) {
            return;
        }
        let samples = frame.samples();
        let mut at = 0;
        while at < samples {
            let take = (self.block - self.in_block).min(samples - at);
            for plane in 0..frame.planes() {
                let block = &frame.plane::<f32>(plane)[at..at + take];
                self.current = block.iter().fold(self.current, |peak, v| peak.max(v.abs()));
            }
            self.in_block += take;
            at += take;
            if self.in_block == self.block {
                self.values.push(self.current);
                self.in_block = 0;
                self.current = 0.0;
            }
        }
    }

    fn finish(mut self) -> Vec<f32> {
        if self.in_block > 0 {
            self.values.push(self.current);
        }
        self.values
    }

    /// Draws `width`x`height` and writes it as PNG at `path`.
    pub fn write_png(self, width: u32, height: u32, path: &Path) -> Result<Thumbnail, MediaError> {
        let image = draw(&self.finish(), width, height);
        image
            .save_with_format(path, image::ImageFormat::Png)
            .map_err(|e| MediaError::Thumbnail {
                detail: format!("waveform PNG: {e}"),
            })?;
        Ok(Thumbnail {
            path: path.to_path_buf(),
            mime: "image/png".into(),
            extension: "png".into(),
            width,
            height,
        })
    }
}

const BAR: image::Rgba<u8> = image::Rgba([37, 99, 235, 255]);
const AXIS: image::Rgba<u8> = image::Rgba([148, 163, 184, 255]);

fn draw(values: &[f32], width: u32, height: u32) -> image::RgbaImage {
    let mut image = image::RgbaImage::from_pixel(width, height, image::Rgba([0, 0, 0, 0]));
    let middle = height / 2;
    for x in 0..width {
        image.put_pixel(x, middle, AXIS);
    }
    if values.is_empty() {
        return image;
    }
    let half = f64::from(height) / 2.0;
    for x in 0..width {
        let from = (x as usize * values.len()) / width as usize;
        let to = (((x + 1) as usize * values.len()) / width as usize)
            .max(from + 1)
            .min(values.len());
        let peak = values[from.min(values.len() - 1)..to]
            .iter()
            .copied()
            .fold(0.0f32, f32::max)
            .min(1.0);
        let reach = (f64::from(peak) * (half - 1.0)).round() as u32;
        for y in middle.saturating_sub(reach)..=(middle + reach).min(height - 1) {
            image.put_pixel(x, y, BAR);
        }
    }
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn louder_blocks_draw_taller_bars() {
        let values: Vec<f32> = (0..100).map(|i| if i < 50 { 0.1 } else { 0.9 }).collect();
        let img = draw(&values, 10, 40);
        let height_of = |x: u32| (0..40).filter(|y| *img.get_pixel(x, *y) == BAR).count();
        assert!(
            height_of(8) > 3 * height_of(1),
            "{} vs {}",
            height_of(8),
            height_of(1)
        );
    }

    #[test]
    fn silence_draws_a_flat_line() {
        let img = draw(&[0.0; 20], 10, 20);
        let bars = img.pixels().filter(|p| **p == BAR).count();
        assert_eq!(bars, 10, "one pixel per column, on the middle row");
        assert_eq!(*img.get_pixel(3, 10), BAR);
    }
}
