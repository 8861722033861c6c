//! Prepared operations by (document hash, operation name), at most `plan_cache` of them and
//! `plan_cache_bytes` of document text, least recently used first out; a document longer than
//! that is prepared for each request and never kept. Concurrent requests for an operation not yet prepared wait for one
//! preparation; an operation that cannot be run is remembered too. Lookups are counted in
//! `subhub_plan_cache_total{result}`.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;
use tokio::sync::OnceCell;

use crate::metrics::GatewayMetrics;
use crate::operation::{Prepared, Refusal};

pub type Planned = Result<Arc<Prepared>, Refusal>;

/// A document by the 128-bit hash of its text, and the operation it names.
type Key = (u128, Option<String>);

pub struct PlanCache {
    cache: Mutex<Entries>,
    max_bytes: usize,
    metrics: Arc<dyn GatewayMetrics>,
}

struct Entries {
    /// Each entry with the length of its document's text.
    entries: LruCache<Key, (Arc<OnceCell<Planned>>, usize)>,
    bytes: usize,
}

impl PlanCache {
    pub fn new(capacity: usize, max_bytes: usize, metrics: Arc<dyn GatewayMetrics>) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        PlanCache { cache: Mutex::new(Entries { entries: LruCache::new(capacity), bytes: 0 }), max_bytes, metrics }
    }

    /// The prepared operation of `text` and `operation_name`, prepared by `prepare` (off the
    /// request's task) when it is not cached.
    pub async fn get_or_prepare<F>(&self, text: &str, operation_name: Option<&str>, prepare: F) -> Planned
    where
        F: FnOnce() -> Planned + Send + 'static,
    {
        let key = (xxhash_rust::xxh3::xxh3_128(text.as_bytes()), operation_name.map(str::to_owned));
        let (cell, hit) = {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            match cache.entries.get(&key) {
                Some((cell, _)) => (cell.clone(), true),
                None => {
                    let cell = Arc::new(OnceCell::new());
                    if text.len() <= self.max_bytes {
                        cache.insert(key, cell.clone(), text.len(), self.max_bytes);
                    }
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
        self.cache.lock().unwrap_or_else(PoisonError::into_inner).entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Entries {
    fn insert(&mut self, key: Key, cell: Arc<OnceCell<Planned>>, bytes: usize, max_bytes: usize) {
        // A push evicts the least recently used entry when the cache is full.
        if let Some((_, (_, evicted))) = self.entries.push(key, (cell, bytes)) {
            self.bytes -= evicted;
        }
        self.bytes += bytes;
        while self.bytes > max_bytes {
            match self.entries.pop_lru() {
                Some((_, (_, evicted))) => self.bytes -= evicted,
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{SubgraphMetrics, Uncounted};
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    /// Counts plan lookups: `[hits, misses]`.
    #[derive(Default)]
    struct Lookups([AtomicU64; 2]);

    impl GatewayMetrics for Lookups {
        fn subgraph(&self, _: &str) -> Arc<dyn SubgraphMetrics> {
            Arc::new(Uncounted)
        }

        fn plan_lookup(&self, hit: bool) {
            self.0[usize::from(!hit)].fetch_add(1, Relaxed);
        }
    }

    impl Lookups {
        fn plan_cache(&self, hit: bool) -> u64 {
            self.0[usize::from(!hit)].load(Relaxed)
        }
    }

    fn refused() -> Planned {
        Err(Refusal::Invalid("[]".into()))
    }

    #[tokio::test]
    async fn entries_and_bytes_are_bounded_and_lookups_counted() {
        let metrics = Arc::new(Lookups::default());
        let cache = PlanCache::new(2, 10, metrics.clone());
        for text in ["{ a }", "{ b }", "{ a }"] {
            let _ = cache.get_or_prepare(text, None, refused).await;
        }
        assert_eq!((metrics.plan_cache(true), metrics.plan_cache(false)), (1, 2));
        assert_eq!(cache.len(), 2);
        // Ten bytes hold two of these; a third pushes the least recently used out.
        let _ = cache.get_or_prepare("{ c }", None, refused).await;
        assert_eq!(cache.len(), 2);
        let _ = cache.get_or_prepare("{ b }", None, refused).await;
        assert_eq!(metrics.plan_cache(false), 4, "{{ b }} was evicted");
        // A document longer than the whole budget is never kept.
        let _ = cache.get_or_prepare("{ aaaaaaaaaaaa }", None, refused).await;
        let _ = cache.get_or_prepare("{ aaaaaaaaaaaa }", None, refused).await;
        assert_eq!(metrics.plan_cache(false), 6);
        assert!(cache.len() <= 2);
    }
}
