//! libavfilter graphs: the pieces the engine and the quality scores build their graphs from.
//!
//! In: a decoder (its size, pixel format and colour tags), a stream's time base and frame rate,
//! the display rotation. Out: validated [`filter::Graph`]s with a source named `in` and a sink
//! named `out`, and the filter chains they are made of. Fails with the libav error when a filter
//! is missing from this FFmpeg (zimg for tone mapping) or the graph does not configure. Builds
//! graphs only; frames go through them elsewhere.

use ffmpeg::{decoder, filter, format, Rational};
use ffmpeg_next as ffmpeg;

/// A validated filter graph `source (args) → spec → sink`, with the two ends named `in` and
/// `out`: `buffer`/`buffersink` for video, `abuffer`/`abuffersink` for audio. Its filters
/// slice pictures over the current job's threads (see [`super::threads`]).
pub fn simple_graph(
    source: &str,
    args: &str,
    spec: &str,
    sink: &str,
) -> Result<filter::Graph, ffmpeg::Error> {
    let mut graph = filter::Graph::new();
    let threads = i32::try_from(super::threads::threads()).unwrap_or(i32::MAX);
    // SAFETY: a plain field of the graph just allocated, set before any filter is added (as
    // libavfilter asks).
    unsafe { (*graph.as_mut_ptr()).nb_threads = threads };
    graph.add(
        &filter::find(source).ok_or(ffmpeg::Error::FilterNotFound)?,
        "in",
        args,
    )?;
    graph.add(
        &filter::find(sink).ok_or(ffmpeg::Error::FilterNotFound)?,
        "out",
        "",
    )?;
    graph.output("in", 0)?.input("out", 0)?.parse(spec)?;
    graph.validate()?;
    Ok(graph)
}

/// Arguments of a `buffer` source for the frames of `decoder`, timestamps in `time_base`.
pub fn buffer_args(decoder: &decoder::Video, time_base: Rational) -> String {
    let sar = decoder.aspect_ratio();
    let sar = if sar.numerator() > 0 && sar.denominator() > 0 {
        sar
    } else {
        Rational::new(1, 1)
    };
    let pix_fmt: ffmpeg::ffi::AVPixelFormat = decoder.format().into();
    format!(
        "video_size={}x{}:pix_fmt={}:time_base={time_base}:pixel_aspect={sar}",
        decoder.width(),
        decoder.height(),
        pix_fmt as i32,
    )
}

/// Arguments of an `abuffer` source for frames of this format, rate and channel layout.
pub fn abuffer_args(time_base: Rational, format: format::Sample, rate: u32, layout: u64) -> String {
    format!(
        "time_base={time_base}:sample_rate={rate}:sample_fmt={}:channel_layout=0x{layout:x}",
        format.name()
    )
}

/// `Some(max_fps)` when the stream's frame rate is above `max_fps` and an `fps` filter must
/// drop frames down to it.
pub fn fps_cap(stream: &format::stream::Stream, max_fps: u32) -> Option<u32> {
    frame_rate(stream)
        .is_some_and(|r| f64::from(r) > f64::from(max_fps) + 0.01)
        .then_some(max_fps)
}

/// The filters (each followed by a comma) that turn a picture coded with a display rotation of
/// `rotation` clockwise degrees upright.
fn upright_filters(rotation: u32) -> &'static str {
    match rotation {
        90 => "transpose=clock,",
        180 => "hflip,vflip,",
        270 => "transpose=cclock,",
        _ => "",
    }
}

/// The stream's nominal frame rate, if it declares a plausible one.
pub fn frame_rate(stream: &format::stream::Stream) -> Option<Rational> {
    [stream.avg_frame_rate(), stream.rate()]
        .into_iter()
        .find(|r| r.numerator() > 0 && r.denominator() > 0 && f64::from(*r) < 1000.0)
}

/// The filters that tone-map the decoder's pictures to SDR BT.709 (ending in a comma), or
/// nothing when they are not HDR (the PQ transfer of HDR10 and Dolby Vision profile 8, or the
/// HLG of phones since ~2020). zimg: to linear light, BT.2020 → BT.709 primaries, Möbius' curve
/// (linear up to the highlights, which it compresses: the closest of libavfilter's curves to
/// the scene as an SDR camera would have shot it), back to BT.709 gamma. Primaries and matrix a
/// file leaves untagged are taken as HDR's own, BT.2020.
pub fn tone_map_filters(decoder: &decoder::Video) -> String {
    use ffmpeg::color::{Primaries, Space, TransferCharacteristic};
    let transfer = match decoder.color_transfer_characteristic() {
        TransferCharacteristic::SMPTE2084 => "smpte2084",
        TransferCharacteristic::ARIB_STD_B67 => "arib-std-b67",
        _ => return String::new(),
    };
    let primaries = match decoder.color_primaries() {
        Primaries::Reserved0 | Primaries::Unspecified | Primaries::Reserved => ":pin=bt2020",
        _ => "",
    };
    let matrix = match decoder.color_space() {
        Space::Unspecified | Space::Reserved => ":min=bt2020nc",
        _ => "",
    };
    format!(
        "zscale=tin={transfer}{primaries}{matrix}:t=linear:npl=100:p=bt709,format=gbrpf32le,\
         tonemap=tonemap=mobius:desat=0,zscale=t=bt709:m=bt709:r=tv,"
    )
}

/// `buffer → [fps] → [transpose/flip for the rotation] → scale → [tone map] → format=yuv420p →
/// buffersink`: the upright picture at `width`x`height`, as the engine encodes it and as quality
/// scores see the source. The frame-rate cap comes first, so dropped frames are never turned,
/// scaled or tone-mapped; tone mapping comes after scaling, so a 4K source is tone-mapped at the
/// output size. Without it an HDR picture would come out grey and washed out.
pub fn upright_graph(
    decoder: &decoder::Video,
    time_base: Rational,
    rotation: u32,
    (width, height): (u32, u32),
    fps_cap: Option<u32>,
    tone_map: &str,
) -> Result<filter::Graph, ffmpeg::Error> {
    let turn = upright_filters(rotation);
    let fps = fps_cap.map(|f| format!("fps={f},")).unwrap_or_default();
    let spec = format!("{fps}{turn}scale={width}:{height}:flags=bicubic,setsar=1,{tone_map}format=yuv420p");
    simple_graph("buffer", &buffer_args(decoder, time_base), &spec, "buffersink")
}
