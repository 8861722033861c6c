//! Prepared operations by (document hash, operation name), at most `plan_cache` of them, least
//! recently used first out. Concurrent requests for an operation not yet prepared wait for one
//! preparation; an operation that cannot be run is remembered too. Lookups are counted in
//! `subhub_plan_cache_total{result}`.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;
use tokio::sync::OnceCell;

use crate::metrics::FederationMetrics;
use crate::operation::{Prepared, Refusal};

pub type Planned = Result<Arc<Prepared>, Refusal>;

/// A document by the 128-bit hash of its text, and the operation it names.
type Key = (u128, Option<String>);

pub struct PlanCache {
    entries: Mutex<LruCache<Key, Arc<OnceCell<Planned>>>>,
    metrics: Arc<FederationMetrics>,
}

impl PlanCache {
    pub fn new(capacity: usize, metrics: Arc<FederationMetrics>) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        PlanCache { entries: Mutex::new(LruCache::new(capacity)), metrics }
    }

    /// The prepared operation of `text` and `operation_name`, prepared by `prepare` (off the
    /// request's task) when it is not cached.
    pub async fn get_or_prepare<F>(&self, text: &str, operation_name: Option<&str>, prepare: F) -> Planned
    where
        F: FnOnce() -> Planned + Send + 'static,
    {
        let key = (xxhash_rust::xxh3::xxh3_128(text.as_bytes()), operation_name.map(str::to_owned));
        let (cell, hit) = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            match entries.get(&key) {
                Some(cell) => (cell.clone(), true),
                None => {
                    let cell = Arc::new(OnceCell::new());
                    entries.push(key, cell.clone());
                    (cell, false)
                }
            }
        };
        self.metrics.plan_lookup(hit);
        cell.get_or_init(|| async move {
            match tokio::task::spawn_blocking(prepare).await {
                Ok(planned) => planned,
                Err(_) => Err(Refusal::Failed(r#"[{"message":"The operation could not be planned.","extensions":{"code":"QUERY_PLANNING_FAILED"}}]"#.into())),
            }
        })
        .await
        .clone()
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
