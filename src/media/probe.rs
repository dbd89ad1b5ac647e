//! Probing by content: what a file is, never what its name says.
//!
//! In: a path. Out: [`Probe`] — kind (audio, video, image, other), container, streams, codecs,
//! declared duration, upright dimensions and display rotation. Fails with [`MediaError`] when
//! the file is empty, or looks like media (by its bytes, or failing that by its extension) but
//! libav cannot read it. Anything that is not media at all is kind `other`, not an error: the
//! routing decides whether to store it as is. Blocking; reads headers only.

use std::io::Read;
use std::path::Path;

use ffmpeg::{codec, format, media};
use ffmpeg_next as ffmpeg;
use serde::{Deserialize, Serialize};

use super::{duration, libav, MediaError};
use crate::profile::{Limits, MediaKind};

/// What probing found. `width`/`height` are those of the upright picture, as shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probe {
    pub kind: MediaKind,
    /// libav's demuxer name (`ogg`, `mov,mp4,m4a,3gp,3g2,mj2`, …) or the image format.
    pub container: Option<String>,
    pub mime: String,
    pub bytes: u64,
    /// Codec names of the streams that carry the content (cover art excluded).
    pub codecs: Vec<String>,
    /// Duration the headers declare; the decoded duration may differ.
    pub duration_ms: Option<u64>,
    /// Which reader gave `duration_ms`: `symphonia`, `libav`, or `file size` (a constant-rate
    /// codec's length from the bytes, when no declared duration could be believed).
    pub duration_from: Option<String>,
    /// A declared duration the file's size cannot hold (a length written before it was
    /// known): not used for limits, decoded past instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untrusted_duration: Option<duration::UntrustedDuration>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Clockwise rotation, in degrees, that a player applies to the coded picture.
    pub rotation: u32,
    pub streams: Vec<StreamInfo>,
    /// Index of the stream the video path decodes.
    pub video_stream: Option<usize>,
    /// Index of the stream the audio path decodes.
    pub audio_stream: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamInfo {
    pub index: usize,
    /// `audio`, `video`, `cover` (attached picture), `subtitle`, `data` or `attachment`.
    pub kind: String,
    pub codec: String,
    /// Whether this libav has a decoder for it.
    pub decodable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<u16>,
    /// Coded width and height (before rotation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<u32>,
}

/// Extensions that name audio or video containers and raw streams. Used only where the bytes
/// alone do not settle it: to tell a broken media file from a document, and to back a
/// low-confidence match of libav's (see [`CONFIDENT_PROBE_SCORE`]).
const MEDIA_EXTENSIONS: &[&str] = &[
    "264", "265", "3g2", "3ga", "3gp", "aac", "ac3", "adts", "aif", "aifc", "aiff", "amr", "ape", "asf",
    "au", "avi", "awb", "caf", "dts", "eac3", "f4v", "flac", "flv", "h264", "h265", "hevc", "ivf", "m1v",
    "m2t", "m2ts", "m2v", "m4a", "m4b", "m4r", "m4v", "mj2", "mjpeg", "mjpg", "mka", "mks", "mkv", "mov",
    "mp1", "mp2", "mp3", "mp4", "mpa", "mpc", "mpeg", "mpg", "mpv", "mts", "mxf", "nut", "obu", "oga", "ogg",
    "ogv", "opus", "qt", "ra", "rm", "rmvb", "snd", "spx", "tak", "ts", "tta", "vob", "voc", "w64", "wav",
    "weba", "webm", "wma", "wmv", "wv", "y4m",
];

/// libav's score for a match by file extension alone (`AVPROBE_SCORE_EXTENSION`). Demuxers with
/// no signature to check claim files this way — the text-art ones take any `.bin`, `.nfo` or
/// `.asc` as a picture — so a match at or below it counts as media only when the name says media
/// too; otherwise the file is a document, kept as it came. (A still picture only libav reads,
/// such as SVG, is kept as it came either way, with its image type.)
const CONFIDENT_PROBE_SCORE: i32 = 50;

/// Probes `path` by its content.
pub fn probe(path: &Path) -> Result<Probe, MediaError> {
    libav::init();
    let meta = std::fs::metadata(path).map_err(|e| MediaError::io("cannot read file", e))?;
    let bytes = meta.len();
    if bytes == 0 {
        return Err(MediaError::EmptyFile);
    }
    let head = read_head(path, 8192)?;
    let sniffed = infer::get(&head);

    match decodable_image_format(&head) {
        // An animated GIF is a short video: it becomes an MP4 that plays everywhere.
        Some(image::ImageFormat::Gif) if is_animated_gif(path) => {}
        // An animated WebP (a sticker): libav here cannot decode it and a still would lose the
        // animation, so it is kept as it is; every browser plays it.
        Some(image::ImageFormat::WebP) => {
            if let Some((width, height)) = animated_webp_size(path) {
                let mut kept = other(bytes, sniffed, &head);
                kept.mime = "image/webp".to_string();
                kept.codecs = vec!["webp".to_string()];
                (kept.width, kept.height) = (Some(width), Some(height));
                return Ok(kept);
            }
            return probe_image(path, bytes, image::ImageFormat::WebP);
        }
        Some(format) => return probe_image(path, bytes, format),
        None => {}
    }

    libav::clear_last_error();
    let input = match format::input(&path) {
        Ok(input) => input,
        Err(e) => {
            let detail = libav::describe(e);
            if media_bytes(sniffed) || media_name(path) {
                return Err(MediaError::Unreadable { detail });
            }
            return Ok(other(bytes, sniffed, &head));
        }
    };
    // SAFETY: `input` is an open format context; `probe_score` is a plain int it owns.
    let score = unsafe { (*input.as_ptr()).probe_score };
    let still_image = is_still_image_demuxer(input.format().name());
    if score <= CONFIDENT_PROBE_SCORE && !still_image && !media_bytes(sniffed) && !media_name(path) {
        return Ok(other(bytes, sniffed, &head));
    }
    probe_libav(path, &input, bytes, sniffed)
}

/// Whether the file's signature says audio or video.
fn media_bytes(sniffed: Option<infer::Type>) -> bool {
    sniffed.is_some_and(|t| {
        matches!(
            t.matcher_type(),
            infer::MatcherType::Audio | infer::MatcherType::Video
        )
    })
}

/// Whether the file's name says audio or video.
fn media_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| MEDIA_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn read_head(path: &Path, len: usize) -> Result<Vec<u8>, MediaError> {
    let mut head = Vec::with_capacity(len);
    std::fs::File::open(path)
        .and_then(|f| f.take(len as u64).read_to_end(&mut head))
        .map_err(|e| MediaError::io("cannot read file", e))?;
    Ok(head)
}

fn other(bytes: u64, sniffed: Option<infer::Type>, head: &[u8]) -> Probe {
    let mime = match sniffed {
        Some(t) => t.mime_type(),
        None if looks_like_text(head) => "text/plain",
        None => "application/octet-stream",
    };
    Probe {
        kind: MediaKind::Other,
        container: None,
        mime: mime.to_string(),
        bytes,
        codecs: vec![],
        duration_ms: None,
        duration_from: None,
        untrusted_duration: None,
        width: None,
        height: None,
        rotation: 0,
        streams: vec![],
        video_stream: None,
        audio_stream: None,
    }
}

/// UTF-8 without control characters other than whitespace (a cut multi-byte character at the
/// end of the sample is allowed).
fn looks_like_text(head: &[u8]) -> bool {
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or(""),
        Err(_) => return false,
    };
    !text.is_empty() && !text.chars().any(|c| c.is_control() && !c.is_whitespace())
}

/// libav's demuxers for single pictures (`image2`, `png_pipe`, `svg_pipe`…).
fn is_still_image_demuxer(container: &str) -> bool {
    container == "image2" || container.ends_with("_pipe")
}

/// Whether a GIF has more than one frame (decodes at most two, within memory limits).
fn is_animated_gif(path: &Path) -> bool {
    use image::AnimationDecoder;
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(mut decoder) = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(file)) else {
        return false;
    };
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(256 * 1024 * 1024);
    if image::ImageDecoder::set_limits(&mut decoder, limits).is_err() {
        return false;
    }
    decoder.into_frames().take(2).filter(Result::is_ok).count() > 1
}

/// The canvas of an animated WebP, or `None` for a still one (reads the header only).
fn animated_webp_size(path: &Path) -> Option<(u32, u32)> {
    let file = std::fs::File::open(path).ok()?;
    let decoder = image::codecs::webp::WebPDecoder::new(std::io::BufReader::new(file)).ok()?;
    decoder
        .has_animation()
        .then(|| image::ImageDecoder::dimensions(&decoder))
}

/// Still-image formats the `image` crate decodes here.
fn decodable_image_format(head: &[u8]) -> Option<image::ImageFormat> {
    use image::ImageFormat::*;
    image::guess_format(head)
        .ok()
        .filter(|f| matches!(f, Jpeg | Png | WebP | Gif | Bmp | Tiff))
}

fn probe_image(path: &Path, bytes: u64, format: image::ImageFormat) -> Result<Probe, MediaError> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| MediaError::io("cannot read file", e))?
        .with_guessed_format()
        .map_err(|e| MediaError::io("cannot read file", e))?;
    let (w, h) = reader.into_dimensions().map_err(|e| MediaError::Unreadable {
        detail: format!("image header: {e}"),
    })?;
    let rotation = super::image::exif_rotation(path);
    let (width, height) = if rotation % 180 == 90 { (h, w) } else { (w, h) };
    let name = format!("{format:?}").to_lowercase();
    Ok(Probe {
        kind: MediaKind::Image,
        container: Some(name.clone()),
        mime: format.to_mime_type().to_string(),
        bytes,
        codecs: vec![name],
        duration_ms: None,
        duration_from: None,
        untrusted_duration: None,
        width: Some(width),
        height: Some(height),
        rotation,
        streams: vec![],
        video_stream: None,
        audio_stream: None,
    })
}

fn probe_libav(
    path: &Path,
    input: &format::context::Input,
    bytes: u64,
    sniffed: Option<infer::Type>,
) -> Result<Probe, MediaError> {
    let container = input.format().name().to_string();
    let streams: Vec<StreamInfo> = input.streams().map(|s| stream_info(&s, input)).collect();

    // The picture: the largest decodable video stream that is not cover art.
    let video_stream = streams
        .iter()
        .filter(|s| s.kind == "video" && s.decodable)
        .max_by_key(|s| u64::from(s.width.unwrap_or(0)) * u64::from(s.height.unwrap_or(0)))
        .map(|s| s.index);
    let audio_stream = input
        .streams()
        .best(media::Type::Audio)
        .map(|s| s.index())
        .filter(|i| streams[*i].decodable)
        .or_else(|| {
            streams
                .iter()
                .find(|s| s.kind == "audio" && s.decodable)
                .map(|s| s.index)
        });

    // A still picture libav reads but the image path does not (SVG, JPEG XL…) is a document
    // to keep as it is, not a one-frame video.
    if is_still_image_demuxer(&container) && audio_stream.is_none() {
        let mut kept = other(bytes, sniffed, &[]);
        if let Some(s) = video_stream.map(|i| &streams[i]) {
            kept.mime = match s.codec.as_str() {
                "svg" => "image/svg+xml".to_string(),
                codec => sniffed.map_or_else(|| format!("image/x-{codec}"), |t| t.mime_type().to_string()),
            };
            kept.codecs = vec![s.codec.clone()];
        }
        return Ok(kept);
    }
    let kind = if video_stream.is_some() {
        MediaKind::Video
    } else if audio_stream.is_some() {
        MediaKind::Audio
    } else {
        let detail = if streams.is_empty() {
            format!("the {container} container holds no streams")
        } else {
            let found: Vec<_> = streams
                .iter()
                .map(|s| format!("{} {}", s.kind, s.codec))
                .collect();
            format!("found only {}", found.join(", "))
        };
        return Err(MediaError::NoStream { detail });
    };

    // symphonia's reading first where it is exact, then libav's; neither is believed past what
    // the bytes can hold.
    let (symphonia_ms, constant_bitrate) = match (kind, audio_stream) {
        (MediaKind::Audio, Some(i)) => (
            duration::header_duration_ms(path, &container),
            constant_bitrate(input, &streams[i]),
        ),
        _ => (None, None),
    };
    let declared = duration::holdable(
        &[
            (symphonia_ms, "symphonia"),
            (container_duration_ms(input, &streams), "libav"),
        ],
        bytes,
        constant_bitrate,
    );

    let main = video_stream.map(|i| &streams[i]);
    let rotation = main.and_then(|s| s.rotation).unwrap_or(0);
    let (width, height) = match main {
        Some(s) => {
            let (w, h) = display_size(input, s);
            if rotation % 180 == 90 {
                (Some(h), Some(w))
            } else {
                (Some(w), Some(h))
            }
        }
        None => (None, None),
    };
    let codecs: Vec<String> = streams
        .iter()
        .filter(|s| s.kind == "audio" || s.kind == "video")
        .map(|s| s.codec.clone())
        .collect();
    Ok(Probe {
        kind,
        mime: mime_for(kind, &container, &codecs, sniffed),
        container: Some(container),
        bytes,
        codecs,
        duration_ms: declared.ms,
        duration_from: declared.from.map(str::to_string),
        untrusted_duration: declared.untrusted,
        width,
        height,
        rotation,
        streams,
        video_stream,
        audio_stream,
    })
}

fn stream_info(stream: &format::stream::Stream, input: &format::context::Input) -> StreamInfo {
    let params = stream.parameters();
    let id = params.id();
    // SAFETY: the codec parameters belong to `stream`, which outlives `par`; nothing writes
    // to them while it is read.
    let par = unsafe { &*params.as_ptr() };
    let decodable = id != codec::Id::None && ffmpeg::decoder::find(id).is_some();
    let codec = if id == codec::Id::None {
        "unknown".to_string()
    } else {
        id.name().to_string()
    };
    let attached = stream
        .disposition()
        .contains(format::stream::Disposition::ATTACHED_PIC);
    let mut info = StreamInfo {
        index: stream.index(),
        kind: String::new(),
        codec,
        decodable,
        duration_ms: ms_of(stream.duration(), stream.time_base()),
        sample_rate: None,
        channels: None,
        width: None,
        height: None,
        fps: None,
        rotation: None,
    };
    info.kind = match params.medium() {
        media::Type::Audio => {
            info.sample_rate = u32::try_from(par.sample_rate).ok().filter(|r| *r > 0);
            #[allow(deprecated)]
            let channels = par.channels;
            info.channels = u16::try_from(channels).ok().filter(|c| *c > 0);
            "audio"
        }
        media::Type::Video => {
            info.width = u32::try_from(par.width).ok().filter(|w| *w > 0);
            info.height = u32::try_from(par.height).ok().filter(|h| *h > 0);
            if attached || is_cover_like(stream, input, id) {
                "cover"
            } else {
                let rate = stream.avg_frame_rate();
                let rate = if rate.denominator() > 0 && rate.numerator() > 0 {
                    rate
                } else {
                    stream.rate()
                };
                if rate.denominator() > 0 && rate.numerator() > 0 {
                    info.fps = Some(f64::from(rate.numerator()) / f64::from(rate.denominator()));
                }
                info.rotation = Some(rotation_of(stream));
                "video"
            }
        }
        media::Type::Subtitle => "subtitle",
        media::Type::Attachment => "attachment",
        _ => "data",
    }
    .to_string();
    if info.kind == "video" && (info.width.is_none() || info.height.is_none()) {
        // A picture without a size cannot be scaled or bounded; treat it as unreadable data.
        info.decodable = false;
    }
    info
}

/// A still-picture codec with at most one frame next to an audio stream is cover art even when
/// the container does not flag it (ID3 pictures in WAV, some M4A).
fn is_cover_like(stream: &format::stream::Stream, input: &format::context::Input, id: codec::Id) -> bool {
    let still = matches!(
        id,
        codec::Id::MJPEG
            | codec::Id::PNG
            | codec::Id::BMP
            | codec::Id::GIF
            | codec::Id::TIFF
            | codec::Id::WEBP
    );
    let has_audio = input
        .streams()
        .any(|s| s.parameters().medium() == media::Type::Audio);
    still && has_audio && stream.frames() <= 1
}

/// Clockwise degrees (0, 90, 180, 270) a player turns the coded picture, from the display
/// matrix. `av_display_rotation_get` answers counter-clockwise, hence the sign.
fn rotation_of(stream: &format::stream::Stream) -> u32 {
    for side in stream.side_data() {
        if side.kind() == codec::packet::side_data::Type::DisplayMatrix && side.data().len() >= 36 {
            // SAFETY: a display matrix side datum of at least 36 bytes (checked above) is the nine
            // int32 values av_display_rotation_get reads.
            let ccw = unsafe { ffmpeg::ffi::av_display_rotation_get(side.data().as_ptr().cast()) };
            if ccw.is_nan() {
                return 0;
            }
            let cw = (-ccw).rem_euclid(360.0);
            return ((cw / 90.0).round() as u32 % 4) * 90;
        }
    }
    0
}

/// Width and height of the coded picture once its sample aspect ratio is applied.
fn display_size(input: &format::context::Input, s: &StreamInfo) -> (u32, u32) {
    let (w, h) = (s.width.unwrap_or(0), s.height.unwrap_or(0));
    let stream = input.stream(s.index).expect("stream index from this input");
    // SAFETY: the stream's codec parameters are valid while `input` is; reading a plain field.
    let sar = unsafe { (*stream.parameters().as_ptr()).sample_aspect_ratio };
    if sar.num > 0 && sar.den > 0 && sar.num != sar.den {
        let dw = (f64::from(w) * f64::from(sar.num) / f64::from(sar.den)).round() as u32;
        (dw.max(1), h)
    } else {
        (w, h)
    }
}

fn ms_of(ts: i64, time_base: ffmpeg::Rational) -> Option<u64> {
    if ts <= 0 || ts == ffmpeg::ffi::AV_NOPTS_VALUE {
        return None;
    }
    libav::seconds(Some(ts), time_base).map(|s| (s * 1000.0).round() as u64)
}

/// Bits per second of a constant-rate audio codec (PCM, ADPCM) at the stream's rate and
/// channels; `None` for codecs whose rate follows the content.
fn constant_bitrate(input: &format::context::Input, info: &StreamInfo) -> Option<f64> {
    let id = input.stream(info.index)?.parameters().id();
    // SAFETY: av_get_bits_per_sample only looks the id up in a constant table.
    let bits = unsafe { ffmpeg::ffi::av_get_bits_per_sample(id.into()) };
    if bits <= 0 {
        return None;
    }
    Some(f64::from(bits) * f64::from(info.sample_rate?) * f64::from(info.channels?))
}

fn container_duration_ms(input: &format::context::Input, streams: &[StreamInfo]) -> Option<u64> {
    let d = input.duration();
    if d > 0 && d != ffmpeg::ffi::AV_NOPTS_VALUE {
        return Some((d as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE) * 1000.0).round() as u64);
    }
    streams.iter().filter_map(|s| s.duration_ms).max()
}

fn mime_for(kind: MediaKind, container: &str, codecs: &[String], sniffed: Option<infer::Type>) -> String {
    // libav reads WebM and Matroska alike; WebM is the subset with these codecs only.
    let webm = codecs
        .iter()
        .all(|c| matches!(c.as_str(), "vp8" | "vp9" | "av1" | "vorbis" | "opus"));
    let by_container = match (kind, container) {
        (MediaKind::Audio, "ogg") => Some("audio/ogg"),
        (MediaKind::Video, "ogg") => Some("video/ogg"),
        (MediaKind::Audio, "matroska,webm") if webm => Some("audio/webm"),
        (MediaKind::Video, "matroska,webm") if webm => Some("video/webm"),
        (MediaKind::Audio, "matroska,webm") => Some("audio/x-matroska"),
        (MediaKind::Video, "matroska,webm") => Some("video/x-matroska"),
        (MediaKind::Audio, "mov,mp4,m4a,3gp,3g2,mj2") => Some("audio/mp4"),
        (_, "mp3") => Some("audio/mpeg"),
        (_, "wav") => Some("audio/wav"),
        (_, "flac") => Some("audio/flac"),
        (_, "aac") => Some("audio/aac"),
        (_, "amr") => Some("audio/amr"),
        (_, "gif") => Some("image/gif"),
        (_, "avi") => Some("video/x-msvideo"),
        (_, "mpegts") => Some("video/mp2t"),
        _ => None,
    };
    let sniffed = sniffed.map(|t| t.mime_type());
    match (by_container, sniffed) {
        // Ogg, Matroska and MP4 hold many codecs: name the container, as browsers expect.
        (Some(m), _)
            if m.ends_with("/ogg") || m.ends_with("webm") || m.ends_with("matroska") || m == "audio/mp4" =>
        {
            m.into()
        }
        // The sniffer knows MP4 brands (video/quicktime, video/3gpp…) better than the demuxer name.
        (_, Some(m)) if m.starts_with(kind.as_str()) => m.into(),
        (Some(m), _) => m.into(),
        (None, _) => format!("{kind}/x-{}", container.split(',').next().unwrap_or("unknown")),
    }
}

/// Refuses, before any decoding, what is over the profile's limits.
pub fn check_limits(probe: &Probe, limits: &Limits, profile: &str) -> Result<(), MediaError> {
    if probe.bytes > limits.max_bytes.as_u64() {
        return Err(MediaError::TooLarge {
            bytes: probe.bytes,
            limit: limits.max_bytes.as_u64(),
            profile: profile.into(),
        });
    }
    if let Some(ms) = probe.duration_ms {
        if ms > limits.max_duration.as_millis() as u64 {
            return Err(MediaError::TooLong {
                seconds: ms as f64 / 1000.0,
                limit_seconds: limits.max_duration.as_secs(),
                profile: profile.into(),
            });
        }
    }
    if let (Some(w), Some(h)) = (probe.width, probe.height) {
        // Bounds apply whichever way up the picture is.
        let (long, short) = (w.max(h), w.min(h));
        let (max_long, max_short) = (
            limits.max_width.max(limits.max_height),
            limits.max_width.min(limits.max_height),
        );
        if long > max_long || short > max_short {
            return Err(MediaError::DimensionsTooLarge {
                width: w,
                height: h,
                max_width: limits.max_width,
                max_height: limits.max_height,
                profile: profile.into(),
            });
        }
    }
    let streams = probe.streams.len() as u32;
    if streams > limits.max_streams {
        return Err(MediaError::TooManyStreams {
            streams,
            limit: limits.max_streams,
            profile: profile.into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codecs(names: &[&str]) -> Vec<String> {
        names.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn matroska_is_webm_only_with_webm_codecs() {
        let mkv = "matroska,webm";
        let mime = |kind, names: &[&str]| mime_for(kind, mkv, &codecs(names), None);
        assert_eq!(mime(MediaKind::Video, &["vp9", "opus"]), "video/webm");
        assert_eq!(mime(MediaKind::Audio, &["opus"]), "audio/webm");
        assert_eq!(mime(MediaKind::Video, &["h264", "aac"]), "video/x-matroska");
        assert_eq!(mime(MediaKind::Audio, &["flac"]), "audio/x-matroska");
    }
}
