//! Declared durations from symphonia, for the containers where its header reading is exact.
//!
//! In: a path and libav's name for its container. Out: milliseconds, or `None` when symphonia
//! is not trusted for that container or could not read it (libav's figure stands then).
//! symphonia reads Ogg (Opus, Vorbis), WAV, FLAC, M4A and tagged MP3 headers in microseconds;
//! it cannot decode Opus, and for an MP3 without a Xing/Info/VBRI tag its estimate is short, so
//! such MP3s are left to libav. A header is only a claim: the record carries the duration of the
//! verified output. Blocking; reads headers (and, for Ogg, the last page).

use std::fs::File;
use std::io::Read;
use std::path::Path;

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
        "mov,mp4,m4a,3gp,3g2,mj2" => "m4a",
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
    fn id3_sizes_are_syncsafe() {
        let mut tag = b"ID3\x04\x00\x00\x00\x00\x02\x01".to_vec();
        tag.resize(400, 0);
        assert_eq!(id3v2_len(&tag), 10 + 257);
        assert_eq!(id3v2_len(b"RIFF...."), 0);
    }
}
