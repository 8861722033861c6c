//! Upstream operations as sources of the registry: one upstream subscription per (upstream,
//! forwarded credentials, forwarded operation), shared by every hub execution that forwards it,
//! closed after the last (after the upstream's `linger`). The upstream's `error` or `complete`
//! ends the source; the next execution starts it anew.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};
use subhub_protocol::{canonical, OperationPayload};
use subhub_upstream_ws::{Item, Subscription, Upstream, UpstreamError};
use tokio::sync::broadcast;

use crate::registry::{AcquireError, Capacity, Lease, Origin, Registry};
use crate::{Metrics, Refusal};

/// One forwarded operation on one upstream: the key of its source.
#[derive(Clone, Debug)]
pub struct ForwardedKey {
    upstream: Arc<str>,
    /// The upstream's `connection_init` payload, and its canonical text (what is compared).
    init_payload: Option<Map<String, Value>>,
    credentials: String,
    operation: OperationPayload,
    variables: String,
}

impl ForwardedKey {
    pub fn new(upstream: &str, init_payload: Option<Map<String, Value>>, operation: OperationPayload) -> Self {
        let credentials =
            init_payload.as_ref().map_or_else(String::new, |p| canonical::text(&Value::Object(p.clone())));
        let variables =
            operation.variables.as_ref().map_or_else(String::new, |v| canonical::text(&Value::Object(v.clone())));
        ForwardedKey { upstream: upstream.into(), init_payload, credentials, operation, variables }
    }

    pub fn upstream(&self) -> &str {
        &self.upstream
    }
}

impl PartialEq for ForwardedKey {
    fn eq(&self, other: &Self) -> bool {
        self.upstream == other.upstream
            && self.credentials == other.credentials
            && self.operation.query == other.operation.query
            && self.operation.operation_name == other.operation.operation_name
            && self.variables == other.variables
    }
}

impl Eq for ForwardedKey {}

impl Hash for ForwardedKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.upstream.hash(state);
        self.credentials.hash(state);
        self.operation.query.hash(state);
        self.operation.operation_name.hash(state);
        self.variables.hash(state);
    }
}

/// The configured upstreams, as a registry opens operations on them.
pub struct UpstreamOperations {
    by_name: HashMap<Arc<str>, Arc<Upstream>>,
}

impl Origin for UpstreamOperations {
    type Key = ForwardedKey;
    type Item = Arc<Item>;
    type Guard = Subscription;
    type Error = UpstreamError;

    fn open(
        &self,
        key: &ForwardedKey,
        items: broadcast::Sender<Arc<Item>>,
    ) -> BoxFuture<'static, Result<Subscription, UpstreamError>> {
        let upstream = self.by_name.get(&key.upstream).cloned();
        let key = key.clone();
        Box::pin(async move {
            let Some(upstream) = upstream else {
                return Err(UpstreamError::Schema {
                    upstream: key.upstream.to_string(),
                    reason: "not configured".into(),
                });
            };
            upstream.start(key.credentials, key.init_payload, &key.operation, items).await
        })
    }

    fn linger(&self, key: &ForwardedKey) -> Duration {
        self.by_name.get(&key.upstream).map_or(Duration::ZERO, |upstream| upstream.linger())
    }

    fn count_open(&self, key: &ForwardedKey, delta: i64) {
        if let Some(upstream) = self.by_name.get(&key.upstream) {
            upstream.stats().sources_open.fetch_add(delta, Relaxed);
        }
    }

    fn ends(item: &Arc<Item>) -> bool {
        !matches!(**item, Item::Next(_))
    }
}

/// A share of one forwarded operation's source.
pub type ForwardedLease = Lease<UpstreamOperations>;

/// Results an execution may fall behind one upstream subscription before losing the oldest.
const RESULTS_BUFFER: usize = 256;

/// Why a forwarded operation's source could not be had: a text safe to show clients, and the
/// code of the upstream's fault, if it was one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardedRefusal {
    pub message: String,
    pub code: Option<&'static str>,
}

/// The sources of forwarded operations.
pub struct ForwardedSources {
    registry: Arc<Registry<UpstreamOperations>>,
    metrics: Arc<Metrics>,
}

impl ForwardedSources {
    /// `capacity` is shared with the broker topics' registry (`limits.max_sources`).
    pub fn new(
        upstreams: impl IntoIterator<Item = Arc<Upstream>>,
        capacity: Arc<Capacity>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let by_name = upstreams.into_iter().map(|upstream| (Arc::from(upstream.name()), upstream)).collect();
        let registry =
            Registry::new(Arc::new(UpstreamOperations { by_name }), RESULTS_BUFFER, capacity, metrics.clone());
        ForwardedSources { registry, metrics }
    }

    /// Sources open or opening.
    pub fn len(&self) -> usize {
        self.registry.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A lease on the upstream subscription of `key`, once it was sent on an acknowledged
    /// connection.
    pub async fn acquire(&self, key: ForwardedKey) -> Result<ForwardedLease, ForwardedRefusal> {
        self.registry.acquire(key).await.map_err(|error| match error {
            AcquireError::Open(error) => ForwardedRefusal { message: error.client_message(), code: Some(error.code()) },
            AcquireError::Full(max) => {
                self.metrics.refuse(Refusal::Limit);
                let message =
                    format!("the hub has {max} sources open, its limit (limits.max_sources); try again later");
                ForwardedRefusal { message, code: None }
            }
            AcquireError::Gone => ForwardedRefusal { message: "the hub is shutting down".to_owned(), code: None },
        })
    }
}
