//! Sample records, one per event, to render sinks' requests against (`mediaspool check`, the
//! presets' golden tests). Pure.

use crate::failure::{ErrorCode, Failure};
use crate::records::{Crm, Event, MediaInfo, Record, SourceInfo, ThumbnailInfo};

/// A voice note's records: stored, duplicate, rejected, deleted.
pub fn sample_records() -> Vec<Record> {
    Event::ALL.iter().map(|e| sample(*e)).collect()
}

fn sample(event: Event) -> Record {
    let source = SourceInfo {
        file_name: "voice-note.ogg".into(),
        bytes: 18_734,
        mime: Some("audio/ogg".into()),
        container: Some("ogg".into()),
        codecs: vec!["opus".into()],
    };
    let mut r = Record::new(event, "wamid.HBgLMzQ2MDAwMDAwMDAVAgASGBQ", None, source);
    r.content_hash = Some(format!("blake3:{}", "5f".repeat(32)));
    r.processed_at = "2026-11-28T10:00:02Z".into();
    r.received_at = Some("2026-11-28T10:00:00Z".into());
    r.crm = Crm {
        customer_id: Some("c-42".into()),
        chat_id: Some("wa:+34600000000".into()),
        message_id: Some("wamid.HBgLMzQ2MDAwMDAwMDAVAgASGBQ".into()),
        channel: Some("whatsapp".into()),
        tags: vec!["product-issue".into()],
    };
    r.extra = serde_json::json!({"zendesk_ticket_id": "1234", "chatwoot_conversation_id": "77"});
    let media = MediaInfo {
        kind: "audio".into(),
        profile: Some("voice".into()),
        profile_id: Some("9dfb88b6bab1c7d7".into()),
        mime: "audio/mpeg".into(),
        bytes: 40_320,
        duration_ms: Some(10_080),
        width: None,
        height: None,
        url: "https://media.example.com/5f/5f5f/9dfb88b6bab1c7d7/media.mp3".into(),
        key: "5f/5f5f/9dfb88b6bab1c7d7/media.mp3".into(),
    };
    let thumbnail = ThumbnailInfo {
        mime: "image/png".into(),
        width: 400,
        height: 100,
        url: "https://media.example.com/5f/5f5f/9dfb88b6bab1c7d7/thumb.png".into(),
        key: "5f/5f5f/9dfb88b6bab1c7d7/thumb.png".into(),
    };
    match event {
        Event::Stored | Event::Deleted => {
            r.media = Some(media);
            r.thumbnail = Some(thumbnail);
        }
        Event::Duplicate => {
            r.media = Some(media);
            r.thumbnail = Some(thumbnail);
            r.duplicate_of = Some("0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f".into());
        }
        Event::Rejected => {
            r.error = Some(Failure::new(
                ErrorCode::DECODE_ERROR,
                "corrupt or truncated data at 2.35 s",
            ));
        }
    }
    r
}
