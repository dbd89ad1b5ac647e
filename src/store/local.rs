//! The local store: a directory tree under `store.root`.
//!
//! Puts copy into a hidden staging directory on the same filesystem, flush to disk, then rename
//! into place, so a crash never leaves a partial object under a real key.

use std::fs;
use std::path::{Path, PathBuf};

use super::{ObjectRef, StoreError};

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

const STAGING: &str = ".staging";

impl LocalStore {
    pub fn new(root: &Path) -> Result<LocalStore, StoreError> {
        let io = |source| StoreError::Io {
            key: root.display().to_string(),
            source,
        };
        fs::create_dir_all(root.join(STAGING)).map_err(io)?;
        let root = root.canonicalize().map_err(io)?;
        clear_abandoned_staging(&root.join(STAGING));
        Ok(LocalStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Creates `key` from the file at `source` unless it exists already (then the existing
    /// object stays: keys are content-addressed, and records may describe it). Returns the
    /// object and whether this call created it.
    pub fn put_file(&self, key: &str, source: &Path) -> Result<(ObjectRef, bool), StoreError> {
        let io = |source| StoreError::Io {
            key: key.to_string(),
            source,
        };
        let target = self.path_of(key);
        let staged = self.root.join(STAGING).join(format!(
            "{}.{}",
            std::process::id(),
            blake3::hash(format!("{key}{:?}", std::time::SystemTime::now()).as_bytes()).to_hex()
        ));
        let result = (|| {
            fs::copy(source, &staged)?;
            fs::File::open(&staged)?.sync_all()?;
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            // A hard link creates the name only if it is free, atomically.
            let created = match fs::hard_link(&staged, &target) {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(e),
            };
            if created {
                if let Some(parent) = target.parent() {
                    // The new name is durable once the directory entry is.
                    fs::File::open(parent)?.sync_all()?;
                }
            }
            Ok(created)
        })();
        let _ = fs::remove_file(&staged);
        let created = result.map_err(io)?;
        Ok((self.object_ref(key), created))
    }

    pub fn size(&self, key: &str) -> Result<u64, StoreError> {
        fs::metadata(self.path_of(key))
            .map(|m| m.len())
            .map_err(|source| StoreError::Io {
                key: key.to_string(),
                source,
            })
    }

    pub fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.path_of(key).try_exists().map_err(|source| StoreError::Io {
            key: key.to_string(),
            source,
        })
    }

    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        match fs::remove_file(self.path_of(key)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                key: key.to_string(),
                source,
            }),
        }
    }

    pub fn object_ref(&self, key: &str) -> ObjectRef {
        ObjectRef {
            key: key.to_string(),
            url: format!("file://{}", self.path_of(key).display()),
        }
    }
}

/// Staged copies are named `PID.…`; those of processes that are gone were interrupted puts.
fn clear_abandoned_staging(staging: &Path) {
    let Ok(entries) = fs::read_dir(staging) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let pid = name.split('.').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_is_readable_under_its_key_and_leaves_no_staging() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(&dir.path().join("media")).unwrap();
        let src = dir.path().join("src");
        fs::write(&src, b"hello").unwrap();
        let (obj, created) = store.put_file("ab/cd/media.mp3", &src).unwrap();
        assert!(created);
        assert_eq!(fs::read(store.path_of("ab/cd/media.mp3")).unwrap(), b"hello");
        assert!(obj.url.starts_with("file:///"));
        assert!(store.exists("ab/cd/media.mp3").unwrap());
        fs::write(&src, b"other").unwrap();
        let (_, created) = store.put_file("ab/cd/media.mp3", &src).unwrap();
        assert!(!created, "an existing object is kept");
        assert_eq!(fs::read(store.path_of("ab/cd/media.mp3")).unwrap(), b"hello");
        assert_eq!(fs::read_dir(store.root().join(STAGING)).unwrap().count(), 0);
        store.delete("ab/cd/media.mp3").unwrap();
        assert!(!store.exists("ab/cd/media.mp3").unwrap());
        store.delete("ab/cd/media.mp3").unwrap();
    }
}
