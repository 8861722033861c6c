//! NATS, with or without JetStream.
//!
//! - Core NATS (default): one SUB per subscribed subject on the hub's one connection, sent for the
//!   first subscriber and undone (UNSUB) after the last; `*` and `>` wildcards. The client
//!   (`async-nats`) reconnects by itself, with backoff, and re-sends every SUB. NATS keeps
//!   nothing: what is published while the hub is disconnected is lost.
//! - `jetstream = "STREAM"`: each subscribed subject is read by an ordered consumer on that
//!   stream, starting at the live edge; an event's `id` is its stream sequence. An ordered
//!   consumer that misses a message or loses the server is recreated from the sequence after the
//!   last one it delivered, so a restart loses nothing. Publishing waits for the stream's ack.

use std::borrow::Cow;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use async_nats::jetstream;
use async_trait::async_trait;
use futures_util::StreamExt;
use serde::Deserialize;

use crate::broker::{
    validate_common, Broker, BrokerError, History, Levels, Publish, PublishAck, SourceGuard, REQUEST_TIMEOUT,
};
use crate::event::Event;
use crate::sink::{BrokerStats, EventSink};

/// `kind = "nats"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// `nats://host:port` (several, comma-separated, for a cluster).
    pub url: String,
    /// A JetStream stream whose subjects the hub reads and publishes: durable and resumable.
    pub jetstream: Option<String>,
}

impl NatsConfig {
    pub fn validate(&self, name: &str) -> Result<(), BrokerError> {
        let invalid = |reason: String| BrokerError::Config { key: format!("brokers.{name}.url"), reason };
        for server in self.url.split(',') {
            server
                .trim()
                .parse::<async_nats::ServerAddr>()
                .map_err(|e| invalid(format!("invalid NATS server address `{server}`: {e}")))?;
        }
        if self.jetstream.as_ref().is_some_and(|stream| stream.is_empty() || stream.contains(['.', '*', '>', ' '])) {
            return Err(BrokerError::Config {
                key: format!("brokers.{name}.jetstream"),
                reason: "a stream name has no `.`, `*`, `>` or space".into(),
            });
        }
        Ok(())
    }
}

pub struct NatsBroker {
    name: Arc<str>,
    client: async_nats::Client,
    /// The JetStream context and stream name, with `jetstream = "STREAM"`.
    jetstream: Option<(jetstream::Context, String)>,
    stats: Arc<BrokerStats>,
    /// Counts the client's reconnects: JetStream readers open their consumers again.
    reconnects: Arc<tokio::sync::watch::Sender<u64>>,
}

impl NatsBroker {
    /// Connects in the background: the hub starts while NATS is down, and `connected` follows
    /// the client's own events.
    pub async fn start(name: &str, config: &NatsConfig) -> Result<Self, BrokerError> {
        config.validate(name)?;
        let name: Arc<str> = name.into();
        let stats = Arc::new(BrokerStats::default());
        let reconnects = Arc::new(tokio::sync::watch::Sender::new(0u64));
        let events = (stats.clone(), name.clone(), reconnects.clone());
        let options = async_nats::ConnectOptions::new()
            .name(format!("subhub {name}"))
            .retry_on_initial_connect()
            // Messages a source has not taken yet; the source's own buffer is behind it.
            .subscription_capacity(8192)
            .event_callback(move |event| {
                let (stats, name, reconnects) = events.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            tracing::info!(broker = %name, "connected to NATS");
                            stats.connected.store(true, Relaxed);
                            reconnects.send_modify(|n| *n += 1);
                        }
                        async_nats::Event::Disconnected | async_nats::Event::Closed => {
                            tracing::warn!(broker = %name, "NATS connection lost; reconnecting");
                            stats.connected.store(false, Relaxed);
                        }
                        // The client's buffer for a subject overflowed: messages were dropped.
                        async_nats::Event::SlowConsumer(subscription) => {
                            tracing::warn!(broker = %name, subscription, "NATS dropped messages the hub did not read in time");
                        }
                        other => tracing::debug!(broker = %name, event = %other, "NATS event"),
                    }
                }
            });
        let servers: Vec<async_nats::ServerAddr> =
            config.url.split(',').filter_map(|server| server.trim().parse().ok()).collect();
        let client = options.connect(servers).await.map_err(|error| {
            tracing::warn!(broker = %name, %error, "cannot set up the NATS client");
            BrokerError::Unavailable(name.to_string())
        })?;
        let jetstream = config.jetstream.clone().map(|stream| (jetstream::new(client.clone()), stream));
        Ok(NatsBroker { name, client, jetstream, stats, reconnects })
    }

    fn unavailable(&self, error: &dyn std::fmt::Display, what: &str) -> BrokerError {
        tracing::warn!(broker = %self.name, %error, "NATS {what} failed");
        BrokerError::Unavailable(self.name.to_string())
    }

    /// A name for a consumer of this hub's, unique on the server: `subhub_<broker>_<what><random>`.
    fn consumer_name(&self, what: &str) -> String {
        let broker = self.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        format!("subhub_{broker}_{what}{:016x}", fastrand::u64(..))
    }

    /// Up to `limit` of a history consumer's messages: those pending when it was made.
    async fn read_page(
        &self,
        mut consumer: jetstream::consumer::Consumer<jetstream::consumer::pull::Config>,
        limit: usize,
    ) -> Result<Vec<Event>, BrokerError> {
        let pending = consumer.info().await.map_err(|e| self.unavailable(&e, "consumer info"))?.num_pending as usize;
        let mut events = Vec::new();
        if pending == 0 {
            return Ok(events);
        }
        let batch = consumer.fetch().max_messages(pending.min(limit)).messages().await;
        let mut batch = batch.map_err(|e| self.unavailable(&e, "history read"))?;
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| self.unavailable(&e, "history read"))?;
            let Ok(sequence) = message.info().map(|info| info.stream_sequence) else { continue };
            events.push(stream_event(&self.name, message.message, sequence));
        }
        Ok(events)
    }

    /// Core NATS: a SUB, confirmed by a round trip to the server.
    async fn subscribe_core(&self, topic: &str, sink: EventSink) -> Result<SourceGuard, BrokerError> {
        let mut subscriber =
            self.client.subscribe(topic.to_owned()).await.map_err(|e| self.unavailable(&e, "subscribe"))?;
        match tokio::time::timeout(REQUEST_TIMEOUT, self.client.flush()).await {
            Ok(flushed) => flushed.map_err(|e| self.unavailable(&e, "subscribe"))?,
            Err(elapsed) => return Err(self.unavailable(&elapsed, "subscribe")),
        }
        let (name, stats) = (self.name.clone(), self.stats.clone());
        stats.broker_subscriptions.fetch_add(1, Relaxed);
        let task = tokio::spawn(async move {
            while let Some(message) = subscriber.next().await {
                if sink.admits(message.payload.len()) {
                    sink.send(Event::new(name.clone(), message.subject.as_str().into(), message.payload));
                }
            }
        });
        Ok(Box::new(Reader { task, stats: self.stats.clone(), consumers: None }))
    }

    /// JetStream: an ordered consumer filtered to the subject, from the first message after
    /// the stream's last one now. The client's reconnects are watched: after one, the consumer
    /// (which the server may have lost) is created again from the message after the last one
    /// delivered, so nothing is lost or repeated.
    async fn subscribe_jetstream(
        &self,
        context: &jetstream::Context,
        stream: &str,
        topic: &str,
        sink: EventSink,
    ) -> Result<SourceGuard, BrokerError> {
        let mut stream = context.get_stream(stream).await.map_err(|error| match error.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(_) => {
                BrokerError::NoSuchTopic { broker: self.name.to_string(), topic: format!("stream {stream}") }
            }
            _ => self.unavailable(&error, "stream lookup"),
        })?;
        let last = stream.info().await.map_err(|e| self.unavailable(&e, "stream info"))?.state.last_sequence;
        // Named, so this source's consumers can be deleted when it closes, not only once the
        // server finds them idle.
        let prefix = self.consumer_name("");
        let consumer = Consumer { stream: stream.clone(), subject: topic.to_owned(), prefix: prefix.clone() };
        let mut messages = consumer.open(0, last + 1).await.map_err(|e| self.unavailable(&e, "consumer"))?;
        let (name, stats, mut reconnects) = (self.name.clone(), self.stats.clone(), self.reconnects.subscribe());
        reconnects.mark_unchanged();
        stats.broker_subscriptions.fetch_add(1, Relaxed);
        let task = tokio::spawn(async move {
            let mut delivered = last;
            let mut generation = 0;
            loop {
                tokio::select! {
                    message = messages.next() => {
                        let message = match message {
                            Some(Ok(message)) => message,
                            // The ordered consumer recreates itself after a hiccup it reports.
                            Some(Err(error)) => {
                                tracing::debug!(broker = %name, %error, "JetStream consumer hiccup");
                                continue;
                            }
                            None => return,
                        };
                        let Ok(sequence) = message.info().map(|info| info.stream_sequence) else { continue };
                        if sequence <= delivered {
                            continue;
                        }
                        delivered = sequence;
                        if sink.admits(message.message.payload.len()) {
                            sink.send(stream_event(&name, message.message, sequence));
                        }
                    }
                    changed = reconnects.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        generation += 1;
                        messages = consumer.reopen(generation, delivered + 1, &name).await;
                    }
                }
            }
        });
        Ok(Box::new(Reader { task, stats: self.stats.clone(), consumers: Some((stream, prefix)) }))
    }
}

/// How a JetStream source's ordered consumers are made.
struct Consumer {
    stream: jetstream::stream::Stream,
    subject: String,
    prefix: String,
}

type Messages = jetstream::consumer::pull::Ordered;

impl Consumer {
    async fn open(&self, generation: u64, from: u64) -> Result<Messages, async_nats::Error> {
        let config = jetstream::consumer::pull::OrderedConfig {
            name: Some(format!("{}_g{generation}", self.prefix)),
            filter_subject: self.subject.clone(),
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence: from },
            ..Default::default()
        };
        Ok(self.stream.create_consumer(config).await?.messages().await?)
    }

    /// Opens a consumer again, retrying until the server takes it.
    async fn reopen(&self, generation: u64, from: u64, broker: &str) -> Messages {
        let mut backoff = subhub_core::Backoff::default();
        loop {
            match self.open(generation, from).await {
                Ok(messages) => return messages,
                Err(error) => {
                    tracing::debug!(%broker, %error, "JetStream consumer not created yet; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}

/// A JetStream message as an event: its stream sequence is its id and its cursor.
fn stream_event(name: &Arc<str>, message: async_nats::Message, sequence: u64) -> Event {
    let position = sequence.to_string();
    Event::new(name.clone(), message.subject.as_str().into(), message.payload)
        .with_id(Some(position.clone()))
        .with_cursor(Some(position))
}

/// A subject being read; dropping it stops the reader, which unsubscribes, and deletes its
/// JetStream consumers.
struct Reader {
    task: tokio::task::JoinHandle<()>,
    stats: Arc<BrokerStats>,
    /// The stream, and the name every consumer of this reader starts with.
    consumers: Option<(jetstream::stream::Stream, String)>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.task.abort();
        self.stats.broker_subscriptions.fetch_sub(1, Relaxed);
        let (Some((stream, prefix)), Ok(runtime)) = (self.consumers.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(async move {
            let Ok(names) =
                stream.consumer_names().collect::<Vec<_>>().await.into_iter().collect::<Result<Vec<_>, _>>()
            else {
                // The server forgets an idle ordered consumer by itself soon after.
                return;
            };
            for name in names.iter().filter(|name| name.starts_with(&prefix)) {
                let _ = stream.delete_consumer(name).await;
            }
        });
    }
}

/// A subject's tokens: `*` matches one, `>` the rest.
const TOKENS: Levels = Levels { separator: '.', one: "*", rest: ">" };

/// The wildcard tokens of a subject.
pub fn wildcards(subject: &str) -> usize {
    TOKENS.wildcards(subject)
}

#[async_trait]
impl Broker for NatsBroker {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "nats"
    }

    fn stats(&self) -> &Arc<BrokerStats> {
        &self.stats
    }

    /// A subject is tokens separated by `.`: none empty, no whitespace, `*` and `>` only as whole
    /// tokens, `>` only last.
    fn canonical_topic<'a>(&self, topic: &'a str) -> Result<Cow<'a, str>, BrokerError> {
        validate_common(&self.name, topic)?;
        let invalid = |reason: &str| BrokerError::invalid_topic(&self.name, topic, reason);
        if topic.chars().any(char::is_whitespace) {
            return Err(invalid("a NATS subject has no whitespace"));
        }
        if topic.split('.').any(str::is_empty) {
            return Err(invalid("a NATS subject has no empty token"));
        }
        if let Some(problem) = TOKENS.problem(topic) {
            return Err(invalid(&problem));
        }
        Ok(Cow::Borrowed(topic))
    }

    fn reserved(&self) -> &'static [char] {
        &['.', '*', '>']
    }

    fn wildcards(&self, topic: &str) -> usize {
        wildcards(topic)
    }

    async fn subscribe(&self, topic: &str, sink: EventSink) -> Result<SourceGuard, BrokerError> {
        match &self.jetstream {
            None => self.subscribe_core(topic, sink).await,
            Some((context, stream)) => self.subscribe_jetstream(context, stream, topic, sink).await,
        }
    }

    /// JetStream: the subject's messages after the cursor (a stream sequence), read by a
    /// short-lived consumer, deleted once the page is read, however the reading went. The cursor
    /// is lost when the stream no longer starts after it.
    async fn history(&self, topic: &str, cursor: &str, limit: usize) -> Result<History, BrokerError> {
        let Some((context, stream)) = &self.jetstream else { return Ok(History::Unsupported) };
        let Ok(after) = cursor.parse::<u64>() else { return Ok(History::Lost) };
        let mut stream = context.get_stream(stream).await.map_err(|e| self.unavailable(&e, "stream lookup"))?;
        let first = stream.info().await.map_err(|e| self.unavailable(&e, "stream info"))?.state.first_sequence;
        if after.saturating_add(1) < first {
            return Ok(History::Lost);
        }
        // Named, so it can be deleted whatever happens to the read, and told on the server
        // from the sources' consumers.
        let name = self.consumer_name("replay_");
        let config = jetstream::consumer::pull::Config {
            name: Some(name.clone()),
            filter_subject: topic.to_owned(),
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence: after + 1 },
            ack_policy: jetstream::consumer::AckPolicy::None,
            // The server forgets it by itself if the hub is gone before deleting it.
            inactive_threshold: std::time::Duration::from_secs(10),
            ..Default::default()
        };
        let consumer = stream.create_consumer(config).await.map_err(|e| self.unavailable(&e, "consumer"))?;
        let page = self.read_page(consumer, limit).await;
        let _ = stream.delete_consumer(&name).await;
        page.map(History::Events)
    }

    async fn publish(&self, message: Publish) -> Result<PublishAck, BrokerError> {
        if wildcards(&message.topic) > 0 {
            let reason = "a message is published to a subject, not a wildcard";
            return Err(BrokerError::invalid_topic(&self.name, &message.topic, reason));
        }
        match &self.jetstream {
            None => {
                let published = async {
                    self.client
                        .publish(message.topic, message.body)
                        .await
                        .map_err(|e| self.unavailable(&e, "publish"))?;
                    // Published once the server has it: a round trip, as other brokers confirm.
                    self.client.flush().await.map_err(|e| self.unavailable(&e, "publish"))
                };
                match tokio::time::timeout(REQUEST_TIMEOUT, published).await {
                    Ok(result) => result.map(|()| PublishAck { id: None }),
                    Err(elapsed) => Err(self.unavailable(&elapsed, "publish")),
                }
            }
            Some((context, _)) => {
                let ack = context
                    .publish(message.topic, message.body)
                    .await
                    .map_err(|e| self.unavailable(&e, "publish"))?
                    .await
                    .map_err(|e| self.unavailable(&e, "publish ack"))?;
                Ok(PublishAck { id: Some(ack.sequence.to_string()) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wildcards;

    #[test]
    fn wildcards_are_whole_tokens() {
        assert_eq!(wildcards("orders.eu"), 0);
        assert_eq!(wildcards("orders.*.created"), 1);
        assert_eq!(wildcards("orders.>"), 1);
        assert_eq!(wildcards("*.*.>"), 3);
        assert_eq!(wildcards("or*ders"), 0);
    }
}
