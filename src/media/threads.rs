//! How many threads a job's codecs and filters use.
//!
//! In: the job's thread count (its share of the machine, decided by whoever runs the job; see
//! the worker pool) and the worker's memory limit. Out: the count for x264 and filter graphs,
//! and frame-threading configurations for decoders. A decoder of very large pictures gets fewer
//! threads than the job when the frames it would hold in flight, one set per thread, could not
//! fit in half the worker's memory: an 8K HEVC upload must not cost the worker its memory
//! limit. Process-wide settings; nothing blocks.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ffmpeg::codec::{self, threading};
use ffmpeg::format::Pixel;
use ffmpeg_next as ffmpeg;

/// The current job's threads; 0 means one per core (tools that run in-process).
static THREADS: AtomicUsize = AtomicUsize::new(0);
/// The worker's resident-memory limit in bytes; 0 means none.
static MEMORY: AtomicU64 = AtomicU64::new(0);

/// Frame threading keeps one more frame in flight per thread, and libav itself stops choosing
/// more than this many: past it a decoder only adds delay and memory.
const MAX_DECODER_THREADS: usize = 16;

/// Memory one more decoder thread costs, in pictures: its frame in flight plus its own
/// context (measured: ~1.4 pictures per thread for 4K HEVC 10-bit, ~2.4 for 1080p H.264).
const PICTURES_PER_THREAD: u64 = 3;

/// Sets the threads of the jobs this process runs from now on.
pub fn set_threads(threads: usize) {
    THREADS.store(threads, Ordering::Relaxed);
}

/// Sets the memory limit decoders' threads must fit in.
pub fn set_memory_limit(bytes: u64) {
    MEMORY.store(bytes, Ordering::Relaxed);
}

/// The current job's threads (at least one).
pub fn threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Turns on frame threading for the decoder `context` will open, with this job's threads or as
/// many as its pictures leave room for (decoders opened from parameters default to one thread).
pub fn set_decoder_threading(context: &mut codec::context::Context) {
    // SAFETY: `context` is a live codec context filled from stream parameters and not yet
    // opened; these are plain fields read by value.
    let (format, width, height) = unsafe {
        let raw = &*context.as_ptr();
        (Pixel::from(raw.pix_fmt), raw.width, raw.height)
    };
    let picture = picture_bytes(format, width, height);
    context.set_threading(threading::Config {
        kind: threading::Type::Frame,
        count: decoder_threads(threads(), MEMORY.load(Ordering::Relaxed), picture),
        ..Default::default()
    });
}

/// x264's threads for this job: half as many again as its cores, x264's own choice for a whole
/// machine (frame threads wait on each other's reference rows; the extra ones keep the cores
/// busy meanwhile).
pub fn encoder_threads() -> usize {
    x264_threads(threads())
}

fn x264_threads(threads: usize) -> usize {
    (threads * 3).div_ceil(2)
}

/// A frame-threaded decoder's threads for a job with `threads` cores: one more than that, as
/// libav chooses for a whole machine (a thread waiting for its reference frame leaves a core
/// idle otherwise), within libav's ceiling and what `memory` holds.
fn decoder_threads(threads: usize, memory: u64, picture: u64) -> usize {
    let fit = match memory {
        0 => usize::MAX,
        limit => usize::try_from(limit / 2 / (PICTURES_PER_THREAD * picture.max(1))).unwrap_or(usize::MAX),
    };
    (threads + 1).min(MAX_DECODER_THREADS).min(fit).max(1)
}

/// Bytes of one picture (0 when libav does not know the format).
fn picture_bytes(format: Pixel, width: i32, height: i32) -> u64 {
    // SAFETY: a pure computation over libav's table of pixel formats; it touches no memory of
    // ours and returns a negative error for an unknown format or size.
    let bytes = unsafe { ffmpeg::ffi::av_image_get_buffer_size(format.into(), width, height, 1) };
    u64::try_from(bytes).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UHD_10BIT: u64 = 3840 * 2160 * 3;
    const UHD8K_10BIT: u64 = 7680 * 4320 * 3;
    const HD: u64 = 1920 * 1080 * 3 / 2;
    const GIB: u64 = 1 << 30;

    #[test]
    fn a_job_gets_its_threads_up_to_what_libav_would_choose() {
        assert_eq!(decoder_threads(2, 2 * GIB, HD), 3);
        assert_eq!(decoder_threads(1, 2 * GIB, HD), 2);
        assert_eq!(decoder_threads(32, 2 * GIB, HD), MAX_DECODER_THREADS);
        assert_eq!(decoder_threads(32, 0, UHD8K_10BIT), MAX_DECODER_THREADS);
    }

    #[test]
    fn very_large_pictures_get_the_threads_that_fit_in_memory() {
        assert_eq!(decoder_threads(32, 2 * GIB, UHD_10BIT), 14);
        assert_eq!(decoder_threads(32, 2 * GIB, UHD8K_10BIT), 3);
        assert_eq!(decoder_threads(32, GIB / 4, UHD8K_10BIT), 1);
        assert_eq!(decoder_threads(2, 2 * GIB, UHD8K_10BIT), 3);
    }

    #[test]
    fn x264_gets_half_as_many_again_as_the_job_has_cores() {
        assert_eq!(x264_threads(2), 3);
        assert_eq!(x264_threads(1), 2);
        assert_eq!(x264_threads(16), 24);
    }

    #[test]
    fn picture_sizes_come_from_libav() {
        assert_eq!(picture_bytes(Pixel::YUV420P, 1920, 1080), HD);
        assert_eq!(picture_bytes(Pixel::YUV420P10LE, 3840, 2160), UHD_10BIT);
        assert_eq!(picture_bytes(Pixel::None, 1920, 1080), 0);
    }
}
