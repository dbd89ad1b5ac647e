//! Where outputs go: content-addressed objects, in a local directory tree.
//!
//! In: finished files from a job's work directory. Out: [`ObjectRef`]s (key and URL) for the
//! record. Keys come only from the input's content hash and the profile id, never from a name
//! a sender chose (see [`keys`]), so writing the same object twice is harmless. Fails with
//! [`StoreError`]; a failed job removes what it had put (see [`Placed`]). Blocking file I/O.

pub mod keys;
mod local;

use serde::{Deserialize, Serialize};

pub use local::LocalStore;

use crate::config::{StoreConfig, StoreKind};
use crate::failure::{ErrorCode, Failure};

/// A stored object as a record names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub key: String,
    pub url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store i/o on {key}: {source}")]
    Io { key: String, source: std::io::Error },
    #[error("store not available: {0}")]
    Unavailable(String),
}

impl StoreError {
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::Io { .. } => ErrorCode::STORE_IO,
            StoreError::Unavailable(_) => ErrorCode::STORE_UNAVAILABLE,
        }
    }

    pub fn failure(&self) -> Failure {
        Failure::new(self.code(), self.to_string())
    }
}

/// The configured store.
#[derive(Debug, Clone)]
pub enum Store {
    Local(LocalStore),
}

impl Store {
    pub fn from_config(config: &StoreConfig) -> Result<Store, StoreError> {
        match config.kind {
            StoreKind::Local => Ok(Store::Local(LocalStore::new(&config.root)?)),
            StoreKind::S3 => Err(StoreError::Unavailable(
                "the S3 store is not available in this version".into(),
            )),
        }
    }

    /// Puts the file at `path` under `key` unless the key exists, atomically: readers see all of
    /// it or nothing. Returns whether this call created the object.
    pub fn put_file(&self, key: &str, path: &std::path::Path) -> Result<(ObjectRef, bool), StoreError> {
        match self {
            Store::Local(s) => s.put_file(key, path),
        }
    }

    /// Size in bytes of the object under `key`.
    pub fn size(&self, key: &str) -> Result<u64, StoreError> {
        match self {
            Store::Local(s) => s.size(key),
        }
    }

    pub fn exists(&self, key: &str) -> Result<bool, StoreError> {
        match self {
            Store::Local(s) => s.exists(key),
        }
    }

    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Store::Local(s) => s.delete(key),
        }
    }

    pub fn object_ref(&self, key: &str) -> ObjectRef {
        match self {
            Store::Local(s) => s.object_ref(key),
        }
    }
}

/// Objects a job put that did not exist before; removed again unless the job succeeds.
pub struct Placed<'a> {
    store: &'a Store,
    new_keys: Vec<String>,
    kept: bool,
}

impl<'a> Placed<'a> {
    pub fn new(store: &'a Store) -> Placed<'a> {
        Placed {
            store,
            new_keys: Vec::new(),
            kept: false,
        }
    }

    pub fn put(&mut self, key: &str, path: &std::path::Path) -> Result<ObjectRef, StoreError> {
        let (object, created) = self.store.put_file(key, path)?;
        if created {
            self.new_keys.push(key.to_string());
        }
        Ok(object)
    }

    /// The job succeeded: keep everything it put.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Placed<'_> {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        for key in &self.new_keys {
            if let Err(e) = self.store.delete(key) {
                tracing::warn!(key, error = %e, "could not remove the output of a failed job");
            }
        }
    }
}
