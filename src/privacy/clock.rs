//! The time retention reads: the system clock, unless `MEDIASPOOL_NOW` names another (an RFC
//! 3339 time or a date), so an operator can see what `purge --dry-run` would do on a later day
//! and tests can age media by years without waiting. Times are kept as RFC 3339 text in UTC,
//! to the second, so that they sort as they compare.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, UtcOffset};

pub const NOW_ENV: &str = "MEDIASPOOL_NOW";

/// Now, by `MEDIASPOOL_NOW` when it is set and valid, else by the system clock.
pub fn now() -> OffsetDateTime {
    match std::env::var(NOW_ENV) {
        Ok(text) => parse(&text).unwrap_or_else(|| {
            tracing::warn!("{NOW_ENV}={text:?} is not an RFC 3339 time or a date; using the system clock");
            OffsetDateTime::now_utc()
        }),
        Err(_) => OffsetDateTime::now_utc(),
    }
}

/// An RFC 3339 time, or a date (its midnight, UTC).
pub fn parse(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok().or_else(|| {
        Date::parse(text, format_description!("[year]-[month]-[day]"))
            .ok()
            .map(|d| d.midnight().assume_utc())
    })
}

/// `2026-11-28T10:00:00Z`: UTC, whole seconds, so that text order is time order.
pub fn format(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .expect("zero nanoseconds")
        .format(&Rfc3339)
        .expect("UTC time formats")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_sort_as_text_and_dates_are_midnight() {
        let a = parse("2026-11-28T10:00:00.75+01:00").unwrap();
        assert_eq!(format(a), "2026-11-28T09:00:00Z");
        assert_eq!(format(parse("2027-01-02").unwrap()), "2027-01-02T00:00:00Z");
        assert!(parse("yesterday").is_none());
        assert!(format(parse("2026-11-28T09:00:01Z").unwrap()) > format(a));
    }
}
