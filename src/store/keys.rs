//! Object keys: derived from the content hash and the profile id only.
//!
//! `PREFIX/ab/<hash>/<profile id>/media.mp3`, `…/<profile id>/thumb.png`,
//! `…/<profile id>/outputs.json` (the marker put after them, see `pipeline::reuse`),
//! `PREFIX/ab/<hash>/original` (files stored as they came, and archived originals). The two-hex
//! fan-out keeps directories small on local disks.

use crate::hash::ContentHash;

pub fn rendition(prefix: &str, hash: &ContentHash, profile_id: &str, extension: &str) -> String {
    format!(
        "{}{}/media.{extension}",
        base(prefix, hash),
        profile_dir(profile_id)
    )
}

pub fn thumbnail(prefix: &str, hash: &ContentHash, profile_id: &str, extension: &str) -> String {
    format!(
        "{}{}/thumb.{extension}",
        base(prefix, hash),
        profile_dir(profile_id)
    )
}

/// The marker saying that every output of these bytes with this profile is stored.
pub fn outputs(prefix: &str, hash: &ContentHash, profile_id: &str) -> String {
    format!("{}{}/{OUTPUTS}", base(prefix, hash), profile_dir(profile_id))
}

/// The marker of the rendition stored under `rendition_key` (they share a directory).
pub fn outputs_beside(rendition_key: &str) -> String {
    match rendition_key.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{OUTPUTS}"),
        None => OUTPUTS.to_string(),
    }
}

const OUTPUTS: &str = "outputs.json";

pub fn original(prefix: &str, hash: &ContentHash) -> String {
    format!("{}original", base(prefix, hash))
}

fn base(prefix: &str, hash: &ContentHash) -> String {
    let hex = hash.hex();
    let sep = if prefix.is_empty() || prefix.ends_with('/') {
        ""
    } else {
        "/"
    };
    format!("{prefix}{sep}{}/{hex}/", &hex[..2])
}

fn profile_dir(profile_id: &str) -> String {
    profile_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_hash_and_profile_only() {
        let h = ContentHash::parse(&"ab".repeat(32)).unwrap();
        assert_eq!(
            rendition("", &h, "0123", "mp3"),
            format!("ab/{}/0123/media.mp3", h.hex())
        );
        assert_eq!(
            thumbnail("crm", &h, "0123", "png"),
            format!("crm/ab/{}/0123/thumb.png", h.hex())
        );
        assert_eq!(original("crm/", &h), format!("crm/ab/{}/original", h.hex()));
        let marker = outputs("crm", &h, "0123");
        assert_eq!(marker, format!("crm/ab/{}/0123/outputs.json", h.hex()));
        assert_eq!(outputs_beside(&rendition("crm", &h, "0123", "mp4")), marker);
        assert_eq!(
            rendition("", &h, "../x", "mp3"),
            format!("ab/{}/x/media.mp3", h.hex())
        );
    }
}
