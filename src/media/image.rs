//! Still images → an upright, bounded JPEG (or WebP) with the `image` crate.
//!
//! In: a JPEG, PNG, WebP, GIF (first frame), BMP or TIFF file and an image profile. Out: the
//! picture with its EXIF orientation applied, scaled to fit the profile's long edge (never
//! enlarged), transparency flattened onto white, re-encoded without any metadata (GPS positions
//! and camera serials stay behind), plus a small JPEG thumbnail. Declared dimensions over the
//! profile's limits are refused from the header, before any pixel is decoded. Blocking.

use std::path::Path;

use image::{imageops::FilterType, DynamicImage, ImageDecoder, ImageReader, Limits};

use super::{thumbnail, MediaError, Rendition, Thumbnail};
use crate::profile::{ImageFormat, Profile};

/// Memory a single decode may use; a decompression bomb fails instead of exhausting the host.
const MAX_DECODE_BYTES: u64 = 1024 * 1024 * 1024;

/// Clockwise degrees the EXIF orientation asks for (flips are ignored), 0 if none or unreadable.
pub fn exif_rotation(path: &Path) -> u32 {
    let orientation = ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .ok()
        .and_then(|r| r.into_decoder().ok())
        .and_then(|mut d| d.orientation().ok());
    use image::metadata::Orientation::*;
    match orientation {
        Some(Rotate90 | Rotate90FlipH) => 90,
        Some(Rotate180) => 180,
        Some(Rotate270 | Rotate270FlipH) => 270,
        _ => 0,
    }
}

pub fn render(input: &Path, profile: &Profile, work_dir: &Path) -> Result<Rendition, MediaError> {
    let settings = profile
        .settings
        .image
        .as_ref()
        .expect("validated image profile has [image]");
    let picture = decode_upright(input, profile)?;
    let fitted = fit(&picture, settings.long_edge);
    let rgb = flatten(&fitted);
    let (path, mime, extension) = match settings.format {
        ImageFormat::Jpeg => {
            let path = work_dir.join("media.jpg");
            thumbnail::write_rgb_jpeg(&rgb, settings.quality, &path)?;
            (path, "image/jpeg", "jpg")
        }
        ImageFormat::Webp => {
            let path = work_dir.join("media.webp");
            DynamicImage::ImageRgb8(rgb.clone())
                .save_with_format(&path, image::ImageFormat::WebP)
                .map_err(|e| MediaError::encode("WebP", e))?;
            (path, "image/webp", "webp")
        }
    };
    let (width, height) = check_output(&path, rgb.width(), rgb.height())?;
    let thumbnail = match &profile.settings.thumbnail {
        Some(t) => {
            let small = flatten(&fit(&fitted, t.width));
            let thumb_path = work_dir.join("thumb.jpg");
            thumbnail::write_rgb_jpeg(&small, t.quality, &thumb_path)?;
            Some(Thumbnail {
                path: thumb_path,
                mime: "image/jpeg".into(),
                extension: "jpg".into(),
                width: small.width(),
                height: small.height(),
            })
        }
        None => None,
    };
    Ok(Rendition {
        bytes: std::fs::metadata(&path)
            .map_err(|e| MediaError::io("reading output size", e))?
            .len(),
        path,
        mime: mime.into(),
        extension: extension.into(),
        duration_ms: None,
        source_duration_ms: None,
        width: Some(width),
        height: Some(height),
        thumbnail,
    })
}

fn decode_upright(input: &Path, profile: &Profile) -> Result<DynamicImage, MediaError> {
    let bad = |e: image::ImageError| MediaError::ImageDecode {
        detail: e.to_string(),
    };
    let limits = &profile.settings.limits;
    let mut reader = ImageReader::open(input)
        .map_err(|e| MediaError::io("opening image", e))?
        .with_guessed_format()
        .map_err(|e| MediaError::io("reading image", e))?;
    let mut bounds = Limits::default();
    bounds.max_image_width = Some(limits.max_width.max(limits.max_height));
    bounds.max_image_height = Some(limits.max_width.max(limits.max_height));
    bounds.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(bounds);
    let mut decoder = reader.into_decoder().map_err(bad)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut picture = DynamicImage::from_decoder(decoder).map_err(bad)?;
    picture.apply_orientation(orientation);
    Ok(picture)
}

/// Scales so the long edge is at most `long_edge`; smaller pictures are left alone.
fn fit(picture: &DynamicImage, long_edge: u32) -> DynamicImage {
    let (w, h) = (picture.width(), picture.height());
    if w.max(h) <= long_edge {
        return picture.clone();
    }
    let (nw, nh) = thumbnail::fit_within(w, h, long_edge);
    picture.resize_exact(nw, nh, FilterType::CatmullRom)
}

/// RGB with any transparency composited over white (JPEG has no alpha; black would show).
fn flatten(picture: &DynamicImage) -> image::RgbImage {
    if !picture.color().has_alpha() {
        return picture.to_rgb8();
    }
    let rgba = picture.to_rgba8();
    let mut rgb = image::RgbImage::new(rgba.width(), rgba.height());
    for (out, px) in rgb.pixels_mut().zip(rgba.pixels()) {
        let a = u16::from(px.0[3]);
        for c in 0..3 {
            out.0[c] = ((u16::from(px.0[c]) * a + 255 * (255 - a)) / 255) as u8;
        }
    }
    rgb
}

/// Decodes the written file again and checks its size: the image counterpart of verification.
fn check_output(path: &Path, width: u32, height: u32) -> Result<(u32, u32), MediaError> {
    let decoded = ImageReader::open(path)
        .map_err(|e| MediaError::io("reading output", e))?
        .with_guessed_format()
        .map_err(|e| MediaError::io("reading output", e))?
        .decode()
        .map_err(|e| MediaError::VerifyFailed {
            detail: format!("output image does not decode: {e}"),
        })?;
    if (decoded.width(), decoded.height()) != (width, height) {
        return Err(MediaError::VerifyFailed {
            detail: format!(
                "output is {}x{}, expected {width}x{height}",
                decoded.width(),
                decoded.height()
            ),
        });
    }
    Ok((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting_keeps_aspect_and_never_enlarges() {
        let big = DynamicImage::new_rgb8(3000, 2000);
        let fitted = fit(&big, 1600);
        assert_eq!((fitted.width(), fitted.height()), (1600, 1067));
        let small = DynamicImage::new_rgb8(300, 200);
        assert_eq!(fit(&small, 1600).width(), 300);
    }

    #[test]
    fn transparency_becomes_white() {
        let clear = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(2, 2, image::Rgba([0, 0, 0, 0])));
        assert_eq!(flatten(&clear).get_pixel(0, 0).0, [255, 255, 255]);
    }
}
