//! What a run did, counted from its records: stored, duplicates, rejected by code, and the
//! bytes that came in and went out for what was stored. `process` prints it as its summary;
//! the daemon's stop line carries it. Pure counting, no I/O.

use std::collections::BTreeMap;
use std::fmt;

use bytesize::ByteSize;

use super::{Event, Record};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub stored: u64,
    pub duplicates: u64,
    /// Rejected records by error code.
    pub rejected: BTreeMap<String, u64>,
    /// Jobs that ended without a record (the catalog could not take one).
    pub unrecorded: u64,
    /// Input bytes of the stored files.
    pub bytes_in: u64,
    /// Bytes of their stored renditions.
    pub bytes_out: u64,
}

impl Tally {
    pub fn add(&mut self, record: &Record) {
        match record.event {
            Event::Stored => {
                self.stored += 1;
                self.bytes_in += record.source.bytes;
                self.bytes_out += record.media.as_ref().map_or(0, |m| m.bytes);
            }
            Event::Duplicate => self.duplicates += 1,
            Event::Rejected | Event::Deleted => {
                let code = record.error.as_ref().map_or("unknown", |e| e.code.id());
                *self.rejected.entry(code.to_string()).or_default() += 1;
            }
        }
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Every job counted, with a record or without.
    pub fn jobs(&self) -> u64 {
        self.stored + self.duplicates + self.rejected_total() + self.unrecorded
    }
}

/// `3 stored (1.2 MiB → 310.4 KiB), 1 duplicate, 2 rejected (too-large 1, unreadable 1)`.
impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} stored", self.stored)?;
        if self.stored > 0 {
            write!(f, " ({} → {})", ByteSize(self.bytes_in), ByteSize(self.bytes_out))?;
        }
        let s = if self.duplicates == 1 { "" } else { "s" };
        write!(
            f,
            ", {} duplicate{s}, {} rejected",
            self.duplicates,
            self.rejected_total()
        )?;
        if !self.rejected.is_empty() {
            let codes: Vec<String> = self
                .rejected
                .iter()
                .map(|(code, n)| format!("{code} {n}"))
                .collect();
            write!(f, " ({})", codes.join(", "))?;
        }
        if self.unrecorded > 0 {
            write!(f, ", {} not recorded (catalog error)", self.unrecorded)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::{ErrorCode, Failure};
    use crate::records::{MediaInfo, SourceInfo};

    fn record(event: Event, bytes_in: u64, bytes_out: Option<u64>, code: Option<ErrorCode>) -> Record {
        let source = SourceInfo {
            file_name: "x".into(),
            bytes: bytes_in,
            ..Default::default()
        };
        let mut r = Record::new(event, "x", None, source);
        r.media = bytes_out.map(|bytes| MediaInfo {
            kind: "audio".into(),
            profile: Some("voice".into()),
            profile_id: None,
            mime: "audio/mpeg".into(),
            bytes,
            duration_ms: Some(1000),
            width: None,
            height: None,
            url: String::new(),
            key: String::new(),
        });
        r.error = code.map(|c| Failure::new(c, ""));
        r
    }

    #[test]
    fn counts_by_event_and_code_and_sums_bytes_of_what_was_stored() {
        let mut t = Tally::default();
        t.add(&record(Event::Stored, 2048, Some(1024), None));
        t.add(&record(Event::Stored, 2048, Some(1024), None));
        t.add(&record(Event::Duplicate, 2048, Some(1024), None));
        t.add(&record(Event::Rejected, 10, None, Some(ErrorCode::UNREADABLE)));
        t.add(&record(Event::Rejected, 10, None, Some(ErrorCode::TOO_LARGE)));
        t.add(&record(Event::Rejected, 10, None, Some(ErrorCode::UNREADABLE)));
        assert_eq!(
            (t.stored, t.duplicates, t.rejected_total(), t.jobs()),
            (2, 1, 3, 6)
        );
        assert_eq!((t.bytes_in, t.bytes_out), (4096, 2048));
        assert_eq!(
            t.to_string(),
            "2 stored (4.0 KiB → 2.0 KiB), 1 duplicate, 3 rejected (too-large 1, unreadable 2)"
        );
        assert_eq!(Tally::default().to_string(), "0 stored, 0 duplicates, 0 rejected");
    }
}
