//! `NAME.meta.json`: what the producer knows about a message, next to its media.
//!
//! In: the bytes of a manifest. Out: [`Manifest`], every field optional. Fails with
//! [`ManifestError`] listing every field of the wrong type (or JSON that does not parse), so the
//! pair can be quarantined with a clear reason. Unknown fields are ignored: producers may send
//! more than this version reads. Also checks a channel-supplied `sha256` (hex or base64)
//! against the media's bytes.

use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::failure::{ErrorCode, Failure};

/// A century: longer retention is not retention.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub customer_id: Option<String>,
    pub chat_id: Option<String>,
    pub message_id: Option<String>,
    pub channel: Option<String>,
    pub received_at: Option<String>,
    pub tags: Vec<String>,
    pub consent: Option<bool>,
    pub retention_days: Option<u32>,
    pub sha256: Option<String>,
    pub extra: Option<Map<String, Value>>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    NotJson(String),
    #[error("manifest must be a JSON object")]
    NotObject,
    #[error("manifest has fields of the wrong type: {}", .0.join("; "))]
    WrongTypes(Vec<String>),
}

impl ManifestError {
    pub fn failure(&self) -> Failure {
        Failure::new(ErrorCode::BAD_MANIFEST, self.to_string())
    }
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::NotJson(e.to_string()))?;
        let Value::Object(fields) = value else {
            return Err(ManifestError::NotObject);
        };
        let mut problems = Vec::new();
        let mut m = Manifest::default();
        for (key, value) in &fields {
            let mut wrong = |want: &str| problems.push(format!("{key} must be {want}"));
            match key.as_str() {
                "customer_id" | "chat_id" | "message_id" | "channel" | "sha256" | "received_at" => {
                    let Some(text) = value.as_str() else {
                        if !value.is_null() {
                            wrong("a string");
                        }
                        continue;
                    };
                    let slot = match key.as_str() {
                        "customer_id" => &mut m.customer_id,
                        "chat_id" => &mut m.chat_id,
                        "message_id" => &mut m.message_id,
                        "channel" => &mut m.channel,
                        "sha256" => &mut m.sha256,
                        _ => &mut m.received_at,
                    };
                    *slot = Some(text.to_string());
                }
                "tags" => match value.as_array() {
                    Some(items) if items.iter().all(Value::is_string) => {
                        m.tags = items
                            .iter()
                            .filter_map(|t| t.as_str().map(str::to_string))
                            .collect()
                    }
                    _ if value.is_null() => {}
                    _ => wrong("an array of strings"),
                },
                "consent" => match value {
                    Value::Bool(b) => m.consent = Some(*b),
                    Value::Null => {}
                    _ => wrong("true or false"),
                },
                "retention_days" => match value.as_u64().filter(|d| *d <= u64::from(MAX_RETENTION_DAYS)) {
                    Some(d) => m.retention_days = Some(d as u32),
                    None if value.is_null() => {}
                    None => wrong("a whole number of days, at most 36500"),
                },
                "extra" => match value {
                    Value::Object(extra) => m.extra = Some(extra.clone()),
                    Value::Null => {}
                    _ => wrong("an object"),
                },
                other => tracing::debug!(field = other, "ignoring unknown manifest field"),
            }
        }
        if let Some(at) = &m.received_at {
            if time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).is_err() {
                problems.push(format!("received_at must be an RFC 3339 time, not {at:?}"));
            }
        }
        if let Some(digest) = &m.sha256 {
            if decode_sha256(digest).is_none() {
                problems.push("sha256 must be 64 hex digits or 44 base64 characters".to_string());
            }
        }
        if problems.is_empty() {
            Ok(m)
        } else {
            Err(ManifestError::WrongTypes(problems))
        }
    }
}

/// The 32 bytes of a SHA-256 given as hex (WhatsApp Cloud API) or base64 (some bridges).
fn decode_sha256(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
            .ok()?
    };
    bytes.try_into().ok()
}

/// Whether the file's SHA-256 is `expected` (hex or base64). Streams the file.
pub fn sha256_matches(path: &Path, expected: &str) -> std::io::Result<bool> {
    let Some(want) = decode_sha256(expected) else {
        return Ok(false);
    };
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().as_slice() == want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_spec_example() {
        let m = Manifest::parse(
            br#"{"customer_id": "c-42", "chat_id": "wa:+34600000000", "message_id": "wamid.HBg",
                "channel": "whatsapp", "received_at": "2026-11-28T10:00:00Z", "tags": ["product-issue"],
                "consent": true, "retention_days": 365, "extra": {"any": "json"}, "future": 1}"#,
        )
        .unwrap();
        assert_eq!(m.customer_id.as_deref(), Some("c-42"));
        assert_eq!(m.tags, vec!["product-issue"]);
        assert_eq!(m.consent, Some(true));
        assert_eq!(m.retention_days, Some(365));
        assert_eq!(m.extra.unwrap()["any"], "json");
    }

    #[test]
    fn every_wrong_field_is_named() {
        let e = Manifest::parse(
            br#"{"customer_id": 42, "tags": "a", "consent": "yes", "received_at": "yesterday", "retention_days": 99999999}"#,
        )
        .unwrap_err();
        let ManifestError::WrongTypes(problems) = e else {
            panic!("{e:?}")
        };
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems.iter().any(|p| p == "customer_id must be a string"));
        assert!(
            problems.iter().any(|p| p.starts_with("retention_days must be")),
            "a retention that overflows dates"
        );
        assert!(matches!(
            Manifest::parse(b"{nope"),
            Err(ManifestError::NotJson(_))
        ));
        assert_eq!(Manifest::parse(b"[1]"), Err(ManifestError::NotObject));
    }

    #[test]
    fn sha256_in_hex_or_base64() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        std::fs::write(&f, b"abc").unwrap();
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let b64 = "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=";
        assert!(sha256_matches(&f, hex).unwrap());
        assert!(sha256_matches(&f, b64).unwrap());
        assert!(!sha256_matches(&f, &hex.replace('b', "c")).unwrap());
        assert!(Manifest::parse(br#"{"sha256": "xyz"}"#).is_err());
    }
}
