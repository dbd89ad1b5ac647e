//! Why the media engine refused or failed a file, with a stable code per cause.

use crate::failure::{Failure, Stage};
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
    /// The stable code written into records, error files and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            MediaError::EmptyFile => "empty-file",
            MediaError::Unreadable { .. } => "unreadable",
            MediaError::NoStream { .. } => "no-stream",
            MediaError::TooLarge { .. } => "too-large",
            MediaError::TooLong { .. } => "too-long",
            MediaError::DimensionsTooLarge { .. } => "dimensions-too-large",
            MediaError::TooManyStreams { .. } => "too-many-streams",
            MediaError::WrongKind { .. } => "wrong-kind",
            MediaError::Decode { .. } => "decode-error",
            MediaError::ImageDecode { .. } => "image-decode-error",
            MediaError::Encode { .. } => "encode-failed",
            MediaError::Thumbnail { .. } => "thumbnail-failed",
            MediaError::VerifyFailed { .. } => "verify-failed",
            MediaError::DurationMismatch { .. } => "duration-mismatch",
            MediaError::Io { .. } => "io-error",
        }
    }

    pub fn stage(&self) -> Stage {
        match self {
            MediaError::EmptyFile
            | MediaError::Unreadable { .. }
            | MediaError::NoStream { .. }
            | MediaError::TooLarge { .. }
            | MediaError::TooLong { .. }
            | MediaError::DimensionsTooLarge { .. }
            | MediaError::TooManyStreams { .. }
            | MediaError::WrongKind { .. } => Stage::Probe,
            MediaError::Decode { .. }
            | MediaError::ImageDecode { .. }
            | MediaError::Encode { .. }
            | MediaError::Io { .. } => Stage::Transcode,
            MediaError::Thumbnail { .. } => Stage::Thumbnail,
            MediaError::VerifyFailed { .. } | MediaError::DurationMismatch { .. } => Stage::Verify,
        }
    }

    /// Whether trying the same file again could succeed. Only local I/O trouble qualifies:
    /// the same bytes through the same code give the same verdict.
    pub fn retryable(&self) -> bool {
        matches!(self, MediaError::Io { .. })
    }

    pub fn failure(&self) -> Failure {
        Failure::new(self.code(), self.stage(), self.to_string())
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

    #[test]
    fn codes_and_messages_name_the_cause() {
        let e = MediaError::Decode {
            position: format_position(3.2),
            detail: "Invalid data".into(),
            errors: 2,
        };
        assert_eq!(e.code(), "decode-error");
        assert_eq!(e.stage(), Stage::Transcode);
        assert_eq!(
            e.to_string(),
            "corrupt or truncated data at 3.20 s: Invalid data (2 decode error(s) in all)"
        );
        assert!(!e.retryable());
    }

    #[test]
    fn positions_read_naturally() {
        assert_eq!(format_position(3.2), "3.20 s");
        assert_eq!(format_position(62.25), "1:02.2");
        assert_eq!(format_position(3723.5), "1:02:03.5");
        assert_eq!(format_position(f64::NAN), "an unknown position");
    }
}
