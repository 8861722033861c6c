//! Where a broker delivers a source's events, and the numbers each broker keeps.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::event::Event;

/// Counters and gauges of one broker, read by the hub's `/metrics`.
#[derive(Debug, Default)]
pub struct BrokerStats {
    /// 1 while the broker's connection is up.
    pub connected: AtomicBool,
    /// Sources open on this broker (maintained by the registry).
    pub sources_open: AtomicI64,
    /// Subscriptions the hub holds on the broker itself: channels subscribed, bindings, topics
    /// assigned. Counted by brokers whose session keeps them.
    pub broker_subscriptions: AtomicI64,
    /// Events read from this broker.
    pub events_received: AtomicU64,
    /// Events published through the hub into this broker.
    pub published: AtomicU64,
    /// Events dropped because their body exceeded the message limit.
    pub dropped_too_large: AtomicU64,
}

/// The output of one source: every execution on the source reads from it. Bounded: an execution
/// that falls more than the configured capacity behind loses the oldest events and counts them.
#[derive(Clone, Debug)]
pub struct EventSink {
    sender: broadcast::Sender<Arc<Event>>,
    stats: Arc<BrokerStats>,
    max_message_bytes: usize,
    /// Sinks are numbered as they are made, which is the order the registry opens sources in.
    opened: u64,
}

impl EventSink {
    pub fn new(sender: broadcast::Sender<Arc<Event>>, stats: Arc<BrokerStats>, max_message_bytes: usize) -> Self {
        static OPENED: AtomicU64 = AtomicU64::new(0);
        EventSink { sender, stats, max_message_bytes, opened: OPENED.fetch_add(1, Ordering::Relaxed) }
    }

    /// True when a body of `size` bytes may be delivered; a larger one is counted as dropped
    /// (`too_large`) and must not be decoded or sent.
    pub fn admits(&self, size: usize) -> bool {
        if size > self.max_message_bytes {
            self.stats.dropped_too_large.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(size, max = self.max_message_bytes, "dropping a message over the size limit");
            return false;
        }
        true
    }

    /// Delivers one event to every reader of the source.
    pub fn send(&self, event: Event) {
        self.stats.events_received.fetch_add(1, Ordering::Relaxed);
        // No reader means every execution has just left; the source is closing.
        let _ = self.sender.send(Arc::new(event));
    }

    /// True when both sinks feed the same source.
    pub fn same_source(&self, other: &EventSink) -> bool {
        self.sender.same_channel(&other.sender)
    }

    /// True when this sink's source was opened before `other`'s. A topic has a newer source
    /// only once its older one has closed, so a subscribe request for the older one that
    /// reaches a session late (the two sources open on tasks of their own) is stale: it must
    /// not take the topic from the newer one.
    pub fn opened_before(&self, other: &EventSink) -> bool {
        self.opened < other.opened
    }
}
