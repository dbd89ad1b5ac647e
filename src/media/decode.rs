//! Decode bookkeeping shared by the tracks and verification.
//!
//! In: what a decoder reports as it goes — errors with their media time, the presentation time
//! and duration of each frame. Out: [`DecodeErrors`], which fails a job once the profile's error
//! allowance or duration limit is passed, and [`Span`], the decoded duration of a run of frames.
//! Pure bookkeeping: no libav calls, nothing blocks.

use super::error::format_position;
use super::MediaError;
use crate::profile::{Profile, VerifySettings};

/// Decode errors seen so far, and the guard on decoded length.
pub struct DecodeErrors {
    pub count: u32,
    first: Option<(Option<f64>, String)>,
    /// Furthest media time decoded, for errors that come without a timestamp.
    position: f64,
    max_seconds: f64,
    profile: String,
    /// Errors with no frame decoded after them so far.
    at_tail: u32,
    /// Whether errors at the very end are forgiven (see [`DecodeErrors::forgiving_tail`]).
    forgive_tail: bool,
}

impl DecodeErrors {
    pub fn new(profile: &Profile) -> DecodeErrors {
        DecodeErrors {
            count: 0,
            first: None,
            position: 0.0,
            max_seconds: profile.settings.limits.max_duration.as_secs_f64(),
            profile: profile.name.clone(),
            at_tail: 0,
            forgive_tail: false,
        }
    }

    /// For a file whose header declared a length its bytes cannot hold: the demuxer then reads
    /// to the end of the file, and metadata stored after the samples (a WAV's `LIST` or `id3 `
    /// chunk) decodes as one last bad packet. Errors after which nothing more decoded are
    /// then forgiven; an error followed by good frames still counts.
    pub fn forgiving_tail(mut self, forgive: bool) -> DecodeErrors {
        self.forgive_tail = forgive;
        self
    }

    pub fn record(&mut self, at: Option<f64>, detail: String) {
        self.count += 1;
        self.at_tail += 1;
        if self.first.is_none() {
            let at = at.filter(|t| t.is_finite()).unwrap_or(self.position).max(0.0);
            self.first = Some((Some(at), detail));
        }
    }

    /// Notes how far decoding got; refuses to go past the duration limit.
    pub fn progress(&mut self, seconds: f64) -> Result<(), MediaError> {
        self.position = self.position.max(seconds);
        self.at_tail = 0;
        if seconds > self.max_seconds + 1.0 {
            return Err(MediaError::TooLong {
                seconds,
                limit_seconds: self.max_seconds as u64,
                profile: self.profile.clone(),
            });
        }
        Ok(())
    }

    /// Errors that count against the profile's allowance.
    fn counted(&self) -> u32 {
        match self.forgive_tail {
            true => self.count - self.at_tail,
            false => self.count,
        }
    }

    pub fn check(&self, verify: &VerifySettings) -> Result<(), MediaError> {
        match &self.first {
            Some((at, detail)) if self.counted() > verify.max_decode_errors => Err(MediaError::Decode {
                position: format_position(at.unwrap_or(f64::NAN)),
                detail: detail.clone(),
                errors: self.count,
            }),
            _ => Ok(()),
        }
    }
}

/// First and last presentation time seen, for the duration of a run of frames.
#[derive(Default, Clone, Copy, Debug)]
pub struct Span {
    first: Option<f64>,
    last: Option<f64>,
    last_duration: f64,
    frames: u64,
    /// One frame's nominal duration (from the frame rate), for a single frame of unknown length.
    nominal_frame: f64,
}

impl Span {
    /// A span for a stream of nominal `frame_rate` (frames per second; 0 when unknown).
    pub fn with_frame_rate(frame_rate: f64) -> Span {
        Span {
            nominal_frame: if frame_rate > 0.0 && frame_rate.is_finite() {
                1.0 / frame_rate
            } else {
                0.0
            },
            ..Span::default()
        }
    }

    pub fn add(&mut self, start: f64, duration: f64) {
        self.frames += 1;
        if self.first.is_none_or(|f| start < f) {
            self.first = Some(start);
        }
        if self.last.is_none_or(|l| start >= l) {
            self.last = Some(start);
            self.last_duration = duration;
        }
    }

    /// From the first frame's start to the last frame's end. Demuxers often leave a frame's
    /// duration unknown (MP4 with B-frames, for one): the last frame then lasts as long as the
    /// average frame before it.
    pub fn seconds(&self) -> f64 {
        let (Some(first), Some(last)) = (self.first, self.last) else {
            return 0.0;
        };
        let last_duration = if self.last_duration > 0.0 {
            self.last_duration
        } else if self.frames > 1 {
            (last - first) / (self.frames - 1) as f64
        } else {
            self.nominal_frame
        };
        (last - first + last_duration).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_at_the_very_end_are_forgiven_and_only_when_asked() {
        let profiles = crate::profile::ProfileSet::built_in();
        let voice = profiles.get("voice").unwrap();
        let verify = &voice.settings.verify;
        let run = |forgive: bool, tail_only: bool| {
            let mut e = DecodeErrors::new(voice).forgiving_tail(forgive);
            e.progress(1.0).unwrap();
            if !tail_only {
                e.record(Some(1.0), "mid-file".into());
                e.progress(2.0).unwrap();
            }
            e.record(Some(2.0), "trailing chunk".into());
            e.check(verify).map_err(|e| e.to_string())
        };
        assert!(run(false, true).unwrap_err().contains("trailing chunk"));
        run(true, true).unwrap();
        assert!(run(true, false).unwrap_err().contains("mid-file"));
    }

    #[test]
    fn span_counts_the_last_frame() {
        let mut span = Span::default();
        for i in 0..30 {
            span.add(f64::from(i) / 30.0, 1.0 / 30.0);
        }
        assert!((span.seconds() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn an_unknown_last_duration_is_the_average_frame() {
        let mut span = Span::default();
        for i in (0..25).rev() {
            span.add(f64::from(i) / 25.0, 0.0);
        }
        assert!((span.seconds() - 1.0).abs() < 1e-9);
        let mut one = Span::default();
        one.add(3.0, 0.0);
        assert_eq!(one.seconds(), 0.0);
        let mut one = Span::with_frame_rate(25.0);
        one.add(3.0, 0.0);
        assert!((one.seconds() - 0.04).abs() < 1e-9);
    }
}
