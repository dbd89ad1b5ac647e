//! Standard Webhooks signatures (standardwebhooks.com): `webhook-signature: v1,<base64 of
//! HMAC-SHA256("id.timestamp.body")>`, keyed with the base64 secret after `whsec_`.
//!
//! In: a message id, a Unix timestamp, the exact body bytes and one or more secrets (several
//! while rotating: each signs, the header carries every signature, space-separated). Out: the
//! header value; and for receivers and tests, verification with a constant-time compare that
//! refuses empty, truncated and forged signatures and timestamps outside the tolerance. Pure.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Receivers of the reference libraries accept timestamps this far from their clock.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("secret must be base64 after \"whsec_\" (the form Standard Webhooks libraries generate)")]
    NotBase64,
    #[error("secret is {0} bytes; Standard Webhooks keys are 24 to 64 bytes")]
    BadLength(usize),
    #[error("no signature matches")]
    NoMatch,
    #[error("timestamp is outside the tolerance")]
    Timestamp,
}

/// A signing key, decoded. Its `Debug` shows nothing of the key.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    /// `whsec_<base64>` (or the bare base64, as the reference libraries also take it).
    pub fn parse(text: &str) -> Result<Secret, SigningError> {
        let b64 = text.trim().strip_prefix("whsec_").unwrap_or(text.trim());
        let key = BASE64.decode(b64).map_err(|_| SigningError::NotBase64)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SigningError::BadLength(key.len()));
        }
        Ok(Secret(key))
    }

    /// Space-separated secrets (several while rotating).
    pub fn parse_list(text: &str) -> Result<Vec<Secret>, SigningError> {
        text.split_whitespace().map(Secret::parse).collect()
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// `v1,<base64>` for one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!(
            "v1,{}",
            BASE64.encode(self.mac(id, timestamp, body).finalize().into_bytes())
        )
    }
}

/// The `webhook-signature` header value: one `v1,…` per secret, space-separated.
pub fn signature_header(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks a delivery as a receiver would: the timestamp within [`TOLERANCE_SECONDS`] of `now`,
/// and at least one `v1` signature in `header` made with `secret` (compared in constant time).
pub fn verify(
    secret: &Secret,
    id: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
    now: i64,
) -> Result<(), SigningError> {
    let ts: i64 = timestamp.trim().parse().map_err(|_| SigningError::Timestamp)?;
    if (now - ts).abs() > TOLERANCE_SECONDS {
        return Err(SigningError::Timestamp);
    }
    for candidate in header.split_whitespace() {
        let Some(("v1", b64)) = candidate.split_once(',') else {
            continue;
        };
        let Ok(given) = BASE64.decode(b64) else {
            continue;
        };
        // `verify_slice` is constant-time and refuses any length but the full tag, empty included.
        if secret.mac(id, ts, body).verify_slice(&given).is_ok() {
            return Ok(());
        }
    }
    Err(SigningError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector published with the Standard Webhooks reference libraries.
    const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &str = r#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_the_published_test_vector() {
        let secret = Secret::parse(KEY).unwrap();
        assert_eq!(secret.sign(ID, TS, BODY.as_bytes()), EXPECTED);
        let bare = Secret::parse(KEY.trim_start_matches("whsec_")).unwrap();
        assert_eq!(bare.sign(ID, TS, BODY.as_bytes()), EXPECTED);
        assert_eq!(
            verify(&secret, ID, "1614265330", BODY.as_bytes(), EXPECTED, TS + 10),
            Ok(())
        );
    }

    #[test]
    fn refuses_forged_truncated_and_empty_signatures() {
        let secret = Secret::parse(KEY).unwrap();
        let check = |header: &str| verify(&secret, ID, "1614265330", BODY.as_bytes(), header, TS);
        let truncated = &EXPECTED[..EXPECTED.len() - 8];
        let mut forged = EXPECTED.to_string();
        forged.replace_range(5..6, if &EXPECTED[5..6] == "A" { "B" } else { "A" });
        for bad in [
            "",
            "v1,",
            "v1",
            "v1, ",
            truncated,
            &EXPECTED[..8],
            &forged,
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "v1,dawfeoifkpqwoekfpqoekf",
            "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ] {
            assert_eq!(check(bad), Err(SigningError::NoMatch), "{bad:?} was accepted");
        }
        // Another body, id or timestamp under the same signature.
        assert!(verify(&secret, ID, "1614265330", b"{\"test\": 1}", EXPECTED, TS).is_err());
        assert!(verify(&secret, "msg_other", "1614265330", BODY.as_bytes(), EXPECTED, TS).is_err());
        assert!(verify(&secret, ID, "1614265331", BODY.as_bytes(), EXPECTED, TS).is_err());
        // A good signature among bad ones (as while rotating) passes.
        assert_eq!(
            check(&format!(
                "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {EXPECTED}"
            )),
            Ok(())
        );
    }

    #[test]
    fn refuses_timestamps_outside_the_tolerance() {
        let secret = Secret::parse(KEY).unwrap();
        let at = |now: i64| verify(&secret, ID, "1614265330", BODY.as_bytes(), EXPECTED, now);
        assert_eq!(at(TS + TOLERANCE_SECONDS), Ok(()));
        assert_eq!(at(TS + TOLERANCE_SECONDS + 1), Err(SigningError::Timestamp));
        assert_eq!(at(TS - TOLERANCE_SECONDS - 1), Err(SigningError::Timestamp));
        assert!(verify(&secret, ID, "hello", BODY.as_bytes(), EXPECTED, TS).is_err());
    }

    #[test]
    fn rotating_secrets_each_sign() {
        let old = Secret::parse(KEY).unwrap();
        let new = Secret::parse(&format!("whsec_{}", BASE64.encode([7u8; 32]))).unwrap();
        let both = Secret::parse_list(&format!("{KEY}  whsec_{}", BASE64.encode([7u8; 32]))).unwrap();
        let header = signature_header(&both, ID, TS, BODY.as_bytes());
        assert_eq!(header.split(' ').count(), 2);
        assert!(header.starts_with(EXPECTED));
        for s in [&old, &new] {
            assert_eq!(verify(s, ID, "1614265330", BODY.as_bytes(), &header, TS), Ok(()));
        }
        assert_eq!(Secret::parse("whsec_%%%").unwrap_err(), SigningError::NotBase64);
        assert_eq!(
            Secret::parse("whsec_AAAA").unwrap_err(),
            SigningError::BadLength(3)
        );
        assert_eq!(format!("{old:?}"), "Secret(***)");
    }
}
