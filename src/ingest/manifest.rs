//! `NAME.meta.json`: what the producer knows about a message, next to its media.
//!
//! In: a manifest file and the size limit (`spool.max_manifest_bytes`). Out: [`Manifest`],
//! every field optional. Fails with [`ManifestError`]: a file over the limit is refused from its
//! size alone, without being read; a file that is not a regular file (a link, a FIFO) is never
//! followed or opened for more than a look; otherwise every problem is listed at once — fields of
//! the wrong type and fields over their limits ([`MAX_ID_BYTES`] and the others below), each
//! named — or the JSON that does not parse, so the pair can be quarantined with a clear reason.
//! Nesting is bounded before it is followed: `extra` may nest [`MAX_EXTRA_DEPTH`] levels, other
//! fields are read no deeper than their type, and anything deeper is skipped without recursion.
//! Unknown fields are ignored: producers may send more than this version reads. Also checks a
//! channel-supplied `sha256` (hex or base64) against the media's bytes. Blocking file reads of
//! at most the limit.

use std::fmt;
use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::failure::{ErrorCode, Failure};

use super::nested::Nested;

/// A century: longer retention is not retention.
pub const MAX_RETENTION_DAYS: u32 = 36_500;
/// `customer_id`, `chat_id` and `message_id`, in bytes of UTF-8.
pub const MAX_ID_BYTES: usize = 256;
/// `channel`, in bytes.
pub const MAX_CHANNEL_BYTES: usize = 64;
/// `received_at`, in bytes (an RFC 3339 time needs about 30).
pub const MAX_TIME_BYTES: usize = 64;
/// Number of `tags`.
pub const MAX_TAGS: usize = 64;
/// Each tag, in bytes.
pub const MAX_TAG_BYTES: usize = 64;
/// `extra`, in bytes of compact JSON (as it appears in a record).
pub const MAX_EXTRA_BYTES: usize = 16 * 1024;
/// Levels of arrays and objects in `extra`, itself included.
pub const MAX_EXTRA_DEPTH: usize = 16;

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
    #[error("the manifest is {bytes} bytes, over spool.max_manifest_bytes ({limit} bytes); it was not read")]
    TooLarge { bytes: u64, limit: u64 },
    #[error(
        "the manifest is not a regular file (a link, FIFO, directory or device); it was not followed or read"
    )]
    NotRegularFile,
    #[error("manifest is not valid JSON: {0}")]
    NotJson(String),
    #[error("manifest must be a JSON object")]
    NotObject,
    #[error("manifest has bad fields: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl ManifestError {
    pub fn failure(&self) -> Failure {
        Failure::new(ErrorCode::BAD_MANIFEST, self.to_string())
    }
}

impl Manifest {
    /// Reads the manifest at `path`, refusing one over `limit` bytes without reading it. The
    /// outer error is the file system's (a manifest that is not there: `NotFound`).
    pub fn read(path: &Path, limit: u64) -> std::io::Result<Result<Manifest, ManifestError>> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = match std::fs::OpenOptions::new()
            .read(true)
            // A FIFO opens at once and is refused below; a link is not followed.
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(Err(ManifestError::NotRegularFile)),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(Err(ManifestError::NotRegularFile));
        }
        if meta.len() > limit {
            return Ok(Err(ManifestError::TooLarge {
                bytes: meta.len(),
                limit,
            }));
        }
        // It may still be growing: never more than one byte past the limit is read.
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(limit + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            return Ok(Err(ManifestError::TooLarge {
                bytes: bytes.len() as u64,
                limit,
            }));
        }
        Ok(Manifest::parse(&bytes))
    }

    /// Parses a manifest's bytes (already within the size limit).
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let fields = match (&mut de)
            .deserialize_map(KnownFields)
            .and_then(|f| de.end().map(|()| f))
        {
            Ok(fields) => fields,
            // Only the top level's type can mismatch: every field is read as any JSON value.
            Err(e) if e.is_data() => return Err(ManifestError::NotObject),
            Err(e) => return Err(ManifestError::NotJson(e.to_string())),
        };
        let mut problems = Vec::new();
        let mut m = Manifest::default();
        for (key, value) in fields {
            let mut wrong = |want: &str| problems.push(format!("{key} must be {want}"));
            let Some(value) = value else {
                match key {
                    "extra" => {
                        problems.push(format!("extra is nested more than {MAX_EXTRA_DEPTH} levels deep"))
                    }
                    "tags" => wrong("an array of strings"),
                    "consent" => wrong("true or false"),
                    "retention_days" => wrong("a whole number of days, at most 36500"),
                    _ => wrong("a string"),
                }
                continue;
            };
            match key {
                "customer_id" | "chat_id" | "message_id" | "channel" | "sha256" | "received_at" => {
                    let Value::String(text) = value else {
                        if !value.is_null() {
                            wrong("a string");
                        }
                        continue;
                    };
                    let (slot, max) = match key {
                        "customer_id" => (&mut m.customer_id, MAX_ID_BYTES),
                        "chat_id" => (&mut m.chat_id, MAX_ID_BYTES),
                        "message_id" => (&mut m.message_id, MAX_ID_BYTES),
                        "channel" => (&mut m.channel, MAX_CHANNEL_BYTES),
                        "received_at" => (&mut m.received_at, MAX_TIME_BYTES),
                        // Checked against its two encodings below.
                        _ => (&mut m.sha256, usize::MAX),
                    };
                    if text.len() > max {
                        problems.push(format!("{key} is {} bytes, at most {max}", text.len()));
                        continue;
                    }
                    *slot = Some(text);
                }
                "tags" => match value {
                    Value::Array(items) if items.iter().all(Value::is_string) => {
                        if items.len() > MAX_TAGS {
                            problems.push(format!("tags has {} tags, at most {MAX_TAGS}", items.len()));
                            continue;
                        }
                        let tags: Vec<String> = items
                            .into_iter()
                            .filter_map(|t| match t {
                                Value::String(s) => Some(s),
                                _ => None,
                            })
                            .collect();
                        let long: Vec<String> = tags
                            .iter()
                            .enumerate()
                            .filter(|(_, t)| t.len() > MAX_TAG_BYTES)
                            .map(|(i, t)| format!("tags[{i}] is {} bytes", t.len()))
                            .collect();
                        if long.is_empty() {
                            m.tags = tags;
                        } else {
                            problems.push(format!("{}, at most {MAX_TAG_BYTES} each", long.join(", ")));
                        }
                    }
                    Value::Null => {}
                    _ => wrong("an array of strings"),
                },
                "consent" => match value {
                    Value::Bool(b) => m.consent = Some(b),
                    Value::Null => {}
                    _ => wrong("true or false"),
                },
                "retention_days" => match value.as_u64().filter(|d| *d <= u64::from(MAX_RETENTION_DAYS)) {
                    Some(d) => m.retention_days = Some(d as u32),
                    None if value.is_null() => {}
                    None => wrong("a whole number of days, at most 36500"),
                },
                "extra" => match value {
                    Value::Object(extra) => {
                        let size = serde_json::to_string(&extra).map_or(usize::MAX, |s| s.len());
                        if size > MAX_EXTRA_BYTES {
                            problems.push(format!(
                                "extra is {size} bytes as JSON, at most {MAX_EXTRA_BYTES}"
                            ));
                        } else {
                            m.extra = Some(extra);
                        }
                    }
                    Value::Null => {}
                    _ => wrong("an object"),
                },
                _ => unreachable!("only known fields are kept"),
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
            Err(ManifestError::Invalid(problems))
        }
    }
}

/// The fields this version reads, and how deep each may nest: 0 for a scalar, 1 for an array
/// of scalars.
const FIELDS: [(&str, usize); 10] = [
    ("customer_id", 0),
    ("chat_id", 0),
    ("message_id", 0),
    ("channel", 0),
    ("received_at", 0),
    ("tags", 1),
    ("consent", 0),
    ("retention_days", 0),
    ("sha256", 0),
    ("extra", MAX_EXTRA_DEPTH),
];

/// The manifest object's known fields, in order, each value read to its depth (`None`: nested
/// deeper). Unknown fields are skipped.
struct KnownFields;

impl<'de> Visitor<'de> for KnownFields {
    type Value = Vec<(&'static str, Option<Value>)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match FIELDS.iter().find(|(name, _)| *name == key) {
                Some(&(name, depth)) => fields.push((name, map.next_value_seed(Nested(depth))?)),
                None => {
                    tracing::debug!(field = %key, "ignoring unknown manifest field");
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(fields)
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
        let ManifestError::Invalid(problems) = e else {
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

    fn problems(json: &str) -> Vec<String> {
        match Manifest::parse(json.as_bytes()) {
            Err(ManifestError::Invalid(problems)) => problems,
            other => panic!("{other:?}"),
        }
    }

    /// `{"extra": …}` nesting `depth` levels of arrays and objects, `extra` itself included.
    fn nested_extra(depth: usize) -> String {
        format!(
            r#"{{"extra": {{"a": {}1{}}}}}"#,
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        )
    }

    #[test]
    fn every_limit_is_accepted_at_its_value_and_named_past_it() {
        let quoted = |n: usize| format!("{:?}", "x".repeat(n));
        for (field, max) in [
            ("customer_id", MAX_ID_BYTES),
            ("chat_id", MAX_ID_BYTES),
            ("message_id", MAX_ID_BYTES),
            ("channel", MAX_CHANNEL_BYTES),
        ] {
            Manifest::parse(format!(r#"{{"{field}": {}}}"#, quoted(max)).as_bytes()).unwrap();
            assert_eq!(
                problems(&format!(r#"{{"{field}": {}}}"#, quoted(max + 1))),
                [format!("{field} is {} bytes, at most {max}", max + 1)]
            );
        }
        // Bytes, not characters.
        let wide = "é".repeat(MAX_CHANNEL_BYTES / 2 + 1);
        assert_eq!(problems(&format!(r#"{{"channel": "{wide}"}}"#)).len(), 1);
        // An RFC 3339 time of exactly the limit (fractional seconds may have any digits).
        let at_limit = format!("2026-11-28T10:00:00.{}Z", "0".repeat(MAX_TIME_BYTES - 21));
        assert_eq!(at_limit.len(), MAX_TIME_BYTES);
        let m = Manifest::parse(format!(r#"{{"received_at": "{at_limit}"}}"#).as_bytes()).unwrap();
        assert_eq!(m.received_at, Some(at_limit));
        let long_time = format!("2026-11-28T10:00:00.{}Z", "0".repeat(MAX_TIME_BYTES));
        assert_eq!(
            problems(&format!(r#"{{"received_at": "{long_time}"}}"#)),
            [format!(
                "received_at is {} bytes, at most {MAX_TIME_BYTES}",
                long_time.len()
            )]
        );

        let m = Manifest::parse(format!(r#"{{"retention_days": {MAX_RETENTION_DAYS}}}"#).as_bytes()).unwrap();
        assert_eq!(m.retention_days, Some(MAX_RETENTION_DAYS));
        assert_eq!(
            problems(&format!(r#"{{"retention_days": {}}}"#, MAX_RETENTION_DAYS + 1)),
            ["retention_days must be a whole number of days, at most 36500"]
        );

        let tags = |count: usize, bytes: usize| {
            let tag = quoted(bytes);
            format!(r#"{{"tags": [{}]}}"#, vec![tag; count].join(","))
        };
        let m = Manifest::parse(tags(MAX_TAGS, MAX_TAG_BYTES).as_bytes()).unwrap();
        assert_eq!(m.tags.len(), MAX_TAGS);
        assert_eq!(
            problems(&tags(MAX_TAGS + 1, 1)),
            [format!("tags has {} tags, at most {MAX_TAGS}", MAX_TAGS + 1)]
        );
        assert_eq!(
            problems(&tags(2, MAX_TAG_BYTES + 1)),
            [format!(
                "tags[0] is {0} bytes, tags[1] is {0} bytes, at most {MAX_TAG_BYTES} each",
                MAX_TAG_BYTES + 1
            )]
        );

        let extra = |bytes: usize| {
            let padding = bytes - r#"{"x":""}"#.len();
            format!(r#"{{"extra": {{"x": "{}"}}}}"#, "y".repeat(padding))
        };
        let m = Manifest::parse(extra(MAX_EXTRA_BYTES).as_bytes()).unwrap();
        assert_eq!(serde_json::to_string(&m.extra).unwrap().len(), MAX_EXTRA_BYTES);
        assert_eq!(
            problems(&extra(MAX_EXTRA_BYTES + 1)),
            [format!(
                "extra is {} bytes as JSON, at most {MAX_EXTRA_BYTES}",
                MAX_EXTRA_BYTES + 1
            )]
        );
        let m = Manifest::parse(nested_extra(MAX_EXTRA_DEPTH).as_bytes()).unwrap();
        assert!(m.extra.is_some());
        assert_eq!(
            problems(&nested_extra(MAX_EXTRA_DEPTH + 1)),
            [format!("extra is nested more than {MAX_EXTRA_DEPTH} levels deep")]
        );
    }

    #[test]
    fn deep_nesting_never_recurses_past_the_limit() {
        // Deep enough to overflow a stack if each level were a call.
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let e = problems(&format!(
            r#"{{"extra": {{"a": {}}}, "tags": {}}}"#,
            deep(100_000),
            deep(3)
        ));
        assert_eq!(
            e,
            [
                format!("extra is nested more than {MAX_EXTRA_DEPTH} levels deep"),
                "tags must be an array of strings".to_string()
            ]
        );
        assert_eq!(
            problems(&format!(r#"{{"customer_id": {}}}"#, deep(100_000))),
            ["customer_id must be a string"]
        );
        // An unknown field is skipped (serde_json skips without recursion), however deep.
        Manifest::parse(format!(r#"{{"future": {}}}"#, deep(100_000)).as_bytes()).unwrap();
    }

    #[test]
    fn a_hundred_thousand_tags_are_named_as_too_many() {
        let json = format!(r#"{{"tags": [{}]}}"#, vec![r#""t""#; 100_000].join(","));
        assert_eq!(
            problems(&json),
            [format!("tags has 100000 tags, at most {MAX_TAGS}")]
        );
    }

    #[test]
    fn a_file_over_the_limit_is_refused_by_its_size_and_only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.meta.json");
        // Sparse: 300 MB that would take seconds to read.
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(300_000_000).unwrap();
        assert_eq!(
            Manifest::read(&path, 65_536).unwrap(),
            Err(ManifestError::TooLarge {
                bytes: 300_000_000,
                limit: 65_536
            })
        );
        std::fs::write(&path, br#"{"channel": "whatsapp"}"#).unwrap();
        let m = Manifest::read(&path, 23).unwrap().unwrap();
        assert_eq!(m.channel.as_deref(), Some("whatsapp"));
        assert!(matches!(
            Manifest::read(&path, 22).unwrap(),
            Err(ManifestError::TooLarge { bytes: 23, .. })
        ));
        let link = dir.path().join("link.meta.json");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(
            Manifest::read(&link, 65_536).unwrap(),
            Err(ManifestError::NotRegularFile)
        );
        let fifo = dir.path().join("fifo.meta.json");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(
            Manifest::read(&fifo, 65_536).unwrap(),
            Err(ManifestError::NotRegularFile)
        );
        assert_eq!(
            Manifest::read(&dir.path().join("none"), 65_536)
                .unwrap_err()
                .kind(),
            std::io::ErrorKind::NotFound
        );
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
