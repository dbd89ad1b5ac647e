//! The local store: a directory tree under `store.root`.
//!
//! Puts copy into a hidden staging directory on the same filesystem, flush to disk, then link
//! the name into place only if it is free, so a crash never leaves a partial object under a
//! real key and an existing object is never replaced. A staged copy is locked (`flock`) while
//! its put runs: a staged file nobody holds is left over from an interrupted put and is removed
//! at the next start, whichever process, container or machine made it. No process ids are
//! involved. Blocking file I/O runs on blocking threads.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{Link, ObjectInfo, Put, PutRequest, Store, StoreError};

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

const STAGING: &str = ".staging";

/// A staged file younger than this is never cleared, even unlocked: its put may be between
/// creating and locking it.
const STAGING_MIN_AGE: Duration = Duration::from_secs(60);

impl LocalStore {
    pub fn new(root: &Path) -> Result<LocalStore, StoreError> {
        let io = |e| StoreError::io(&root.display().to_string(), &e);
        fs::create_dir_all(root.join(STAGING)).map_err(io)?;
        let root = root.canonicalize().map_err(io)?;
        clear_abandoned_staging(&root.join(STAGING), STAGING_MIN_AGE);
        Ok(LocalStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn put_blocking(&self, key: &str, source: &Path) -> Result<Put, StoreError> {
        let target = self.path_of(key);
        let result = (|| {
            let mut staged = tempfile::Builder::new()
                .prefix("put-")
                .tempfile_in(self.root.join(STAGING))?;
            staged.as_file().lock()?;
            std::io::copy(&mut fs::File::open(source)?, staged.as_file_mut())?;
            staged.as_file().sync_all()?;
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            // A hard link creates the name only if it is free, atomically.
            let put = match fs::hard_link(staged.path(), &target) {
                Ok(()) => Put::Created,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Put::AlreadyThere,
                Err(e) => return Err(e),
            };
            if put == Put::Created {
                if let Some(parent) = target.parent() {
                    // The new name is durable once the directory entry is.
                    fs::File::open(parent)?.sync_all()?;
                }
            }
            Ok(put)
        })();
        result.map_err(|e| StoreError::io(key, &e))
    }

    fn head_blocking(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        match fs::metadata(self.path_of(key)) {
            Ok(m) => Ok(Some(ObjectInfo {
                bytes: m.len(),
                metadata: Default::default(),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(key, &e)),
        }
    }

    fn get_blocking(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match fs::read(self.path_of(key)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(key, &e)),
        }
    }

    fn delete_blocking(&self, key: &str) -> Result<(), StoreError> {
        match fs::remove_file(self.path_of(key)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(key, &e)),
        }
    }

    fn check_blocking(&self) -> Vec<String> {
        let probe = tempfile::Builder::new()
            .prefix("check-")
            .tempfile_in(self.root.join(STAGING))
            .and_then(|f| {
                use std::io::Write;
                f.as_file().write_all(b"mediaspool check")?;
                f.close()
            });
        match probe {
            Ok(()) => Vec::new(),
            Err(e) => vec![format!("store.root {}: cannot write: {e}", self.root.display())],
        }
    }

    /// Runs `f` on a blocking thread with a copy of this store.
    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&LocalStore) -> T + Send + 'static) -> T {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .expect("local store call does not panic")
    }
}

#[async_trait::async_trait]
impl Store for LocalStore {
    async fn put_if_absent(&self, request: &PutRequest<'_>) -> Result<Put, StoreError> {
        let (key, path) = (request.key.to_string(), request.path.to_path_buf());
        self.blocking(move |s| s.put_blocking(&key, &path)).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let key = key.to_string();
        self.blocking(move |s| s.head_blocking(&key)).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_string();
        self.blocking(move |s| s.get_blocking(&key)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_string();
        self.blocking(move |s| s.delete_blocking(&key)).await
    }

    async fn link(&self, key: &str) -> Result<Link, StoreError> {
        Ok(Link {
            url: format!("file://{}", self.path_of(key).display()),
            expires_at: None,
        })
    }

    async fn check(&self) -> Vec<String> {
        self.blocking(LocalStore::check_blocking).await
    }

    fn describe(&self) -> String {
        format!("local {}", self.root.display())
    }
}

/// Staged copies that no put holds (their lock is free) and that are not brand new were left
/// by interrupted puts.
fn clear_abandoned_staging(staging: &Path, min_age: Duration) {
    let Ok(entries) = fs::read_dir(staging) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).unwrap_or_default() >= min_age);
        let unheld = fs::File::open(entry.path()).is_ok_and(|f| f.try_lock().is_ok());
        if old && unheld {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::ObjectClass;

    fn request<'a>(key: &'a str, path: &'a Path, metadata: &'a BTreeMap<String, String>) -> PutRequest<'a> {
        PutRequest {
            key,
            path,
            content_type: "audio/mpeg",
            metadata,
            class: ObjectClass::Output,
        }
    }

    #[tokio::test]
    async fn put_is_readable_under_its_key_and_leaves_no_staging() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(&dir.path().join("media")).unwrap();
        let src = dir.path().join("src");
        let meta = BTreeMap::new();
        fs::write(&src, b"hello").unwrap();
        let key = "ab/cd/media.mp3";
        assert_eq!(
            store.put_if_absent(&request(key, &src, &meta)).await.unwrap(),
            Put::Created
        );
        assert_eq!(fs::read(store.path_of(key)).unwrap(), b"hello");
        assert!(store.link(key).await.unwrap().url.starts_with("file:///"));
        assert_eq!(store.head(key).await.unwrap().unwrap().bytes, 5);
        assert_eq!(store.get(key).await.unwrap().unwrap(), b"hello");
        assert_eq!(store.get("ab/none").await.unwrap(), None);
        fs::write(&src, b"other").unwrap();
        let again = store.put_if_absent(&request(key, &src, &meta)).await.unwrap();
        assert_eq!(again, Put::AlreadyThere, "an existing object is kept");
        assert_eq!(fs::read(store.path_of(key)).unwrap(), b"hello");
        assert_eq!(fs::read_dir(store.root().join(STAGING)).unwrap().count(), 0);
        store.delete(key).await.unwrap();
        assert_eq!(store.head(key).await.unwrap(), None);
        store.delete(key).await.unwrap();
        assert!(store.check().await.is_empty());
    }

    #[test]
    fn staged_files_are_cleared_only_when_unheld_and_not_new() {
        let dir = tempfile::tempdir().unwrap();
        let held = fs::File::create(dir.path().join("put-held")).unwrap();
        held.lock().unwrap();
        fs::write(dir.path().join("put-left"), b"x").unwrap();
        clear_abandoned_staging(dir.path(), Duration::from_secs(3600));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2, "new files stay");
        clear_abandoned_staging(dir.path(), Duration::ZERO);
        assert!(dir.path().join("put-held").exists(), "a held file stays");
        assert!(!dir.path().join("put-left").exists(), "an abandoned file goes");
    }
}
