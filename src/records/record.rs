//! The record format of SPEC.md, field for field.

use serde::{Deserialize, Serialize};

use crate::failure::Failure;
use crate::hash::ContentHash;
use crate::store::ObjectRef;

pub const SCHEMA: &str = "mediaspool.record/v1";

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
    pub received_at: Option<String>,
    pub processed_at: String,
    pub retention_until: Option<String>,
    pub extra: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
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
            received_at: None,
            processed_at: now_rfc3339(),
            retention_until: None,
            extra: serde_json::Value::Object(Default::default()),
            error: None,
        }
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
