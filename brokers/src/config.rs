//! Broker configuration (`[brokers.NAME]` tables) and the set of running brokers.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::amqp::{AmqpBroker, AmqpConfig};
use crate::broker::{Broker, BrokerError};
use crate::kafka::{KafkaBroker, KafkaConfig};
use crate::memory::{MemoryBroker, MemoryConfig};
use crate::mqtt::{MqttBroker, MqttConfig};
use crate::nats::{NatsBroker, NatsConfig};
use crate::redis::{RedisBroker, RedisConfig};

/// What every broker is built with besides its own table: the hub's limits that bound what it
/// sends and receives.
#[derive(Clone, Debug)]
pub struct BuildContext {
    /// `limits.max_message_bytes`: the largest body published through the hub; a larger
    /// incoming one is dropped (`too_large`). A broker's client must carry at least this much.
    pub max_message_bytes: usize,
}

impl Default for BuildContext {
    fn default() -> Self {
        BuildContext { max_message_bytes: 1024 * 1024 }
    }
}

/// One `[brokers.NAME]` table; `kind` picks the broker.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BrokerConfig {
    /// The embedded in-process broker.
    Memory(MemoryConfig),
    /// Redis pub/sub or streams.
    Redis(RedisConfig),
    /// RabbitMQ topic exchanges.
    Amqp(AmqpConfig),
    /// Kafka topics.
    Kafka(KafkaConfig),
    /// NATS subjects, core or JetStream.
    Nats(NatsConfig),
    /// MQTT topics.
    Mqtt(MqttConfig),
}

impl BrokerConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            BrokerConfig::Memory(_) => "memory",
            BrokerConfig::Redis(_) => "redis",
            BrokerConfig::Amqp(_) => "amqp",
            BrokerConfig::Kafka(_) => "kafka",
            BrokerConfig::Nats(_) => "nats",
            BrokerConfig::Mqtt(_) => "mqtt",
        }
    }

    /// Checks values that can be checked without connecting; names the key at fault.
    pub fn validate(&self, name: &str) -> Result<(), BrokerError> {
        match self {
            BrokerConfig::Memory(config) => config.validate(name),
            BrokerConfig::Redis(config) => config.validate(name).map(drop),
            BrokerConfig::Amqp(config) => config.validate(name),
            BrokerConfig::Kafka(config) => config.validate(name),
            BrokerConfig::Nats(config) => config.validate(name),
            BrokerConfig::Mqtt(config) => config.validate(name),
        }
    }

    /// Starts the broker.
    pub async fn build(&self, name: &str, context: &BuildContext) -> Result<Arc<dyn Broker>, BrokerError> {
        match self {
            BrokerConfig::Memory(config) => Ok(Arc::new(MemoryBroker::with_config(name, config))),
            BrokerConfig::Redis(config) => Ok(Arc::new(RedisBroker::start(name, config)?)),
            BrokerConfig::Amqp(config) => Ok(Arc::new(AmqpBroker::start(name, config)?)),
            BrokerConfig::Kafka(config) => Ok(Arc::new(KafkaBroker::start(name, config, context)?)),
            BrokerConfig::Nats(config) => Ok(Arc::new(NatsBroker::start(name, config).await?)),
            BrokerConfig::Mqtt(config) => Ok(Arc::new(MqttBroker::start(name, config, context)?)),
        }
    }
}

/// The configured brokers by name, and which one a subscription without `broker` uses.
pub struct Brokers {
    by_name: BTreeMap<String, Arc<dyn Broker>>,
    default: String,
}

impl Brokers {
    /// Starts every configured broker. `default` must name one of them.
    pub async fn build(
        configs: &BTreeMap<String, BrokerConfig>,
        default: &str,
        context: &BuildContext,
    ) -> Result<Self, BrokerError> {
        let mut by_name = BTreeMap::new();
        for (name, config) in configs {
            by_name.insert(name.clone(), config.build(name, context).await?);
        }
        if !by_name.contains_key(default) {
            return Err(BrokerError::UnknownBroker(default.to_owned()));
        }
        Ok(Brokers { by_name, default: default.to_owned() })
    }

    /// The broker with this name, or the default broker for `None`.
    pub fn get(&self, name: Option<&str>) -> Result<&Arc<dyn Broker>, BrokerError> {
        let name = name.unwrap_or(&self.default);
        self.by_name.get(name).ok_or_else(|| BrokerError::UnknownBroker(name.to_owned()))
    }

    pub fn default_name(&self) -> &str {
        &self.default
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Broker>> {
        self.by_name.values()
    }
}
