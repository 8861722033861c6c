//! MQTT (3.1.1), one client per hub instance with a client id of its own.
//!
//! The session task owns the connection (`rumqttc`'s event loop): SUBSCRIBE for a topic filter's
//! first subscriber, confirmed by the broker's SUBACK, and UNSUBSCRIBE after its last; `+` and
//! `#` wildcards. Each incoming message goes to every subscribed filter that matches its topic.
//! Retained messages arrive after the SUBACK, as MQTT sends them to a new subscription. The
//! session is clean: after a reconnect (with backoff) every filter is subscribed again. `qos`
//! (0 or 1) applies to subscriptions and to publishing, which waits for the PUBACK under QoS 1.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rumqttc::{AsyncClient, Event as MqttEvent, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::broker::{validate_common, Broker, BrokerError, Levels, Publish, PublishAck, SourceGuard};
use crate::event::Event;
use crate::session::{self, Command, Commands, Link, SessionEnd, Topics};
use crate::sink::{BrokerStats, EventSink};

/// Requests queued for the event loop at most; the session never has more than a few in flight.
const REQUESTS: usize = 1024;
/// Publishes waiting for the session at most.
const PUBLISHES: usize = 1024;
/// How long a publish may wait for the broker's acknowledgement.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// `kind = "mqtt"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port` (port 1883 when left out).
    pub url: String,
    /// 0 or 1, for subscriptions and publishing.
    #[serde(default)]
    pub qos: u8,
    /// The client id's prefix; a random suffix makes each hub instance's id unique.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// MQTT keep-alive.
    #[serde(default = "default_keep_alive", with = "humantime_serde")]
    pub keep_alive: Duration,
}

fn default_client_id() -> String {
    "subhub".to_owned()
}

const fn default_keep_alive() -> Duration {
    Duration::from_secs(30)
}

impl MqttConfig {
    pub fn validate(&self, name: &str) -> Result<(), BrokerError> {
        self.address(name)?;
        self.qos(name)?;
        if self.keep_alive < Duration::from_secs(1) {
            return Err(BrokerError::Config {
                key: format!("brokers.{name}.keep_alive"),
                reason: "must be at least 1s".into(),
            });
        }
        Ok(())
    }

    fn address(&self, name: &str) -> Result<(String, u16), BrokerError> {
        let invalid = |reason: &str| BrokerError::Config { key: format!("brokers.{name}.url"), reason: reason.into() };
        let url = url::Url::parse(&self.url).map_err(|_| invalid("not a URL; expected mqtt://host:port"))?;
        if url.scheme() != "mqtt" && url.scheme() != "tcp" {
            return Err(invalid("the scheme must be mqtt:// (TLS is not supported)"));
        }
        let host = url.host_str().ok_or_else(|| invalid("no host"))?.to_owned();
        Ok((host, url.port().unwrap_or(1883)))
    }

    fn qos(&self, name: &str) -> Result<QoS, BrokerError> {
        match self.qos {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            _ => Err(BrokerError::Config { key: format!("brokers.{name}.qos"), reason: "must be 0 or 1".into() }),
        }
    }
}

pub struct MqttBroker {
    name: Arc<str>,
    stats: Arc<BrokerStats>,
    commands: Commands,
    publishes: mpsc::Sender<Publishing>,
}

/// A publish on its way through the session, answered once the broker has it.
struct Publishing {
    topic: String,
    body: bytes::Bytes,
    done: oneshot::Sender<Result<(), ()>>,
}

impl MqttBroker {
    pub fn start(name: &str, config: &MqttConfig) -> Result<Self, BrokerError> {
        config.validate(name)?;
        let (host, port) = config.address(name)?;
        let qos = config.qos(name)?;
        let client_id = format!("{}-{name}-{:016x}", config.client_id, fastrand::u64(..));
        let mut options = MqttOptions::new(client_id, host, port);
        options.set_clean_session(true).set_keep_alive(config.keep_alive);
        let (client, eventloop) = AsyncClient::new(options, REQUESTS);
        let name: Arc<str> = name.into();
        let stats = Arc::new(BrokerStats::default());
        let (commands, command_receiver) = mpsc::unbounded_channel();
        let (publishes, publish_receiver) = mpsc::channel(PUBLISHES);
        let session = Session {
            client,
            qos,
            link: Link::new(name.clone(), stats.clone(), "MQTT"),
            topics: Topics::default(),
            subscribing: VecDeque::new(),
            acks: HashMap::new(),
            publishing: VecDeque::new(),
            confirming: HashMap::new(),
            patterns: None,
        };
        tokio::spawn(session.run(eventloop, command_receiver, publish_receiver));
        Ok(MqttBroker { name, stats, commands, publishes })
    }
}

/// Who waits for a subscription to be live (nobody, for one restored after a reconnect).
type Live = Option<oneshot::Sender<Result<(), BrokerError>>>;

/// The session task's state.
struct Session {
    client: AsyncClient,
    qos: QoS,
    link: Link,
    topics: Topics,
    /// Filters whose SUBSCRIBE is queued, in order, with who waits for it to be live.
    subscribing: VecDeque<(String, Live)>,
    /// SUBSCRIBE packets sent, by packet id.
    acks: HashMap<u16, (String, Live)>,
    /// Publishes queued, in order.
    publishing: VecDeque<oneshot::Sender<Result<(), ()>>>,
    /// QoS 1 publishes sent, by packet id, until their PUBACK.
    confirming: HashMap<u16, oneshot::Sender<Result<(), ()>>>,
    /// The subscribed filters with wildcards; `None` once the filters changed, made again when
    /// the next message comes.
    patterns: Option<Vec<String>>,
}

impl Session {
    async fn run(
        mut self,
        mut eventloop: EventLoop,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut publishes: mpsc::Receiver<Publishing>,
    ) {
        loop {
            let end = self.session(&mut eventloop, &mut commands, &mut publishes).await;
            // Whatever was in flight is lost with the connection: its waiters hear so, and
            // subscriptions wait for the next session.
            for (topic, live) in self.subscribing.drain(..).chain(self.acks.drain().map(|(_, pending)| pending)) {
                if let Some(live) = live {
                    self.topics.waiting.push((topic, live));
                }
            }
            for done in self.publishing.drain(..).chain(self.confirming.drain().map(|(_, done)| done)) {
                let _ = done.send(Err(()));
            }
            if !self.link.down(end, &mut commands, &mut self.topics).await {
                return;
            }
            self.patterns = None;
        }
    }

    async fn session(
        &mut self,
        eventloop: &mut EventLoop,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        publishes: &mut mpsc::Receiver<Publishing>,
    ) -> SessionEnd {
        let mut connected = false;
        loop {
            tokio::select! {
                event = eventloop.poll() => match event {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                        connected = true;
                        // A clean session: every filter is subscribed again, and those waiting
                        // are confirmed by their SUBACK.
                        let waiting: HashMap<String, _> = self.topics.waiting.drain(..).collect();
                        let mut waiting = waiting;
                        let filters: Vec<String> = self.topics.active.keys().cloned().collect();
                        for filter in filters {
                            let live = waiting.remove(&filter);
                            if !self.subscribe(filter, live) {
                                return SessionEnd::Disconnected;
                            }
                        }
                        self.link.up(&mut self.topics);
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(message))) => self.deliver(message),
                    Ok(MqttEvent::Incoming(Packet::SubAck(ack))) => {
                        self.patterns = None;
                        if let Some((filter, live)) = self.acks.remove(&ack.pkid) {
                            let refused = ack.return_codes.iter().any(|code| matches!(code, rumqttc::SubscribeReasonCode::Failure));
                            if refused {
                                tracing::warn!(broker = %self.link.name(), %filter, "the MQTT broker refused a subscription");
                                self.topics.active.remove(&filter);
                            }
                            self.link.held(&self.topics);
                            if let Some(live) = live {
                                let name = self.link.name().to_string();
                                let _ = live.send(if refused { Err(BrokerError::Unavailable(name)) } else { Ok(()) });
                            }
                        }
                    }
                    Ok(MqttEvent::Incoming(Packet::PubAck(ack))) => {
                        if let Some(done) = self.confirming.remove(&ack.pkid) {
                            let _ = done.send(Ok(()));
                        }
                    }
                    Ok(MqttEvent::Outgoing(Outgoing::Subscribe(pkid))) => {
                        if let Some(pending) = self.subscribing.pop_front() {
                            self.acks.insert(pkid, pending);
                        }
                    }
                    Ok(MqttEvent::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(done) = self.publishing.pop_front() {
                            if self.qos == QoS::AtMostOnce {
                                let _ = done.send(Ok(()));
                            } else {
                                self.confirming.insert(pkid, done);
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        if connected {
                            tracing::warn!(broker = %self.link.name(), %error, "MQTT connection lost; reconnecting");
                        } else {
                            self.link.unreachable(&error);
                        }
                        return SessionEnd::Disconnected;
                    }
                },
                command = commands.recv() => match command.inspect(|_| self.patterns = None) {
                    None => return SessionEnd::Shutdown,
                    Some(command) if !connected => self.topics.apply_offline(command),
                    Some(Command::Subscribe { topic, sink, live }) => {
                        if self.topics.superseded(&topic, &sink) {
                            let _ = live.send(Ok(()));
                            continue;
                        }
                        self.topics.active.insert(topic.clone(), sink);
                        if !self.subscribe(topic, Some(live)) {
                            return SessionEnd::Disconnected;
                        }
                    }
                    Some(Command::Unsubscribe { topic, sink }) => {
                        if self.topics.remove(&topic, &sink) {
                            if self.client.try_unsubscribe(topic).is_err() {
                                return SessionEnd::Disconnected;
                            }
                            self.link.held(&self.topics);
                        }
                    }
                },
                publish = publishes.recv(), if connected => {
                    let Some(Publishing { topic, body, done }) = publish else { return SessionEnd::Shutdown };
                    if self.client.try_publish(topic, self.qos, false, body).is_err() {
                        let _ = done.send(Err(()));
                        return SessionEnd::Disconnected;
                    }
                    self.publishing.push_back(done);
                }
            }
        }
    }

    /// Queues a SUBSCRIBE; false when the event loop takes no more requests.
    fn subscribe(&mut self, filter: String, live: Live) -> bool {
        if self.client.try_subscribe(filter.clone(), self.qos).is_err() {
            if let Some(live) = live {
                self.topics.waiting.push((filter, live));
            }
            return false;
        }
        self.subscribing.push_back((filter, live));
        true
    }

    /// A message goes to the filter that names its topic, and to every wildcard filter that
    /// matches it: a lookup and a pass over the wildcard filters, not over every filter.
    fn deliver(&mut self, message: rumqttc::Publish) {
        let active = &self.topics.active;
        let patterns = self
            .patterns
            .get_or_insert_with(|| active.keys().filter(|filter| LEVELS.wildcards(filter) > 0).cloned().collect());
        let topic: Arc<str> = message.topic.as_str().into();
        let exact = active.get(&message.topic).into_iter();
        let matching = patterns
            .iter()
            .filter(|filter| rumqttc::matches(&message.topic, filter))
            .filter_map(|filter| active.get(filter));
        for sink in exact.chain(matching) {
            if sink.admits(message.payload.len()) {
                sink.send(Event::new(self.link.name().clone(), topic.clone(), message.payload.clone()));
            }
        }
    }
}

/// A topic filter's levels: `+` matches one, `#` the rest.
const LEVELS: Levels = Levels { separator: '/', one: "+", rest: "#" };

/// The wildcard levels of a topic filter.
pub fn wildcards(filter: &str) -> usize {
    LEVELS.wildcards(filter)
}

#[async_trait]
impl Broker for MqttBroker {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "mqtt"
    }

    fn stats(&self) -> &Arc<BrokerStats> {
        &self.stats
    }

    /// A topic filter: `+` and `#` only as whole levels, `#` only last; no `$` topics (the
    /// broker's own).
    fn canonical_topic<'a>(&self, topic: &'a str) -> Result<Cow<'a, str>, BrokerError> {
        validate_common(&self.name, topic)?;
        let invalid = |reason: &str| BrokerError::invalid_topic(&self.name, topic, reason);
        if topic.starts_with('$') {
            return Err(invalid("topics starting with `$` are the MQTT broker's own"));
        }
        if let Some(problem) = LEVELS.problem(topic) {
            return Err(invalid(&problem));
        }
        Ok(Cow::Borrowed(topic))
    }

    fn reserved(&self) -> &'static [char] {
        &['/', '+', '#']
    }

    fn wildcards(&self, topic: &str) -> usize {
        wildcards(topic)
    }

    async fn subscribe(&self, topic: &str, sink: EventSink) -> Result<SourceGuard, BrokerError> {
        session::subscribe(&self.commands, &self.name, topic, sink).await
    }

    async fn publish(&self, message: Publish) -> Result<PublishAck, BrokerError> {
        let unavailable = || BrokerError::Unavailable(self.name.to_string());
        if message.topic.contains(['+', '#']) {
            let reason = "a message is published to a topic, not a filter";
            return Err(BrokerError::invalid_topic(&self.name, &message.topic, reason));
        }
        let (done, acked) = oneshot::channel();
        let publishing = Publishing { topic: message.topic, body: message.body, done };
        self.publishes.try_send(publishing).map_err(|_| unavailable())?;
        match tokio::time::timeout(PUBLISH_TIMEOUT, acked).await {
            Ok(Ok(Ok(()))) => Ok(PublishAck { id: None }),
            _ => Err(unavailable()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{wildcards, LEVELS};

    #[test]
    fn wildcards_are_whole_levels() {
        assert_eq!(LEVELS.problem("devices/+/temp"), None);
        assert_eq!(LEVELS.problem("devices/#"), None);
        assert!(LEVELS.problem("devices/#/temp").is_some_and(|p| p.contains("last level")));
        assert!(LEVELS.problem("dev+/temp").is_some_and(|p| p.contains("whole levels")));
        assert_eq!(wildcards("devices/42/temp"), 0);
        assert_eq!(wildcards("devices/+/temp"), 1);
        assert_eq!(wildcards("devices/#"), 1);
        assert_eq!(wildcards("+/+/#"), 3);
        assert_eq!(wildcards("dev+ices"), 0);
    }
}
