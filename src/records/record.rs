//! The record format of SPEC.md, field for field, and its size bound.
//!
//! A record is at most [`MAX_RECORD_BYTES`] of JSON. Nothing a job adds can take it past that:
//! what comes from the manifest is bounded when the manifest is read (every string, the tags,
//! `extra`: see `ingest::manifest`), and what the pipeline adds is bounded where it is made —
//! file names by the filesystem (255 bytes), error messages cut to
//! [`crate::failure::MAX_MESSAGE_BYTES`],
//! codecs to [`MAX_CODECS`], URLs by their store (a path, or a bucket and key) — a test builds
//! the largest record these allow, every string made of characters JSON escapes six bytes
//! wide, and checks it fits. [`Record::to_json`] is how a record is written to the catalog, and
//! refuses anything larger; the catalog never hands a larger row (one an earlier version
//! wrote) to a sink, a repeat or `query`.

use serde::{Deserialize, Serialize};

use crate::failure::Failure;
use crate::hash::ContentHash;
use crate::store::ObjectRef;

pub const SCHEMA: &str = "mediaspool.record/v1";
/// The largest record, in bytes of JSON.
pub const MAX_RECORD_BYTES: usize = 256 * 1024;
/// A record names the codecs of at most this many streams.
pub const MAX_CODECS: usize = 16;

#[derive(Debug, thiserror::Error)]
#[error("record {record_id} is {bytes} bytes of JSON, over the {MAX_RECORD_BYTES}-byte limit")]
pub struct RecordTooLarge {
    pub record_id: String,
    pub bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    #[serde(rename = "media.stored")]
    Stored,
    #[serde(rename = "media.duplicate")]
    Duplicate,
    #[serde(rename = "media.rejected")]
    Rejected,
    #[serde(rename = "media.deleted")]
    Deleted,
}

impl Event {
    pub const ALL: [Event; 4] = [Event::Stored, Event::Duplicate, Event::Rejected, Event::Deleted];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Stored => "media.stored",
            Event::Duplicate => "media.duplicate",
            Event::Rejected => "media.rejected",
            Event::Deleted => "media.deleted",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub schema: String,
    pub record_id: String,
    pub event: Event,
    pub content_hash: Option<String>,
    pub duplicate_of: Option<String>,
    pub source: SourceInfo,
    pub media: Option<MediaInfo>,
    pub thumbnail: Option<ThumbnailInfo>,
    pub original: Option<ObjectRef>,
    pub crm: Crm,
    /// When the presigned URLs in this record stop working; `None` when they do not expire.
    #[serde(default)]
    pub links_expire_at: Option<String>,
    /// Signed link to the record's media card, when `http.public_url` is set.
    #[serde(default)]
    pub card_url: Option<String>,
    pub received_at: Option<String>,
    pub processed_at: String,
    pub retention_until: Option<String>,
    pub extra: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// `media.deleted` only: which record's message went, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Deletion>,
}

/// What a `media.deleted` record says went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    /// The record of the message whose media and record were deleted.
    pub record_id: String,
    pub reason: DeletionReason,
    /// Objects deleted from the store with it (none when its bytes are still another
    /// message's).
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeletionReason {
    /// Its retention ran out (`mediaspool purge`, or the daemon's periodic purge).
    Retention,
    /// `mediaspool forget`.
    Erasure,
}

impl DeletionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionReason::Retention => "retention",
            DeletionReason::Erasure => "erasure",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SourceInfo {
    pub file_name: String,
    pub bytes: u64,
    pub mime: Option<String>,
    pub container: Option<String>,
    pub codecs: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MediaInfo {
    pub kind: String,
    pub profile: Option<String>,
    pub profile_id: Option<String>,
    pub mime: String,
    pub bytes: u64,
    pub duration_ms: Option<u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub url: String,
    pub key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThumbnailInfo {
    pub mime: String,
    pub width: u32,
    pub height: u32,
    pub url: String,
    pub key: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Crm {
    pub customer_id: Option<String>,
    pub chat_id: Option<String>,
    pub message_id: Option<String>,
    pub channel: Option<String>,
    pub tags: Vec<String>,
}

impl SourceInfo {
    /// What probing found about the bytes; codecs of the first [`MAX_CODECS`] streams.
    pub fn describe(&mut self, mime: Option<&str>, container: Option<&str>, codecs: &[String]) {
        self.mime = mime.map(str::to_string);
        self.container = container.map(str::to_string);
        self.codecs = codecs.iter().take(MAX_CODECS).cloned().collect();
    }
}

impl Record {
    /// A record with the identity fields set; the rest is filled by the caller.
    pub fn new(
        event: Event,
        message_key: &str,
        content_hash: Option<&ContentHash>,
        source: SourceInfo,
    ) -> Record {
        Record {
            schema: SCHEMA.to_string(),
            record_id: record_id(event, message_key, content_hash),
            event,
            content_hash: content_hash.map(|h| h.to_string()),
            duplicate_of: None,
            source,
            media: None,
            thumbnail: None,
            original: None,
            crm: Crm::default(),
            links_expire_at: None,
            card_url: None,
            received_at: None,
            processed_at: now_rfc3339(),
            retention_until: None,
            extra: serde_json::Value::Object(Default::default()),
            error: None,
            deleted: None,
        }
    }
}

impl Record {
    /// The record as one line of JSON, as the catalog keeps it and sinks receive it.
    pub fn to_json(&self) -> Result<String, RecordTooLarge> {
        let json = serde_json::to_string(self).expect("a record serialises");
        if json.len() > MAX_RECORD_BYTES {
            return Err(RecordTooLarge {
                record_id: self.record_id.clone(),
                bytes: json.len(),
            });
        }
        Ok(json)
    }
}

/// Stable id of a record: the same message with the same bytes and outcome always gets the
/// same id, across retries and restarts. `message_key` names the message (its channel message
/// id when the manifest gives one, else the file name).
pub fn record_id(event: Event, message_key: &str, content_hash: Option<&ContentHash>) -> String {
    let mut h = blake3::Hasher::new();
    for part in [
        SCHEMA,
        event.as_str(),
        message_key,
        content_hash.map_or("", |c| c.hex()),
    ] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().to_hex()[..32].to_string()
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("UTC time formats")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_are_stable_and_distinct() {
        let h = ContentHash::parse(&"0".repeat(64)).unwrap();
        let a = record_id(Event::Stored, "wamid.1", Some(&h));
        assert_eq!(a, record_id(Event::Stored, "wamid.1", Some(&h)));
        assert_ne!(a, record_id(Event::Duplicate, "wamid.1", Some(&h)));
        assert_ne!(a, record_id(Event::Stored, "wamid.2", Some(&h)));
        assert_ne!(a, record_id(Event::Stored, "wamid.1", None));
        // Field boundaries count: ("ab","c") and ("a","bc") differ.
        assert_ne!(
            record_id(Event::Stored, "ab", None),
            record_id(Event::Stored, "a", None)
        );
    }

    #[test]
    fn the_largest_record_a_job_can_make_is_within_the_bound() {
        use crate::ingest::manifest::*;
        // Every string made of a control character, which JSON writes six bytes wide (\u0001).
        let s = |bytes: usize| "\u{1}".repeat(bytes);
        let hash = ContentHash::parse(&"f".repeat(64)).unwrap();
        // Longer than anything libav or the profiles name; a file name is one path component.
        let (name, short) = (s(255), s(255));
        let mut r = Record::new(
            Event::Rejected,
            &s(MAX_ID_BYTES),
            Some(&hash),
            SourceInfo::default(),
        );
        r.source.file_name = name.clone();
        r.source.bytes = u64::MAX;
        r.source.describe(Some(&short), Some(&short), &vec![s(64); 1000]);
        r.duplicate_of = Some(r.record_id.clone());
        // URLs: a local path (at most PATH_MAX, 4096 bytes) or a bucket and key; keys are made
        // of hashes and profile ids.
        let object = || ObjectRef {
            key: s(1024),
            url: s(4096),
        };
        let o = object();
        r.media = Some(MediaInfo {
            kind: short.clone(),
            profile: Some(short.clone()),
            profile_id: Some(short.clone()),
            mime: short.clone(),
            bytes: u64::MAX,
            duration_ms: Some(u64::MAX),
            width: Some(u32::MAX),
            height: Some(u32::MAX),
            url: o.url,
            key: o.key,
        });
        let o = object();
        r.thumbnail = Some(ThumbnailInfo {
            mime: short.clone(),
            width: u32::MAX,
            height: u32::MAX,
            url: o.url,
            key: o.key,
        });
        r.original = Some(object());
        r.crm = Crm {
            customer_id: Some(s(MAX_ID_BYTES)),
            chat_id: Some(s(MAX_ID_BYTES)),
            message_id: Some(s(MAX_ID_BYTES)),
            channel: Some(s(MAX_CHANNEL_BYTES)),
            tags: vec![s(MAX_TAG_BYTES); MAX_TAGS],
        };
        r.received_at = Some("9".repeat(MAX_TIME_BYTES));
        r.retention_until = Some(now_rfc3339());
        // extra is bounded as the JSON it is in the record.
        let padding = MAX_EXTRA_BYTES - r#"{"x":""}"#.len();
        r.extra = serde_json::json!({ "x": "a".repeat(padding) });
        assert_eq!(serde_json::to_string(&r.extra).unwrap().len(), MAX_EXTRA_BYTES);
        let message = format!("{name} {}", s(100_000));
        r.error = Some(crate::failure::Failure::new(
            crate::failure::ErrorCode::WORKER_CRASHED,
            message,
        ));
        assert_eq!(r.source.codecs.len(), MAX_CODECS);
        let json = r.to_json().expect("within the bound");
        assert!(
            json.len() > MAX_RECORD_BYTES / 2,
            "the test builds a large record: {}",
            json.len()
        );
        serde_json::from_str::<Record>(&json).unwrap();
        r.extra = serde_json::json!({ "x": "a".repeat(MAX_RECORD_BYTES) });
        let e = r.to_json().unwrap_err();
        assert!(e.bytes > MAX_RECORD_BYTES, "{e}");
    }

    #[test]
    fn serialises_with_the_spec_field_names() {
        let r = Record::new(
            Event::Rejected,
            "x.ogg",
            None,
            SourceInfo {
                file_name: "x.ogg".into(),
                ..Default::default()
            },
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["schema"], "mediaspool.record/v1");
        assert_eq!(v["event"], "media.rejected");
        for key in [
            "record_id",
            "content_hash",
            "duplicate_of",
            "source",
            "media",
            "thumbnail",
            "original",
            "crm",
            "links_expire_at",
            "card_url",
            "received_at",
            "processed_at",
            "retention_until",
            "extra",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert!(v.get("error").is_none());
    }
}
