//! Samples of a video for the CRF search: short excerpts cut by stream copy (no re-encode).
//!
//! In: the source, its probe, and how many samples of what length. Out: MP4 files holding only
//! the video stream, each starting on a keyframe and ending just before one (so every frame
//! decodes), with the source's display rotation carried over. A short input is one sample: the
//! whole picture stream. Fails with [`QualityError`] when the source cannot be read or the
//! sample cannot be written. Blocking I/O; each sample is decoded once to check it.
//!
//! Why the check: some encoders flag intra frames that are not clean random-access points as
//! keyframes. A sample starting on one decodes with errors, and error concealment differs with
//! the decoder's threading, so the encoder's input and the quality reference would not even be
//! the same pictures. Such a start is skipped for the next keyframe; when none near a sample's
//! place is clean, the whole input is used as the one sample.

use std::path::{Path, PathBuf};

use ffmpeg::{codec, encoder, format, Rescale};
use ffmpeg_next as ffmpeg;

use super::QualityError;
use crate::media::{self, Probe};

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

/// Cuts the samples of `source` into `dir`: `sample-N.mp4`. When no keyframe near a sample's
/// place starts a clean sample, the whole input is the one sample instead.
pub fn cut_samples(
    source: &Path,
    probe: &Probe,
    count: usize,
    length: f64,
    dir: &Path,
) -> Result<Vec<PathBuf>, QualityError> {
    let duration = probe.duration_ms.map_or(f64::NAN, |ms| ms as f64 / 1000.0);
    let whole = || {
        let path = dir.join("whole.mp4");
        cut(source, probe, Seek::AtOrBefore(0.0), f64::INFINITY, &path)?;
        if !decodes_cleanly(&path) {
            return Err(QualityError::new(
                source,
                "the video does not decode cleanly: scores would measure error concealment".into(),
            ));
        }
        Ok(vec![path])
    };
    let Some(starts) = positions(duration, count, length) else {
        return whole();
    };
    let mut samples = Vec::with_capacity(starts.len());
    for (i, start) in starts.into_iter().enumerate() {
        let path = dir.join(format!("sample-{i}.mp4"));
        if !clean_sample(source, probe, start, length, &path)? {
            tracing::info!(
                start,
                "no keyframe near here starts a clean sample; using the whole input"
            );
            return whole();
        }
        samples.push(path);
    }
    Ok(samples)
}

/// Cuts a sample near `start` into `path` from the first keyframe, at or after the one before
/// `start`, that starts a cleanly decoding sample. `false` if none of [`MAX_STARTS`] does.
fn clean_sample(
    source: &Path,
    probe: &Probe,
    start: f64,
    length: f64,
    path: &Path,
) -> Result<bool, QualityError> {
    let mut from = Seek::AtOrBefore(start);
    for _ in 0..MAX_STARTS {
        let Some(keyframe) = cut(source, probe, from, length, path)? else {
            return Ok(false);
        };
        if decodes_cleanly(path) {
            return Ok(true);
        }
        from = Seek::After(keyframe);
    }
    Ok(false)
}

/// Keyframes tried for one sample before giving up.
const MAX_STARTS: usize = 4;

/// Where a sample starts: on the keyframe at or before a time, or on the first one after it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Seek {
    AtOrBefore(f64),
    After(f64),
}

/// Whether `path` decodes (single-threaded, so libav's messages come to this thread) without
/// any error.
fn decodes_cleanly(path: &Path) -> bool {
    let clean = || -> Result<bool, ffmpeg::Error> {
        media::clear_last_error();
        let mut ictx = format::input(&path)?;
        let stream = ictx
            .streams()
            .best(ffmpeg::media::Type::Video)
            .ok_or(ffmpeg::Error::StreamNotFound)?;
        let index = stream.index();
        let mut context = codec::context::Context::from_parameters(stream.parameters())?;
        context.set_threading(codec::threading::Config::count(1));
        let mut decoder = context.decoder().video()?;
        let mut frame = ffmpeg::frame::Video::empty();
        for (s, packet) in ictx.packets() {
            if s.index() == index {
                decoder.send_packet(&packet)?;
                while decoder.receive_frame(&mut frame).is_ok() {}
            }
        }
        decoder.send_eof()?;
        while decoder.receive_frame(&mut frame).is_ok() {}
        Ok(media::take_last_error().is_none())
    };
    clean().unwrap_or(false)
}

/// Copies the video packets of `source` from the keyframe `from` says until the first keyframe at
/// least `length` seconds later. Returns the time of the keyframe the sample starts on, `None`
/// when there is no such keyframe.
pub fn cut(
    source: &Path,
    probe: &Probe,
    from: Seek,
    length: f64,
    dest: &Path,
) -> Result<Option<f64>, QualityError> {
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
        // SAFETY: the output stream's codec parameters were just allocated by `add_stream` and
        // set above; nothing else refers to them before the header is written.
        unsafe { (*ost.parameters().as_mut_ptr()).codec_tag = 0 };
        copy_display_matrix(&ictx, index, &mut ost);
    }
    octx.write_header().map_err(|e| fail("writing header", e))?;
    let out_tb = octx.stream(0).expect("stream added above").time_base();
    let to_ts = |t: f64| (t * f64::from(ffmpeg::ffi::AV_TIME_BASE)) as i64;
    let (start, after) = match from {
        Seek::AtOrBefore(t) => (t, None),
        Seek::After(t) => (t, Some(t)),
    };
    match from {
        Seek::AtOrBefore(t) if t > 0.0 => ictx.seek(to_ts(t), ..to_ts(t)),
        Seek::After(t) => ictx.seek(to_ts(t), to_ts(t)..),
        Seek::AtOrBefore(_) => Ok(()),
    }
    .map_err(|e| fail("seeking", e))?;
    let mut first: Option<(i64, i64)> = None; // (dts, pts) of the first packet copied
    let mut keyframe = start;
    for (stream, mut packet) in ictx.packets() {
        if stream.index() != index || stream.parameters().medium() != ffmpeg::media::Type::Video {
            continue;
        }
        let pts = packet.pts().or(packet.dts()).unwrap_or(0);
        let dts = packet.dts().unwrap_or(pts);
        let Some((dts0, pts0)) = first else {
            let seconds = pts.rescale(in_tb, ffmpeg::Rational::new(1, 1000)) as f64 / 1000.0;
            if !packet.is_key() || after.is_some_and(|t| seconds <= t) {
                continue;
            }
            keyframe = seconds;
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
    octx.write_trailer().map_err(|e| fail("finishing", e))?;
    Ok(first.map(|_| keyframe))
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
    // SAFETY: `index` is a stream of `ictx` (an open input), so the stream pointer is valid;
    // the side datum is `size` bytes, and the new one is allocated with that size before the
    // copy (a null from either call is checked).
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
        assert_eq!(
            cut(&fixture, &probe, Seek::AtOrBefore(0.0), 0.5, &dest).unwrap(),
            Some(0.0)
        );
        assert!(decodes_cleanly(&dest));
        let sample = crate::media::probe(&dest).unwrap();
        assert_eq!(sample.rotation, 90);
        assert_eq!((sample.width, sample.height), (probe.width, probe.height));
        assert_eq!(sample.audio_stream, None);
        let seconds = sample.duration_ms.unwrap() as f64 / 1000.0;
        assert!((0.5..=2.1).contains(&seconds), "{seconds}");
    }

    #[test]
    fn a_keyframe_that_is_no_clean_start_is_skipped_for_the_whole_input() {
        // A corpus video whose later "keyframes" depend on what came before: stream copies
        // starting there decode with errors (the ffmpeg CLI's own `-ss 3.8 -c copy` too).
        // The corpus as the integration tests find it (tests/it/common.rs).
        let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
        let corpus = std::env::var_os("MEDIASPOOL_CORPUS")
            .map(PathBuf::from)
            .unwrap_or(if beside.is_dir() {
                beside
            } else {
                PathBuf::from("/work/shared/corpus")
            });
        let source = corpus.join("video/imageio__cockatoo.mp4");
        let probe = crate::media::probe(&source).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let late = dir.path().join("late.mp4");
        assert_eq!(
            cut(&source, &probe, Seek::AtOrBefore(5.0), 3.0, &late).unwrap(),
            Some(3.8)
        );
        assert!(!decodes_cleanly(&late));
        let samples = cut_samples(&source, &probe, 2, 3.0, dir.path()).unwrap();
        assert_eq!(samples.len(), 1, "{samples:?}");
        let whole = crate::media::probe(&samples[0]).unwrap();
        assert!(whole.duration_ms.unwrap() > 13_000, "{whole:?}");
    }
}
