//! libav set-up and the small helpers every libav stage shares.
//!
//! libav logs through a process-wide callback; ours forwards to `tracing` and keeps, per
//! thread, the last error line, so a failure can say what libav said (`Invalid data found…`,
//! `moov atom not found`) instead of a bare error number.

use std::cell::RefCell;
use std::ffi::CStr;
use std::sync::Once;

use ffmpeg::ffi;
use ffmpeg_next as ffmpeg;

thread_local! {
    static LAST_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Initialises libav once per process. Cheap to call again.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        ffmpeg::init().expect("libav initialises");
        // SAFETY: setters of libav's global log state, run once; the callback has the
        // signature libav expects and, being a plain function, lives as long as the program.
        unsafe {
            ffi::av_log_set_level(ffi::AV_LOG_WARNING);
            ffi::av_log_set_callback(Some(log_callback));
        }
    });
}

/// libav's log lines, into `tracing` (and the last error kept for messages).
///
/// # Safety
/// Called by libav only, with the arguments of one `av_log` call, valid during the call.
unsafe extern "C" fn log_callback(
    avcl: *mut libc::c_void,
    level: libc::c_int,
    fmt: *const libc::c_char,
    vl: *mut ffi::__va_list_tag,
) {
    if level > ffi::av_log_get_level() {
        return;
    }
    let mut buf = [0 as libc::c_char; 1024];
    let mut print_prefix: libc::c_int = 1;
    // SAFETY: libav's own arguments passed on unchanged; `buf` is writable for the length
    // given, and `print_prefix` is a live local.
    let written = unsafe {
        ffi::av_log_format_line2(
            avcl,
            level,
            fmt,
            vl,
            buf.as_mut_ptr(),
            buf.len() as libc::c_int,
            &mut print_prefix,
        )
    };
    if written < 0 {
        return;
    }
    // SAFETY: on success av_log_format_line2 leaves a NUL-terminated string within `buf`.
    let raw = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    let line = without_addresses(raw.trim());
    let line = line.as_str();
    if line.is_empty() {
        return;
    }
    if level <= ffi::AV_LOG_ERROR {
        tracing::debug!(target: "libav", "{line}");
        let _ = LAST_ERROR.try_with(|last| *last.borrow_mut() = Some(line.to_string()));
    } else {
        tracing::trace!(target: "libav", "{line}");
    }
}

/// `[mp3 @ 0x55d2…] Header missing` → `[mp3] Header missing`: addresses are noise in messages.
fn without_addresses(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(" @ 0x") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 5..];
        let hex_len = tail.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(tail.len());
        rest = &tail[hex_len..];
    }
    out.push_str(rest);
    out
}

/// Forgets the last libav error line of this thread.
pub fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|last| last.borrow_mut().take());
}

/// The last error line libav logged on this thread, if any since [`clear_last_error`].
pub fn take_last_error() -> Option<String> {
    LAST_ERROR
        .try_with(|last| last.borrow_mut().take())
        .ok()
        .flatten()
}

/// Describes a libav error with what libav logged about it, e.g.
/// `Invalid data found when processing input ([mp3] Header missing)`.
pub fn describe(e: ffmpeg::Error) -> String {
    match take_last_error() {
        Some(line) if !line.is_empty() => format!("{e} ({line})"),
        _ => e.to_string(),
    }
}

/// Seconds of a timestamp in `time_base`, or `None` when libav has no timestamp.
pub fn seconds(ts: Option<i64>, time_base: ffmpeg::Rational) -> Option<f64> {
    let ts = ts?;
    if time_base.denominator() == 0 {
        return None;
    }
    Some(ts as f64 * f64::from(time_base.numerator()) / f64::from(time_base.denominator()))
}

/// A decoded video frame's start and duration in seconds (duration 0 when unknown), or `None`
/// when the frame has no timestamp.
pub fn frame_times(frame: &ffmpeg::frame::Video, time_base: ffmpeg::Rational) -> Option<(f64, f64)> {
    let start = seconds(frame.timestamp(), time_base)?;
    Some((
        start,
        seconds(Some(frame.packet().duration), time_base).unwrap_or(0.0),
    ))
}

pub fn is_again(e: &ffmpeg::Error) -> bool {
    matches!(e, ffmpeg::Error::Other { errno } if *errno == libc::EAGAIN)
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_are_dropped_from_log_lines() {
        assert_eq!(
            super::without_addresses("[mp3 @ 0x55d2ab] Header missing"),
            "[mp3] Header missing"
        );
        assert_eq!(super::without_addresses("plain"), "plain");
    }
}
