//! Redis, in one of two modes.
//!
//! - `mode = "pubsub"` (default): one connection per configured broker carries every SUBSCRIBE
//!   (PSUBSCRIBE for topics with glob characters `*`, `?`, `[`), sent for the first subscriber
//!   and undone after the last. Redis keeps nothing: what is published while the hub is
//!   disconnected is lost.
//! - `mode = "streams"`: one reader loop multiplexes every subscribed stream key in one blocking
//!   XREAD, starting each key at its last entry when it is subscribed and resuming from the last
//!   id it delivered after a reconnect, so nothing is lost. Publishing is XADD with
//!   `MAXLEN ~ stream_maxlen`; an entry's `payload` field is the event body, its `key` field the
//!   key, other fields become `headers`.
//!
//! Each mode's session runs on the shared reconnect loop and holds, beside its subscriber, a
//! command connection that publishes and history reads use. A silent partition fails nothing by
//! itself, so every connection is PINGed each `keepalive` and an answer must come within it;
//! otherwise the session is over (`subhub_broker_connected` 0) and connects again.

mod pubsub;
mod streams;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use serde::Deserialize;
use subhub_core::Heartbeat;
use tokio::sync::mpsc;

use crate::broker::{Broker, BrokerError, History, Publish, PublishAck, SourceGuard, REQUEST_TIMEOUT};
use crate::session::{self, Commands, Current, Link, SessionTopics};
use crate::sink::{BrokerStats, EventSink};

/// `kind = "redis"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    #[serde(default)]
    pub mode: RedisMode,
    /// Streams mode: entries a stream keeps at most (approximately) when the hub publishes.
    #[serde(default = "default_stream_maxlen")]
    pub stream_maxlen: usize,
    /// Interval of PINGs on every connection; no answer within it means the connection is lost.
    #[serde(default = "default_keepalive", with = "humantime_serde")]
    pub keepalive: Duration,
}

const fn default_stream_maxlen() -> usize {
    10_000
}

const fn default_keepalive() -> Duration {
    Duration::from_secs(10)
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    #[default]
    Pubsub,
    Streams,
}

pub struct RedisBroker {
    name: Arc<str>,
    mode: RedisMode,
    stream_maxlen: usize,
    stats: Arc<BrokerStats>,
    commands: Commands,
    /// The command connection of the session in progress: publishes and history reads.
    commander: Current<MultiplexedConnection>,
}

impl RedisConfig {
    /// Checks the URL and limits; returns the client the URL describes.
    pub fn validate(&self, name: &str) -> Result<redis::Client, BrokerError> {
        let client = redis::Client::open(self.url.as_str()).map_err(|e| BrokerError::Config {
            key: format!("brokers.{name}.url"),
            reason: format!("invalid Redis URL: {e}"),
        })?;
        if self.stream_maxlen == 0 {
            return Err(BrokerError::Config {
                key: format!("brokers.{name}.stream_maxlen"),
                reason: "must be at least 1".into(),
            });
        }
        if self.keepalive < Duration::from_millis(100) {
            return Err(BrokerError::Config {
                key: format!("brokers.{name}.keepalive"),
                reason: "must be at least 100ms".into(),
            });
        }
        Ok(client)
    }
}

impl RedisBroker {
    /// Checks the config and starts the session task; an unreachable server is retried there.
    pub fn start(name: &str, config: &RedisConfig) -> Result<Self, BrokerError> {
        let client = config.validate(name)?;
        let name: Arc<str> = name.into();
        let stats = Arc::new(BrokerStats::default());
        let (commands, receiver) = mpsc::unbounded_channel();
        let commander = Current::default();
        let common = Common {
            client,
            link: Link::new(name.clone(), stats.clone()),
            topics: SessionTopics::default(),
            commander: commander.clone(),
            keepalive: config.keepalive,
        };
        match config.mode {
            RedisMode::Pubsub => tokio::spawn(pubsub::run(common, receiver)),
            RedisMode::Streams => tokio::spawn(streams::run(common, receiver)),
        };
        Ok(RedisBroker { name, mode: config.mode, stream_maxlen: config.stream_maxlen, stats, commands, commander })
    }

    /// The command connection, or at once `Unavailable` while the session is down.
    async fn commander(&self) -> Result<MultiplexedConnection, BrokerError> {
        self.commander.get(REQUEST_TIMEOUT).await.ok_or_else(|| BrokerError::Unavailable(self.name.to_string()))
    }
}

/// What both modes' sessions hold.
struct Common {
    client: redis::Client,
    link: Link,
    topics: SessionTopics,
    commander: Current<MultiplexedConnection>,
    keepalive: Duration,
}

impl Common {
    /// The command connection; the session publishes it once every topic is restored.
    async fn command_connection(&self) -> redis::RedisResult<MultiplexedConnection> {
        self.client.get_multiplexed_async_connection().await
    }

    /// A connection attempt failed: publishes waiting for the first one are answered.
    fn failed(&self, error: redis::RedisError) -> subhub_core::ConnectError<redis::RedisError> {
        self.commander.clear();
        subhub_core::ConnectError::Retry(error)
    }

    /// The session is up with `command` as its command connection.
    fn up(&mut self, command: &MultiplexedConnection) {
        self.commander.set(command.clone());
        self.link.up(&mut self.topics);
    }

    /// The session ended: publishes are refused until the next one is up.
    fn down(&self) {
        self.commander.clear();
        self.link.down();
    }
}

/// PINGs a command connection; false when no answer came within the heartbeat's deadline.
async fn answers(heartbeat: &Heartbeat, connection: &mut MultiplexedConnection) -> bool {
    let ping = redis::cmd("PING");
    matches!(heartbeat.within(ping.query_async::<redis::Value>(connection)).await, Ok(Ok(_)))
}

#[async_trait]
impl Broker for RedisBroker {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn stats(&self) -> &Arc<BrokerStats> {
        &self.stats
    }

    /// Pub/sub: the glob characters of a pattern. A stream key has none.
    fn wildcards(&self, topic: &str) -> usize {
        match self.mode {
            RedisMode::Pubsub => pubsub::wildcards(topic),
            RedisMode::Streams => 0,
        }
    }

    /// Pub/sub: the glob characters and their escape.
    fn reserved(&self) -> &'static [char] {
        match self.mode {
            RedisMode::Pubsub => &['*', '?', '[', ']', '\\'],
            RedisMode::Streams => &[],
        }
    }

    async fn subscribe(&self, topic: &str, sink: EventSink) -> Result<SourceGuard, BrokerError> {
        session::subscribe(&self.commands, &self.name, topic, sink).await
    }

    async fn publish(&self, message: Publish) -> Result<PublishAck, BrokerError> {
        let mut connection = self.commander().await?;
        let result = match self.mode {
            RedisMode::Pubsub => redis::cmd("PUBLISH")
                .arg(&message.topic)
                .arg(message.body.as_ref())
                .query_async::<i64>(&mut connection)
                .await
                .map(|_| PublishAck { id: None }),
            RedisMode::Streams => {
                let mut command = redis::cmd("XADD");
                command.arg(&message.topic).arg("MAXLEN").arg("~").arg(self.stream_maxlen).arg("*");
                command.arg("payload").arg(message.body.as_ref());
                if let Some(key) = &message.key {
                    command.arg("key").arg(key);
                }
                command.query_async::<String>(&mut connection).await.map(|id| PublishAck { id: Some(id) })
            }
        };
        match result {
            Ok(ack) => Ok(ack),
            Err(error) => Err(self.failed(&error, "publish to Redis")),
        }
    }

    /// Streams: the entries after the cursor (an entry id), by XRANGE. The cursor is lost when
    /// the stream trimmed an entry after it (`max-deleted-entry-id`, Redis 7).
    async fn history(&self, topic: &str, cursor: &str, limit: usize) -> Result<History, BrokerError> {
        if self.mode != RedisMode::Streams {
            return Ok(History::Unsupported);
        }
        if !streams::is_entry_id(cursor) {
            return Ok(History::Lost);
        }
        let mut connection = self.commander().await?;
        let info: redis::RedisResult<redis::Value> =
            redis::cmd("XINFO").arg("STREAM").arg(topic).query_async(&mut connection).await;
        match info {
            Ok(info) => {
                if streams::lost_after(&info, cursor) {
                    return Ok(History::Lost);
                }
            }
            // No such stream (yet): nothing follows the cursor.
            Err(error) if error.code() == Some("ERR") => return Ok(History::Events(Vec::new())),
            Err(error) => return Err(self.failed(&error, "read Redis stream history")),
        }
        let range: redis::RedisResult<redis::streams::StreamRangeReply> = redis::cmd("XRANGE")
            .arg(topic)
            .arg(format!("({cursor}"))
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut connection)
            .await;
        match range {
            Ok(range) => Ok(History::Events(
                range.ids.into_iter().map(|entry| streams::event(&self.name, topic, entry)).collect(),
            )),
            Err(error) => Err(self.failed(&error, "read Redis stream history")),
        }
    }
}

impl RedisBroker {
    /// Logs a failed command. A broken connection is the session's to notice (its PINGs go
    /// unanswered), and it connects again.
    fn failed(&self, error: &redis::RedisError, what: &str) -> BrokerError {
        tracing::warn!(broker = %self.name, %error, "{what} failed");
        BrokerError::Unavailable(self.name.to_string())
    }
}
