//! The audio score of an output: both files decoded by libav to mono at one sample rate, then
//! compared by [`signal::score`].
//!
//! In: the source path and its audio stream, the output path. Out: an [`AudioScore`] of the
//! first [`MAX_SCORED_SECONDS`], or `None` when a side has no audio or the source is silent.
//! Fails with [`QualityError`] when a side cannot be decoded. Blocking, CPU-bound (decodes both
//! files once).

use std::path::Path;

use ffmpeg::{codec, filter, format, frame, ChannelLayout};
use ffmpeg_next as ffmpeg;

use super::signal::{self, AudioScore};
use super::QualityError;
use crate::media;

/// Only this much of each side is scored: enough to rank settings, and memory stays bounded
/// (10 minutes of 48 kHz mono is 115 MB of samples) whatever the length of the input.
pub const MAX_SCORED_SECONDS: f64 = 600.0;

/// The rate both sides are compared at: the source's own (so what the profile cuts off counts
/// against it), within 8–48 kHz.
fn common_rate(source_rate: u32) -> u32 {
    source_rate.clamp(8000, 48000)
}

/// Scores the audio of `output` against stream `source_stream` of `source`.
pub fn measure(
    source: &Path,
    source_stream: usize,
    output: &Path,
) -> Result<Option<AudioScore>, QualityError> {
    let out_probe = media::probe(output).map_err(|e| QualityError::new(output, e.to_string()))?;
    let Some(out_stream) = out_probe.audio_stream else {
        return Ok(None);
    };
    let (reference, rate) = decode_mono(source, source_stream, None)?;
    let (decoded, _) = decode_mono(output, out_stream, Some(rate))?;
    Ok(signal::score(&reference, &decoded, rate))
}

/// Decodes stream `index` of `path` to mono f32 samples at `rate` (default: the common rate for
/// the stream's own rate). Returns the samples and the rate used.
pub fn decode_mono(path: &Path, index: usize, rate: Option<u32>) -> Result<(Vec<f32>, u32), QualityError> {
    let fail = |what: &str, e: ffmpeg::Error| QualityError::new(path, format!("{what}: {e}"));
    let mut ictx = format::input(&path).map_err(|e| fail("opening", e))?;
    let stream = ictx
        .stream(index)
        .ok_or_else(|| QualityError::new(path, format!("no stream {index}")))?;
    let time_base = stream.time_base();
    let context =
        codec::context::Context::from_parameters(stream.parameters()).map_err(|e| fail("audio stream", e))?;
    let mut decoder = context.decoder().audio().map_err(|e| fail("audio decoder", e))?;
    decoder.set_packet_time_base(time_base);
    let rate = rate.unwrap_or_else(|| common_rate(decoder.rate()));

    let mut mono = MonoGraph {
        rate,
        time_base,
        graph: None,
        samples: Vec::new(),
    };
    let mut decoded = frame::Audio::empty();
    let mut drain =
        |decoder: &mut ffmpeg::decoder::Audio, mono: &mut MonoGraph| -> Result<(), QualityError> {
            while decoder.receive_frame(&mut decoded).is_ok() {
                if decoded.samples() == 0 || decoded.rate() == 0 {
                    continue;
                }
                let ts = decoded.timestamp();
                decoded.set_pts(ts);
                mono.push(&decoded).map_err(|e| fail("resampling", e))?;
            }
            Ok(())
        };
    let limit = (MAX_SCORED_SECONDS * f64::from(rate)) as usize;
    for (s, packet) in ictx.packets() {
        if s.index() == index {
            // A damaged packet is skipped, as players do; the score shows what is lost.
            let _ = decoder.send_packet(&packet);
            drain(&mut decoder, &mut mono)?;
            if mono.samples.len() >= limit {
                break;
            }
        }
    }
    let _ = decoder.send_eof();
    drain(&mut decoder, &mut mono)?;
    mono.finish().map_err(|e| fail("resampling", e))?;
    mono.samples.truncate(limit);
    Ok((mono.samples, rate))
}

/// `abuffer → aresample → aformat (flt, mono) → abuffersink`, rebuilt if the decoded format
/// changes mid-stream.
struct MonoGraph {
    rate: u32,
    time_base: ffmpeg::Rational,
    graph: Option<(filter::Graph, (format::Sample, u32, u64))>,
    samples: Vec<f32>,
}

impl MonoGraph {
    fn push(&mut self, frame: &frame::Audio) -> Result<(), ffmpeg::Error> {
        let layout = if frame.channel_layout().bits() == 0 {
            ChannelLayout::default(i32::from(frame.channels().max(1)))
        } else {
            frame.channel_layout()
        };
        let key = (frame.format(), frame.rate(), layout.bits());
        if self.graph.as_ref().is_none_or(|(_, k)| *k != key) {
            self.finish()?;
            self.graph = Some((self.build(key)?, key));
        }
        let (graph, _) = self.graph.as_mut().expect("graph just built");
        graph.get("in").expect("graph has in").source().add(frame)?;
        self.pull()
    }

    fn build(
        &self,
        (format, rate, layout): (format::Sample, u32, u64),
    ) -> Result<filter::Graph, ffmpeg::Error> {
        let args = media::abuffer_args(self.time_base, format, rate, layout);
        let spec = format!(
            "aresample={0},aformat=sample_fmts=flt:sample_rates={0}:channel_layouts=mono",
            self.rate
        );
        media::simple_graph("abuffer", &args, &spec, "abuffersink")
    }

    fn pull(&mut self) -> Result<(), ffmpeg::Error> {
        let Some((graph, _)) = self.graph.as_mut() else {
            return Ok(());
        };
        let mut out = frame::Audio::empty();
        loop {
            match graph.get("out").expect("graph has out").sink().frame(&mut out) {
                Ok(()) => self
                    .samples
                    .extend_from_slice(&out.plane::<f32>(0)[..out.samples()]),
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(e) if media::is_again(&e) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Flushes the current graph (the end of the stream, or before a format change).
    fn finish(&mut self) -> Result<(), ffmpeg::Error> {
        if let Some((graph, _)) = self.graph.as_mut() {
            graph.get("in").expect("graph has in").source().flush()?;
            self.pull()?;
            self.graph = None;
        }
        Ok(())
    }
}
