//! Patience with a store that is down: every call that fails transiently is tried again with
//! exponential backoff and jitter, within a bounded budget of time; then the error goes to the
//! caller (the job stays in `work/` and is tried again later).
//!
//! It also tells the operator once, not once per file, that uploads are paused and once that
//! they resumed: the first call that gives up logs "uploads paused", the next call that gets
//! through logs "uploads resumed".

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::metrics;

use super::{Link, ObjectInfo, Put, PutRequest, Store, StoreError};

#[derive(Debug)]
pub struct Patient {
    inner: Arc<dyn Store>,
    backoff: ExponentialBuilder,
    /// Whether the last call gave up: the transitions are logged, not every failure.
    paused: AtomicBool,
}

impl Patient {
    /// Tries each call again for up to `budget` (delays from 100 ms, doubling to 5 s, jittered).
    pub fn new(inner: Arc<dyn Store>, budget: Duration) -> Patient {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(5))
            .with_jitter()
            .with_total_delay(Some(budget))
            .without_max_times();
        Patient {
            inner,
            backoff,
            paused: AtomicBool::new(false),
        }
    }

    /// Whether uploads are paused now (the last call gave up).
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// `call` (a request of kind `operation` about `what`), tried again while it fails
    /// transiently and the budget lasts. Each try is counted in the metrics.
    async fn patiently<T, F, Fut>(
        &self,
        operation: &'static str,
        what: &str,
        mut call: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut tries = 0u32;
        let counted = || {
            let again = tries > 0;
            tries += 1;
            let attempt = call();
            async move {
                let result = attempt.await;
                metrics::store_request(operation, result.is_ok(), again);
                result
            }
        };
        let result = counted
            .retry(self.backoff)
            .when(StoreError::is_transient)
            .notify(|e, delay| tracing::debug!(what, error = %e, ?delay, "store call failed; trying again"))
            .await;
        match &result {
            Ok(_) => {
                if self.paused.swap(false, Ordering::Relaxed) {
                    metrics::set_uploads_paused(false);
                    tracing::info!(store = %self.inner.describe(), "uploads resumed");
                }
            }
            Err(e) if e.is_transient() => {
                if !self.paused.swap(true, Ordering::Relaxed) {
                    metrics::set_uploads_paused(true);
                    tracing::info!(store = %self.inner.describe(), error = %e, "uploads paused: the store does not answer; jobs wait in work/");
                }
            }
            Err(_) => {}
        }
        result
    }
}

#[async_trait::async_trait]
impl Store for Patient {
    async fn put_if_absent(&self, request: &PutRequest<'_>) -> Result<Put, StoreError> {
        self.patiently("put", request.key, || self.inner.put_if_absent(request))
            .await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.patiently("head", key, || self.inner.head(key)).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.patiently("get", key, || self.inner.get(key)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.patiently("delete", key, || self.inner.delete(key)).await
    }

    /// The batch once, then each key that failed transiently with patience on its own.
    async fn delete_many(&self, keys: &[String]) -> Vec<(String, StoreError)> {
        let mut failed = Vec::new();
        for (key, e) in self.inner.delete_many(keys).await {
            if e.is_transient() {
                if let Err(e) = self.delete(&key).await {
                    failed.push((key, e));
                }
            } else {
                failed.push((key, e));
            }
        }
        failed
    }

    async fn link(&self, key: &str) -> Result<Link, StoreError> {
        self.patiently("link", key, || self.inner.link(key)).await
    }

    async fn check(&self) -> Vec<String> {
        // Once, without patience: `check` reports what it finds now.
        self.inner.check().await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;
    use crate::failure::ErrorCode;

    /// A store whose calls fail transiently a given number of times, then succeed.
    #[derive(Debug)]
    struct Flaky {
        failures_left: AtomicU32,
        calls: AtomicU32,
    }

    #[async_trait::async_trait]
    impl Store for Flaky {
        async fn put_if_absent(&self, _: &PutRequest<'_>) -> Result<Put, StoreError> {
            unreachable!()
        }
        async fn head(&self, _: &str) -> Result<Option<ObjectInfo>, StoreError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let left = self.failures_left.load(Ordering::Relaxed);
            if left > 0 {
                self.failures_left.store(left - 1, Ordering::Relaxed);
                return Err(StoreError::transient("connection refused"));
            }
            Ok(None)
        }
        async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
            unreachable!()
        }
        async fn delete(&self, _: &str) -> Result<(), StoreError> {
            Err(StoreError::permanent(ErrorCode::STORE_DENIED, "access denied"))
        }
        async fn link(&self, _: &str) -> Result<Link, StoreError> {
            unreachable!()
        }
        async fn check(&self) -> Vec<String> {
            Vec::new()
        }
        fn describe(&self) -> String {
            "flaky".into()
        }
    }

    fn flaky(failures: u32) -> Arc<Flaky> {
        Arc::new(Flaky {
            failures_left: AtomicU32::new(failures),
            calls: AtomicU32::new(0),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_within_the_budget_then_given_up() {
        let inner = flaky(3);
        let store = Patient::new(inner.clone(), Duration::from_secs(60));
        assert_eq!(store.head("k").await.unwrap(), None);
        assert_eq!(inner.calls.load(Ordering::Relaxed), 4);
        assert!(!store.is_paused());

        let inner = flaky(u32::MAX);
        let store = Patient::new(inner.clone(), Duration::from_secs(60));
        let started = tokio::time::Instant::now();
        assert!(store.head("k").await.unwrap_err().is_transient());
        let waited = started.elapsed();
        assert!(waited <= Duration::from_secs(66), "{waited:?}");
        assert!(waited >= Duration::from_secs(50), "{waited:?}");
        assert!(store.is_paused());
        inner.failures_left.store(0, Ordering::Relaxed);
        store.head("k").await.unwrap();
        assert!(!store.is_paused());
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let inner = flaky(0);
        let store = Patient::new(inner, Duration::from_secs(60));
        let e = store.delete("k").await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::STORE_DENIED);
        assert!(!store.is_paused());
    }
}
