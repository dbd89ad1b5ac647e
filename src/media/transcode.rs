//! The demux → tracks → mux loop shared by the audio (MP3) and video (MP4) paths.
//!
//! In: an input path, its probe, a profile and a private work directory. Out: a verified
//! [`Rendition`]. Decode errors are counted with the position of the first; more than the
//! profile allows fails the job with that position, so a corrupt upload is never passed off as a
//! good one. Decoding past the profile's duration limit stops at once (headers can understate).

use std::path::Path;

use ffmpeg::{format, Dictionary, Rescale};
use ffmpeg_next as ffmpeg;

use super::audio_track::AudioTrack;
use super::decode::DecodeErrors;
use super::mux::Mux;
use super::video_track::VideoTrack;
use super::{libav, thumbnail, verify, MediaError, Probe, Rendition};
use crate::profile::Profile;

pub fn audio_to_mp3(
    input: &Path,
    probe: &Probe,
    profile: &Profile,
    work_dir: &Path,
) -> Result<Rendition, MediaError> {
    let settings = profile
        .settings
        .audio
        .as_ref()
        .expect("validated audio profile has [audio]");
    let stream_index = probe.audio_stream.ok_or_else(|| MediaError::NoStream {
        detail: "no audio stream".into(),
    })?;
    let out_path = work_dir.join("media.mp3");
    let mut ictx = open_input(input)?;
    let mut octx = format::output_as(&out_path, "mp3").map_err(|e| MediaError::encode("creating MP3", e))?;
    let stream = ictx.stream(stream_index).expect("probed stream exists");
    let mut audio = AudioTrack::new(
        &stream,
        settings,
        profile.settings.loudness.as_ref(),
        &mut octx,
        profile.settings.thumbnail.is_some(),
    )?;
    let mut header = Dictionary::new();
    // No ID3 tag: the source's tags (names, phone numbers) stay out of the output. The Xing/LAME
    // frame that carries the exact length and gapless trim is still written.
    header.set("id3v2_version", "0");
    header.set("write_xing", "1");
    octx.write_header_with(header)
        .map_err(|e| MediaError::encode("writing MP3 header", libav::describe(e)))?;
    audio.after_header(&octx);

    let mut errors = DecodeErrors::new(profile).forgiving_tail(probe.untrusted_duration.is_some());
    let mut mux = Mux::new(octx);
    only_streams(&mut ictx, &[stream_index]);
    pump(&mut ictx, &mut mux, Some(&mut audio), None, &mut errors)?;
    audio.finish(&mut mux, &mut errors)?;
    mux.finish("finishing MP3")?;
    errors.check(&profile.settings.verify)?;
    // Decoders, filters and the encoder are done: free them before decoding the output.
    let (source_seconds, peaks) = (audio.decoded_seconds, audio.peaks.take());
    drop(audio);
    drop(ictx);

    if source_seconds < 0.001 {
        return Err(MediaError::NoStream {
            detail: "the audio stream decodes to less than a millisecond".into(),
        });
    }
    let checked = verify::check_output(&out_path, verify::Expect::Mp3)?;
    verify::compare(
        "audio",
        source_seconds,
        checked.audio_seconds,
        &profile.settings.verify,
    )?;

    let thumbnail = match (peaks, &profile.settings.thumbnail) {
        (Some(peaks), Some(t)) => Some(peaks.write_png(
            t.width,
            t.height.unwrap_or(t.width / 5),
            &work_dir.join("thumb.png"),
        )?),
        _ => None,
    };
    Ok(Rendition {
        mime: "audio/mpeg".into(),
        extension: "mp3".into(),
        bytes: file_len(&out_path)?,
        path: out_path,
        duration_ms: Some(ms(checked.audio_seconds)),
        source_duration_ms: Some(ms(source_seconds)),
        width: None,
        height: None,
        thumbnail,
    })
}

pub fn video_to_mp4(
    input: &Path,
    probe: &Probe,
    profile: &Profile,
    work_dir: &Path,
) -> Result<Rendition, MediaError> {
    let video_settings = profile
        .settings
        .video
        .as_ref()
        .expect("validated video profile has [video]");
    let video_index = probe.video_stream.ok_or_else(|| MediaError::NoStream {
        detail: "no video stream".into(),
    })?;
    let upright = (probe.width.unwrap_or(2), probe.height.unwrap_or(2));
    let out_path = work_dir.join("media.mp4");
    let mut ictx = open_input(input)?;
    let mut octx = format::output_as(&out_path, "mp4").map_err(|e| MediaError::encode("creating MP4", e))?;

    let declared = probe.duration_ms.map_or(f64::NAN, |ms| ms as f64 / 1000.0);
    let stream = ictx.stream(video_index).expect("probed stream exists");
    let mut video = VideoTrack::new(
        &stream,
        upright,
        probe.rotation,
        video_settings,
        &mut octx,
        declared,
    )?;
    video.prepare(&mut octx)?;
    let mut audio = match (probe.audio_stream, profile.settings.audio.as_ref()) {
        (Some(index), Some(settings)) => {
            let stream = ictx.stream(index).expect("probed stream exists");
            Some(AudioTrack::new(
                &stream,
                settings,
                profile.settings.loudness.as_ref(),
                &mut octx,
                false,
            )?)
        }
        _ => None,
    };
    let mut header = Dictionary::new();
    // moov before mdat, so playback starts before the whole file has arrived.
    header.set("movflags", "+faststart");
    octx.write_header_with(header)
        .map_err(|e| MediaError::encode("writing MP4 header", libav::describe(e)))?;
    video.after_header(&octx);
    if let Some(a) = audio.as_mut() {
        a.after_header(&octx);
    }

    let mut errors = DecodeErrors::new(profile).forgiving_tail(probe.untrusted_duration.is_some());
    let wanted: Vec<usize> = std::iter::once(video_index)
        .chain(audio.as_ref().map(|a| a.input_index))
        .collect();
    let mut mux = Mux::new(octx);
    // The output is decoded while it is made (see `stream_check`): nobody waits for a second
    // pass over the file afterwards.
    mux.check_streams()?;
    only_streams(&mut ictx, &wanted);
    pump(&mut ictx, &mut mux, audio.as_mut(), Some(&mut video), &mut errors)?;
    video.finish(&mut mux, &mut errors)?;
    if let Some(a) = audio.as_mut() {
        a.finish(&mut mux, &mut errors)?;
    }
    let decoded = mux
        .finish("finishing MP4")?
        .expect("the MP4 output's streams are checked");
    errors.check(&profile.settings.verify)?;
    // Decoders, filters and encoders are done: free them before the written file is checked.
    let source_video = video.span.seconds();
    let source_audio = audio.as_ref().map(|a| a.decoded_seconds);
    let (out_width, out_height) = (video.out_width, video.out_height);
    let picked = video.picker.take_frame();
    drop(video);
    drop(audio);
    drop(ictx);

    if source_video <= 0.0 {
        return Err(MediaError::NoStream {
            detail: "the video stream decoded to no frames".into(),
        });
    }
    let expect_audio = source_audio.is_some_and(|seconds| seconds > 0.0);
    let checked = verify::check_container(&out_path, verify::Expect::Mp4 { audio: expect_audio }, &decoded)?;
    verify::compare(
        "video",
        source_video,
        checked.video_seconds,
        &profile.settings.verify,
    )?;
    if let Some(source_audio) = source_audio.filter(|_| expect_audio) {
        verify::compare(
            "audio",
            source_audio,
            checked.audio_seconds,
            &profile.settings.verify,
        )?;
    }
    if (checked.width, checked.height) != (Some(out_width), Some(out_height)) {
        return Err(MediaError::VerifyFailed {
            detail: format!(
                "picture is {:?}x{:?}, expected {}x{}",
                checked.width, checked.height, out_width, out_height
            ),
        });
    }

    let thumbnail = match (&profile.settings.thumbnail, picked) {
        (Some(t), Some(frame)) => Some(thumbnail::write_jpeg(&frame, t, &work_dir.join("thumb.jpg"))?),
        (Some(_), None) => {
            return Err(MediaError::Thumbnail {
                detail: "no frame to make a thumbnail from".into(),
            })
        }
        (None, _) => None,
    };
    let source_seconds = source_video.max(source_audio.unwrap_or(0.0));
    Ok(Rendition {
        mime: "video/mp4".into(),
        extension: "mp4".into(),
        bytes: file_len(&out_path)?,
        path: out_path,
        duration_ms: Some(ms(checked.video_seconds.max(checked.audio_seconds))),
        source_duration_ms: Some(ms(source_seconds)),
        width: Some(out_width),
        height: Some(out_height),
        thumbnail,
    })
}

fn open_input(input: &Path) -> Result<format::context::Input, MediaError> {
    libav::clear_last_error();
    format::input(&input).map_err(|e| MediaError::Unreadable {
        detail: libav::describe(e),
    })
}

/// Tells the demuxer to drop every stream but `keep`: less to read and nothing to decode.
fn only_streams(ictx: &mut format::context::Input, keep: &[usize]) {
    // SAFETY: `ictx` owns an open format context; `streams` holds `nb_streams` valid stream
    // pointers, and setting `discard` before reading packets is how libav expects it used.
    unsafe {
        let ctx = ictx.as_mut_ptr();
        for i in 0..(*ctx).nb_streams as usize {
            if !keep.contains(&i) {
                (**(*ctx).streams.add(i)).discard = ffmpeg::ffi::AVDiscard::AVDISCARD_ALL;
            }
        }
    }
}

/// Reads every packet and hands it to its track. Timestamps are shifted so the file starts at
/// zero (MPEG-TS and some MOVs start at an arbitrary clock value).
fn pump(
    ictx: &mut format::context::Input,
    mux: &mut Mux,
    mut audio: Option<&mut AudioTrack>,
    mut video: Option<&mut VideoTrack>,
    errors: &mut DecodeErrors,
) -> Result<(), MediaError> {
    // SAFETY: `ictx` owns an open format context; reading a plain field.
    let start = unsafe { (*ictx.as_ptr()).start_time };
    let start = if start == ffmpeg::ffi::AV_NOPTS_VALUE {
        0
    } else {
        start
    };
    let time_bases: Vec<ffmpeg::Rational> = ictx.streams().map(|s| s.time_base()).collect();
    loop {
        let mut packet = ffmpeg::Packet::empty();
        match packet.read(ictx) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => return Ok(()),
            Err(e) if libav::is_again(&e) => continue,
            Err(e) => {
                // Like the ffmpeg CLI: a read error ends the input; what came before stands.
                errors.record(None, libav::describe(e));
                return Ok(());
            }
        }
        let index = packet.stream();
        let offset = start.rescale(ffmpeg::rescale::TIME_BASE, time_bases[index]);
        if offset != 0 {
            packet.set_pts(packet.pts().map(|p| p - offset));
            packet.set_dts(packet.dts().map(|d| d - offset));
        }
        if let Some(v) = video.as_deref_mut().filter(|v| v.input_index == index) {
            v.send_packet(&packet, mux, errors)?;
        } else if let Some(a) = audio.as_deref_mut().filter(|a| a.input_index == index) {
            a.send_packet(&packet, mux, errors)?;
        }
    }
}

fn file_len(path: &Path) -> Result<u64, MediaError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| MediaError::io("reading output size", e))
}

fn ms(seconds: f64) -> u64 {
    (seconds * 1000.0).round().max(0.0) as u64
}
