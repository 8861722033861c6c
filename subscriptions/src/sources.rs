//! One source per (broker, topic): opened by the first lease, shared by every later one, closed
//! when the last lease is dropped (after `linger`, if configured).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use subhub_brokers::{Broker, BrokerError, BrokerStats, Brokers, Event, EventSink, SourceGuard};
use tokio::sync::{broadcast, OnceCell};

use crate::lock;
use crate::metrics::{Metrics, Refusal};

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
    /// Sources open at once, across every broker.
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

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct SourceKey {
    broker: Arc<str>,
    topic: Arc<str>,
}

/// The open sources, and how to open more.
pub struct Sources {
    brokers: Arc<Brokers>,
    open: Mutex<HashMap<SourceKey, Arc<SourceEntry>>>,
    limits: SourceLimits,
    metrics: Arc<Metrics>,
}

struct SourceEntry {
    key: SourceKey,
    broker: Arc<dyn Broker>,
    sender: broadcast::Sender<Arc<Event>>,
    /// Set once the broker subscription is live (or failed); concurrent first leases wait on it.
    opened: OnceCell<Result<(), BrokerError>>,
    state: Mutex<EntryState>,
}

#[derive(Default)]
struct EntryState {
    leases: usize,
    guard: Option<SourceGuard>,
    /// Counted in `subhub_sources_open`.
    counted: bool,
    /// Removed from the map; a broker subscription that arrives now is dropped at once.
    closed: bool,
}

impl SourceEntry {
    fn stats(&self) -> &Arc<BrokerStats> {
        self.broker.stats()
    }
}

impl Sources {
    pub fn new(brokers: Arc<Brokers>, limits: SourceLimits, metrics: Arc<Metrics>) -> Arc<Self> {
        let limits = SourceLimits { buffer: limits.buffer.max(1), ..limits };
        Arc::new(Sources { brokers, open: Mutex::default(), limits, metrics })
    }

    pub fn brokers(&self) -> &Arc<Brokers> {
        &self.brokers
    }

    /// Number of sources open or opening.
    pub fn len(&self) -> usize {
        lock(&self.open).len()
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
        let broker = self.brokers.get(broker)?.clone();
        let topic = broker.canonical_topic(topic)?;
        let wildcards = broker.wildcards(&topic);
        if wildcards > self.limits.max_topic_wildcards {
            return Err(SourceError::TooManyWildcards {
                topic: topic.into_owned(),
                count: wildcards,
                max: self.limits.max_topic_wildcards,
            });
        }
        let key = SourceKey { broker: broker.name().into(), topic: topic.into() };
        let (entry, receiver) = {
            let mut open = lock(&self.open);
            let entry = match open.get(&key) {
                Some(entry) => entry.clone(),
                None if open.len() >= self.limits.max_sources => {
                    return Err(SourceError::TooManySources(self.limits.max_sources));
                }
                None => {
                    let entry = Arc::new(SourceEntry {
                        key: key.clone(),
                        broker,
                        sender: broadcast::channel(self.limits.buffer).0,
                        opened: OnceCell::new(),
                        state: Mutex::default(),
                    });
                    open.insert(key, entry.clone());
                    entry
                }
            };
            lock(&entry.state).leases += 1;
            let receiver = entry.sender.subscribe();
            (entry, receiver)
        };
        // The lease exists before the first await, so a cancelled acquire still gives it back.
        let lease = SourceLease { sources: self.clone(), entry: entry.clone(), receiver };
        entry.opened.get_or_init(|| self.open_on_broker(&entry)).await.clone()?;
        Ok(lease)
    }

    async fn open_on_broker(self: &Arc<Self>, entry: &Arc<SourceEntry>) -> Result<(), BrokerError> {
        let sink = EventSink::new(entry.sender.clone(), entry.stats().clone(), self.limits.max_message_bytes);
        match entry.broker.subscribe(&entry.key.topic, sink).await {
            Ok(guard) => {
                let mut state = lock(&entry.state);
                if state.closed {
                    drop(state);
                    drop(guard);
                } else {
                    state.guard = Some(guard);
                    state.counted = true;
                    entry.stats().sources_open.fetch_add(1, Relaxed);
                }
                Ok(())
            }
            Err(error) => {
                tracing::warn!(broker = %entry.key.broker, topic = %entry.key.topic, %error, "cannot open source");
                self.close(entry);
                Err(error)
            }
        }
    }

    fn release(self: &Arc<Self>, entry: &Arc<SourceEntry>) {
        let last = {
            let mut state = lock(&entry.state);
            state.leases -= 1;
            state.leases == 0
        };
        if !last {
            return;
        }
        if self.limits.linger.is_zero() {
            self.close_if_unused(entry);
        } else if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (sources, entry, linger) = (self.clone(), entry.clone(), self.limits.linger);
            runtime.spawn(async move {
                tokio::time::sleep(linger).await;
                sources.close_if_unused(&entry);
            });
        } else {
            self.close_if_unused(entry);
        }
    }

    fn close_if_unused(&self, entry: &Arc<SourceEntry>) {
        let guard = {
            let mut open = lock(&self.open);
            if lock(&entry.state).leases > 0 {
                return;
            }
            Self::detach(&mut open, entry)
        };
        drop(guard);
    }

    fn close(&self, entry: &Arc<SourceEntry>) {
        let guard = Self::detach(&mut lock(&self.open), entry);
        drop(guard);
    }

    /// Removes the entry from the map (the caller holds its lock, so no acquire can find the
    /// entry in between) and hands back its broker subscription, to be dropped outside the lock.
    fn detach(open: &mut HashMap<SourceKey, Arc<SourceEntry>>, entry: &Arc<SourceEntry>) -> Option<SourceGuard> {
        if open.get(&entry.key).is_some_and(|current| Arc::ptr_eq(current, entry)) {
            open.remove(&entry.key);
        }
        let mut state = lock(&entry.state);
        state.closed = true;
        if std::mem::take(&mut state.counted) {
            entry.stats().sources_open.fetch_sub(1, Relaxed);
        }
        state.guard.take()
    }
}

/// A share of one source. Events arrive through [`SourceLease::recv`]; dropping the lease gives
/// the share back, and the last one closes the source.
pub struct SourceLease {
    sources: Arc<Sources>,
    entry: Arc<SourceEntry>,
    receiver: broadcast::Receiver<Arc<Event>>,
}

impl SourceLease {
    /// The next event, or `None` when the source has ended. Events missed because this reader
    /// fell more than the source capacity behind are counted as `lagged` and skipped.
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        loop {
            match self.receiver.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    self.sources.metrics.dropped_lagged.fetch_add(missed, Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    pub fn broker(&self) -> &str {
        &self.entry.key.broker
    }

    pub fn topic(&self) -> &str {
        &self.entry.key.topic
    }
}

impl Drop for SourceLease {
    fn drop(&mut self) {
        self.sources.release(&self.entry);
    }
}
