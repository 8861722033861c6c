//! Publishing through the hub: the `publish` mutation and `POST /publish/{topic}` both end here.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use subhub_brokers::{BrokerError, Brokers, Publish, PublishAck};

pub struct Publisher {
    brokers: Arc<Brokers>,
    max_message_bytes: usize,
}

impl Publisher {
    pub fn new(brokers: Arc<Brokers>, max_message_bytes: usize) -> Self {
        Publisher { brokers, max_message_bytes }
    }

    pub fn brokers(&self) -> &Arc<Brokers> {
        &self.brokers
    }

    /// Publishes `body` on `topic` of `broker` (the default broker for `None`).
    pub async fn publish(
        &self,
        broker: Option<&str>,
        topic: String,
        key: Option<String>,
        body: Bytes,
    ) -> Result<PublishAck, BrokerError> {
        if body.len() > self.max_message_bytes {
            return Err(BrokerError::TooLarge { size: body.len(), max: self.max_message_bytes });
        }
        let broker = self.brokers.get(broker)?;
        let topic = broker.canonical_topic(&topic)?.into_owned();
        let ack = broker.publish(Publish { topic, key, body }).await?;
        broker.stats().published.fetch_add(1, Relaxed);
        Ok(ack)
    }
}
