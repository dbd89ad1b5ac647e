//! One audio stream through decode → filter → encode, feeding a muxer.
//!
//! In: packets of the chosen input stream. Out: encoded packets written to the output (MP3 for
//! audio profiles, AAC inside MP4 for video profiles), the decoded source duration, and
//! optionally the peaks of the encoded signal for a waveform picture. The filter graph
//! (`loudnorm` → `aresample` → `aformat` → sink with the encoder's frame size) is built from the
//! first decoded frame, so it fits what the decoder really produces, and rebuilt if that changes.

use ffmpeg::{codec, decoder, encoder, filter, format, frame, ChannelLayout, Rational, Rescale};
use ffmpeg_next as ffmpeg;

use super::decode::DecodeErrors;
use super::filters::{abuffer_args, simple_graph};
use super::libav;
use super::mux::Mux;
use super::waveform::Peaks;
use super::MediaError;
use crate::profile::{AudioCodec, AudioSettings, Loudness, Rate};

pub struct AudioTrack {
    pub input_index: usize,
    input_time_base: Rational,
    decoder: decoder::Audio,
    encoder: encoder::Audio,
    graph: Option<(filter::Graph, GraphKey)>,
    pre_filters: String,
    output_index: usize,
    output_time_base: Rational,
    /// Encoder timestamp of the next sample: contiguous, so the output has no gaps or overlaps.
    next_pts: Option<i64>,
    /// Samples decoded from the source, in seconds (the source's true length).
    pub decoded_seconds: f64,
    pub peaks: Option<Peaks>,
}

/// What a filter graph was built for; a decoded frame that differs needs a new graph.
#[derive(PartialEq, Clone, Copy)]
struct GraphKey {
    format: format::Sample,
    rate: u32,
    layout: u64,
}

impl AudioTrack {
    /// Opens the decoder for `stream` and an encoder for `settings`, and adds the output stream.
    pub fn new(
        stream: &format::stream::Stream,
        settings: &AudioSettings,
        loudness: Option<&Loudness>,
        octx: &mut format::context::Output,
        collect_peaks: bool,
    ) -> Result<AudioTrack, MediaError> {
        let mut context = codec::context::Context::from_parameters(stream.parameters()).map_err(|e| {
            MediaError::Unreadable {
                detail: format!("audio stream: {}", libav::describe(e)),
            }
        })?;
        context.set_threading(codec::threading::Config::count(1));
        let mut decoder = context.decoder().audio().map_err(|e| MediaError::Unreadable {
            detail: format!("audio decoder: {}", libav::describe(e)),
        })?;
        decoder.set_packet_time_base(stream.time_base());

        let source_channels = decoder.channels().max(1);
        let channels = source_channels.min(settings.channels);
        let layout = ChannelLayout::default(i32::from(channels));
        let codec = match settings.codec {
            AudioCodec::Mp3 => encoder::find_by_name("libmp3lame"),
            AudioCodec::Aac => encoder::find(codec::Id::AAC),
        }
        .ok_or_else(|| MediaError::encode("audio encoder", "not available in this libav"))?;
        let global_header = octx.format().flags().contains(format::flag::Flags::GLOBAL_HEADER);
        let mut enc = codec::context::Context::new_with_codec(codec)
            .encoder()
            .audio()
            .map_err(|e| MediaError::encode("audio encoder", e))?;
        enc.set_rate(settings.sample_rate as i32);
        enc.set_channel_layout(layout);
        enc.set_channels(i32::from(channels));
        enc.set_format(format::Sample::F32(format::sample::Type::Planar));
        enc.set_time_base(Rational::new(1, settings.sample_rate as i32));
        if let (AudioCodec::Mp3, Some(q)) = (settings.codec, settings.lame_quality) {
            enc.set_compression(Some(usize::from(q)));
        }
        match settings.rate() {
            Rate::BitrateKbps(kbps) => enc.set_bit_rate(kbps as usize * 1000),
            // SAFETY: `enc` owns a valid, not yet opened encoder context; plain field updates.
            Rate::VbrQuality(q) => unsafe {
                let ptr = enc.as_mut_ptr();
                (*ptr).flags |= ffmpeg::ffi::AV_CODEC_FLAG_QSCALE as i32;
                (*ptr).global_quality = i32::from(q) * ffmpeg::ffi::FF_QP2LAMBDA;
            },
        }
        if global_header {
            // OR the flag in: replacing all flags would drop QSCALE and other defaults.
            // SAFETY: `enc` owns a valid, not yet opened encoder context; a plain field update.
            unsafe { (*enc.as_mut_ptr()).flags |= ffmpeg::ffi::AV_CODEC_FLAG_GLOBAL_HEADER as i32 };
        }
        let encoder = enc
            .open_as(codec)
            .map_err(|e| MediaError::encode("opening audio encoder", libav::describe(e)))?;
        let mut ost = octx
            .add_stream(codec)
            .map_err(|e| MediaError::encode("adding audio stream", e))?;
        ost.set_parameters(&encoder);
        ost.set_time_base(encoder.time_base());
        let output_index = ost.index();

        let pre_filters = loudness
            .map(|l| {
                format!(
                    "loudnorm=I={}:TP={}:LRA={},",
                    l.integrated_lufs, l.true_peak_db, l.range_lu
                )
            })
            .unwrap_or_default();
        let peaks = collect_peaks.then(|| Peaks::new(settings.sample_rate));
        Ok(AudioTrack {
            input_index: stream.index(),
            input_time_base: stream.time_base(),
            decoder,
            encoder,
            graph: None,
            pre_filters,
            output_index,
            output_time_base: Rational::new(1, settings.sample_rate as i32),
            next_pts: None,
            decoded_seconds: 0.0,
            peaks,
        })
    }

    /// Reads the output stream's time base once the muxer has written its header (the muxer
    /// may change it, and packets must be rescaled to what it chose).
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
        if let Some((graph, _)) = self.graph.as_mut() {
            graph
                .get("in")
                .expect("graph has in")
                .source()
                .flush()
                .map_err(|e| MediaError::encode("audio filter flush", e))?;
        }
        self.drain_graph(mux)?;
        self.encoder
            .send_eof()
            .map_err(|e| MediaError::encode("audio encoder flush", e))?;
        self.write_packets(mux)
    }

    fn receive_frames(&mut self, mux: &mut Mux, errors: &mut DecodeErrors) -> Result<(), MediaError> {
        let mut decoded = frame::Audio::empty();
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
            if decoded.samples() == 0 || decoded.rate() == 0 {
                continue;
            }
            self.decoded_seconds += decoded.samples() as f64 / f64::from(decoded.rate());
            errors.progress(self.decoded_seconds)?;
            let timestamp = decoded.timestamp();
            decoded.set_pts(timestamp);
            self.ensure_graph(&decoded, mux)?;
            let (graph, _) = self.graph.as_mut().expect("graph just ensured");
            graph
                .get("in")
                .expect("graph has in")
                .source()
                .add(&decoded)
                .map_err(|e| MediaError::encode("audio filter", libav::describe(e)))?;
            self.drain_graph(mux)?;
        }
    }

    fn ensure_graph(&mut self, frame: &frame::Audio, mux: &mut Mux) -> Result<(), MediaError> {
        let layout = if frame.channel_layout().bits() == 0 {
            ChannelLayout::default(i32::from(frame.channels().max(1)))
        } else {
            frame.channel_layout()
        };
        let key = GraphKey {
            format: frame.format(),
            rate: frame.rate(),
            layout: layout.bits(),
        };
        if self.graph.as_ref().is_some_and(|(_, k)| *k == key) {
            return Ok(());
        }
        if let Some((mut old, _)) = self.graph.take() {
            // The source changed format mid-stream: drain what the old graph holds first.
            old.get("in")
                .expect("graph has in")
                .source()
                .flush()
                .map_err(|e| MediaError::encode("audio filter flush", e))?;
            self.graph = Some((old, key));
            self.drain_graph(mux)?;
            self.graph = None;
        }
        let graph = self
            .build_graph(key)
            .map_err(|e| MediaError::encode("audio filter graph", libav::describe(e)))?;
        self.graph = Some((graph, key));
        Ok(())
    }

    fn build_graph(&self, key: GraphKey) -> Result<filter::Graph, ffmpeg::Error> {
        let args = abuffer_args(self.input_time_base, key.format, key.rate, key.layout);
        let rate = self.encoder.rate();
        let spec = format!(
            "{}aresample={rate},aformat=sample_fmts={}:sample_rates={rate}:channel_layouts=0x{:x}",
            self.pre_filters,
            self.encoder.format().name(),
            self.encoder.channel_layout().bits()
        );
        let mut graph = simple_graph("abuffer", &args, &spec, "abuffersink")?;
        let frame_size = self.encoder.frame_size();
        if frame_size > 0 {
            graph
                .get("out")
                .expect("graph has out")
                .sink()
                .set_frame_size(frame_size);
        }
        Ok(graph)
    }

    fn drain_graph(&mut self, mux: &mut Mux) -> Result<(), MediaError> {
        let AudioTrack {
            graph,
            encoder,
            next_pts,
            peaks,
            output_index,
            output_time_base,
            ..
        } = self;
        let Some((graph, _)) = graph.as_mut() else {
            return Ok(());
        };
        let mut filtered = frame::Audio::empty();
        loop {
            let mut out = graph.get("out").expect("graph has out");
            let mut sink = out.sink();
            match sink.frame(&mut filtered) {
                Ok(()) => {}
                Err(e) if libav::is_again(&e) || e == ffmpeg::Error::Eof => return Ok(()),
                Err(e) => return Err(MediaError::encode("audio filter", e)),
            }
            let sink_time_base = sink.time_base();
            let pts = *next_pts.get_or_insert_with(|| {
                filtered
                    .pts()
                    .map_or(0, |p| p.max(0))
                    .rescale(sink_time_base, encoder.time_base())
            });
            filtered.set_pts(Some(pts));
            *next_pts = Some(pts + filtered.samples() as i64);
            tame_samples(&mut filtered);
            if let Some(peaks) = peaks.as_mut() {
                peaks.add(&filtered);
            }
            encoder
                .send_frame(&filtered)
                .map_err(|e| MediaError::encode("audio encoder", libav::describe(e)))?;
            write_packets(encoder, *output_index, *output_time_base, mux)?;
        }
    }

    fn write_packets(&mut self, mux: &mut Mux) -> Result<(), MediaError> {
        write_packets(&mut self.encoder, self.output_index, self.output_time_base, mux)
    }
}

fn write_packets(
    encoder: &mut encoder::Audio,
    output_index: usize,
    output_time_base: Rational,
    mux: &mut Mux,
) -> Result<(), MediaError> {
    let mut packet = ffmpeg::Packet::empty();
    loop {
        match encoder.receive_packet(&mut packet) {
            Ok(()) => {}
            Err(e) if libav::is_again(&e) || e == ffmpeg::Error::Eof => return Ok(()),
            Err(e) => return Err(MediaError::encode("audio encoder", e)),
        }
        packet.set_stream(output_index);
        packet.rescale_ts(encoder.time_base(), output_time_base);
        mux.write(&packet)
            .map_err(|e| MediaError::encode("writing audio", libav::describe(e)))?;
    }
}

/// Loudest sample the encoders are given, 18 dB over full scale: far above anything real audio
/// reaches after resampling or loudness normalisation.
const SAMPLE_CEILING: f32 = 8.0;

/// Makes every sample of a planar float frame finite and at most [`SAMPLE_CEILING`] in size.
/// Float PCM from a damaged file can hold NaN, infinities or values like 1e300; LAME then fails
/// an internal assertion and aborts the whole process, where a decoder would have complained.
fn tame_samples(frame: &mut frame::Audio) {
    if frame.format() != format::Sample::F32(format::sample::Type::Planar) {
        return;
    }
    let samples = frame.samples();
    for plane in 0..frame.planes() {
        for sample in frame.plane_mut::<f32>(plane).iter_mut().take(samples) {
            *sample = if sample.is_finite() {
                sample.clamp(-SAMPLE_CEILING, SAMPLE_CEILING)
            } else {
                0.0
            };
        }
    }
}
