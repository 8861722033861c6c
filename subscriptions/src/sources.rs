//! Broker topics as sources of the registry: one source per (broker, topic), once the topic is
//! checked (canonical form, wildcards) and the hub's limits allow it.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use subhub_brokers::{BrokerError, Brokers, Event, EventSink, SourceGuard};
use tokio::sync::broadcast;

use crate::metrics::{Metrics, Refusal};
use crate::registry::{AcquireError, Capacity, Lease, Origin, Registry};

/// Why a source could not be opened. The text is safe to show clients.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("the hub has {0} sources open, its limit (limits.max_sources); try again later")]
    TooManySources(usize),
    #[error("topic `{topic}` holds {count} wildcards; at most {max} are allowed (limits.max_topic_wildcards)")]
    TooManyWildcards { topic: String, count: usize, max: usize },
}

impl SourceError {
    /// True when a configured limit refused the source, rather than the broker or the topic.
    pub fn is_limit(&self) -> bool {
        matches!(self, SourceError::TooManySources(_) | SourceError::TooManyWildcards { .. })
    }
}

/// How the registry bounds its sources.
#[derive(Clone, Copy, Debug)]
pub struct SourceLimits {
    /// How long a source stays open after its last lease is dropped.
    pub linger: Duration,
    /// Events an execution may fall behind its source before it loses the oldest.
    pub buffer: usize,
    /// Bodies over this are dropped at the source and counted as `too_large`.
    pub max_message_bytes: usize,
    /// Broker wildcards a subscribed topic may hold.
    pub max_topic_wildcards: usize,
    /// Sources open at once, across every broker and upstream.
    pub max_sources: usize,
}

impl Default for SourceLimits {
    fn default() -> Self {
        SourceLimits {
            linger: Duration::ZERO,
            buffer: 1024,
            max_message_bytes: 1024 * 1024,
            max_topic_wildcards: 8,
            max_sources: 10_000,
        }
    }
}

/// One broker topic: the key of its source.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct TopicKey {
    pub broker: Arc<str>,
    pub topic: Arc<str>,
}

/// Broker topics, as a registry opens them.
pub struct BrokerTopics {
    brokers: Arc<Brokers>,
    linger: Duration,
    max_message_bytes: usize,
}

impl Origin for BrokerTopics {
    type Key = TopicKey;
    type Item = Arc<Event>;
    type Guard = SourceGuard;
    type Error = BrokerError;

    fn open(
        &self,
        key: &TopicKey,
        items: broadcast::Sender<Arc<Event>>,
    ) -> BoxFuture<'static, Result<SourceGuard, BrokerError>> {
        // The sink is made now, not when the opening first runs: the registry opens under its
        // map's lock, so sinks are numbered in the order the sources of a topic were opened,
        // which is how a broker session tells a stale subscribe request from the current one.
        let max_message_bytes = self.max_message_bytes;
        let opening = self.brokers.get(Some(&key.broker)).cloned().map(|broker| {
            let sink = EventSink::new(items, broker.stats().clone(), max_message_bytes);
            (broker, sink)
        });
        let topic = key.topic.clone();
        Box::pin(async move {
            let (broker, sink) = opening?;
            broker.subscribe(&topic, sink).await
        })
    }

    fn linger(&self, _key: &TopicKey) -> Duration {
        self.linger
    }

    fn count_open(&self, key: &TopicKey, delta: i64) {
        if let Ok(broker) = self.brokers.get(Some(&key.broker)) {
            broker.stats().sources_open.fetch_add(delta, Relaxed);
        }
    }
}

/// The sources of broker topics: the registry of [`BrokerTopics`], and the checks a topic passes
/// before it is opened.
pub struct Sources {
    registry: Arc<Registry<BrokerTopics>>,
    capacity: Arc<Capacity>,
    limits: SourceLimits,
    metrics: Arc<Metrics>,
}

/// A share of one broker topic's source.
pub type SourceLease = Lease<BrokerTopics>;

impl Sources {
    pub fn new(brokers: Arc<Brokers>, limits: SourceLimits, metrics: Arc<Metrics>) -> Arc<Self> {
        let capacity = Capacity::new(limits.max_sources);
        let topics = BrokerTopics { brokers, linger: limits.linger, max_message_bytes: limits.max_message_bytes };
        let registry = Registry::new(Arc::new(topics), limits.buffer, capacity.clone(), metrics.clone());
        Arc::new(Sources { registry, capacity, limits, metrics })
    }

    pub fn brokers(&self) -> &Arc<Brokers> {
        &self.registry.origin().brokers
    }

    /// `limits.max_sources`, shared with every other registry of the hub (upstream operations).
    pub fn capacity(&self) -> &Arc<Capacity> {
        &self.capacity
    }

    /// Number of sources open or opening.
    pub fn len(&self) -> usize {
        self.registry.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A lease on the source of `topic` on `broker` (the default broker for `None`). Returns
    /// once the source is live: every event the broker accepts after this returns is received.
    pub async fn acquire(self: &Arc<Self>, broker: Option<&str>, topic: &str) -> Result<SourceLease, SourceError> {
        let result = self.try_acquire(broker, topic).await;
        if let Err(error) = &result {
            if error.is_limit() {
                self.metrics.refuse(Refusal::Limit);
            }
        }
        result
    }

    async fn try_acquire(self: &Arc<Self>, broker: Option<&str>, topic: &str) -> Result<SourceLease, SourceError> {
        let broker = self.brokers().get(broker)?.clone();
        let topic = broker.canonical_topic(topic)?;
        let wildcards = broker.wildcards(&topic);
        if wildcards > self.limits.max_topic_wildcards {
            return Err(SourceError::TooManyWildcards {
                topic: topic.into_owned(),
                count: wildcards,
                max: self.limits.max_topic_wildcards,
            });
        }
        let key = TopicKey { broker: broker.name().into(), topic: topic.into() };
        let broker_name = key.broker.to_string();
        self.registry.acquire(key).await.map_err(|error| match error {
            AcquireError::Open(error) => SourceError::Broker(error),
            AcquireError::Full(max) => SourceError::TooManySources(max),
            AcquireError::Gone => SourceError::Broker(BrokerError::Unavailable(broker_name)),
        })
    }
}

impl SourceLease {
    pub fn broker(&self) -> &str {
        &self.key().broker
    }

    pub fn topic(&self) -> &str {
        &self.key().topic
    }
}
