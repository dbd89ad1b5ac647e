//! CRM metadata records: the SPEC's `mediaspool.record/v1` format.
//!
//! In: the outcome of a job. Out: one JSON object per input message, which [`crate::delivery`]
//! takes to the sinks. Each record has a stable `record_id`, the same for the same message and
//! outcome however often it is produced, so a receiver can drop repeats.

mod record;
mod tally;

pub use record::{
    now_rfc3339, Crm, Deletion, DeletionReason, Event, MediaInfo, Record, RecordTooLarge, SourceInfo,
    ThumbnailInfo, MAX_RECORD_BYTES, SCHEMA,
};
pub use tally::Tally;
