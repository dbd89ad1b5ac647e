//! Samples of a video for the CRF search: short excerpts cut by stream copy (no re-encode).
//!
//! In: the source, its probe, and how many samples of what length. Out: MP4 files holding only
//! the video stream, each starting on a keyframe and ending just before one (so every frame
//! decodes), with the source's display rotation carried over. A short input is one sample: the
//! whole picture stream. Fails with [`QualityError`] when the source cannot be read or the
//! sample cannot be written. Blocking I/O, little CPU.

use std::path::{Path, PathBuf};

use ffmpeg::{codec, encoder, format, media, Rescale};
use ffmpeg_next as ffmpeg;

use super::QualityError;
use crate::media::Probe;

/// Where the samples start, in seconds, and how long each is asked to be. `None` for a source
/// short enough to be taken whole (samples would cover most of it anyway).
pub fn positions(duration: f64, count: usize, length: f64) -> Option<Vec<f64>> {
    if count == 0 || !duration.is_finite() || duration <= count as f64 * length * 1.5 {
        return None;
    }
    Some(
        (0..count)
            .map(|i| (duration * (i as f64 + 1.0) / (count as f64 + 1.0) - length / 2.0).max(0.0))
            .collect(),
    )
}

/// Cuts the samples of `source` into `dir`: `sample-N.mp4`.
pub fn cut_samples(
    source: &Path,
    probe: &Probe,
    count: usize,
    length: f64,
    dir: &Path,
) -> Result<Vec<PathBuf>, QualityError> {
    let duration = probe.duration_ms.map_or(f64::NAN, |ms| ms as f64 / 1000.0);
    let spans: Vec<(f64, f64)> = match positions(duration, count, length) {
        Some(starts) => starts.into_iter().map(|s| (s, length)).collect(),
        None => vec![(0.0, f64::INFINITY)],
    };
    spans
        .iter()
        .enumerate()
        .map(|(i, &(start, len))| {
            let path = dir.join(format!("sample-{i}.mp4"));
            cut(source, probe, start, len, &path)?;
            Ok(path)
        })
        .collect()
}

/// Copies the video packets of `source` from the keyframe at or before `start` until the first
/// keyframe at least `length` seconds later.
pub fn cut(source: &Path, probe: &Probe, start: f64, length: f64, dest: &Path) -> Result<(), QualityError> {
    let fail = |what: &str, e: ffmpeg::Error| QualityError::new(source, format!("sample, {what}: {e}"));
    let index = probe
        .video_stream
        .ok_or_else(|| QualityError::new(source, "no video stream".into()))?;
    let mut ictx = format::input(&source).map_err(|e| fail("opening", e))?;
    let (in_tb, parameters) = {
        let ist = ictx
            .stream(index)
            .ok_or_else(|| QualityError::new(source, format!("no stream {index}")))?;
        (ist.time_base(), ist.parameters())
    };
    let mut octx = format::output_as(&dest, "mp4").map_err(|e| fail("creating", e))?;
    {
        let mut ost = octx
            .add_stream(encoder::find(codec::Id::None))
            .map_err(|e| fail("adding stream", e))?;
        ost.set_parameters(parameters);
        unsafe { (*ost.parameters().as_mut_ptr()).codec_tag = 0 };
        copy_display_matrix(&ictx, index, &mut ost);
    }
    octx.write_header().map_err(|e| fail("writing header", e))?;
    let out_tb = octx.stream(0).expect("stream added above").time_base();
    if start > 0.0 {
        let ts = (start * f64::from(ffmpeg::ffi::AV_TIME_BASE)) as i64;
        ictx.seek(ts, ..ts).map_err(|e| fail("seeking", e))?;
    }
    let mut first: Option<(i64, i64)> = None; // (dts, pts) of the first packet copied
    for (stream, mut packet) in ictx.packets() {
        if stream.index() != index || stream.parameters().medium() != media::Type::Video {
            continue;
        }
        let pts = packet.pts().or(packet.dts()).unwrap_or(0);
        let dts = packet.dts().unwrap_or(pts);
        let Some((dts0, pts0)) = first else {
            if !packet.is_key() {
                continue;
            }
            first = Some((dts, pts));
            write(&mut packet, dts, out_tb, in_tb, &mut octx).map_err(|e| fail("writing", e))?;
            continue;
        };
        let elapsed = (pts - pts0).rescale(in_tb, ffmpeg::Rational::new(1, 1000)) as f64 / 1000.0;
        if packet.is_key() && elapsed >= length {
            break;
        }
        write(&mut packet, dts0, out_tb, in_tb, &mut octx).map_err(|e| fail("writing", e))?;
    }
    if first.is_none() {
        return Err(QualityError::new(
            source,
            format!("no keyframe after {start:.1} s"),
        ));
    }
    octx.write_trailer().map_err(|e| fail("finishing", e))?;
    Ok(())
}

fn write(
    packet: &mut ffmpeg::Packet,
    dts0: i64,
    out_tb: ffmpeg::Rational,
    in_tb: ffmpeg::Rational,
    octx: &mut format::context::Output,
) -> Result<(), ffmpeg::Error> {
    // Start at zero: the sample is a file of its own.
    packet.set_pts(packet.pts().map(|p| p - dts0));
    packet.set_dts(packet.dts().map(|d| d - dts0));
    packet.set_position(-1);
    packet.set_stream(0);
    packet.rescale_ts(in_tb, out_tb);
    packet.write_interleaved(octx)
}

/// Gives the sample's stream the source's display matrix, so it plays (and renders) upright.
fn copy_display_matrix(ictx: &format::context::Input, index: usize, ost: &mut format::stream::StreamMut) {
    let kind = ffmpeg::ffi::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX;
    unsafe {
        let ist = *(*ictx.as_ptr()).streams.add(index);
        let mut size: usize = 0;
        let data = ffmpeg::ffi::av_stream_get_side_data(ist, kind, &mut size);
        if data.is_null() || size == 0 {
            return;
        }
        let copy = ffmpeg::ffi::av_stream_new_side_data(ost.as_mut_ptr(), kind, size);
        if !copy.is_null() {
            std::ptr::copy_nonoverlapping(data, copy, size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_inputs_are_taken_whole_and_samples_spread_evenly() {
        assert_eq!(positions(10.0, 3, 4.0), None);
        assert_eq!(positions(f64::NAN, 3, 4.0), None);
        let p = positions(100.0, 3, 4.0).unwrap();
        assert_eq!(p, vec![23.0, 48.0, 73.0]);
    }

    #[test]
    fn a_sample_keeps_the_rotation_and_starts_on_a_keyframe() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rot90_h264.mp4");
        let probe = crate::media::probe(&fixture).unwrap();
        assert_eq!(probe.rotation, 90);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("s.mp4");
        cut(&fixture, &probe, 0.0, 0.5, &dest).unwrap();
        let sample = crate::media::probe(&dest).unwrap();
        assert_eq!(sample.rotation, 90);
        assert_eq!((sample.width, sample.height), (probe.width, probe.height));
        assert_eq!(sample.audio_stream, None);
        let seconds = sample.duration_ms.unwrap() as f64 / 1000.0;
        assert!((0.5..=2.1).contains(&seconds), "{seconds}");
    }
}
