//! The embedded in-process broker: topics live in the hub's memory, publishing delivers to the
//! topic's source at once, and nothing is kept for a topic nobody subscribes to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use serde::Deserialize;

use crate::broker::{Broker, BrokerError, Publish, PublishAck, SourceGuard};
use crate::event::Event;
use crate::sink::{BrokerStats, EventSink};

/// `kind = "memory"` takes no options.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {}

type Topics = Arc<Mutex<HashMap<Arc<str>, EventSink>>>;

pub struct MemoryBroker {
    name: Arc<str>,
    topics: Topics,
    sequence: AtomicU64,
    stats: Arc<BrokerStats>,
}

impl MemoryBroker {
    pub fn new(name: &str) -> Self {
        let stats = Arc::new(BrokerStats::default());
        stats.connected.store(true, Ordering::Relaxed);
        MemoryBroker { name: name.into(), topics: Topics::default(), sequence: AtomicU64::new(0), stats }
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
        self.topics.lock().unwrap_or_else(PoisonError::into_inner).insert(topic.clone(), sink.clone());
        Ok(Box::new(TopicGuard { topics: self.topics.clone(), topic, sink }))
    }

    async fn publish(&self, message: Publish) -> Result<PublishAck, BrokerError> {
        let id = (self.sequence.fetch_add(1, Ordering::Relaxed) + 1).to_string();
        let sink = self.topics.lock().unwrap_or_else(PoisonError::into_inner).get(message.topic.as_str()).cloned();
        if let Some(sink) = sink {
            let event = Event::new(self.name.clone(), message.topic.as_str().into(), message.body)
                .with_key(message.key)
                .with_id(Some(id.clone()))
                .with_cursor(Some(id.clone()));
            sink.send(event);
        }
        Ok(PublishAck { id: Some(id) })
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
}
