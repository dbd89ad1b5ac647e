//! One video stream through decode → filter → x264, feeding the MP4 muxer.
//!
//! In: packets of the chosen input stream, with the display rotation from the probe. Out: H.264
//! packets of the upright picture, bounded per profile (aspect kept, even sizes), frame rate
//! capped, in yuv420p; the decoded source span; and a thumbnail candidate picked from the frames
//! on their way to the encoder (so the thumbnail costs no second decode and is upright by
//! construction). Rotation is applied to the pixels, so the output carries no display matrix.

use ffmpeg::{codec, decoder, encoder, filter, format, frame, Dictionary, Rational, Rescale};
use ffmpeg_next as ffmpeg;

use super::decode::{DecodeErrors, Span};
use super::filters::{fps_cap, frame_rate, tone_map_filters, upright_graph};
use super::libav;
use super::mux::Mux;
use super::threads;
use super::thumbnail::FramePicker;
use super::MediaError;
use crate::profile::VideoSettings;

pub struct VideoTrack {
    pub input_index: usize,
    input_time_base: Rational,
    decoder: decoder::Video,
    graph: filter::Graph,
    encoder: Option<encoder::Video>,
    /// Kept until the first filtered frame tells the encoder its time base.
    pending: Option<PendingEncoder>,
    output_index: usize,
    output_time_base: Rational,
    pub out_width: u32,
    pub out_height: u32,
    /// Duration of one frame in the encoder's time base, for packets the encoder leaves
    /// without one (the muxer needs it for the last frame).
    frame_duration: i64,
    /// Timestamp of the last frame sent to the encoder: frames must arrive strictly later.
    last_pts: Option<i64>,
    pub span: Span,
    pub picker: FramePicker,
}

struct PendingEncoder {
    codec: ffmpeg::Codec,
    options: Vec<(String, String)>,
    frame_rate: Rational,
    global_header: bool,
    /// The picture was tone-mapped from HDR: the output is tagged BT.709 SDR.
    tone_mapped: bool,
}

/// The output size for an upright picture of `width`x`height`: inside the profile's box (long
/// edge × short edge, turned to match the picture), aspect kept, even, never enlarged.
pub fn bounded_size(width: u32, height: u32, settings: &VideoSettings) -> (u32, u32) {
    let (box_w, box_h) = if width >= height {
        (settings.long_edge, settings.short_edge)
    } else {
        (settings.short_edge, settings.long_edge)
    };
    let scale = (f64::from(box_w) / f64::from(width))
        .min(f64::from(box_h) / f64::from(height))
        .min(1.0);
    let even = |v: f64| ((v / 2.0).round() as u32 * 2).max(2);
    (even(f64::from(width) * scale), even(f64::from(height) * scale))
}

impl VideoTrack {
    /// Opens the decoder and builds the filter graph. The encoder opens on the first frame.
    pub fn new(
        stream: &format::stream::Stream,
        upright: (u32, u32),
        rotation: u32,
        settings: &VideoSettings,
        octx: &mut format::context::Output,
        thumbnail_at: f64,
    ) -> Result<VideoTrack, MediaError> {
        let mut context = codec::context::Context::from_parameters(stream.parameters()).map_err(|e| {
            MediaError::Unreadable {
                detail: format!("video stream: {}", libav::describe(e)),
            }
        })?;
        threads::set_decoder_threading(&mut context);
        let mut decoder = context.decoder().video().map_err(|e| MediaError::Unreadable {
            detail: format!("video decoder: {}", libav::describe(e)),
        })?;
        decoder.set_packet_time_base(stream.time_base());

        if decoder.format() == format::Pixel::None {
            return Err(MediaError::Unreadable {
                detail: "the video stream declares no pixel format (no picture data)".into(),
            });
        }
        let (out_width, out_height) = bounded_size(upright.0, upright.1, settings);
        let cap = fps_cap(stream, settings.max_fps);
        let frame_rate = match frame_rate(stream) {
            Some(r) if cap.is_none() => r,
            _ => Rational::new(settings.max_fps as i32, 1),
        };
        let build = |tone_map: &str| {
            upright_graph(
                &decoder,
                stream.time_base(),
                rotation,
                (out_width, out_height),
                cap,
                tone_map,
            )
        };
        let graph_error = |e| MediaError::encode("video filter graph", libav::describe(e));
        let tone_map = tone_map_filters(&decoder);
        let (graph, hdr) = match build(&tone_map) {
            Ok(graph) => (graph, !tone_map.is_empty()),
            // An FFmpeg without zimg: the picture is kept, untouched, rather than refused.
            Err(e) if !tone_map.is_empty() => {
                tracing::warn!(error = %libav::describe(e), "cannot tone-map this HDR video; kept as it is");
                (build("").map_err(graph_error)?, false)
            }
            Err(e) => return Err(graph_error(e)),
        };

        let codec = encoder::find_by_name("libx264")
            .ok_or_else(|| MediaError::encode("video encoder", "libx264 is not available in this libav"))?;
        let mut ost = octx
            .add_stream(codec)
            .map_err(|e| MediaError::encode("adding video stream", e))?;
        let output_index = ost.index();
        // Real parameters are set once the encoder is open; the muxer needs a stream now.
        ost.set_time_base(Rational::new(1, 90000));
        let options = vec![
            ("preset".to_string(), settings.preset.as_str().to_string()),
            ("crf".to_string(), settings.crf.to_string()),
            ("profile".to_string(), settings.h264_profile.as_str().to_string()),
            ("threads".to_string(), threads::encoder_threads().to_string()),
        ];
        Ok(VideoTrack {
            input_index: stream.index(),
            input_time_base: stream.time_base(),
            decoder,
            graph,
            encoder: None,
            pending: Some(PendingEncoder {
                codec,
                options,
                frame_rate,
                global_header: octx.format().flags().contains(format::flag::Flags::GLOBAL_HEADER),
                tone_mapped: hdr,
            }),
            output_index,
            output_time_base: Rational::new(1, 90000),
            out_width,
            out_height,
            frame_duration: 0,
            last_pts: None,
            span: Span::with_frame_rate(f64::from(frame_rate)),
            picker: FramePicker::new(thumbnail_at),
        })
    }

    /// Opens the encoder with the graph's output time base and gives the muxer its parameters.
    /// Must run before the header is written: the first frame is pulled through the graph by
    /// [`VideoTrack::prime`].
    fn open_encoder(
        &mut self,
        time_base: Rational,
        octx: &mut format::context::Output,
    ) -> Result<(), MediaError> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        let mut enc = codec::context::Context::new_with_codec(p.codec)
            .encoder()
            .video()
            .map_err(|e| MediaError::encode("video encoder", e))?;
        enc.set_width(self.out_width);
        enc.set_height(self.out_height);
        enc.set_format(format::Pixel::YUV420P);
        enc.set_time_base(time_base);
        enc.set_frame_rate(Some(p.frame_rate));
        enc.set_aspect_ratio(Rational::new(1, 1));
        if p.tone_mapped {
            // SAFETY: the encoder context is allocated and owned by `enc`, not opened yet, and no
            // other reference to it exists while these fields are set.
            let ptr = unsafe { &mut *enc.as_mut_ptr() };
            ptr.color_primaries = ffmpeg::ffi::AVColorPrimaries::AVCOL_PRI_BT709;
            ptr.color_trc = ffmpeg::ffi::AVColorTransferCharacteristic::AVCOL_TRC_BT709;
            ptr.colorspace = ffmpeg::ffi::AVColorSpace::AVCOL_SPC_BT709;
            ptr.color_range = ffmpeg::ffi::AVColorRange::AVCOL_RANGE_MPEG;
        }
        if p.global_header {
            // SAFETY: `enc` owns a valid, not yet opened encoder context; a plain field update.
            unsafe { (*enc.as_mut_ptr()).flags |= ffmpeg::ffi::AV_CODEC_FLAG_GLOBAL_HEADER as i32 };
        }
        let mut dict = Dictionary::new();
        for (k, v) in &p.options {
            dict.set(k, v);
        }
        let encoder = enc
            .open_as_with(p.codec, dict)
            .map_err(|e| MediaError::encode("opening x264", libav::describe(e)))?;
        let mut ost = octx.stream_mut(self.output_index).expect("stream added in new");
        ost.set_parameters(&encoder);
        ost.set_time_base(time_base);
        self.output_time_base = time_base;
        self.frame_duration = 1i64.rescale(p.frame_rate.invert(), time_base).max(1);
        self.encoder = Some(encoder);
        Ok(())
    }

    /// The encoder's time base is only known once the graph is configured; configure it by
    /// asking the sink (the graph is validated, so its links carry their time bases).
    pub fn prepare(&mut self, octx: &mut format::context::Output) -> Result<(), MediaError> {
        let time_base = self.graph.get("out").expect("graph has out").sink().time_base();
        let time_base = if time_base.numerator() > 0 && time_base.denominator() > 0 {
            time_base
        } else {
            self.input_time_base
        };
        self.open_encoder(time_base, octx)
    }

    pub fn after_header(&mut self, octx: &format::context::Output) {
        if let Some(stream) = octx.stream(self.output_index) {
            self.output_time_base = stream.time_base();
        }
    }

    pub fn send_packet(
        &mut self,
        packet: &ffmpeg::Packet,
        mux: &mut Mux,
        errors: &mut DecodeErrors,
    ) -> Result<(), MediaError> {
        if let Err(e) = self.decoder.send_packet(packet) {
            if !libav::is_again(&e) {
                errors.record(
                    libav::seconds(packet.pts(), self.input_time_base),
                    libav::describe(e),
                );
            }
        }
        self.receive_frames(mux, errors)
    }

    pub fn finish(&mut self, mux: &mut Mux, errors: &mut DecodeErrors) -> Result<(), MediaError> {
        let _ = self.decoder.send_eof();
        self.receive_frames(mux, errors)?;
        self.graph
            .get("in")
            .expect("graph has in")
            .source()
            .flush()
            .map_err(|e| MediaError::encode("video filter flush", e))?;
        self.drain_graph(mux)?;
        if let Some(encoder) = self.encoder.as_mut() {
            encoder
                .send_eof()
                .map_err(|e| MediaError::encode("x264 flush", e))?;
        }
        self.write_packets(mux)
    }

    fn receive_frames(&mut self, mux: &mut Mux, errors: &mut DecodeErrors) -> Result<(), MediaError> {
        let mut decoded = frame::Video::empty();
        loop {
            match self.decoder.receive_frame(&mut decoded) {
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(e) if libav::is_again(&e) => return Ok(()),
                Err(e) => {
                    errors.record(None, libav::describe(e));
                    return Ok(());
                }
            }
            let pts = decoded.timestamp();
            decoded.set_pts(pts);
            if let Some((start, duration)) = libav::frame_times(&decoded, self.input_time_base) {
                self.span.add(start, duration);
                errors.progress(self.span.seconds())?;
            }
            self.graph
                .get("in")
                .expect("graph has in")
                .source()
                .add(&decoded)
                .map_err(|e| MediaError::encode("video filter", libav::describe(e)))?;
            self.drain_graph(mux)?;
        }
    }

    fn drain_graph(&mut self, mux: &mut Mux) -> Result<(), MediaError> {
        let mut filtered = frame::Video::empty();
        loop {
            let mut out = self.graph.get("out").expect("graph has out");
            let mut sink = out.sink();
            match sink.frame(&mut filtered) {
                Ok(()) => {}
                Err(e) if libav::is_again(&e) || e == ffmpeg::Error::Eof => return Ok(()),
                Err(e) => return Err(MediaError::encode("video filter", e)),
            }
            let time_base = sink.time_base();
            // A frame that does not move time forward (broken or repeated timestamps) is
            // dropped, as the ffmpeg CLI does for variable-frame-rate output.
            let Some(pts) = filtered
                .pts()
                .filter(|p| self.last_pts.is_none_or(|last| *p > last))
            else {
                continue;
            };
            self.last_pts = Some(pts);
            if let Some(at) = libav::seconds(Some(pts), time_base) {
                self.picker.offer(&filtered, at);
            }
            // Frame types chosen by the decoder must not force the encoder's hand.
            filtered.set_kind(ffmpeg::picture::Type::None);
            let encoder = self.encoder.as_mut().expect("encoder opened in prepare");
            encoder
                .send_frame(&filtered)
                .map_err(|e| MediaError::encode("x264", libav::describe(e)))?;
            self.write_packets(mux)?;
        }
    }

    fn write_packets(&mut self, mux: &mut Mux) -> Result<(), MediaError> {
        let Some(encoder) = self.encoder.as_mut() else {
            return Ok(());
        };
        let mut packet = ffmpeg::Packet::empty();
        loop {
            match encoder.receive_packet(&mut packet) {
                Ok(()) => {}
                Err(e) if libav::is_again(&e) || e == ffmpeg::Error::Eof => return Ok(()),
                Err(e) => return Err(MediaError::encode("x264", e)),
            }
            packet.set_stream(self.output_index);
            if packet.duration() <= 0 {
                packet.set_duration(self.frame_duration);
            }
            packet.rescale_ts(encoder.time_base(), self.output_time_base);
            mux.write(&packet)
                .map_err(|e| MediaError::encode("writing video", libav::describe(e)))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{H264Profile, VideoCodec, X264Preset};

    fn box720() -> VideoSettings {
        VideoSettings {
            codec: VideoCodec::H264,
            crf: 26,
            preset: X264Preset::Veryfast,
            h264_profile: H264Profile::High,
            long_edge: 1280,
            short_edge: 720,
            max_fps: 30,
        }
    }

    #[test]
    fn sizes_fit_the_box_either_way_up() {
        let s = box720();
        assert_eq!(bounded_size(1920, 1080, &s), (1280, 720));
        assert_eq!(bounded_size(1080, 1920, &s), (720, 1280));
        assert_eq!(bounded_size(320, 240, &s), (320, 240));
        assert_eq!(bounded_size(8704, 64, &s), (1280, 10));
        assert_eq!(bounded_size(175, 99, &s), (176, 100));
        assert_eq!(bounded_size(1, 1, &s), (2, 2));
    }
}
