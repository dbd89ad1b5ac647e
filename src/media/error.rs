//! Why the media engine refused or failed a file, with a stable code per cause.

use crate::failure::{ErrorCode, Failure};
use crate::profile::MediaKind;

/// Every way a file can fail in the engine. Messages are for a person deciding what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MediaError {
    #[error("the file is empty (0 bytes)")]
    EmptyFile,
    #[error("not readable as media: {detail}")]
    Unreadable { detail: String },
    #[error("no audio or video stream that can be decoded ({detail})")]
    NoStream { detail: String },
    #[error("{bytes} bytes is over the limit of {limit} bytes for profile {profile}")]
    TooLarge { bytes: u64, limit: u64, profile: String },
    #[error("{seconds:.1} s of media is over the limit of {limit_seconds} s for profile {profile}")]
    TooLong {
        seconds: f64,
        limit_seconds: u64,
        profile: String,
    },
    #[error("{width}x{height} pixels is over the limit of {max_width}x{max_height} for profile {profile}")]
    DimensionsTooLarge {
        width: u32,
        height: u32,
        max_width: u32,
        max_height: u32,
        profile: String,
    },
    #[error("{streams} streams is over the limit of {limit} for profile {profile}")]
    TooManyStreams {
        streams: u32,
        limit: u32,
        profile: String,
    },
    #[error("profile {profile} makes {wanted} but the file is {found}")]
    WrongKind {
        profile: String,
        wanted: MediaKind,
        found: MediaKind,
    },
    #[error("corrupt or truncated data at {position}: {detail} ({errors} decode error(s) in all)")]
    Decode {
        position: String,
        detail: String,
        errors: u32,
    },
    #[error("cannot decode image: {detail}")]
    ImageDecode { detail: String },
    #[error("encoding failed: {detail}")]
    Encode { detail: String },
    #[error("thumbnail failed: {detail}")]
    Thumbnail { detail: String },
    #[error("output failed verification: {detail}")]
    VerifyFailed { detail: String },
    #[error("output duration {output_ms} ms differs from the source's {source_ms} ms by more than {tolerance_ms} ms")]
    DurationMismatch {
        output_ms: u64,
        source_ms: u64,
        tolerance_ms: u64,
    },
    #[error("i/o error: {detail}")]
    Io { detail: String },
}

impl MediaError {
    /// The stable code (and with it the stage) written into records and error files.
    pub fn code(&self) -> ErrorCode {
        match self {
            MediaError::EmptyFile => ErrorCode::EMPTY_FILE,
            MediaError::Unreadable { .. } => ErrorCode::UNREADABLE,
            MediaError::NoStream { .. } => ErrorCode::NO_STREAM,
            MediaError::TooLarge { .. } => ErrorCode::TOO_LARGE,
            MediaError::TooLong { .. } => ErrorCode::TOO_LONG,
            MediaError::DimensionsTooLarge { .. } => ErrorCode::DIMENSIONS_TOO_LARGE,
            MediaError::TooManyStreams { .. } => ErrorCode::TOO_MANY_STREAMS,
            MediaError::WrongKind { .. } => ErrorCode::WRONG_KIND,
            MediaError::Decode { .. } => ErrorCode::DECODE_ERROR,
            MediaError::ImageDecode { .. } => ErrorCode::IMAGE_DECODE_ERROR,
            MediaError::Encode { .. } => ErrorCode::ENCODE_FAILED,
            MediaError::Thumbnail { .. } => ErrorCode::THUMBNAIL_FAILED,
            MediaError::VerifyFailed { .. } => ErrorCode::VERIFY_FAILED,
            MediaError::DurationMismatch { .. } => ErrorCode::DURATION_MISMATCH,
            MediaError::Io { .. } => ErrorCode::IO_ERROR,
        }
    }

    pub fn failure(&self) -> Failure {
        Failure::new(self.code(), self.to_string())
    }

    pub fn io(context: &str, e: impl std::fmt::Display) -> MediaError {
        MediaError::Io {
            detail: format!("{context}: {e}"),
        }
    }

    pub fn encode(context: &str, e: impl std::fmt::Display) -> MediaError {
        MediaError::Encode {
            detail: format!("{context}: {e}"),
        }
    }
}

/// A position in media time, as people read it: `3.20 s` or `1:02:03.5`.
pub fn format_position(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "an unknown position".into();
    }
    if seconds < 60.0 {
        format!("{seconds:.2} s")
    } else {
        let total = seconds as u64;
        let (h, m, s) = (
            total / 3600,
            (total / 60) % 60,
            seconds - (total / 60 * 60) as f64,
        );
        if h > 0 {
            format!("{h}:{m:02}:{s:04.1}")
        } else {
            format!("{m}:{s:04.1}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::Stage;

    #[test]
    fn codes_and_messages_name_the_cause() {
        let e = MediaError::Decode {
            position: format_position(3.2),
            detail: "Invalid data".into(),
            errors: 2,
        };
        assert_eq!(e.code(), ErrorCode::DECODE_ERROR);
        assert_eq!(e.code().stage(), Stage::Transcode);
        assert_eq!(
            e.to_string(),
            "corrupt or truncated data at 3.20 s: Invalid data (2 decode error(s) in all)"
        );
        assert!(!e.code().retryable());
    }

    #[test]
    fn positions_read_naturally() {
        assert_eq!(format_position(3.2), "3.20 s");
        assert_eq!(format_position(62.25), "1:02.2");
        assert_eq!(format_position(3723.5), "1:02:03.5");
        assert_eq!(format_position(f64::NAN), "an unknown position");
    }
}
