//! One job at a time on the same bytes, across every daemon sharing the catalog.
//!
//! In: a content hash. Out: a [`ContentLock`] once this daemon holds the bytes' lease in the
//! catalog; jobs of this daemon on the same bytes queue on an in-process mutex first, so only
//! one of them asks the catalog. The lease lasts `catalog.lease` and is renewed by a heartbeat
//! while the lock is held, so a daemon killed mid-job holds nothing longer than one lease;
//! another daemon given the same bytes then takes it and does the work. A lease lost anyway
//! (the catalog unreachable longer than a lease) costs at most a second transcode of the same
//! bytes: outputs are content-addressed and the first rendition committed stays.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::catalog::{now_ms, Catalog, CatalogError};
use crate::hash::ContentHash;

/// How often a daemon waiting for another's lease asks again, at most.
const POLL_MAX: Duration = Duration::from_millis(500);

/// The locks of one daemon.
pub struct ContentLocks {
    /// Names this daemon's leases: host, process and start time.
    owner: String,
    lease: Duration,
    /// One async lock per content hash being worked on here.
    local: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

/// The bytes' lease, held until [`ContentLock::release`] (or drop, which releases in the
/// background).
pub struct ContentLock {
    key: String,
    owner: String,
    catalog: Arc<dyn Catalog>,
    heartbeat: JoinHandle<()>,
    /// Released last, so the next local job finds the lease free.
    local: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl ContentLocks {
    pub fn new(lease: Duration) -> ContentLocks {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        ContentLocks {
            owner: format!("{}-{}-{nanos:x}", host.trim(), std::process::id()),
            lease,
            local: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until this daemon holds the lease on `hash`'s bytes. Fails only when the catalog
    /// does.
    pub async fn lock(
        &self,
        catalog: &Arc<dyn Catalog>,
        hash: &ContentHash,
    ) -> Result<ContentLock, CatalogError> {
        let local = self.local_lock(hash).lock_owned().await;
        let key = hash.hex().to_string();
        let lease_ms = self.lease.as_millis() as i64;
        let mut wait = Duration::from_millis(20);
        loop {
            let now = now_ms();
            if catalog.take_lease(&key, &self.owner, now, now + lease_ms).await? {
                break;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(POLL_MAX);
        }
        Ok(ContentLock {
            heartbeat: tokio::spawn(heartbeat(
                Arc::clone(catalog),
                key.clone(),
                self.owner.clone(),
                self.lease,
            )),
            key,
            owner: self.owner.clone(),
            catalog: Arc::clone(catalog),
            local: Some(local),
        })
    }

    fn local_lock(&self, hash: &ContentHash) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.local.lock().unwrap_or_else(|p| p.into_inner());
        locks.retain(|_, weak| weak.strong_count() > 0);
        match locks.get(hash.hex()).and_then(Weak::upgrade) {
            Some(lock) => lock,
            None => {
                let lock = Arc::new(tokio::sync::Mutex::new(()));
                locks.insert(hash.hex().to_string(), Arc::downgrade(&lock));
                lock
            }
        }
    }
}

/// Extends the lease every third of its length while the lock is held.
async fn heartbeat(catalog: Arc<dyn Catalog>, key: String, owner: String, lease: Duration) {
    let mut ticks = tokio::time::interval(lease / 3);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let until = now_ms() + lease.as_millis() as i64;
        match catalog.take_lease(&key, &owner, now_ms(), until).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(key, "a content lease lapsed and another daemon took it"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew a content lease; another daemon may take it when it lapses")
            }
        }
    }
}

impl ContentLock {
    /// Lets go of the lease now (after the job's commit).
    pub async fn release(mut self) {
        self.heartbeat.abort();
        if let Err(e) = self.catalog.release_lease(&self.key, &self.owner).await {
            tracing::warn!(error = %e, "cannot release a content lease; it lapses by itself");
        }
        self.local.take();
    }
}

impl Drop for ContentLock {
    fn drop(&mut self) {
        self.heartbeat.abort();
        let Some(local) = self.local.take() else {
            return;
        };
        // Dropped without `release` (the job stopped early): released in the background, the
        // local lock passed on once the lease is free.
        let (catalog, key, owner) = (Arc::clone(&self.catalog), self.key.clone(), self.owner.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = catalog.release_lease(&key, &owner).await {
                    tracing::warn!(error = %e, "cannot release a content lease; it lapses by itself");
                }
                drop(local);
            });
        }
    }
}
