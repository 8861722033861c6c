//! RabbitMQ (AMQP 0-9-1): one connection per configured broker and one exclusive, auto-delete
//! queue per hub instance, bound to the configured topic exchange. A topic is a routing key
//! (wildcards `*` and `#` allowed), bound for the first subscriber and unbound after the last.
//! Publishing uses the topic as routing key, on a channel in confirm mode, and a confirmation
//! that does not come within [`REQUEST_TIMEOUT`] (RabbitMQ blocks publishers during a memory or
//! disk alarm) is answered `Unavailable`. Like Redis pub/sub, what is published while the hub is
//! disconnected is not delivered to it. The connection's liveness is AMQP's own heartbeat
//! (negotiated with the server; `?heartbeat=SECONDS` in the URL sets it).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde::Deserialize;
use subhub_core::{ConnectError, Reconnect, SessionEnd};
use tokio::sync::mpsc;

use crate::broker::{validate_common, Broker, BrokerError, Publish, PublishAck, SourceGuard, REQUEST_TIMEOUT};
use crate::event::Event;
use crate::session::{self, Command, Commands, Current, Link, SessionTopics};
use crate::sink::{BrokerStats, EventSink};

/// `kind = "amqp"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    /// `amqp://user:password@host:port/vhost` (`%2f` for the default vhost).
    pub url: String,
    /// The topic exchange the hub binds to and publishes on; declared durable if missing.
    #[serde(default = "default_exchange")]
    pub exchange: String,
}

fn default_exchange() -> String {
    "subhub".to_owned()
}

pub struct AmqpBroker {
    name: Arc<str>,
    exchange: String,
    stats: Arc<BrokerStats>,
    commands: Commands,
    /// The publishing channel of the session in progress.
    publisher: Current<Channel>,
}

impl AmqpBroker {
    pub fn start(name: &str, config: &AmqpConfig) -> Result<Self, BrokerError> {
        config.validate(name)?;
        let name: Arc<str> = name.into();
        let stats = Arc::new(BrokerStats::default());
        let publisher = Current::default();
        let (commands, receiver) = mpsc::unbounded_channel();
        let queue = format!("subhub.{}.{}.{:08x}", host_name(), std::process::id(), fastrand::u32(..));
        let session = Session {
            url: config.url.clone(),
            exchange: config.exchange.clone(),
            queue,
            link: Link::new(name.clone(), stats.clone()),
            topics: SessionTopics::default(),
            publisher: publisher.clone(),
        };
        tokio::spawn(session.run(receiver));
        Ok(AmqpBroker { name, exchange: config.exchange.clone(), stats, commands, publisher })
    }
}

impl AmqpConfig {
    /// Checks the URL and the exchange name without connecting.
    pub fn validate(&self, name: &str) -> Result<(), BrokerError> {
        let bad = |reason: String| BrokerError::Config { key: format!("brokers.{name}.url"), reason };
        if self.url.starts_with("amqps://") {
            return Err(bad("amqps:// is not supported by this build; use amqp://".into()));
        }
        let _: lapin::uri::AMQPUri = self.url.parse().map_err(|e: String| bad(format!("invalid AMQP URL: {e}")))?;
        if self.exchange.is_empty() || self.exchange.len() > 255 {
            return Err(BrokerError::Config {
                key: format!("brokers.{name}.exchange"),
                reason: "must be 1 to 255 bytes".into(),
            });
        }
        Ok(())
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "hub".to_owned())
}

#[async_trait]
impl Broker for AmqpBroker {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "amqp"
    }

    fn stats(&self) -> &Arc<BrokerStats> {
        &self.stats
    }

    fn canonical_topic<'a>(&self, topic: &'a str) -> Result<Cow<'a, str>, BrokerError> {
        validate_common(&self.name, topic)?;
        canonical_routing_key(topic).map_err(|reason| BrokerError::invalid_topic(&self.name, topic, reason))
    }

    fn wildcards(&self, topic: &str) -> usize {
        topic.split('.').filter(|word| matches!(*word, "*" | "#")).count()
    }

    fn reserved(&self) -> &'static [char] {
        &['.', '*', '#']
    }

    async fn subscribe(&self, topic: &str, sink: EventSink) -> Result<SourceGuard, BrokerError> {
        session::subscribe(&self.commands, &self.name, topic, sink).await
    }

    async fn publish(&self, message: Publish) -> Result<PublishAck, BrokerError> {
        if message.topic.split('.').any(|word| matches!(word, "*" | "#")) {
            let reason = "wildcards are for subscribing; publish to a plain routing key";
            return Err(BrokerError::invalid_topic(&self.name, &message.topic, reason));
        }
        let unavailable = || BrokerError::Unavailable(self.name.to_string());
        let channel = self.publisher.get(REQUEST_TIMEOUT).await.ok_or_else(unavailable)?;
        let mut properties = BasicProperties::default();
        if let Some(key) = message.key {
            properties = properties.with_message_id(key.into());
        }
        let confirmed = async {
            let confirm = channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    message.topic.as_str().into(),
                    BasicPublishOptions::default(),
                    &message.body,
                    properties,
                )
                .await?;
            confirm.await
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, confirmed).await {
            Ok(Ok(confirmation)) if confirmation.is_ack() => Ok(PublishAck { id: None }),
            Ok(Ok(_)) => {
                tracing::warn!(broker = %self.name, "RabbitMQ refused a publish (nack)");
                Err(unavailable())
            }
            Ok(Err(error)) => {
                tracing::warn!(broker = %self.name, %error, "publish to RabbitMQ failed");
                Err(unavailable())
            }
            Err(_) => {
                tracing::warn!(broker = %self.name, timeout = ?REQUEST_TIMEOUT, "RabbitMQ did not confirm a publish in time (a resource alarm blocks publishers?)");
                Err(unavailable())
            }
        }
    }
}

struct Session {
    url: String,
    exchange: String,
    queue: String,
    link: Link,
    topics: SessionTopics,
    publisher: Current<Channel>,
}

/// An open connection, its consuming channel and its consumer.
type Connected = (Connection, Channel, lapin::Consumer);

impl subhub_core::Session for Session {
    type Request = Command;
    type Connection = Connected;
    type Error = String;
    const KIND: &'static str = "RabbitMQ";

    fn name(&self) -> &str {
        self.link.name()
    }

    async fn connect(&mut self) -> Result<Connected, ConnectError<String>> {
        self.open().await.map_err(|error| {
            self.publisher.clear();
            ConnectError::Retry(format!("{} ({error})", redact(&self.url)))
        })
    }

    async fn serve(
        &mut self,
        (connection, channel, consumer): Connected,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> SessionEnd {
        self.link.up(&mut self.topics);
        let end = self.session(&channel, consumer, commands).await;
        self.publisher.clear();
        self.link.down();
        // A connection that went silent may never answer the close.
        let close = connection.close(200, "subhub session ended".into());
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
        end
    }

    fn offline(&mut self, command: Command) {
        self.topics.apply_offline(command);
    }
}

/// How long closing a connection may take before it is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

impl Session {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        subhub_core::run(&mut self, &mut commands, Reconnect::default()).await;
    }

    /// Connects, declares the exchange and the hub's queue, restores every binding and starts
    /// consuming.
    async fn open(&self) -> lapin::Result<Connected> {
        let connection = Connection::connect(&self.url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        channel
            .exchange_declare(self.exchange.as_str().into(), ExchangeKind::Topic, durable, FieldTable::default())
            .await?;
        let queue = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
        channel.queue_declare(self.queue.as_str().into(), queue, FieldTable::default()).await?;
        for topic in self.topics.active.keys() {
            self.bind(&channel, topic).await?;
        }
        let no_ack = BasicConsumeOptions { no_ack: true, ..Default::default() };
        let consumer =
            channel.basic_consume(self.queue.as_str().into(), "subhub".into(), no_ack, FieldTable::default()).await?;
        let publisher = connection.create_channel().await?;
        publisher.confirm_select(ConfirmSelectOptions::default()).await?;
        self.publisher.set(publisher);
        Ok((connection, channel, consumer))
    }

    async fn bind(&self, channel: &Channel, topic: &str) -> lapin::Result<()> {
        channel
            .queue_bind(
                self.queue.as_str().into(),
                self.exchange.as_str().into(),
                topic.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
    }

    async fn unbind(&self, channel: &Channel, topic: &str) -> lapin::Result<()> {
        let (queue, exchange) = (self.queue.as_str().into(), self.exchange.as_str().into());
        channel.queue_unbind(queue, exchange, topic.into(), FieldTable::default()).await
    }

    async fn session(
        &mut self,
        channel: &Channel,
        mut consumer: lapin::Consumer,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> SessionEnd {
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    None => return SessionEnd::Shutdown,
                    Some(Command::Subscribe { topic, sink, live }) => {
                        let Some(live) = self.topics.accept(&topic, sink, live) else { continue };
                        // The binding is confirmed (BindOk) before the subscription counts as live.
                        if !answered(self.bind(channel, &topic)).await {
                            self.topics.waiting.push((topic, live));
                            return SessionEnd::Disconnected;
                        }
                        self.link.held(&self.topics);
                        let _ = live.send(Ok(()));
                    }
                    Some(Command::Unsubscribe { topic, sink }) => {
                        if self.topics.remove(&topic, &sink) {
                            if !answered(self.unbind(channel, &topic)).await {
                                return SessionEnd::Disconnected;
                            }
                            self.link.held(&self.topics);
                        }
                    }
                },
                delivery = consumer.next() => match delivery {
                    Some(Ok(delivery)) => self.deliver(delivery),
                    Some(Err(error)) => {
                        tracing::warn!(broker = %self.link.name(), %error, "RabbitMQ connection lost; reconnecting");
                        return SessionEnd::Disconnected;
                    }
                    None => {
                        tracing::warn!(broker = %self.link.name(), "RabbitMQ consumer ended; reconnecting");
                        return SessionEnd::Disconnected;
                    }
                },
            }
        }
    }

    /// One message reaches the queue once however many bindings match it; every source whose
    /// routing-key pattern matches gets it.
    fn deliver(&self, delivery: lapin::message::Delivery) {
        let routing_key = delivery.routing_key.as_str();
        let body = Bytes::from(delivery.data);
        let key = delivery.properties.message_id().as_ref().map(|id| id.to_string());
        for (topic, sink) in &self.topics.active {
            if routing_key_matches(topic, routing_key) && sink.admits(body.len()) {
                sink.send(Event::new(self.link.name().clone(), routing_key.into(), body.clone()).with_key(key.clone()));
            }
        }
    }
}

/// Whether RabbitMQ answered a request without error within [`REQUEST_TIMEOUT`].
async fn answered(request: impl std::future::Future<Output = lapin::Result<()>>) -> bool {
    matches!(tokio::time::timeout(REQUEST_TIMEOUT, request).await, Ok(Ok(())))
}

/// The canonical form of a routing-key pattern: consecutive `#` words mean the same as one and
/// are collapsed. A pattern with more than one `#` left is refused: RabbitMQ matches a binding
/// by trying every split of the routing key at each `#`, so its time grows with the key's
/// length to the power of their number (four `#` and a 127-word key kept it at a full core for
/// 25 s, and every other binding and publish of the broker waited).
pub fn canonical_routing_key(pattern: &str) -> Result<Cow<'_, str>, &'static str> {
    let mut words: Vec<&str> = Vec::new();
    let mut collapsed = false;
    for word in pattern.split('.') {
        if word == "#" && words.last() == Some(&"#") {
            collapsed = true;
            continue;
        }
        words.push(word);
    }
    if words.iter().filter(|word| **word == "#").count() > 1 {
        return Err("a routing-key pattern may hold one `#` word (consecutive ones count as one): RabbitMQ's matching time grows exponentially with each further `#`");
    }
    Ok(if collapsed { Cow::Owned(words.join(".")) } else { Cow::Borrowed(pattern) })
}

/// AMQP topic matching: words separated by `.`, `*` matches exactly one word, `#` zero or more.
/// Greedy, going back only to the last `#` seen, so it never backtracks further: time linear
/// in the key for each `#`, whatever the pattern.
pub fn routing_key_matches(pattern: &str, key: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = key.split('.').collect();
    let (mut p, mut k) = (0, 0);
    // After the last `#`: where the pattern resumes, and the key word that `#` swallowed up to.
    let mut resume: Option<(usize, usize)> = None;
    while k < key.len() {
        match pattern.get(p) {
            Some(&"#") => {
                resume = Some((p + 1, k));
                p += 1;
            }
            Some(&word) if word == "*" || word == key[k] => {
                p += 1;
                k += 1;
            }
            _ => match resume {
                // Let the last `#` swallow one more word and try again from there.
                Some((after, swallowed)) => {
                    resume = Some((after, swallowed + 1));
                    p = after;
                    k = swallowed + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|word| *word == "#")
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_matching_follows_amqp_rules() {
        assert!(routing_key_matches("orders.created", "orders.created"));
        assert!(routing_key_matches("orders.*", "orders.created"));
        assert!(!routing_key_matches("orders.*", "orders.created.eu"));
        assert!(routing_key_matches("orders.#", "orders"));
        assert!(routing_key_matches("orders.#", "orders.created.eu"));
        assert!(routing_key_matches("#.eu", "orders.created.eu"));
        assert!(routing_key_matches("#", "anything.at.all"));
        assert!(!routing_key_matches("orders.*", "payments.created"));
        assert!(routing_key_matches("#.eu.#", "orders.eu"));
        assert!(routing_key_matches("#.eu.#", "eu"));
        assert!(!routing_key_matches("#.eu.#", "orders.us"));
        assert!(routing_key_matches("*.#.*", "a.b"));
        assert!(!routing_key_matches("*.#.*", "a"));
        assert!(routing_key_matches("a.#.b.*", "a.x.b.y.b.z"));
        assert!(!routing_key_matches("a.#.b.*", "a.x.b"));
        assert!(routing_key_matches("#.*", "a"));
    }

    /// A pattern crafted to make a backtracking matcher take exponential time: twelve `#`
    /// separated by words against a 127-word key. The hub's matcher answers at once.
    #[test]
    fn crafted_patterns_cost_linear_time_in_the_hub() {
        let pattern = ["#"; 12].join(".a.") + ".z";
        let key = ["a"; 127].join(".");
        let started = std::time::Instant::now();
        assert!(!routing_key_matches(&pattern, &key));
        assert!(routing_key_matches(&pattern, &(key.clone() + ".z")));
        // Not a benchmark: a backtracking matcher takes longer than the age of the universe here.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn consecutive_hashes_collapse_and_more_than_one_is_refused() {
        assert_eq!(canonical_routing_key("#.#.#.#.#.#.#.#.#.#.#.#.z").unwrap(), "#.z");
        assert_eq!(canonical_routing_key("orders.#.#").unwrap(), "orders.#");
        assert!(matches!(canonical_routing_key("orders.*"), Ok(Cow::Borrowed("orders.*"))));
        assert!(canonical_routing_key("#.a.#").is_err());
        assert!(canonical_routing_key("#.#.a.#.#").is_err());
        assert_eq!(canonical_routing_key("a#.b*.c").unwrap(), "a#.b*.c");
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(redact("amqp://guest:secret@127.0.0.1:5672/%2f"), "amqp://***@127.0.0.1:5672/%2f");
    }
}
