//! Personal data and secrets out of the logs.
//!
//! Two layers. Call sites never log a record's `crm` fields or a manifest's contents, and name
//! a chat only by [`chat`] (a short keyed hash: the same chat gives the same tag in every line,
//! the tag does not give the chat). Under them, every line of every level, human or JSON,
//! passes [`redact`] on its way to stderr ([`Stderr`]), whatever a library or a future call site
//! writes:
//! - values it has been told about: secrets ([`register_secret`]: signing secrets and
//!   credentials from the configuration and the environment) become `[redacted]`; the chat ids
//!   and customer names of the manifests read lately ([`register_manifest`]) become the chat's
//!   tag and `[name]` (a name, and each of its words of 4 letters or more, as whole words);
//! - patterns: phone numbers (`+34 600 00 00 00`, and runs of 9 to 15 digits standing alone, as
//!   WhatsApp ids and bridges' file names carry them), `wa:`/`tel:` ids, URL passwords and query
//!   strings (presigned links are credentials), bearer tokens, `whsec_` signing secrets,
//!   `password=`/`secret=`/`token=`-style values, AWS access key ids.
//!
//! In a JSON line a bare number after `:` is a number, not a phone, and is kept, so the line
//! stays JSON; a human line loses such a number when it is 9 digits or longer. A name or chat
//! id is known from when its manifest is read: a line about the file written before that
//! carries only what the patterns catch.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{LazyLock, RwLock};

use regex::{Captures, Regex};

use crate::ingest::manifest::Manifest;

const REDACTED: &str = "[redacted]";
const PHONE: &str = "[phone]";
const NAME: &str = "[name]";

/// Secrets shorter than this are not registered: they would redact ordinary words.
const SHORTEST_SECRET: usize = 6;
/// Chat ids shorter than this are left to the patterns.
const SHORTEST_CHAT: usize = 6;
/// A whole name shorter than this is not registered, nor a word of one shorter than
/// [`SHORTEST_NAME_WORD`].
const SHORTEST_NAME: usize = 3;
const SHORTEST_NAME_WORD: usize = 4;
/// Chat ids and names of this many manifests read last are remembered.
const REMEMBERED: usize = 1024;

/// What the logs must not show, known by value.
struct Known {
    secrets: Vec<String>,
    /// (chat id, its tag), oldest first.
    chats: VecDeque<(String, String)>,
    /// Names and their words, oldest first.
    names: VecDeque<String>,
}

static KNOWN: RwLock<Known> = RwLock::new(Known {
    secrets: Vec::new(),
    chats: VecDeque::new(),
    names: VecDeque::new(),
});
static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        // scheme://user:password@host
        (r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@", "${1}[redacted]@"),
        // query strings of links: presigned URLs and SAS tokens are credentials
        (r"(?i)(\bhttps?://[^\s?#]+)\?[^\s#]*", "${1}?[redacted]"),
        (r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+", "${1} [redacted]"),
        (r"\bwhsec_[A-Za-z0-9+/=]+", "whsec_[redacted]"),
        (
            r#"(?i)(password|passwd|secret|token|api[_-]?key|access[_-]?key|authorization)(\\?"?\s*[=:]\s*\\?"?)[^\s",&}\\]+"#,
            "${1}${2}[redacted]",
        ),
        (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", REDACTED),
        (r#"(?i)\b(wa|whatsapp|tel|sms):[^\s"',;)\]}]+"#, "${1}:[redacted]"),
        (r"\+\d[\d ().-]{6,20}\d", PHONE),
    ]
    .into_iter()
    .map(|(pattern, replacement)| (Regex::new(pattern).expect("valid pattern"), replacement))
    .collect()
});

static DIGITS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d{9,15}").expect("valid pattern"));

/// The format of the line being redacted: in JSON a bare number is a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    Human,
    Json,
}

/// Adds a value that must never appear in a log line (ignored if shorter than 6 bytes).
pub fn register_secret(secret: &str) {
    let secret = secret.trim();
    if secret.len() < SHORTEST_SECRET {
        return;
    }
    let mut known = KNOWN.write().unwrap_or_else(|p| p.into_inner());
    if !known.secrets.iter().any(|s| s == secret) {
        known.secrets.push(secret.to_string());
        // Longest first, so a secret containing another is replaced whole.
        known.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Remembers a manifest's chat id (shown as its tag from now on) and the customer names in
/// its `extra`: string values under a key with `name` in it (`customer_name`, `contact`'s
/// `display_name`, …), except file names.
pub fn register_manifest(manifest: &Manifest) {
    let mut names = Vec::new();
    if let Some(extra) = &manifest.extra {
        for (key, value) in extra {
            collect_names(key, value, &mut names);
        }
    }
    let chat_id = manifest.chat_id.as_deref().filter(|c| c.len() >= SHORTEST_CHAT);
    if names.is_empty() && chat_id.is_none() {
        return;
    }
    let mut known = KNOWN.write().unwrap_or_else(|p| p.into_inner());
    if let Some(id) = chat_id {
        if !known.chats.iter().any(|(c, _)| c == id) {
            if known.chats.len() == REMEMBERED {
                known.chats.pop_front();
            }
            known.chats.push_back((id.to_string(), chat(id)));
        }
    }
    for name in names {
        if !known.names.contains(&name) {
            if known.names.len() == REMEMBERED * 4 {
                known.names.pop_front();
            }
            known.names.push_back(name);
        }
    }
}

/// Names in a manifest's `extra` value under `key`: the whole name first, then its words.
fn collect_names(key: &str, value: &serde_json::Value, names: &mut Vec<String>) {
    let key = key.to_ascii_lowercase();
    match value {
        serde_json::Value::String(text) if key.contains("name") && !key.contains("file") => {
            let text = text.trim();
            if text.chars().count() >= SHORTEST_NAME {
                names.push(text.to_string());
                names.extend(
                    text.split(|c: char| !c.is_alphanumeric())
                        .filter(|w| w.chars().count() >= SHORTEST_NAME_WORD && w != &text)
                        .map(str::to_string),
                );
            }
        }
        serde_json::Value::Object(fields) => {
            for (key, value) in fields {
                collect_names(key, value, names);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_names(&key, item, names);
            }
        }
        _ => {}
    }
}

/// Registers the values of environment variables whose names say they hold a credential
/// (`*SECRET*`, `*TOKEN*`, `*PASSWORD*`, `*_KEY`, `*CREDENTIAL*`).
pub fn register_environment_secrets() {
    for (name, value) in std::env::vars() {
        let name = name.to_ascii_uppercase();
        let secret = ["SECRET", "TOKEN", "PASSWORD", "CREDENTIAL"]
            .iter()
            .any(|w| name.contains(w))
            || name.ends_with("_KEY");
        // A path is not a credential, and would redact the log's own file names.
        if secret && !value.starts_with('/') {
            register_secret(&value);
        }
    }
}

/// A chat as logs name it: `chat:` and 8 hex digits of a keyed hash of its id.
pub fn chat(chat_id: &str) -> String {
    let hash = blake3::keyed_hash(b"mediaspool log tag of a chat id.", chat_id.as_bytes());
    format!("chat:{}", &hash.to_hex()[..8])
}

/// The line with personal data and secrets replaced (see the module docs).
pub fn redact(line: &str, format: LineFormat) -> String {
    let mut text = line.to_string();
    {
        let known = KNOWN.read().unwrap_or_else(|p| p.into_inner());
        for secret in &known.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), REDACTED);
            }
        }
        for (id, tag) in &known.chats {
            if text.contains(id.as_str()) {
                text = text.replace(id.as_str(), tag);
            }
        }
        for name in &known.names {
            if text.contains(name.as_str()) {
                text = replace_words(&text, name, NAME);
            }
        }
    }
    for (pattern, replacement) in PATTERNS.iter() {
        if pattern.is_match(&text) {
            text = pattern.replace_all(&text, *replacement).into_owned();
        }
    }
    redact_digit_runs(&text, format)
}

/// `text` with each occurrence of `word` that is not part of a longer word replaced.
fn replace_words(text: &str, word: &str, replacement: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(word) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + word.len()..].chars().next();
        let whole = !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric);
        out.push_str(&rest[..at]);
        out.push_str(if whole { replacement } else { word });
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
}

/// Runs of 9 to 15 digits that stand alone (not inside a word, a hex string or a decimal),
/// except, in JSON, a number value.
fn redact_digit_runs(text: &str, format: LineFormat) -> String {
    if !DIGITS.is_match(text) {
        return text.to_string();
    }
    DIGITS
        .replace_all(text, |c: &Captures<'_>| {
            let m = c.get(0).expect("whole match");
            let before = text[..m.start()].chars().next_back();
            let after = text[m.end()..].chars().next();
            let glued = |ch: Option<char>| ch.is_some_and(|ch| ch.is_ascii_alphanumeric() || ch == '.');
            let number_value = format == LineFormat::Json && before == Some(':');
            if glued(before)
                || after.is_some_and(|ch| ch.is_ascii_digit() || ch.is_ascii_alphabetic())
                || number_value
            {
                m.as_str().to_string()
            } else {
                PHONE.to_string()
            }
        })
        .into_owned()
}

/// Where log lines go: stderr, each line redacted whole before it is written.
#[derive(Debug, Clone, Copy)]
pub struct Stderr(pub LineFormat);

/// One log line being formatted; redacted and written when dropped.
pub struct Line {
    buffer: Vec<u8>,
    format: LineFormat,
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let text = redact(&String::from_utf8_lossy(&self.buffer), self.format);
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            buffer: Vec::with_capacity(256),
            format: self.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn human(line: &str) -> String {
        redact(line, LineFormat::Human)
    }

    #[test]
    fn phone_numbers_and_whatsapp_ids_go() {
        assert_eq!(human("from +34 600 000 000 ok"), "from [phone] ok");
        assert_eq!(human("chat=wa:+34600000000 x"), "chat=wa:[redacted] x");
        assert_eq!(human("file=34600000000_voice.ogg"), "file=[phone]_voice.ogg");
        assert_eq!(
            human("jid 34600000000@s.whatsapp.net"),
            "jid [phone]@s.whatsapp.net"
        );
        assert_eq!(human("(+1-415-555-0100)"), "([phone])");
    }

    #[test]
    fn ordinary_numbers_hashes_and_times_stay() {
        for line in [
            "2026-11-28T10:00:00.123456Z voice.ogg: media.stored audio voice 8.3 s, 15.0 KiB in 548 ms",
            "blake3:ab12345678901234567890cdef",
            "job 18a2b3c4d5e6f7a8b9c0d1e2f",
            "took 0.123456789 s at 2026-11-28T10:00:00+00:00",
        ] {
            assert_eq!(human(line), line);
        }
        let json = r#"{"fields":{"bytes":123456789,"file":"34600000000.ogg"}}"#;
        assert_eq!(
            redact(json, LineFormat::Json),
            r#"{"fields":{"bytes":123456789,"file":"[phone].ogg"}}"#
        );
    }

    #[test]
    fn secrets_and_tokens_go() {
        assert_eq!(
            human("GET https://b.s3.amazonaws.com/k?X-Amz-Signature=abc&X-Amz-Credential=AK failed"),
            "GET https://b.s3.amazonaws.com/k?[redacted] failed"
        );
        assert_eq!(
            human("postgres://app:hunter22@db/x"),
            "postgres://app:[redacted]@db/x"
        );
        assert!(!human("Authorization: Bearer eyJhbGciOi.x.y").contains("eyJ"));
        assert_eq!(human("secret=whsec_MfKQ9r8GKYqr"), "secret=[redacted]");
        assert_eq!(human("key AKIAIOSFODNN7EXAMPLE"), "key [redacted]");
        assert_eq!(
            redact(r#"{"message":"x","token":"s3cr3t-value"}"#, LineFormat::Json),
            r#"{"message":"x","token":"[redacted]"}"#
        );
        register_secret("correct-horse-battery");
        assert_eq!(human("sent with correct-horse-battery"), "sent with [redacted]");
        register_secret("abc");
        assert_eq!(human("abc"), "abc", "too short to register");
    }

    #[test]
    fn chat_ids_and_names_of_manifests_read_go() {
        let manifest = Manifest::parse(
            br#"{"chat_id": "grp-7781-sales", "extra": {"customer_name": "Maria Garcia",
                 "contact": {"display_name": "Kim"}, "file_name": "note.ogg", "city": "Madrid"}}"#,
        )
        .unwrap();
        register_manifest(&manifest);
        let tag = chat("grp-7781-sales");
        assert_eq!(
            human("chat grp-7781-sales: Maria Garcia.ogg"),
            format!("chat {tag}: [name].ogg")
        );
        assert_eq!(human("Garcia_2.ogg from Kim"), "[name]_2.ogg from [name]");
        assert_eq!(
            human("Mariachi Garciaz Kimono note.ogg Madrid"),
            "Mariachi Garciaz Kimono note.ogg Madrid"
        );
    }

    #[test]
    fn chats_are_tagged_not_named() {
        let tag = chat("wa:+34600000000");
        assert!(tag.starts_with("chat:") && tag.len() == 13);
        assert_eq!(tag, chat("wa:+34600000000"));
        assert_ne!(tag, chat("wa:+34600000001"));
    }
}
