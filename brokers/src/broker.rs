//! The trait every broker implements.

use std::any::Any;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::event::Event;
use crate::sink::{BrokerStats, EventSink};

/// How long the hub waits for a broker to answer one request: a publish's acknowledgement, a
/// binding. A broker that takes longer (an alarm blocking publishers, a partition) is answered
/// `Unavailable`, so nothing waiting on it holds its place for good.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Closes a broker subscription when dropped. What it holds is the broker's business.
pub type SourceGuard = Box<dyn Any + Send + Sync>;

/// A message to publish.
#[derive(Clone, Debug)]
pub struct Publish {
    pub topic: String,
    pub key: Option<String>,
    pub body: Bytes,
}

/// What the broker said about a published message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishAck {
    /// The broker's position of the message, where it has one.
    pub id: Option<String>,
}

/// Why a broker operation failed. The display text is safe to show clients: it names the
/// broker or topic and never carries a driver's internal error text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("unknown broker `{0}`")]
    UnknownBroker(String),
    #[error("invalid topic `{topic}` for broker `{broker}`: {reason}")]
    InvalidTopic { broker: String, topic: String, reason: String },
    #[error("broker `{0}` is not available")]
    Unavailable(String),
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("topic `{topic}` does not exist on broker `{broker}`")]
    NoSuchTopic { broker: String, topic: String },
    #[error("{key}: {reason}")]
    Config { key: String, reason: String },
}

/// What a broker still holds of a topic after a cursor (DESIGN §12).
#[derive(Debug)]
pub enum History {
    /// Events after the cursor, oldest first, at most the limit asked for; none when nothing
    /// follows it yet.
    Events(Vec<Event>),
    /// The broker no longer holds the cursor (trimmed, expired), or it names no position here.
    Lost,
    /// The broker keeps no history (pub/sub kinds).
    Unsupported,
}

/// One configured broker.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// The broker's name in the config.
    fn name(&self) -> &str;

    /// The broker's kind (`memory`, `kafka`, `redis`, `amqp`).
    fn kind(&self) -> &'static str;

    /// Counters and gauges of this broker.
    fn stats(&self) -> &Arc<BrokerStats>;

    /// Checks a topic against the broker's rules and returns its canonical form, so topics that
    /// mean the same share one source. The hub calls it before `subscribe` and `publish` (the
    /// registry and the publisher do), so brokers do not check again there. By default: the
    /// rules every broker shares, and the topic as it is.
    fn canonical_topic<'a>(&self, topic: &'a str) -> Result<Cow<'a, str>, BrokerError> {
        validate_common(self.name(), topic).map(|()| Cow::Borrowed(topic))
    }

    /// Characters a value rendered into a topic may not carry: the broker's wildcards and
    /// separators, with which a client argument could widen its subscription or reach beside
    /// its own topic.
    fn reserved(&self) -> &'static [char] {
        &[]
    }

    /// How many of the broker's own wildcards a canonical topic holds; 0 when it names exactly
    /// one topic. The hub bounds it (`limits.max_topic_wildcards`) and, under `[authz]`,
    /// allows wildcards only where a rule says so.
    fn wildcards(&self, _topic: &str) -> usize {
        0
    }

    /// Subscribes to a validated `topic`. Returns once the subscription is live: an event
    /// published after this returns reaches `sink`. Dropping the guard unsubscribes.
    async fn subscribe(&self, topic: &str, sink: EventSink) -> Result<SourceGuard, BrokerError>;

    /// Publishes one message to a validated topic.
    async fn publish(&self, message: Publish) -> Result<PublishAck, BrokerError>;

    /// The topic's events after `cursor` (an event's [`Event::cursor`]), at most `limit`, for a
    /// client that resumes. By default the broker keeps none.
    async fn history(&self, _topic: &str, _cursor: &str, _limit: usize) -> Result<History, BrokerError> {
        Ok(History::Unsupported)
    }
}

impl BrokerError {
    /// A topic `broker` cannot take, and why.
    pub fn invalid_topic(broker: &str, topic: &str, reason: &str) -> Self {
        BrokerError::InvalidTopic { broker: broker.to_owned(), topic: topic.to_owned(), reason: reason.to_owned() }
    }
}

/// The rules every broker shares: a topic is a non-empty name of at most 255 bytes.
pub fn validate_common(broker: &str, topic: &str) -> Result<(), BrokerError> {
    let reason = if topic.is_empty() {
        "a topic must not be empty"
    } else if topic.len() > 255 {
        "a topic must be at most 255 bytes"
    } else if topic.chars().any(char::is_control) {
        "a topic must not contain control characters"
    } else {
        return Ok(());
    };
    Err(BrokerError::invalid_topic(broker, topic, reason))
}

/// How a broker splits a topic into levels and which levels are wildcards (NATS: `.`, `*`, `>`;
/// MQTT: `/`, `+`, `#`).
pub struct Levels {
    pub separator: char,
    /// Matches one level.
    pub one: &'static str,
    /// Matches the rest; only as the last level.
    pub rest: &'static str,
}

impl Levels {
    /// The wildcard levels of a topic.
    pub fn wildcards(&self, topic: &str) -> usize {
        topic.split(self.separator).filter(|level| *level == self.one || *level == self.rest).count()
    }

    /// Why a topic breaks the level rules: a wildcard character inside a level, or the
    /// multi-level wildcard before the last level.
    pub fn problem(&self, topic: &str) -> Option<String> {
        let levels: Vec<&str> = topic.split(self.separator).collect();
        for (n, level) in levels.iter().enumerate() {
            if level.len() > 1 && (level.contains(self.one) || level.contains(self.rest)) {
                return Some(format!("`{}` and `{}` are whole levels", self.one, self.rest));
            }
            if *level == self.rest && n + 1 != levels.len() {
                return Some(format!("`{}` may only be the last level", self.rest));
            }
        }
        None
    }
}
