//! Content hashes: BLAKE3 of a file's bytes, streamed.
//!
//! In: a path. Out: [`ContentHash`], printed `blake3:<64 hex>`. Large files are read in 8 MiB
//! chunks, each hashed on all cores; nothing is read whole into memory. Fails only on I/O.
//! Blocking: call from a blocking thread.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Above this size the file is hashed on several threads.
const PARALLEL_FROM: u64 = 16 * 1024 * 1024;
/// Bytes read and hashed at a time on the parallel path.
const CHUNK: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContentHash(String);

impl ContentHash {
    /// The bare hex digest (64 characters).
    pub fn hex(&self) -> &str {
        &self.0
    }

    /// Parses `blake3:<hex>` or bare hex.
    pub fn parse(text: &str) -> Option<ContentHash> {
        let hex = text.strip_prefix("blake3:").unwrap_or(text);
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| ContentHash(hex.to_ascii_lowercase()))
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blake3:{}", self.0)
    }
}

pub fn hash_file(path: &Path) -> std::io::Result<ContentHash> {
    let mut hasher = blake3::Hasher::new();
    let mut file = std::fs::File::open(path)?;
    if file.metadata()?.len() >= PARALLEL_FROM {
        // Chunks hashed on all cores; a bounded buffer rather than a memory map, so hashing a
        // large file does not inflate the process's resident memory by the file's size.
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = read_full(&mut file, &mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update_rayon(&buf[..n]);
        }
    } else {
        hasher.update_reader(file)?;
    }
    Ok(ContentHash(hasher.finalize().to_hex().to_string()))
}

/// Fills `buf` as far as the file allows; 0 at the end.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_digest_on_both_paths() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, b"abc").unwrap();
        let h = hash_file(&small).unwrap();
        // BLAKE3("abc") from the reference implementation.
        assert_eq!(
            h.hex(),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        assert_eq!(h.to_string(), format!("blake3:{}", h.hex()));

        let big = dir.path().join("big");
        let data: Vec<u8> = (0..PARALLEL_FROM as usize + 12345)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&big, &data).unwrap();
        assert_eq!(
            hash_file(&big).unwrap().hex(),
            blake3::hash(&data).to_hex().as_str()
        );
    }

    #[test]
    fn parses_its_own_form() {
        let h = ContentHash::parse(&format!("blake3:{}", "A".repeat(64))).unwrap();
        assert_eq!(h.hex(), "a".repeat(64));
        assert!(ContentHash::parse("blake3:xyz").is_none());
    }
}
