//! PSNR and SSIM of a video (or picture) output against its source, with libavfilter's `ssim`
//! and `psnr` filters, in-process.
//!
//! In: the source path with its probe (rotation, upright size, video stream), the output path,
//! and the profile's frame-rate cap. Out: [`PictureScore`]: SSIM (mean of the
//! per-frame "All" value, as the filter's own summary) and PSNR (from the mean squared error
//! over all frames, capped at 100 dB for identical pictures). Fails with [`QualityError`] when a
//! side cannot be decoded. Blocking, CPU-bound: decodes both files once.
//!
//! The reference is the *upright* source at its own displayed size: the source's display
//! rotation is applied to its pixels, an HDR source is tone-mapped as the engine does (so the
//! score measures the encoding, not the tone mapping), and, when the profile capped the frame
//! rate, the same `fps` filter drops the same frames. The output is decoded and scaled back up
//! to that size. Frames are paired by presentation time on the output's timeline (the source's
//! timestamps are shifted by its start, as the engine shifts them), so a frame that only one
//! side has is left out rather than shifting every later pair; each pair is then stamped with
//! its index for the filters, whatever the containers' time bases.

use std::path::Path;

use ffmpeg::{codec, filter, format, frame, Rescale};
use ffmpeg_next as ffmpeg;
use serde::{Deserialize, Serialize};

use super::QualityError;
use crate::media::{self, Probe};
use crate::profile::MediaKind;

/// PSNR of identical pictures (an infinite ratio) is reported as this.
pub const PSNR_CAP_DB: f64 = 100.0;
/// Frames of the two sides this close in presentation time are the same frame (well under half
/// a frame at 120 fps; timestamps differ only by time-base rounding).
const SAME_TIME_SECONDS: f64 = 0.004;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PictureScore {
    pub ssim: f64,
    pub psnr_db: f64,
    /// Frames compared.
    pub frames: u64,
}

/// Scores `output` against the upright `source`; `max_fps` is the profile's frame-rate cap.
pub fn measure(
    source: &Path,
    probe: &Probe,
    max_fps: Option<u32>,
    output: &Path,
) -> Result<PictureScore, QualityError> {
    let index = picture_stream(probe).ok_or_else(|| QualityError::new(source, "no video stream".into()))?;
    let size = (
        probe.width.unwrap_or(2).max(2) & !1,
        probe.height.unwrap_or(2).max(2) & !1,
    );
    let out_probe = media::probe(output).map_err(|e| QualityError::new(output, e.to_string()))?;
    let out_index =
        picture_stream(&out_probe).ok_or_else(|| QualityError::new(output, "no video stream".into()))?;
    let mut reference = UprightFrames::open(source, index, probe.rotation, size, Side::Source { max_fps })?;
    let mut distorted = UprightFrames::open(output, out_index, out_probe.rotation, size, Side::Output)?;
    let mut metric =
        Comparison::new(size).map_err(|e| QualityError::new(output, format!("ssim/psnr: {e}")))?;
    // Pairs frames by presentation time: a frame only one side has (a damaged frame one decoder
    // skips, a repeated timestamp the engine drops) is left out instead of shifting every pair.
    let (mut r, mut d) = (reference.next()?, distorted.next()?);
    let mut n = 0i64;
    while let (Some((rf, rt)), Some((df, dt))) = (r.as_mut(), d.as_mut()) {
        // Frames without timestamps (a still picture may have none) pair in order.
        if (*rt - *dt).abs() <= SAME_TIME_SECONDS || rt.is_nan() || dt.is_nan() {
            rf.set_pts(Some(n));
            df.set_pts(Some(n));
            metric
                .add(rf, df)
                .map_err(|e| QualityError::new(output, format!("ssim/psnr: {e}")))?;
            n += 1;
            (r, d) = (reference.next()?, distorted.next()?);
        } else if *rt < *dt {
            r = reference.next()?;
        } else {
            d = distorted.next()?;
        }
    }
    metric
        .finish()
        .map_err(|e| QualityError::new(output, format!("ssim/psnr: {e}")))?;
    if metric.frames == 0 {
        return Err(QualityError::new(output, "no frames to compare".into()));
    }
    let mse = metric.mse_sum / metric.frames as f64;
    let psnr_db = if mse <= 0.0 {
        PSNR_CAP_DB
    } else {
        (10.0 * (255.0f64 * 255.0 / mse).log10()).min(PSNR_CAP_DB)
    };
    Ok(PictureScore {
        ssim: metric.ssim_sum / metric.frames as f64,
        psnr_db,
        frames: metric.frames,
    })
}

/// The stream that holds the picture: the video stream, or the only stream of a still image.
fn picture_stream(probe: &Probe) -> Option<usize> {
    probe
        .video_stream
        .or((probe.kind == MediaKind::Image).then_some(0))
}

/// Which side of the comparison a stream is.
#[derive(Clone, Copy)]
enum Side {
    /// The input, with the profile's frame-rate cap: shifted to start at zero, as the engine
    /// shifts it.
    Source { max_fps: Option<u32> },
    /// What the engine wrote: its timestamps are already the engine's.
    Output,
}

/// The frames of one video stream, upright, at a fixed size in yuv420p:
/// `buffer → [transpose/flip] → [fps] → scale → setsar → [tone map] → format → buffersink`.
struct UprightFrames {
    ictx: format::context::Input,
    index: usize,
    decoder: ffmpeg::decoder::Video,
    graph: filter::Graph,
    /// Subtracted from timestamps, as the engine does, so an `fps` filter picks the same frames.
    offset: i64,
    input_done: bool,
    graph_flushed: bool,
    path: std::path::PathBuf,
}

impl UprightFrames {
    fn open(
        path: &Path,
        index: usize,
        rotation: u32,
        (width, height): (u32, u32),
        side: Side,
    ) -> Result<UprightFrames, QualityError> {
        let fail = |what: &str, e: ffmpeg::Error| QualityError::new(path, format!("{what}: {e}"));
        let ictx = format::input(&path).map_err(|e| fail("opening", e))?;
        let stream = ictx
            .stream(index)
            .ok_or_else(|| QualityError::new(path, format!("no stream {index}")))?;
        let time_base = stream.time_base();
        let fps_cap = match side {
            Side::Source { max_fps } => max_fps.and_then(|max| media::fps_cap(&stream, max)),
            Side::Output => None,
        };
        let mut context = codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| fail("video stream", e))?;
        media::set_decoder_threading(&mut context);
        let mut decoder = context.decoder().video().map_err(|e| fail("video decoder", e))?;
        decoder.set_packet_time_base(time_base);
        // SAFETY: `ictx` owns an open format context; reading a plain field.
        let start = unsafe { (*ictx.as_ptr()).start_time };
        let offset = match side {
            Side::Source { .. } if start != ffmpeg::ffi::AV_NOPTS_VALUE => {
                start.rescale(ffmpeg::rescale::TIME_BASE, time_base)
            }
            _ => 0,
        };

        let graph = media::upright_graph(
            &decoder,
            time_base,
            rotation,
            (width, height),
            fps_cap,
            &media::tone_map_filters(&decoder),
        )
        .map_err(|e| fail("filter graph", e))?;
        Ok(UprightFrames {
            ictx,
            index,
            decoder,
            graph,
            offset,
            input_done: false,
            graph_flushed: false,
            path: path.to_path_buf(),
        })
    }

    /// The next upright frame and its presentation time in seconds from the start of the file,
    /// or `None` at the end of the stream.
    fn next(&mut self) -> Result<Option<(frame::Video, f64)>, QualityError> {
        let mut filtered = frame::Video::empty();
        let mut decoded = frame::Video::empty();
        loop {
            let mut out = self.graph.get("out").expect("graph has out");
            let mut sink = out.sink();
            match sink.frame(&mut filtered) {
                Ok(()) => {
                    let micros = filtered
                        .pts()
                        .map(|p| p.rescale(sink.time_base(), ffmpeg::Rational::new(1, 1_000_000)));
                    let seconds = micros.map_or(f64::NAN, |us| us as f64 / 1e6);
                    return Ok(Some((filtered, seconds)));
                }
                Err(ffmpeg::Error::Eof) => return Ok(None),
                Err(e) if media::is_again(&e) => {}
                Err(e) => return Err(self.fail("filter", e)),
            }
            match self.decoder.receive_frame(&mut decoded) {
                Ok(()) => {
                    let ts = decoded.timestamp();
                    decoded.set_pts(ts);
                    self.graph
                        .get("in")
                        .expect("graph has in")
                        .source()
                        .add(&decoded)
                        .map_err(|e| self.fail("filter", e))?;
                }
                Err(ffmpeg::Error::Eof) => {
                    if self.graph_flushed {
                        return Ok(None);
                    }
                    self.graph
                        .get("in")
                        .expect("graph has in")
                        .source()
                        .flush()
                        .map_err(|e| self.fail("filter", e))?;
                    self.graph_flushed = true;
                }
                Err(e) if media::is_again(&e) => self.feed()?,
                // A frame the decoder refuses is skipped, as players do.
                Err(_) => {}
            }
        }
    }

    /// Sends the decoder its next packet (or the end of the stream).
    fn feed(&mut self) -> Result<(), QualityError> {
        if self.input_done {
            return Err(QualityError::new(
                &self.path,
                "decoder wants input after the end".into(),
            ));
        }
        let mut packet = ffmpeg::Packet::empty();
        loop {
            match packet.read(&mut self.ictx) {
                Ok(()) if packet.stream() == self.index => {
                    if self.offset != 0 {
                        packet.set_pts(packet.pts().map(|p| p - self.offset));
                        packet.set_dts(packet.dts().map(|d| d - self.offset));
                    }
                    let _ = self.decoder.send_packet(&packet);
                    return Ok(());
                }
                Ok(()) => {}
                Err(e) if media::is_again(&e) => {}
                // The end, or a read error that ends the input (as the engine treats it).
                Err(_) => {
                    self.input_done = true;
                    let _ = self.decoder.send_eof();
                    return Ok(());
                }
            }
        }
    }

    fn fail(&self, what: &str, e: ffmpeg::Error) -> QualityError {
        QualityError::new(&self.path, format!("{what}: {e}"))
    }
}

/// `[dist][ref]ssim → psnr → buffersink`: one output frame per pair, carrying both filters'
/// per-frame metadata.
struct Comparison {
    graph: filter::Graph,
    frames: u64,
    ssim_sum: f64,
    mse_sum: f64,
}

impl Comparison {
    fn new((width, height): (u32, u32)) -> Result<Comparison, ffmpeg::Error> {
        let mut graph = filter::Graph::new();
        let pix_fmt: ffmpeg::ffi::AVPixelFormat = format::Pixel::YUV420P.into();
        let args = format!(
            "video_size={width}x{height}:pix_fmt={}:time_base=1/25:pixel_aspect=1/1",
            pix_fmt as i32
        );
        let buffer = filter::find("buffer").ok_or(ffmpeg::Error::FilterNotFound)?;
        graph.add(&buffer, "dist", &args)?;
        graph.add(&buffer, "ref", &args)?;
        graph.add(
            &filter::find("buffersink").ok_or(ffmpeg::Error::FilterNotFound)?,
            "out",
            "",
        )?;
        graph
            .output("dist", 0)?
            .output("ref", 0)?
            .input("out", 0)?
            .parse("[ref]split[r1][r2];[dist][r1]ssim[scored];[scored][r2]psnr[out]")?;
        graph.validate()?;
        Ok(Comparison {
            graph,
            frames: 0,
            ssim_sum: 0.0,
            mse_sum: 0.0,
        })
    }

    fn add(
        &mut self,
        reference: &mut frame::Video,
        distorted: &mut frame::Video,
    ) -> Result<(), ffmpeg::Error> {
        self.graph
            .get("ref")
            .expect("graph has ref")
            .source()
            .add(reference)?;
        self.graph
            .get("dist")
            .expect("graph has dist")
            .source()
            .add(distorted)?;
        self.drain()
    }

    fn finish(&mut self) -> Result<(), ffmpeg::Error> {
        self.graph.get("ref").expect("graph has ref").source().flush()?;
        self.graph.get("dist").expect("graph has dist").source().flush()?;
        self.drain()
    }

    fn drain(&mut self) -> Result<(), ffmpeg::Error> {
        let mut scored = frame::Video::empty();
        loop {
            match self
                .graph
                .get("out")
                .expect("graph has out")
                .sink()
                .frame(&mut scored)
            {
                Ok(()) => {}
                Err(e) if media::is_again(&e) || e == ffmpeg::Error::Eof => return Ok(()),
                Err(e) => return Err(e),
            }
            let metadata = scored.metadata();
            let value = |key: &str| metadata.get(key).and_then(|v| v.trim().parse::<f64>().ok());
            let (Some(ssim), Some(mse)) = (value("lavfi.ssim.All"), value("lavfi.psnr.mse_avg")) else {
                return Err(ffmpeg::Error::InvalidData);
            };
            self.frames += 1;
            self.ssim_sum += ssim;
            self.mse_sum += mse;
        }
    }
}
