//! The embedded in-process broker: topics live in the hub's memory and publishing delivers to
//! the topic's source at once. Events are numbered across the broker (an event's id and
//! cursor). With `history = N`, the last N events of each topic are kept, for clients that
//! resume; `history_topics` and `history_bytes` bound how many topics and how many bytes of
//! events are kept (the least recently published topic is forgotten first).

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use serde::Deserialize;

use crate::broker::{Broker, BrokerError, History, Publish, PublishAck, SourceGuard};
use crate::event::Event;
use crate::sink::{BrokerStats, EventSink};

/// `kind = "memory"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// Events kept per topic for clients that resume; 0 keeps none.
    pub history: usize,
    /// Topics that keep history at most.
    pub history_topics: usize,
    /// Bytes of kept event bodies at most, over every topic.
    pub history_bytes: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig { history: 0, history_topics: 10_000, history_bytes: 64 * 1024 * 1024 }
    }
}

impl MemoryConfig {
    pub fn validate(&self, name: &str) -> Result<(), BrokerError> {
        for (key, value) in [("history_topics", self.history_topics), ("history_bytes", self.history_bytes)] {
            if self.history > 0 && value == 0 {
                return Err(BrokerError::Config {
                    key: format!("brokers.{name}.{key}"),
                    reason: "must be at least 1 when history is kept".into(),
                });
            }
        }
        Ok(())
    }
}

type Topics = Arc<Mutex<HashMap<Arc<str>, EventSink>>>;

pub struct MemoryBroker {
    name: Arc<str>,
    topics: Topics,
    sequence: AtomicU64,
    stats: Arc<BrokerStats>,
    /// Per topic, its last `history` events; `None` when none are kept.
    history: Option<Mutex<Kept>>,
}

/// The history of every topic that keeps one.
struct Kept {
    per_topic: usize,
    max_bytes: usize,
    /// Bytes of the bodies kept now.
    bytes: usize,
    topics: lru::LruCache<Arc<str>, TopicHistory>,
    /// The highest event number of a topic forgotten whole: a cursor before it may have missed
    /// events nobody keeps any more.
    forgotten: u64,
}

#[derive(Default)]
struct TopicHistory {
    events: VecDeque<Kept1>,
    /// The number of the newest event dropped from this topic's history.
    dropped: u64,
}

/// One kept event.
struct Kept1 {
    number: u64,
    key: Option<String>,
    body: bytes::Bytes,
    timestamp: std::time::SystemTime,
}

impl MemoryBroker {
    pub fn new(name: &str) -> Self {
        Self::with_config(name, &MemoryConfig::default())
    }

    pub fn with_config(name: &str, config: &MemoryConfig) -> Self {
        let stats = Arc::new(BrokerStats::default());
        stats.connected.store(true, Ordering::Relaxed);
        let history = NonZeroUsize::new(config.history_topics).filter(|_| config.history > 0).map(|topics| {
            Mutex::new(Kept {
                per_topic: config.history,
                max_bytes: config.history_bytes,
                bytes: 0,
                topics: lru::LruCache::new(topics),
                forgotten: 0,
            })
        });
        MemoryBroker { name: name.into(), topics: Topics::default(), sequence: AtomicU64::new(0), stats, history }
    }

    fn keep(&self, topic: &str, number: u64, key: Option<String>, body: bytes::Bytes) {
        let Some(history) = &self.history else { return };
        history.lock().unwrap_or_else(PoisonError::into_inner).keep(topic, number, key, body);
    }
}

impl Kept {
    fn keep(&mut self, topic: &str, number: u64, key: Option<String>, body: bytes::Bytes) {
        if !self.topics.contains(topic) {
            if let Some((_, forgotten)) = self.topics.push(topic.into(), TopicHistory::default()) {
                self.forget(forgotten);
            }
        }
        let size = body.len();
        let Some(events) = self.topics.get_mut(topic) else { return };
        let mut freed = 0;
        if events.events.len() == self.per_topic {
            freed += events.drop_oldest();
        }
        events.events.push_back(Kept1 { number, key, body, timestamp: std::time::SystemTime::now() });
        self.bytes = self.bytes + size - freed;
        // Over the bytes: the least recently published topics go first, then this one's oldest.
        while self.bytes > self.max_bytes {
            let lru_is_this = self.topics.peek_lru().is_some_and(|(name, _)| &**name == topic);
            if !lru_is_this {
                if let Some((_, forgotten)) = self.topics.pop_lru() {
                    self.forget(forgotten);
                    continue;
                }
            }
            let Some(events) = self.topics.peek_mut(topic) else { break };
            if events.events.len() <= 1 {
                break;
            }
            let freed = events.drop_oldest();
            self.bytes -= freed;
        }
    }

    /// A topic's history is gone whole: a cursor before its newest event may have missed some.
    fn forget(&mut self, topic: TopicHistory) {
        let newest = topic.events.back().map_or(topic.dropped, |event| event.number);
        self.forgotten = self.forgotten.max(newest);
        self.bytes -= topic.events.iter().map(|event| event.body.len()).sum::<usize>();
    }
}

impl TopicHistory {
    /// Drops the oldest kept event; returns its size.
    fn drop_oldest(&mut self) -> usize {
        match self.events.pop_front() {
            Some(oldest) => {
                self.dropped = oldest.number;
                oldest.body.len()
            }
            None => 0,
        }
    }
}

/// Removes the topic's sink when the source closes.
struct TopicGuard {
    topics: Topics,
    topic: Arc<str>,
    sink: EventSink,
}

impl Drop for TopicGuard {
    fn drop(&mut self) {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        if topics.get(&self.topic).is_some_and(|sink| sink.same_source(&self.sink)) {
            topics.remove(&self.topic);
        }
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn stats(&self) -> &Arc<BrokerStats> {
        &self.stats
    }

    async fn subscribe(&self, topic: &str, sink: EventSink) -> Result<SourceGuard, BrokerError> {
        let topic: Arc<str> = topic.into();
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        // A late request of a source already closed leaves the topic to the newer source (see
        // `EventSink::opened_before`); its guard then removes nothing.
        if !topics.get(&topic).is_some_and(|current| sink.opened_before(current)) {
            topics.insert(topic.clone(), sink.clone());
        }
        drop(topics);
        Ok(Box::new(TopicGuard { topics: self.topics.clone(), topic, sink }))
    }

    async fn publish(&self, message: Publish) -> Result<PublishAck, BrokerError> {
        // Numbered, kept and delivered in one critical section: numbers rise through each
        // topic's history (a resume finds its cursor by halving it) and live events come in the
        // order of their numbers, so a client's last cursor says exactly what it has seen.
        // Under the lock is a clone of the body and one send into a bounded broadcast.
        let topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        let number = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
        let id = number.to_string();
        self.keep(&message.topic, number, message.key.clone(), message.body.clone());
        if let Some(sink) = topics.get(message.topic.as_str()) {
            let event = Event::new(self.name.clone(), message.topic.as_str().into(), message.body)
                .with_key(message.key)
                .with_id(Some(id.clone()))
                .with_cursor(Some(id.clone()));
            sink.send(event);
        }
        drop(topics);
        Ok(PublishAck { id: Some(id) })
    }

    async fn history(&self, topic: &str, cursor: &str, limit: usize) -> Result<History, BrokerError> {
        let Some(history) = &self.history else { return Ok(History::Unsupported) };
        let Ok(after) = cursor.parse::<u64>() else { return Ok(History::Lost) };
        let kept = history.lock().unwrap_or_else(PoisonError::into_inner);
        let forgotten = kept.forgotten;
        let Some(events) = kept.topics.peek(topic) else {
            return Ok(if after < forgotten { History::Lost } else { History::Events(Vec::new()) });
        };
        if after < events.dropped || after < forgotten {
            return Ok(History::Lost);
        }
        // Numbers rise through the ring: the first event after the cursor is found by halving,
        // so a page costs its own length, not the ring's, under the lock publishing takes too.
        let start = events.events.partition_point(|event| event.number <= after);
        let events = events
            .events
            .range(start..)
            .take(limit)
            .map(|event| {
                let id = event.number.to_string();
                Event::new(self.name.clone(), topic.into(), event.body.clone())
                    .with_key(event.key.clone())
                    .with_id(Some(id.clone()))
                    .with_cursor(Some(id))
                    .with_timestamp(event.timestamp)
            })
            .collect();
        Ok(History::Events(events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tokio::sync::broadcast;

    #[tokio::test]
    async fn delivers_while_subscribed_and_forgets_the_topic_after() {
        let broker = MemoryBroker::new("local");
        let (tx, mut rx) = broadcast::channel(4);
        let guard = broker.subscribe("t", EventSink::new(tx, broker.stats().clone(), 1024)).await.unwrap();
        let publish =
            |body: &'static str| Publish { topic: "t".into(), key: None, body: Bytes::from_static(body.as_bytes()) };
        let ack = broker.publish(publish("1")).await.unwrap();
        assert_eq!(ack.id.as_deref(), Some("1"));
        assert_eq!(rx.recv().await.unwrap().payload_json(), "1");
        drop(guard);
        assert!(broker.topics.lock().unwrap().is_empty());
        broker.publish(publish("2")).await.unwrap();
        assert!(rx.try_recv().is_err());
        // Topics are checked by the hub before it subscribes or publishes.
        assert!(broker.canonical_topic("").is_err());
        assert!(broker.canonical_topic(&"t".repeat(256)).is_err());
    }

    fn numbers(history: History) -> Option<Vec<String>> {
        match history {
            History::Events(events) => Some(events.into_iter().filter_map(|e| e.id).collect()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn history_keeps_the_last_events_of_each_topic_and_knows_what_it_lost() {
        let config = MemoryConfig { history: 3, history_topics: 2, ..MemoryConfig::default() };
        let broker = MemoryBroker::with_config("local", &config);
        let publish = |topic: &str| Publish { topic: topic.into(), key: None, body: Bytes::from_static(b"{}") };
        for topic in ["a", "b", "a", "a", "a"] {
            broker.publish(publish(topic)).await.unwrap();
        }
        // a holds 3, 4, 5 (1 was dropped); b holds 2.
        assert_eq!(
            numbers(broker.history("a", "1", 10).await.unwrap()),
            Some(vec!["3".into(), "4".into(), "5".into()])
        );
        assert_eq!(numbers(broker.history("a", "3", 1).await.unwrap()), Some(vec!["4".into()]));
        assert_eq!(numbers(broker.history("a", "5", 10).await.unwrap()), Some(vec![]));
        assert!(matches!(broker.history("a", "0", 10).await.unwrap(), History::Lost));
        assert!(matches!(broker.history("a", "x", 10).await.unwrap(), History::Lost));
        // A third topic pushes out b, the least recently published.
        broker.publish(publish("c")).await.unwrap();
        assert!(matches!(broker.history("b", "1", 10).await.unwrap(), History::Lost));
        assert_eq!(numbers(broker.history("b", "2", 10).await.unwrap()), Some(vec![]));
        let none = MemoryBroker::new("plain");
        assert!(matches!(none.history("a", "1", 10).await.unwrap(), History::Unsupported));
    }

    #[tokio::test]
    async fn history_is_bounded_in_bytes_least_recently_published_topic_first() {
        // Room for three 10-byte bodies.
        let config = MemoryConfig { history: 100, history_topics: 100, history_bytes: 30 };
        let broker = MemoryBroker::with_config("local", &config);
        let publish = |topic: &str| Publish { topic: topic.into(), key: None, body: Bytes::from_static(b"0123456789") };
        for topic in ["old", "new", "new"] {
            broker.publish(publish(topic)).await.unwrap();
        }
        // A fourth body pushes out the least recently published topic whole.
        broker.publish(publish("new")).await.unwrap();
        assert!(matches!(broker.history("old", "0", 10).await.unwrap(), History::Lost));
        assert_eq!(
            numbers(broker.history("new", "1", 10).await.unwrap()),
            Some(vec!["2".into(), "3".into(), "4".into()])
        );
        // With one topic left, its own oldest go.
        broker.publish(publish("new")).await.unwrap();
        assert!(matches!(broker.history("new", "1", 10).await.unwrap(), History::Lost));
        assert_eq!(
            numbers(broker.history("new", "2", 10).await.unwrap()),
            Some(vec!["3".into(), "4".into(), "5".into()])
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_publishes_are_kept_and_delivered_in_the_order_of_their_numbers() {
        let config = MemoryConfig { history: 10_000, ..MemoryConfig::default() };
        let broker = Arc::new(MemoryBroker::with_config("local", &config));
        let (tx, mut rx) = broadcast::channel(10_000);
        let _guard = broker.subscribe("t", EventSink::new(tx, broker.stats().clone(), 1024)).await.unwrap();
        let publishers: Vec<_> = (0..8)
            .map(|_| {
                let broker = broker.clone();
                tokio::spawn(async move {
                    for _ in 0..500 {
                        let message = Publish { topic: "t".into(), key: None, body: Bytes::from_static(b"{}") };
                        broker.publish(message).await.unwrap();
                    }
                })
            })
            .collect();
        for publisher in publishers {
            publisher.await.unwrap();
        }
        let mut live = Vec::new();
        while let Ok(event) = rx.try_recv() {
            live.push(event.id.as_deref().and_then(|id| id.parse::<u64>().ok()).unwrap());
        }
        assert_eq!(live, (1..=4000).collect::<Vec<_>>(), "delivered in the order of their numbers");
        let kept = numbers(broker.history("t", "0", 10_000).await.unwrap()).unwrap();
        assert_eq!(kept, live.iter().map(u64::to_string).collect::<Vec<_>>(), "kept in the same order");
    }
}
