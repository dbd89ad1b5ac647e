//! Declared durations: read from headers, then checked against what the file's size can hold.
//!
//! In: a path and libav's name for its container; declared durations with the file's size.
//! Out: milliseconds from symphonia, or `None` when symphonia is not trusted for that container
//! or could not read it (libav's figure stands then); and [`Declared`], the first declared
//! duration the bytes can hold, with the one they cannot reported as [`UntrustedDuration`].
//! symphonia reads Ogg (Opus, Vorbis), WAV, FLAC, M4A and tagged MP3 headers in microseconds;
//! it cannot decode Opus, and for an MP3 without a Xing/Info/VBRI tag its estimate is short, so
//! such MP3s are left to libav. A header is only a claim: recorders and pipes write lengths they
//! do not know yet (a WAV data size of 0x7FFFF000 or 0xFFFFFFFF), which must never reject a
//! file as too long; the record carries the duration of the verified output. Blocking; reads
//! headers (and, for Ogg, the last page).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// The declared duration of the first audio track, in milliseconds.
pub fn header_duration_ms(path: &Path, container: &str) -> Option<u64> {
    let extension = match container {
        "ogg" => "ogg",
        "wav" => "wav",
        "flac" => "flac",
        // symphonia sizes buffers from box fields before reading them: only boxes that fit.
        "mov,mp4,m4a,3gp,3g2,mj2" if super::mp4_boxes::sizes_hold(path) => "m4a",
        "mp3" if has_vbr_tag(path) => "mp3",
        _ => return None,
    };
    // A parser bug must not take the caller down with it: a panic here only means "no answer".
    std::panic::catch_unwind(|| read_duration(path, extension))
        .ok()
        .flatten()
}

fn read_duration(path: &Path, extension: &str) -> Option<u64> {
    let file = File::open(path).ok()?;
    let stream = MediaSourceStream::new(Box::new(file), MediaSourceStreamOptions::default());
    let mut hint = Hint::new();
    hint.with_extension(extension);
    let options = FormatOptions {
        enable_gapless: true,
        ..FormatOptions::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, stream, &options, &MetadataOptions::default())
        .ok()?;
    let track = probed.format.default_track()?;
    let params = &track.codec_params;
    let frames = params.n_frames?;
    let seconds = match (params.time_base, params.sample_rate) {
        (Some(tb), _) => {
            let t = tb.calc_time(frames);
            t.seconds as f64 + t.frac
        }
        (None, Some(rate)) if rate > 0 => frames as f64 / f64::from(rate),
        _ => return None,
    };
    (seconds.is_finite() && seconds > 0.0).then(|| (seconds * 1000.0).round() as u64)
}

/// The lowest average bitrate of a real recording, in bits per second: codec2 at 700 bit/s is
/// the thriftiest speech codec in use. A declared duration that would spread the file thinner
/// than this is a length written before it was known.
pub const MIN_PLAUSIBLE_BITRATE: f64 = 500.0;

/// A declared duration the file's size cannot hold, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UntrustedDuration {
    pub declared_ms: u64,
    /// Which reader found it: `symphonia` or `libav`.
    pub from: String,
    pub reason: String,
}

/// The duration to go by, and where it came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Declared {
    pub ms: Option<u64>,
    /// `symphonia`, `libav`, or `file size` (a constant-rate codec's length from the bytes).
    pub from: Option<&'static str>,
    /// The first declared duration the bytes cannot hold, if any was.
    pub untrusted: Option<UntrustedDuration>,
}

/// The first of `claims` (best reader first) that `bytes` can hold. A file can hold at most
/// `bytes` at `constant_bitrate` (bits per second of PCM and other constant-rate codecs, when
/// the main stream is one), and at most `bytes` at [`MIN_PLAUSIBLE_BITRATE`] whatever its
/// codec. When no claim fits, a constant-rate file's duration is its size over its rate.
pub fn holdable(
    claims: &[(Option<u64>, &'static str)],
    bytes: u64,
    constant_bitrate: Option<f64>,
) -> Declared {
    let bits = bytes as f64 * 8.0;
    let exact = constant_bitrate.filter(|r| r.is_finite() && *r > 0.0);
    let max_seconds = exact.unwrap_or(MIN_PLAUSIBLE_BITRATE);
    let max_seconds = bits / max_seconds;
    let mut declared = Declared::default();
    for &(ms, from) in claims {
        let Some(ms) = ms else { continue };
        let seconds = ms as f64 / 1000.0;
        // Headers are part of the bytes, so the bound is generous already; the slack absorbs
        // rounding in the header's own figures.
        if seconds <= max_seconds * 1.01 + 0.1 {
            declared.ms = Some(ms);
            declared.from = Some(from);
            return declared;
        }
        if declared.untrusted.is_none() {
            let reason = match exact {
                Some(rate) => format!(
                    "{bytes} bytes at the codec's constant {:.0} kbit/s hold at most {max_seconds:.1} s",
                    rate / 1000.0
                ),
                None => format!(
                    "{seconds:.1} s in {bytes} bytes would be {:.0} bit/s, below the {MIN_PLAUSIBLE_BITRATE:.0} bit/s of any real recording",
                    bits / seconds
                ),
            };
            declared.untrusted = Some(UntrustedDuration {
                declared_ms: ms,
                from: from.to_string(),
                reason,
            });
        }
    }
    if declared.untrusted.is_some() && exact.is_some() {
        declared.ms = Some((max_seconds * 1000.0).round() as u64);
        declared.from = Some("file size");
    }
    declared
}

/// Whether the first MP3 frame carries a Xing, Info or VBRI tag (exact frame count).
fn has_vbr_tag(path: &Path) -> bool {
    let mut head = Vec::new();
    if File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .is_err()
    {
        return false;
    }
    let start = id3v2_len(&head).min(head.len());
    let window = &head[start..head.len().min(start + 4096)];
    [b"Xing", b"Info", b"VBRI"]
        .iter()
        .any(|tag| window.windows(4).any(|w| w == *tag))
}

/// Length of a leading ID3v2 tag (header, syncsafe size, optional footer), or 0.
fn id3v2_len(head: &[u8]) -> usize {
    if head.len() < 10 || &head[..3] != b"ID3" {
        return 0;
    }
    let size = head[6..10]
        .iter()
        .fold(0usize, |acc, b| (acc << 7) | usize::from(b & 0x7f));
    let footer = if head[5] & 0x10 != 0 { 10 } else { 0 };
    10 + size + footer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_length_the_bytes_cannot_hold_is_not_trusted() {
        // An 11 s WAV of 16-bit 8 kHz mono (128 kbit/s) whose header says 0x7FFFF000 bytes.
        let bytes = 176_044;
        let pcm = Some(128_000.0);
        let d = holdable(
            &[(Some(134_217_472), "symphonia"), (Some(11_000), "libav")],
            bytes,
            pcm,
        );
        assert_eq!((d.ms, d.from), (Some(11_000), Some("libav")));
        let untrusted = d.untrusted.unwrap();
        assert_eq!(
            (untrusted.declared_ms, untrusted.from.as_str()),
            (134_217_472, "symphonia")
        );
        assert!(
            untrusted.reason.contains("hold at most 11.0 s"),
            "{}",
            untrusted.reason
        );
        // No reader believable: the length the bytes hold at the codec's rate.
        let d = holdable(&[(Some(134_217_472), "libav")], bytes, pcm);
        assert_eq!((d.ms, d.from), (Some(11_003), Some("file size")));
        // An honest header is taken as it is, also just under what the bytes hold.
        let d = holdable(&[(Some(11_000), "symphonia")], bytes, pcm);
        assert_eq!(
            (d.ms, d.from, d.untrusted),
            (Some(11_000), Some("symphonia"), None)
        );
        // Any codec: a claim that spreads the bytes thinner than any recording.
        let d = holdable(&[(Some(1_860_000), "libav")], 4096, None);
        assert_eq!((d.ms, d.from), (None, None));
        assert!(d.untrusted.unwrap().reason.contains("18 bit/s"));
        // A long, thin but real recording: 3 h of 6 kbit/s Opus.
        let d = holdable(&[(Some(10_800_000), "libav")], 8_100_000, None);
        assert_eq!(d.ms, Some(10_800_000));
        assert_eq!(holdable(&[(None, "libav")], 10, None), Declared::default());
    }

    #[test]
    fn id3_sizes_are_syncsafe() {
        let mut tag = b"ID3\x04\x00\x00\x00\x00\x02\x01".to_vec();
        tag.resize(400, 0);
        assert_eq!(id3v2_len(&tag), 10 + 257);
        assert_eq!(id3v2_len(b"RIFF...."), 0);
    }
}
