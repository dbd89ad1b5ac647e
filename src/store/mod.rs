//! Where outputs go: content-addressed objects in a local directory, an S3 bucket or an Azure
//! Blob container, behind one narrow interface, [`Store`].
//!
//! In: finished files from a job's work directory, each with its key, content type and
//! metadata. Out: whether the object was created or was already there, what a stored object
//! holds ([`ObjectInfo`]), and links to objects for records ([`Link`]: a `file://` URL, a
//! public URL, or a presigned one that expires). Keys come only from the input's content hash
//! and the profile id, never from a name a sender chose (see [`keys`]), so writing the same
//! object twice is harmless and two daemons sharing a bucket never disagree about a key.
//! Fails with [`StoreError`], classed as transient (try again later: the store is down, slow or
//! throttling) or permanent (denied, no such bucket, a request the store refuses). Async; the
//! local store runs its file I/O on blocking threads itself.

mod azure;
pub mod keys;
mod local;
mod retry;
mod s3;
pub mod settings;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use local::LocalStore;
pub use retry::Patient;

use crate::config::{StoreConfig, StoreKind};
use crate::failure::{ErrorCode, Failure};

/// A stored object as a record names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub key: String,
    pub url: String,
}

/// Cache-Control of every object: keys are content-addressed, so what is under a key never
/// changes.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Deletes in flight at once when a store has no batch call (and batches in flight when it has).
pub const DELETE_CONCURRENCY: usize = 16;

/// Which storage class applies to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectClass {
    /// Renditions, thumbnails, files kept as they came: `store.storage_class`.
    Output,
    /// Archived originals (`store.upload_originals`): `store.originals_storage_class`.
    Original,
}

/// One object to create.
#[derive(Debug, Clone)]
pub struct PutRequest<'a> {
    pub key: &'a str,
    pub path: &'a Path,
    pub content_type: &'a str,
    /// Names are lower-case ASCII letters, digits and `_` (valid on S3 and Azure alike).
    pub metadata: &'a Metadata,
    pub class: ObjectClass,
}

pub type Metadata = BTreeMap<String, String>;

/// What a put-if-absent did. "Already there" is a normal outcome, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Created,
    AlreadyThere,
}

/// What the store says about an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    pub bytes: u64,
    /// The metadata it was put with (the local store keeps none).
    pub metadata: Metadata,
}

/// A link to an object for a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub url: String,
    /// When a presigned link stops working; `None` for links that do not expire.
    pub expires_at: Option<time::OffsetDateTime>,
}

/// Whether trying again later can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The store is unreachable, timing out, failing (5xx) or throttling: the job waits.
    Transient,
    /// The store refuses (denied, no such bucket, bad request): an operator must act.
    Permanent,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub class: ErrorClass,
    code: ErrorCode,
    pub message: String,
}

impl StoreError {
    pub fn transient(message: impl Into<String>) -> StoreError {
        StoreError {
            class: ErrorClass::Transient,
            code: ErrorCode::STORE_UNAVAILABLE,
            message: message.into(),
        }
    }

    pub fn permanent(code: ErrorCode, message: impl Into<String>) -> StoreError {
        StoreError {
            class: ErrorClass::Permanent,
            code,
            message: message.into(),
        }
    }

    /// A local file error: a full or failing disk passes; anything else (permissions, a path
    /// that is not a directory) needs an operator.
    pub fn io(what: &str, source: &std::io::Error) -> StoreError {
        use std::io::ErrorKind::*;
        let message = format!("store i/o on {what}: {source}");
        match source.kind() {
            StorageFull | QuotaExceeded | Interrupted | TimedOut | ResourceBusy => StoreError {
                class: ErrorClass::Transient,
                code: ErrorCode::STORE_IO,
                message,
            },
            _ => StoreError::permanent(ErrorCode::STORE_IO, message),
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// What a job rejected for this error says (records, `failed/NAME.error.json`).
    pub fn failure(&self) -> Failure {
        Failure::new(self.code, self.message.clone())
    }

    pub fn is_transient(&self) -> bool {
        self.class == ErrorClass::Transient
    }
}

/// The store interface the pipeline holds. Implementations: [`LocalStore`], S3, Azure Blob.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Creates the object from the file unless the key exists (then the existing object stays:
    /// keys are content-addressed, and records may describe it). Readers see all of it or
    /// nothing. Correct also on stores that ignore conditional writes.
    async fn put_if_absent(&self, request: &PutRequest<'_>) -> Result<Put, StoreError>;

    /// The object under `key`, or `None` when there is none.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError>;

    /// The bytes of a small object (a few KiB: read whole into memory), or `None` when there
    /// is none.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Removes the object; a missing one is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Removes many objects (missing ones are not errors); the keys that could not be removed,
    /// each with why. Stores with a batch call (S3's DeleteObjects) use it; others delete
    /// [`DELETE_CONCURRENCY`] keys at a time.
    async fn delete_many(&self, keys: &[String]) -> Vec<(String, StoreError)> {
        use futures::StreamExt;
        // The futures are made before the first await: a closure held across it would not be
        // `Send` for every lifetime, as `async_trait` requires.
        let deletes: Vec<futures::future::BoxFuture<'_, Option<(String, StoreError)>>> = keys
            .iter()
            .map(|key| Box::pin(async move { self.delete(key).await.err().map(|e| (key.clone(), e)) }) as _)
            .collect();
        let mut deletes = futures::stream::iter(deletes).buffer_unordered(DELETE_CONCURRENCY);
        let mut failed = Vec::new();
        while let Some(result) = deletes.next().await {
            failed.extend(result);
        }
        failed
    }

    /// A link to the object: public (a base URL or a file) or presigned for `store.presign_ttl`.
    async fn link(&self, key: &str) -> Result<Link, StoreError>;

    /// Reaches the store for `mediaspool check`: the bucket or container exists, and a probe
    /// object can be written and deleted. Every problem found, none when all is well.
    async fn check(&self) -> Vec<String>;

    /// Where objects go, for logs and `check` (`s3://bucket/prefix`…).
    fn describe(&self) -> String;
}

/// Builds the configured store. Cheap: no request is made until the first put (see
/// [`Store::check`] to reach the store now).
/// Calls that fail transiently are tried again for up to `store.retry_budget` (see [`Patient`]).
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = match config.kind {
        StoreKind::Local => Arc::new(LocalStore::new(&config.root)?),
        StoreKind::S3 => Arc::new(s3::S3Store::new(config).await?),
        StoreKind::Azure => Arc::new(azure::AzureStore::new(config)?),
    };
    Ok(Arc::new(Patient::new(store, config.retry_budget)))
}

/// Objects a job created (not those that were there already); removed again if the job is
/// rejected, so no object is left that no record names.
pub struct Placed<'a> {
    store: &'a dyn Store,
    new_keys: Vec<String>,
}

impl<'a> Placed<'a> {
    pub fn new(store: &'a dyn Store) -> Placed<'a> {
        Placed {
            store,
            new_keys: Vec::new(),
        }
    }

    pub async fn put(&mut self, request: &PutRequest<'_>) -> Result<(), StoreError> {
        if self.store.put_if_absent(request).await? == Put::Created {
            self.new_keys.push(request.key.to_string());
        }
        Ok(())
    }

    /// The job was rejected: remove what it created, the last first (so the outputs marker,
    /// put last, goes first). Objects it found there stay (another job's record may name
    /// them); after a transient error nothing is removed, since the job is tried again and will
    /// find its objects in place.
    pub async fn undo(self) {
        for key in self.new_keys.iter().rev() {
            if let Err(e) = self.store.delete(key).await {
                tracing::warn!(key, error = %e, "could not remove the output of a rejected job");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_of_a_full_disk_pass_others_do_not() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert!(StoreError::io("k", &full).is_transient());
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = StoreError::io("k", &denied);
        assert!(!e.is_transient());
        assert_eq!(e.code(), ErrorCode::STORE_IO);
    }
}
