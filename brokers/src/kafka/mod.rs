//! Kafka: one consumer per configured broker per hub instance, with a group id unique to the
//! instance, committing nothing. Topics join and leave its assignment as subscribers come and go:
//! a topic is assigned at each partition's high watermark, so once the assignment is made the
//! source is live and every later message is read. Publishing goes through one shared producer.
//! librdkafka reconnects by itself and the consumer resumes from its positions, so an outage
//! loses nothing. Only ordinary client configuration is used: `options` passes librdkafka
//! properties (security, timeouts) through unchanged.
//!
//! A publish to a topic the cluster lacks is refused (404) when auto-creation is off; whether
//! a topic exists is looked up once and remembered (a missing one for a few seconds).
//!
//! ## Layout
//! - this module: the config, the broker, its producer and its health.
//! - [`session`]: the consumer loop and its assignment.
//! - [`lookup`]: topic lookups on blocking threads, and the topics known to exist.
//! - [`history`]: a resumed client's messages after its cursor.
//! - [`message`]: messages as events, and cursors.

mod history;
mod lookup;
mod message;
mod session;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientContext;
use serde::Deserialize;
use tokio::sync::{mpsc, Semaphore};

use self::lookup::{partitions, KnownTopics, TopicProblem, CONCURRENT_LOOKUPS, LOOKUP_TIMEOUT};
use self::session::Session;
use crate::broker::{Broker, BrokerError, History, Publish, PublishAck, SourceGuard, REQUEST_TIMEOUT};
use crate::config::BuildContext;
use crate::session::{self as requests, Commands};
use crate::sink::{BrokerStats, EventSink};

/// How often the connection to the cluster is checked for `subhub_broker_connected`.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// What a record adds to its body at most, beside its key: batch and record headers, the
/// trace header.
const RECORD_OVERHEAD: usize = 64 * 1024;

/// `kind = "kafka"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`.
    pub bootstrap_servers: String,
    /// Create a topic when a subscription or publish names one that does not exist (the
    /// cluster must allow auto-creation). Off: such a subscription gets an `error` naming it.
    #[serde(default)]
    pub auto_create_topics: bool,
    /// Extra librdkafka client properties, e.g. `"security.protocol" = "SASL_SSL"`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// Routes librdkafka's logs and errors into the hub's log.
struct KafkaContext {
    broker: Arc<str>,
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::warn!(broker = %self.broker, facility, "librdkafka: {message}");
            }
            _ => tracing::debug!(broker = %self.broker, facility, "librdkafka: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(broker = %self.broker, %error, reason, "Kafka client error");
    }
}

impl ConsumerContext for KafkaContext {}

type KafkaConsumer = StreamConsumer<KafkaContext>;

pub struct KafkaBroker {
    name: Arc<str>,
    stats: Arc<BrokerStats>,
    commands: Commands,
    producer: FutureProducer<KafkaContext>,
    /// Checks topics before publishing when auto-creation is off.
    metadata: Arc<KafkaConsumer>,
    auto_create: bool,
    /// The producer's `message.max.bytes`.
    max_record_bytes: usize,
    known_topics: KnownTopics,
    /// Publishes' topic lookups running at once, at most `CONCURRENT_LOOKUPS`.
    topic_lookups: Semaphore,
    /// How a resumed client's history is read: a consumer of its own per read, at most
    /// `CONCURRENT_LOOKUPS` at once.
    history: ClientConfig,
    history_reads: Arc<Semaphore>,
}

impl KafkaConfig {
    /// Checks the servers and every option without connecting.
    pub fn validate(&self, name: &str) -> Result<(), BrokerError> {
        self.client_config(name, &[]).map(drop)
    }

    /// The client configuration: `defaults`, then the configured `options` (which win).
    fn client_config(&self, name: &str, defaults: &[(&str, String)]) -> Result<ClientConfig, BrokerError> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(BrokerError::Config {
                key: format!("brokers.{name}.bootstrap_servers"),
                reason: "must name at least one host:port".into(),
            });
        }
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", &self.bootstrap_servers);
        for (key, value) in defaults {
            client.set(*key, value);
        }
        for (key, value) in &self.options {
            client.set(key, value);
        }
        client.create_native_config().map_err(|error| BrokerError::Config {
            key: format!("brokers.{name}.options"),
            reason: format!("Kafka client configuration rejected: {error}"),
        })?;
        Ok(client)
    }
}

impl KafkaBroker {
    pub fn start(name: &str, config: &KafkaConfig, context: &BuildContext) -> Result<Self, BrokerError> {
        let client = config.client_config(name, &[])?;
        // librdkafka's own cap (1,000,000 bytes) is below the hub's default limit; and a
        // delivery it keeps retrying for its default five minutes would hold the publish.
        let max_record_bytes = context.max_message_bytes + RECORD_OVERHEAD;
        let producer_config = config.client_config(
            name,
            &[
                ("message.max.bytes", max_record_bytes.to_string()),
                ("message.timeout.ms", REQUEST_TIMEOUT.as_millis().to_string()),
            ],
        )?;
        let name: Arc<str> = name.into();
        let bad_option = |error: KafkaError| BrokerError::Config {
            key: format!("brokers.{name}.options"),
            reason: format!("Kafka client configuration rejected: {error}"),
        };
        let mut consumer_config = client.clone();
        consumer_config
            .set("group.id", format!("subhub-{}-{}-{:08x}", host_name(), std::process::id(), fastrand::u32(..)))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "latest")
            .set("allow.auto.create.topics", if config.auto_create_topics { "true" } else { "false" });
        let mut history_config = client.clone();
        history_config
            .set("group.id", format!("subhub-history-{}-{}", host_name(), std::process::id()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("allow.auto.create.topics", "false");
        let context = || KafkaContext { broker: name.clone() };
        let consumer: Arc<KafkaConsumer> =
            Arc::new(consumer_config.create_with_context(context()).map_err(bad_option)?);
        let metadata: Arc<KafkaConsumer> =
            Arc::new(consumer_config.create_with_context(context()).map_err(bad_option)?);
        let producer: FutureProducer<KafkaContext> =
            producer_config.create_with_context(context()).map_err(bad_option)?;
        let stats = Arc::new(BrokerStats::default());
        let (commands, receiver) = mpsc::unbounded_channel();
        let session = Session { name: name.clone(), stats: stats.clone(), auto_create: config.auto_create_topics };
        tokio::spawn(health(Arc::downgrade(&metadata), stats.clone(), name.clone()));
        tokio::spawn(session.run(consumer, receiver));
        Ok(KafkaBroker {
            name,
            stats,
            commands,
            producer,
            metadata,
            auto_create: config.auto_create_topics,
            max_record_bytes,
            known_topics: KnownTopics::new(),
            topic_lookups: Semaphore::new(CONCURRENT_LOOKUPS),
            history: history_config,
            history_reads: Arc::new(Semaphore::new(CONCURRENT_LOOKUPS)),
        })
    }

    /// Without auto-creation, a publish to a topic the cluster does not have is refused. What
    /// the cluster said is remembered; lookups run a few at a time, and a publish waits for a
    /// turn no longer than one lookup may take.
    async fn check_topic_exists(&self, topic: &str) -> Result<(), BrokerError> {
        if self.auto_create {
            return Ok(());
        }
        let unavailable = || BrokerError::Unavailable(self.name.to_string());
        let known = |exists: bool| {
            exists
                .then_some(())
                .ok_or_else(|| BrokerError::NoSuchTopic { broker: self.name.to_string(), topic: topic.to_owned() })
        };
        if let Some(exists) = self.known_topics.exists(topic) {
            return known(exists);
        }
        let turn = tokio::time::timeout(LOOKUP_TIMEOUT, self.topic_lookups.acquire()).await;
        let Ok(Ok(_permit)) = turn else { return Err(unavailable()) };
        // Another publish may have looked it up while this one waited.
        if let Some(exists) = self.known_topics.exists(topic) {
            return known(exists);
        }
        let (consumer, owned) = (self.metadata.clone(), topic.to_owned());
        let partitions = tokio::task::spawn_blocking(move || partitions(&consumer, &owned, false))
            .await
            .map_err(|_| unavailable())?;
        let exists = match partitions {
            Ok(_) => true,
            Err(TopicProblem::Missing) => false,
            Err(TopicProblem::Unreachable) => return Err(unavailable()),
        };
        self.known_topics.record(topic, exists);
        known(exists)
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "hub".to_owned())
}

/// Kafka's topic name rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_topic_name(broker: &str, topic: &str) -> Result<(), BrokerError> {
    let reason = if topic.is_empty() || topic.len() > 249 {
        "a Kafka topic name has 1 to 249 characters"
    } else if topic == "." || topic == ".." {
        "a Kafka topic cannot be named `.` or `..`"
    } else if !topic.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        "a Kafka topic name may only contain ASCII letters, digits, `.`, `_` and `-`"
    } else {
        return Ok(());
    };
    Err(BrokerError::invalid_topic(broker, topic, reason))
}

#[async_trait]
impl Broker for KafkaBroker {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "kafka"
    }

    fn stats(&self) -> &Arc<BrokerStats> {
        &self.stats
    }

    fn canonical_topic<'a>(&self, topic: &'a str) -> Result<std::borrow::Cow<'a, str>, BrokerError> {
        validate_topic_name(&self.name, topic).map(|()| std::borrow::Cow::Borrowed(topic))
    }

    async fn subscribe(&self, topic: &str, sink: EventSink) -> Result<SourceGuard, BrokerError> {
        requests::subscribe(&self.commands, &self.name, topic, sink).await
    }

    /// The messages after a cursor (every partition's next offset), read by a consumer of its
    /// own from those offsets up to each partition's high watermark now. The cursor is lost when
    /// a partition no longer starts at or before its offset (retention deleted what followed).
    async fn history(&self, topic: &str, cursor: &str, limit: usize) -> Result<History, BrokerError> {
        let Some(next) = message::parse_cursor(cursor) else { return Ok(History::Lost) };
        let (config, name, topic) = (self.history.clone(), self.name.clone(), topic.to_owned());
        let unavailable = BrokerError::Unavailable(self.name.to_string());
        let Ok(_permit) = self.history_reads.clone().acquire_owned().await else { return Err(unavailable) };
        tokio::task::spawn_blocking(move || history::read_history(&config, &name, &topic, next, limit))
            .await
            .unwrap_or(Err(unavailable))
    }

    async fn publish(&self, message: Publish) -> Result<PublishAck, BrokerError> {
        self.check_topic_exists(&message.topic).await?;
        let mut record = FutureRecord::to(&message.topic).payload(message.body.as_ref());
        if let Some(key) = &message.key {
            record = record.key(key.as_str());
        }
        // The queue timeout: how long a full producer queue is waited on.
        match self.producer.send(record, REQUEST_TIMEOUT).await {
            Ok(delivery) => Ok(PublishAck { id: Some(format!("{}:{}", delivery.partition, delivery.offset)) }),
            Err((error, _)) => match error.rdkafka_error_code() {
                Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                    self.known_topics.record(&message.topic, false);
                    Err(BrokerError::NoSuchTopic { broker: self.name.to_string(), topic: message.topic })
                }
                // Over `message.max.bytes` with its key and headers, or over the cluster's own cap.
                Some(RDKafkaErrorCode::MessageSizeTooLarge) => {
                    let size = message.body.len() + message.key.as_ref().map_or(0, String::len);
                    Err(BrokerError::TooLarge { size, max: self.max_record_bytes })
                }
                _ => {
                    tracing::warn!(broker = %self.name, %error, "publish to Kafka failed");
                    Err(BrokerError::Unavailable(self.name.to_string()))
                }
            },
        }
    }
}

/// Sets `subhub_broker_connected` from a metadata request every second, until the broker is gone.
async fn health(consumer: Weak<KafkaConsumer>, stats: Arc<BrokerStats>, name: Arc<str>) {
    let mut was_up = None;
    loop {
        let Some(client) = consumer.upgrade() else { return };
        let up = tokio::task::spawn_blocking(move || client.fetch_metadata(None, HEALTH_INTERVAL).is_ok())
            .await
            .unwrap_or(false);
        stats.connected.store(up, Relaxed);
        match (was_up, up) {
            (None | Some(true), false) => {
                tracing::warn!(broker = %name, "Kafka is unreachable; librdkafka keeps retrying")
            }
            (Some(false), true) => tracing::info!(broker = %name, "Kafka is reachable again"),
            _ => {}
        }
        was_up = Some(up);
        tokio::time::sleep(HEALTH_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("k", "orders.created-v1_2").is_ok());
        for bad in ["", ".", "..", "orders/eu", "ordres eu", "é"] {
            assert!(validate_topic_name("k", bad).is_err(), "{bad}");
        }
        assert!(validate_topic_name("k", &"a".repeat(250)).is_err());
    }
}
