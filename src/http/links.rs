//! Signed, expiring links to media cards.
//!
//! In: a record id, an expiry (Unix seconds) and the `[http]` keys. Out: the query string
//! `exp=…&sig=…` a card and its media are reached with, and the verdict on one a client
//! brings back. The signature is HMAC-SHA256 over `card.v1.RECORD_ID.EXP` (base64url), so a
//! guessed or altered id, or a changed expiry, matches nothing. The first key signs, every key
//! verifies: a new key can be put first while links signed with the old one still work.
//! Without `card_secret`, a random key made at start signs the status page's links; they stop
//! working when the process does. Pure computation; cannot fail.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::HttpConfig;

type HmacSha256 = Hmac<Sha256>;

/// How long the status page's own media links are valid.
pub const STATUS_LINK_TTL: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct CardLinks {
    keys: Vec<Vec<u8>>,
    ttl: Duration,
    /// `https://host/base`, without a trailing slash; empty: records carry no card link.
    public_url: String,
}

impl std::fmt::Debug for CardLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("CardLinks")
            .field("keys", &self.keys.len())
            .field("ttl", &self.ttl)
            .field("public_url", &self.public_url)
            .finish()
    }
}

impl CardLinks {
    pub fn from_config(http: &HttpConfig) -> CardLinks {
        let mut keys: Vec<Vec<u8>> = http
            .card_secret
            .split_whitespace()
            .map(|k| k.as_bytes().to_vec())
            .collect();
        if keys.is_empty() {
            keys.push(random_key());
        }
        CardLinks {
            keys,
            ttl: http.card_ttl,
            public_url: http.public_url.trim_end_matches('/').to_string(),
        }
    }

    fn mac(key: &[u8], record_id: &str, expires: u64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(format!("card.v1.{record_id}.{expires}").as_bytes());
        mac
    }

    /// `exp=…&sig=…` for `record_id`, valid for `ttl` from now.
    pub fn query(&self, record_id: &str, ttl: Duration) -> String {
        let expires = unix_now() + ttl.as_secs();
        let sig = Self::mac(&self.keys[0], record_id, expires)
            .finalize()
            .into_bytes();
        format!("exp={expires}&sig={}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// The link records carry, when `http.public_url` is set.
    pub fn card_url(&self, record_id: &str) -> Option<String> {
        if self.public_url.is_empty() {
            return None;
        }
        Some(format!(
            "{}/card/{record_id}?{}",
            self.public_url,
            self.query(record_id, self.ttl)
        ))
    }

    /// Whether `sig` signs `record_id` until `expires`, and that time has not passed.
    pub fn verify(&self, record_id: &str, expires: u64, sig: &str) -> bool {
        if expires < unix_now() {
            return false;
        }
        let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
            return false;
        };
        // verify_slice compares in constant time.
        self.keys
            .iter()
            .any(|key| Self::mac(key, record_id, expires).verify_slice(&sig).is_ok())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// 32 bytes from the kernel's random source.
fn random_key() -> Vec<u8> {
    use std::io::Read;
    let mut key = vec![0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .expect("the kernel's random source is readable");
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(secret: &str) -> CardLinks {
        CardLinks::from_config(&HttpConfig {
            card_secret: secret.into(),
            public_url: "https://media.example.com/".into(),
            ..HttpConfig::default()
        })
    }

    fn parts(query: &str) -> (u64, String) {
        let (exp, sig) = query.split_once('&').unwrap();
        (
            exp.strip_prefix("exp=").unwrap().parse().unwrap(),
            sig.strip_prefix("sig=").unwrap().to_string(),
        )
    }

    #[test]
    fn a_link_verifies_for_its_record_only_and_until_it_expires() {
        let l = links("k1-0123456789abcdef0123456789abcdef");
        let (exp, sig) = parts(&l.query("rec1", Duration::from_secs(60)));
        assert!(l.verify("rec1", exp, &sig));
        assert!(!l.verify("rec2", exp, &sig), "another record");
        assert!(!l.verify("rec1", exp + 1, &sig), "another expiry");
        assert!(!l.verify("rec1", exp, "AAAA"), "another signature");
        assert!(!l.verify("rec1", exp, "not base64!"));
        let (old, sig) = parts(&l.query("rec1", Duration::ZERO));
        assert!(!l.verify("rec1", old - 1, &sig), "expired");
    }

    #[test]
    fn a_second_key_verifies_what_the_old_first_signed() {
        let old = links("old-0123456789abcdef0123456789abcdef");
        let rotated = links("new-0123456789abcdef0123456789abcdef old-0123456789abcdef0123456789abcdef");
        let (exp, sig) = parts(&old.query("rec", Duration::from_secs(60)));
        assert!(rotated.verify("rec", exp, &sig));
        let (exp, sig) = parts(&rotated.query("rec", Duration::from_secs(60)));
        assert!(!old.verify("rec", exp, &sig), "signed with the new key");
    }

    #[test]
    fn card_urls_need_a_public_url() {
        let l = links("k1-0123456789abcdef0123456789abcdef");
        let url = l.card_url("rec").unwrap();
        assert!(
            url.starts_with("https://media.example.com/card/rec?exp="),
            "{url}"
        );
        let without = CardLinks::from_config(&HttpConfig::default());
        assert_eq!(without.card_url("rec"), None);
        assert!(format!("{without:?}").contains("keys: 1"));
    }
}
