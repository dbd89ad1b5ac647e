//! Verification beside the transcode: every packet the encoders hand the muxer is decoded on a
//! side thread while the transcode goes on.
//!
//! In: the output's streams once the muxer has written its header, then a copy of each packet
//! on its way into the muxer. Out: [`Decoded`] — what those packets decode to (each track's
//! duration, the picture size) and how many packets each stream was given, so the written file
//! can then be checked by demuxing alone ([`super::verify::check_container`]): same packets,
//! same shape. Fails with [`MediaError::VerifyFailed`] when a packet does not decode cleanly.
//!
//! Why beside and not after: a full decode of the written file runs after the last frame is
//! encoded, so a caller waits for it (0.8 s on a 60 s 1080p clip here, frame-threaded). Beside
//! the transcode, one thread decodes as the packets come: it takes the moments the transcode's
//! threads leave a core idle, and a single-threaded decode costs less CPU than a frame-threaded
//! one. The thread keeps the normal priority: at idle priority it was no faster, and on a host
//! kept busy by other programs it could starve and stall the job. The bitstream decoded is the
//! one in the file; the muxer only reframes H.264 units (start codes to lengths) and places
//! packets.
//!
//! Packets wait in a bounded queue ([`QUEUE`]); the decoder is many times faster than the
//! encoder, so it stays near empty, and when it is full the transcode waits for the decoder.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use ffmpeg::{codec, format, frame, media, Rational};
use ffmpeg_next as ffmpeg;

use super::decode::Span;
use super::{libav, verify, MediaError};

/// Packets that may wait for the side thread: about 13 s of 30 fps video with its audio.
const QUEUE: usize = 1024;

/// What the encoders' packets decoded to.
#[derive(Debug, Default, Clone)]
pub struct Decoded {
    pub audio_seconds: f64,
    pub video_seconds: f64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Packets given to each output stream, by stream index.
    pub packets: Vec<u64>,
}

/// The side thread and the queue to it.
pub struct StreamCheck {
    queue: Option<SyncSender<ffmpeg::Packet>>,
    thread: JoinHandle<Result<Decoded, MediaError>>,
}

/// One output stream as the side thread needs it (owned copies: nothing shared with the muxer).
struct StreamSpec {
    parameters: codec::Parameters,
    time_base: Rational,
    frame_rate: f64,
}

fn failed(detail: impl Into<String>) -> MediaError {
    MediaError::VerifyFailed {
        detail: detail.into(),
    }
}

impl StreamCheck {
    /// Starts the side thread for `streams`: an output's, once its header is written (their
    /// parameters and time bases are final then).
    pub fn start<'a>(
        streams: impl Iterator<Item = format::stream::Stream<'a>>,
    ) -> Result<StreamCheck, MediaError> {
        let specs: Vec<StreamSpec> = streams
            .map(|s| StreamSpec {
                // `clone` makes an owned copy; the borrowed parameters must not leave this thread.
                parameters: s.parameters().clone(),
                time_base: s.time_base(),
                frame_rate: f64::from(s.avg_frame_rate()),
            })
            .collect();
        let (queue, packets) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("verify".into())
            .spawn(move || decode_all(specs, packets))
            .map_err(|e| MediaError::io("starting the verification thread", e))?;
        Ok(StreamCheck {
            queue: Some(queue),
            thread,
        })
    }

    /// Hands the side thread a copy of `packet`, which is about to go into the muxer. Waits
    /// only when the queue is full. After a decode error the thread has stopped; its error
    /// comes out of [`StreamCheck::finish`].
    pub fn send(&mut self, packet: &ffmpeg::Packet) {
        if let Some(queue) = &self.queue {
            if queue.send(packet.clone()).is_err() {
                self.queue = None;
            }
        }
    }

    /// Ends the stream, waits for the side thread and returns what it decoded: every packet
    /// sent, or the error that stopped it.
    pub fn finish(mut self) -> Result<Decoded, MediaError> {
        self.queue = None;
        self.thread
            .join()
            .map_err(|_| failed("the verification thread panicked"))?
    }
}

/// One stream's decoder and what it has produced so far.
struct Track {
    decoder: ffmpeg::decoder::Opened,
    time_base: Rational,
    medium: media::Type,
    span: Span,
    /// Audio samples at or after time zero, in seconds (the encoder's priming samples come
    /// before it; the MP4 edit list tells players to leave them out).
    samples_seconds: f64,
}

fn decode_all(specs: Vec<StreamSpec>, packets: Receiver<ffmpeg::Packet>) -> Result<Decoded, MediaError> {
    libav::clear_last_error();
    let mut tracks = specs.into_iter().map(open).collect::<Result<Vec<_>, _>>()?;
    let mut decoded = Decoded {
        packets: vec![0; tracks.len()],
        ..Decoded::default()
    };
    let mut audio_frame = frame::Audio::empty();
    let mut video_frame = frame::Video::empty();
    for packet in packets {
        let index = packet.stream();
        let Some(track) = tracks.get_mut(index) else {
            return Err(failed(format!(
                "a packet for stream {index}, which the output lacks"
            )));
        };
        decoded.packets[index] += 1;
        verify::feed(&mut track.decoder, Some(&packet))?;
        drain(track, &mut decoded, &mut audio_frame, &mut video_frame);
    }
    for track in &mut tracks {
        verify::feed(&mut track.decoder, None)?;
        drain(track, &mut decoded, &mut audio_frame, &mut video_frame);
        match track.medium {
            media::Type::Audio => decoded.audio_seconds += track.samples_seconds,
            _ => decoded.video_seconds = decoded.video_seconds.max(track.span.seconds()),
        }
    }
    Ok(decoded)
}

fn open(spec: StreamSpec) -> Result<Track, MediaError> {
    let medium = spec.parameters.medium();
    let decoder = verify::output_decoder(spec.parameters, spec.time_base, false)?;
    Ok(Track {
        decoder,
        time_base: spec.time_base,
        medium,
        span: Span::with_frame_rate(spec.frame_rate),
        samples_seconds: 0.0,
    })
}

fn drain(
    track: &mut Track,
    decoded: &mut Decoded,
    audio_frame: &mut frame::Audio,
    video_frame: &mut frame::Video,
) {
    match track.medium {
        media::Type::Audio => {
            while track.decoder.receive_frame(audio_frame).is_ok() {
                let rate = audio_frame.rate();
                if rate == 0 {
                    continue;
                }
                let length = audio_frame.samples() as f64 / f64::from(rate);
                let start = libav::seconds(audio_frame.timestamp(), track.time_base).unwrap_or(0.0);
                track.samples_seconds += (start + length).max(0.0) - start.max(0.0);
            }
        }
        _ => {
            while track.decoder.receive_frame(video_frame).is_ok() {
                decoded.width = Some(video_frame.width());
                decoded.height = Some(video_frame.height());
                if let Some((start, duration)) = libav::frame_times(video_frame, track.time_base) {
                    track.span.add(start, duration);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use super::*;
    use crate::media::verify::{check_container, check_output, Expect};

    /// A 2 s 320x240 H.264 + AAC MP4 with `moov` first, as the MP4 path writes them.
    fn clip(dir: &Path) -> PathBuf {
        let path = dir.join("clip.mp4");
        let status = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=320x240:rate=25:duration=2")
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:duration=2:sample_rate=48000",
            ])
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac", "-b:a", "64k",
            ])
            .args(["-movflags", "+faststart"])
            .arg(&path)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success());
        path
    }

    /// Demuxes `path` and hands its packets to a stream check, as the muxer would be handed
    /// them, letting `alter` drop (false) or change each one.
    fn check_packets(
        path: &Path,
        mut alter: impl FnMut(usize, &mut ffmpeg::Packet) -> bool,
    ) -> Result<Decoded, MediaError> {
        crate::media::init();
        let mut ictx = format::input(&path).expect("clip opens");
        let mut check = StreamCheck::start(ictx.streams())?;
        for (n, (_, mut packet)) in ictx.packets().enumerate() {
            if alter(n, &mut packet) {
                check.send(&packet);
            }
        }
        check.finish()
    }

    #[test]
    fn the_packets_decode_to_what_the_written_file_decodes_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = clip(dir.path());
        let live = check_packets(&path, |_, _| true).expect("packets decode");
        let file = check_output(&path, Expect::Mp4 { audio: true }).expect("file decodes");
        assert!(
            (live.video_seconds - file.video_seconds).abs() < 0.001,
            "{live:?} {file:?}"
        );
        assert!(
            (live.audio_seconds - file.audio_seconds).abs() < 0.001,
            "{live:?} {file:?}"
        );
        assert!((live.video_seconds - 2.0).abs() < 0.001, "{live:?}");
        assert_eq!((live.width, live.height), (Some(320), Some(240)));
        let checked =
            check_container(&path, Expect::Mp4 { audio: true }, &live).expect("file holds every packet");
        assert_eq!(checked.video_seconds, live.video_seconds);
    }

    #[test]
    fn a_file_missing_a_written_packet_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = clip(dir.path());
        let mut live = check_packets(&path, |_, _| true).expect("packets decode");
        live.packets[0] += 1;
        let err = check_container(&path, Expect::Mp4 { audio: true }, &live).unwrap_err();
        assert_eq!(err.code().id(), "verify-failed", "{err}");
        assert!(err.to_string().contains("packets"), "{err}");
    }

    #[test]
    fn a_packet_that_does_not_decode_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = clip(dir.path());
        let mut damaged = 0;
        let err = check_packets(&path, |n, packet| {
            if n >= 10 && damaged < 3 {
                if let Some(data) = packet.data_mut() {
                    data.fill(0xff);
                    damaged += 1;
                }
            }
            true
        })
        .unwrap_err();
        assert_eq!(err.code().id(), "verify-failed", "{err}");
        assert!(err.to_string().contains("decode"), "{err}");
    }
}
