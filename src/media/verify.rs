//! Verification: an output is trusted only after it has been decoded end to end.
//!
//! In: the path of a freshly written MP3 or MP4 and what it should contain. Out: [`Checked`] —
//! the decoded duration of each track and the picture size. Two ways to get there:
//! [`check_output`] decodes the written file (MP3 outputs, and any file after the fact);
//! [`check_container`] takes what [`super::stream_check`] decoded of the packets on their way
//! into the muxer and demuxes the file to see that it holds exactly those (MP4 outputs, so the
//! decode runs beside the transcode rather than after it). Fails with
//! [`MediaError::VerifyFailed`] when the container, codecs or layout are not what players expect
//! (for MP4: `moov` before `mdat`), when decoding reports any error or a packet is missing;
//! [`compare`] fails with [`MediaError::DurationMismatch`] when a track is not as long as its
//! source. Blocking.

use std::io::Read;
use std::path::Path;

use ffmpeg::{codec, format, frame, media};
use ffmpeg_next as ffmpeg;

use super::decode::Span;
use super::stream_check::Decoded;
use super::{libav, threads, MediaError};
use crate::profile::VerifySettings;

#[derive(Debug, Clone, Copy)]
pub enum Expect {
    Mp3,
    Mp4 { audio: bool },
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Checked {
    pub audio_seconds: f64,
    pub video_seconds: f64,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

fn failed(detail: impl Into<String>) -> MediaError {
    MediaError::VerifyFailed {
        detail: detail.into(),
    }
}

/// An output opened, with its shape checked: the container, `moov` before `mdat` for MP4, and
/// one stream of each expected codec (`(index, codec)` of the audio and video streams).
struct Opened {
    ictx: format::context::Input,
    audio: Vec<(usize, codec::Id)>,
    video: Vec<(usize, codec::Id)>,
}

fn open_checked(path: &Path, expect: Expect) -> Result<Opened, MediaError> {
    libav::clear_last_error();
    let ictx =
        format::input(&path).map_err(|e| failed(format!("cannot open output: {}", libav::describe(e))))?;
    let container = ictx.format().name().to_string();
    let (want_container, want_audio, want_video) = match expect {
        Expect::Mp3 => ("mp3", Some(codec::Id::MP3), None),
        Expect::Mp4 { audio } => (
            "mov,mp4,m4a,3gp,3g2,mj2",
            audio.then_some(codec::Id::AAC),
            Some(codec::Id::H264),
        ),
    };
    if container != want_container {
        return Err(failed(format!(
            "container is {container}, expected {want_container}"
        )));
    }
    if matches!(expect, Expect::Mp4 { .. }) && !moov_before_mdat(path)? {
        return Err(failed(
            "MP4 has its index (moov) after the media data: players cannot start early",
        ));
    }
    let found = |kind: media::Type| -> Vec<(usize, codec::Id)> {
        ictx.streams()
            .filter(|s| s.parameters().medium() == kind)
            .map(|s| (s.index(), s.parameters().id()))
            .collect()
    };
    let audio_streams = found(media::Type::Audio);
    let video_streams = found(media::Type::Video);
    check_streams("audio", &audio_streams, want_audio)?;
    check_streams("video", &video_streams, want_video)?;
    Ok(Opened {
        ictx,
        audio: audio_streams,
        video: video_streams,
    })
}

/// Decodes `path` completely and checks its shape against `expect`.
pub fn check_output(path: &Path, expect: Expect) -> Result<Checked, MediaError> {
    let Opened {
        mut ictx,
        audio: audio_streams,
        video: video_streams,
    } = open_checked(path, expect)?;
    let mut audio = audio_streams
        .first()
        .map(|(i, _)| open_decoder(&ictx, *i))
        .transpose()?;
    let mut video = video_streams
        .first()
        .map(|(i, _)| open_decoder(&ictx, *i))
        .transpose()?;
    let time_bases: Vec<_> = ictx.streams().map(|s| s.time_base()).collect();
    let mut checked = Checked::default();
    let frame_rate = video_streams
        .first()
        .and_then(|(i, _)| ictx.stream(*i))
        .map_or(0.0, |s| f64::from(s.avg_frame_rate()));
    let mut span = Span::with_frame_rate(frame_rate);
    let mut samples_seconds = 0.0;
    let mut audio_frame = frame::Audio::empty();
    let mut video_frame = frame::Video::empty();
    let mut packet = ffmpeg::Packet::empty();
    loop {
        let end = match packet.read(&mut ictx) {
            Ok(()) => false,
            Err(ffmpeg::Error::Eof) => true,
            Err(e) => return Err(failed(format!("reading output: {}", libav::describe(e)))),
        };
        let index = packet.stream();
        if let Some((_, dec)) = audio.as_mut().filter(|(i, _)| end || *i == index) {
            feed(dec, if end { None } else { Some(&packet) })?;
            while dec.receive_frame(&mut audio_frame).is_ok() {
                if audio_frame.rate() > 0 {
                    samples_seconds += audio_frame.samples() as f64 / f64::from(audio_frame.rate());
                }
            }
        }
        if let Some((i, dec)) = video.as_mut().filter(|(i, _)| end || *i == index) {
            let tb = time_bases[*i];
            feed(dec, if end { None } else { Some(&packet) })?;
            while dec.receive_frame(&mut video_frame).is_ok() {
                checked.width = Some(video_frame.width());
                checked.height = Some(video_frame.height());
                if let Some((start, duration)) = libav::frame_times(&video_frame, tb) {
                    span.add(start, duration);
                }
            }
        }
        if end {
            break;
        }
    }
    checked.audio_seconds = samples_seconds;
    checked.video_seconds = span.seconds();
    not_empty(&checked, !audio_streams.is_empty(), !video_streams.is_empty())?;
    Ok(checked)
}

/// Checks the shape of `path` against `expect` and that it holds every packet of `decoded`,
/// demuxing only: the packets' bitstream was decoded on its way into the muxer (see
/// [`super::stream_check`]), so only what the muxer did with it is left to check.
pub fn check_container(path: &Path, expect: Expect, decoded: &Decoded) -> Result<Checked, MediaError> {
    let Opened {
        mut ictx,
        audio,
        video,
    } = open_checked(path, expect)?;
    let mut found = vec![0u64; decoded.packets.len().max(ictx.streams().count())];
    let mut packet = ffmpeg::Packet::empty();
    loop {
        match packet.read(&mut ictx) {
            Ok(()) => found[packet.stream()] += 1,
            Err(ffmpeg::Error::Eof) => break,
            Err(e) => return Err(failed(format!("reading output: {}", libav::describe(e)))),
        }
    }
    if found != decoded.packets {
        return Err(failed(format!(
            "the file holds packets {found:?} per stream, {:?} were written",
            decoded.packets
        )));
    }
    let checked = Checked {
        audio_seconds: decoded.audio_seconds,
        video_seconds: decoded.video_seconds,
        width: decoded.width,
        height: decoded.height,
    };
    not_empty(&checked, !audio.is_empty(), !video.is_empty())?;
    Ok(checked)
}

fn not_empty(checked: &Checked, audio: bool, video: bool) -> Result<(), MediaError> {
    if audio && checked.audio_seconds <= 0.0 {
        return Err(failed("the audio track decodes to nothing"));
    }
    if video && checked.video_seconds <= 0.0 {
        return Err(failed("the video track decodes to no frames"));
    }
    Ok(())
}

fn check_streams(
    kind: &str,
    found: &[(usize, codec::Id)],
    want: Option<codec::Id>,
) -> Result<(), MediaError> {
    match (want, found) {
        (None, []) => Ok(()),
        (Some(w), [(_, id)]) if *id == w => Ok(()),
        (want, found) => Err(failed(format!(
            "expected {} {kind} stream, found {:?}",
            want.map_or("no".to_string(), |w| format!("one {w:?}")),
            found.iter().map(|(_, id)| *id).collect::<Vec<_>>()
        ))),
    }
}

fn open_decoder(
    ictx: &format::context::Input,
    index: usize,
) -> Result<(usize, ffmpeg::decoder::Opened), MediaError> {
    let stream = ictx.stream(index).expect("index from this input");
    Ok((
        index,
        output_decoder(stream.parameters(), stream.time_base(), true)?,
    ))
}

/// A decoder for an output stream of these `parameters`, frame-threaded with the job's threads
/// or on one thread.
pub(super) fn output_decoder(
    parameters: codec::Parameters,
    time_base: ffmpeg::Rational,
    threaded: bool,
) -> Result<ffmpeg::decoder::Opened, MediaError> {
    let id = parameters.id();
    let mut context = codec::context::Context::from_parameters(parameters)
        .map_err(|e| failed(format!("output stream: {e}")))?;
    if threaded {
        threads::set_decoder_threading(&mut context);
    } else {
        context.set_threading(codec::threading::Config::count(1));
    }
    // The deblocking filter only smooths pictures already decoded: skipping it hides no error
    // and saves about a third of an H.264 decode.
    // SAFETY: a plain field of a live codec context that is not opened yet.
    unsafe { (*context.as_mut_ptr()).skip_loop_filter = ffmpeg::ffi::AVDiscard::AVDISCARD_ALL };
    let mut decoder = context.decoder();
    decoder.set_packet_time_base(time_base);
    let codec = ffmpeg::decoder::find(id).ok_or_else(|| failed("no decoder for the output's codec"))?;
    decoder
        .open_as(codec)
        .map_err(|e| failed(format!("output decoder: {}", libav::describe(e))))
}

/// Sends a packet (or the end, `None`) to an output's decoder; any error but "again" fails.
pub(super) fn feed(
    decoder: &mut ffmpeg::decoder::Opened,
    packet: Option<&ffmpeg::Packet>,
) -> Result<(), MediaError> {
    let sent = match packet {
        Some(p) => decoder.send_packet(p),
        None => decoder.send_eof(),
    };
    match sent {
        Ok(()) => Ok(()),
        Err(e) if libav::is_again(&e) || e == ffmpeg::Error::Eof => Ok(()),
        Err(e) => Err(failed(format!(
            "output does not decode cleanly: {}",
            libav::describe(e)
        ))),
    }
}

/// Whether the top-level `moov` box comes before `mdat`.
fn moov_before_mdat(path: &Path) -> Result<bool, MediaError> {
    let mut file = std::fs::File::open(path).map_err(|e| MediaError::io("reading output", e))?;
    let len = file
        .metadata()
        .map_err(|e| MediaError::io("reading output", e))?
        .len();
    let mut offset = 0u64;
    let mut header = [0u8; 16];
    while offset + 8 <= len {
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(offset))
            .map_err(|e| MediaError::io("reading output", e))?;
        file.read_exact(&mut header[..8])
            .map_err(|e| MediaError::io("reading output", e))?;
        let size32 = u32::from_be_bytes(header[..4].try_into().expect("4 bytes"));
        let size = match size32 {
            1 => {
                file.read_exact(&mut header[8..16])
                    .map_err(|e| MediaError::io("reading output", e))?;
                u64::from_be_bytes(header[8..16].try_into().expect("8 bytes"))
            }
            0 => len - offset,
            n => u64::from(n),
        };
        match &header[4..8] {
            b"moov" => return Ok(true),
            b"mdat" => return Ok(false),
            _ => {}
        }
        if size < 8 {
            break;
        }
        offset += size;
    }
    Ok(false)
}

/// Checks one track's output duration against its decoded source.
pub fn compare(
    track: &str,
    source_seconds: f64,
    output_seconds: f64,
    settings: &VerifySettings,
) -> Result<(), MediaError> {
    let source_ms = (source_seconds * 1000.0).round() as u64;
    let output_ms = (output_seconds * 1000.0).round() as u64;
    let tolerance_ms = settings.tolerance_ms(source_ms);
    if source_ms.abs_diff(output_ms) > tolerance_ms {
        tracing::warn!(track, source_ms, output_ms, "duration mismatch");
        return Err(MediaError::DurationMismatch {
            output_ms,
            source_ms,
            tolerance_ms,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_is_the_larger_of_absolute_and_relative() {
        let s = VerifySettings::default();
        assert!(compare("audio", 10.0, 10.1, &s).is_ok());
        assert!(compare("audio", 10.0, 10.2, &s).is_err());
        assert!(compare("audio", 100.0, 100.9, &s).is_ok(), "1 % of 100 s is 1 s");
        assert!(compare("audio", 100.0, 98.5, &s).is_err());
    }
}
