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

mod pubsub;
mod streams;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::{mpsc, Mutex};

use crate::broker::{Broker, BrokerError, History, Publish, PublishAck, SourceGuard};
use crate::session::{self, Commands};
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
}

const fn default_stream_maxlen() -> usize {
    10_000
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
    client: redis::Client,
    stats: Arc<BrokerStats>,
    commands: Commands,
    /// The connection publishes go through, made on first use and again after it breaks.
    publisher: Mutex<Option<redis::aio::MultiplexedConnection>>,
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
        let task = (client.clone(), name.clone(), stats.clone(), receiver);
        match config.mode {
            RedisMode::Pubsub => tokio::spawn(pubsub::run(task.0, task.1, task.2, task.3)),
            RedisMode::Streams => tokio::spawn(streams::run(task.0, task.1, task.2, task.3)),
        };
        Ok(RedisBroker {
            name,
            mode: config.mode,
            stream_maxlen: config.stream_maxlen,
            client,
            stats,
            commands,
            publisher: Mutex::new(None),
        })
    }

    async fn publisher(&self) -> Result<redis::aio::MultiplexedConnection, BrokerError> {
        let mut publisher = self.publisher.lock().await;
        if let Some(connection) = publisher.as_ref() {
            return Ok(connection.clone());
        }
        let connection = self.client.get_multiplexed_async_connection().await.map_err(|error| {
            tracing::warn!(broker = %self.name, %error, "cannot connect to Redis to publish");
            BrokerError::Unavailable(self.name.to_string())
        })?;
        *publisher = Some(connection.clone());
        Ok(connection)
    }

    async fn forget_publisher(&self) {
        *self.publisher.lock().await = None;
    }
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
        let mut connection = self.publisher().await?;
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
            Err(error) => Err(self.failed(&error, "publish to Redis").await),
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
        let mut connection = self.publisher().await?;
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
            Err(error) => return Err(self.failed(&error, "read Redis stream history").await),
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
            Err(error) => Err(self.failed(&error, "read Redis stream history").await),
        }
    }
}

impl RedisBroker {
    /// Logs a failed command; a broken connection is made again next time.
    async fn failed(&self, error: &redis::RedisError, what: &str) -> BrokerError {
        tracing::warn!(broker = %self.name, %error, "{what} failed");
        if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() {
            self.forget_publisher().await;
        }
        BrokerError::Unavailable(self.name.to_string())
    }
}
