//! When to try again: exponential backoff with jitter, and the receiver's `Retry-After`.
//!
//! Pure functions of the attempt count and the clock; no I/O.

use std::time::{Duration, SystemTime};

use backon::BackoffBuilder;

/// Delays that double from `min` up to `max`, each with up to as much again of random jitter,
/// so that many records failing together do not come back together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            min: Duration::from_secs(1),
            max: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (1 = the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let attempt = attempt.max(1) as usize;
        backon::ExponentialBuilder::default()
            .with_min_delay(self.min)
            .with_max_delay(self.max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempt - 1)
            .unwrap_or(self.max)
            // Jitter may double the cap; the cap is the operator's promise.
            .min(self.max.max(self.min))
    }
}

/// A `Retry-After` value: delay seconds, or an HTTP date (a date in the past means now).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_with_jitter_and_stay_under_the_cap() {
        let b = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        for attempt in 1..=12u32 {
            let floor = (b.min * 2u32.pow(attempt.min(10) - 1)).min(b.max);
            let d = b.delay(attempt);
            assert!(
                d >= floor && d <= b.max,
                "attempt {attempt}: {d:?} (floor {floor:?})"
            );
        }
        let spread: std::collections::HashSet<Duration> = (0..20).map(|_| b.delay(3)).collect();
        assert!(spread.len() > 1, "jittered");
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
