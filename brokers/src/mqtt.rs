//! MQTT (3.1.1), one client per hub instance with a client id of its own.
//!
//! The session task owns the connection (`rumqttc`'s event loop): SUBSCRIBE for a topic filter's
//! first subscriber, confirmed by the broker's SUBACK, and UNSUBSCRIBE after its last; `+` and
//! `#` wildcards. Each incoming message goes to every subscribed filter that matches its topic.
//! Retained messages arrive after the SUBACK, as MQTT sends them to a new subscription. The
//! session is clean: after a reconnect (on the shared reconnect loop) every filter is subscribed
//! again. `qos` (0 or 1) applies to subscriptions and to publishing, which waits for the PUBACK
//! under QoS 1. Packets carry bodies up to `limits.max_message_bytes` both ways; a publish the
//! client has no room for right now is refused on its own (`Unavailable`), never by ending the
//! session. The connection's liveness is MQTT's keep-alive (a PINGREQ unanswered by the next
//! one ends the session).

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rumqttc::{AsyncClient, Event as MqttEvent, EventLoop, MqttOptions, Outgoing, Packet, QoS, SubscribeFilter};
use serde::Deserialize;
use subhub_core::{ConnectError, Reconnect, SessionEnd};
use tokio::sync::{mpsc, oneshot};

use crate::broker::{validate_common, Broker, BrokerError, Levels, Publish, PublishAck, SourceGuard, REQUEST_TIMEOUT};
use crate::config::BuildContext;
use crate::event::Event;
use crate::session::{self, Command, Commands, Confirm, Link, SessionTopics};
use crate::sink::{BrokerStats, EventSink};

/// Requests queued for the event loop at most. Behind its in-flight window (100 QoS 1
/// publishes unacknowledged) they wait here; when this is full too, a publish or subscription
/// is refused on its own.
const REQUESTS: usize = 1024;
/// Publishes waiting for the session at most.
const PUBLISHES: usize = 1024;
/// Filters per SUBSCRIBE when a new session restores them: a hub may hold far more filters
/// than the request queue holds requests.
const RESTORE_BATCH: usize = 64;
/// MQTT's largest packet (what its remaining-length field can say). Incoming packets are read
/// whatever their size, as every broker's client reads any message: one over the hub's limit
/// is counted `too_large` and dropped. A smaller cap would end the session at such a packet,
/// for every subscription, and a retained one would end each new session again.
const MQTT_MAX_PACKET: usize = 268_435_455;

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
    /// The largest packet the client sends: a larger publish is refused before it reaches it.
    max_packet: usize,
}

/// A publish on its way through the session, answered once the broker has it.
struct Publishing {
    topic: String,
    body: bytes::Bytes,
    done: oneshot::Sender<Result<(), BrokerError>>,
}

/// The size of a PUBLISH packet at most: fixed header (at most 5 bytes), topic with its length,
/// packet id, body.
fn publish_packet_size(topic: &str, body: usize) -> usize {
    5 + 2 + topic.len() + 2 + body
}

impl MqttBroker {
    pub fn start(name: &str, config: &MqttConfig, context: &BuildContext) -> Result<Self, BrokerError> {
        config.validate(name)?;
        let (host, port) = config.address(name)?;
        let qos = config.qos(name)?;
        let client_id = format!("{}-{name}-{:016x}", config.client_id, fastrand::u64(..));
        let mut options = MqttOptions::new(client_id, host, port);
        // Every body up to the hub's limit, on every topic the hub takes (at most 255 bytes).
        let max_packet = publish_packet_size(&"t".repeat(255), context.max_message_bytes);
        options
            .set_clean_session(true)
            .set_keep_alive(config.keep_alive)
            .set_max_packet_size(MQTT_MAX_PACKET, max_packet);
        let name: Arc<str> = name.into();
        let stats = Arc::new(BrokerStats::default());
        let (commands, command_receiver) = mpsc::unbounded_channel();
        let (publishes, publish_receiver) = mpsc::channel(PUBLISHES);
        let session = Session {
            options,
            qos,
            link: Link::new(name.clone(), stats.clone()),
            topics: SessionTopics::default(),
            subscribing: VecDeque::new(),
            acks: HashMap::new(),
            publishing: VecDeque::new(),
            confirming: HashMap::new(),
            patterns: None,
            publishes: publish_receiver,
        };
        tokio::spawn(session.run(command_receiver));
        Ok(MqttBroker { name, stats, commands, publishes, max_packet })
    }
}

/// Who waits for a subscription to be live (nobody, for one restored after a reconnect).
type Live = Option<Confirm>;
/// The filters of one SUBSCRIBE, in order, with who waits for each.
type Filters = Vec<(String, Live)>;
/// Answers a publish once the broker has it.
type Done = oneshot::Sender<Result<(), BrokerError>>;

/// The session task's state. Each connection gets a client and event loop of its own, so
/// nothing queued for a connection that broke is sent on the next one.
struct Session {
    options: MqttOptions,
    qos: QoS,
    link: Link,
    topics: SessionTopics,
    /// SUBSCRIBEs queued, in order.
    subscribing: VecDeque<Filters>,
    /// SUBSCRIBE packets sent, by packet id.
    acks: HashMap<u16, Filters>,
    /// Publishes queued, in order.
    publishing: VecDeque<Done>,
    /// QoS 1 publishes sent, by packet id, until their PUBACK.
    confirming: HashMap<u16, Done>,
    /// The subscribed filters with wildcards; `None` once the filters changed, made again when
    /// the next message comes.
    patterns: Option<Vec<String>>,
    publishes: mpsc::Receiver<Publishing>,
}

impl subhub_core::Session for Session {
    type Request = Command;
    type Connection = (AsyncClient, EventLoop);
    type Error = rumqttc::ConnectionError;
    const KIND: &'static str = "MQTT";

    fn name(&self) -> &str {
        self.link.name()
    }

    async fn connect(&mut self) -> Result<(AsyncClient, EventLoop), ConnectError<rumqttc::ConnectionError>> {
        let (client, mut eventloop) = AsyncClient::new(self.options.clone(), REQUESTS);
        loop {
            match eventloop.poll().await {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => return Ok((client, eventloop)),
                Ok(_) => {}
                Err(error) => return Err(ConnectError::Retry(error)),
            }
        }
    }

    async fn serve(
        &mut self,
        (client, mut eventloop): (AsyncClient, EventLoop),
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> SessionEnd {
        let end = self.session(&client, &mut eventloop, commands).await;
        // Whatever was in flight is lost with the connection: its waiters hear so, and
        // subscriptions wait for the next session.
        let pending = self.subscribing.drain(..).chain(self.acks.drain().map(|(_, filters)| filters));
        for (topic, live) in pending.flatten() {
            if let Some(live) = live {
                self.topics.waiting.push((topic, live));
            }
        }
        for done in self.publishing.drain(..).chain(self.confirming.drain().map(|(_, done)| done)) {
            let _ = done.send(Err(BrokerError::Unavailable(self.link.name().to_string())));
        }
        self.patterns = None;
        self.link.down();
        end
    }

    fn offline(&mut self, command: Command) {
        self.topics.apply_offline(command);
    }
}

impl Session {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        subhub_core::run(&mut self, &mut commands, Reconnect::default()).await;
    }

    fn unavailable(&self) -> BrokerError {
        BrokerError::Unavailable(self.link.name().to_string())
    }

    async fn session(
        &mut self,
        client: &AsyncClient,
        eventloop: &mut EventLoop,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> SessionEnd {
        // A clean session: every filter is subscribed again, and those waiting are confirmed by
        // their SUBACK.
        for batch in self.restoring() {
            if let Err(batch) = self.subscribe(client, batch) {
                self.topics.waiting.extend(batch.into_iter().filter_map(|(topic, live)| Some((topic, live?))));
                return SessionEnd::Disconnected;
            }
        }
        self.link.up(&mut self.topics);
        loop {
            tokio::select! {
                event = eventloop.poll() => match event {
                    Ok(MqttEvent::Incoming(Packet::Publish(message))) => self.deliver(message),
                    Ok(MqttEvent::Incoming(Packet::SubAck(ack))) => self.subscribed(&ack),
                    Ok(MqttEvent::Incoming(Packet::PubAck(ack))) => {
                        if let Some(done) = self.confirming.remove(&ack.pkid) {
                            let _ = done.send(Ok(()));
                        }
                    }
                    Ok(MqttEvent::Outgoing(Outgoing::Subscribe(pkid))) => {
                        if let Some(filters) = self.subscribing.pop_front() {
                            self.acks.insert(pkid, filters);
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
                        tracing::warn!(broker = %self.link.name(), %error, "MQTT connection lost; reconnecting");
                        return SessionEnd::Disconnected;
                    }
                },
                command = commands.recv() => {
                    self.patterns = None;
                    match command {
                        None => return SessionEnd::Shutdown,
                        Some(Command::Subscribe { topic, sink, live }) => {
                            let Some(live) = self.topics.accept(&topic, sink, live) else { continue };
                            if let Err(mut refused) = self.subscribe(client, vec![(topic.clone(), Some(live))]) {
                                tracing::debug!(broker = %self.link.name(), %topic, "the MQTT client's queue is full; a subscription is refused");
                                self.topics.active.remove(&topic);
                                if let Some((_, Some(live))) = refused.pop() {
                                    let _ = live.send(Err(self.unavailable()));
                                }
                            }
                        }
                        Some(Command::Unsubscribe { topic, sink }) => {
                            if self.topics.remove(&topic, &sink) {
                                // A full queue leaves the broker's subscription until the next
                                // session; nothing reads it meanwhile.
                                if client.try_unsubscribe(topic).is_err() {
                                    tracing::debug!(broker = %self.link.name(), "the MQTT client's queue is full; an unsubscribe waits for the next session");
                                }
                                self.link.held(&self.topics);
                            }
                        }
                    }
                }
                publish = self.publishes.recv() => {
                    let Some(Publishing { topic, body, done }) = publish else { return SessionEnd::Shutdown };
                    if client.try_publish(topic, self.qos, false, body).is_ok() {
                        self.publishing.push_back(done);
                    } else {
                        tracing::debug!(broker = %self.link.name(), "the MQTT client's queue is full; a publish is refused");
                        let _ = done.send(Err(self.unavailable()));
                    }
                }
            }
        }
    }

    /// Every filter of the session, in SUBSCRIBEs of `RESTORE_BATCH`, with who waits for each.
    fn restoring(&mut self) -> Vec<Filters> {
        let mut waiting: HashMap<String, _> = self.topics.waiting.drain(..).collect();
        let filters: Vec<(String, Live)> =
            self.topics.active.keys().map(|filter| (filter.clone(), waiting.remove(filter))).collect();
        let mut filters = filters.into_iter().peekable();
        let mut batches = Vec::new();
        while filters.peek().is_some() {
            batches.push(filters.by_ref().take(RESTORE_BATCH).collect());
        }
        batches
    }

    /// Queues one SUBSCRIBE for `filters`; gives them back when the client's queue is full.
    fn subscribe(&mut self, client: &AsyncClient, filters: Filters) -> Result<(), Filters> {
        let requested = filters.iter().map(|(filter, _)| SubscribeFilter::new(filter.clone(), self.qos));
        if client.try_subscribe_many(requested).is_err() {
            return Err(filters);
        }
        self.subscribing.push_back(filters);
        Ok(())
    }

    /// A SUBACK: each filter of its SUBSCRIBE is live, or refused by the broker.
    fn subscribed(&mut self, ack: &rumqttc::SubAck) {
        self.patterns = None;
        let Some(filters) = self.acks.remove(&ack.pkid) else { return };
        for (n, (filter, live)) in filters.into_iter().enumerate() {
            let refused = matches!(ack.return_codes.get(n), Some(rumqttc::SubscribeReasonCode::Failure) | None);
            if refused {
                tracing::warn!(broker = %self.link.name(), %filter, "the MQTT broker refused a subscription");
                self.topics.active.remove(&filter);
            }
            if let Some(live) = live {
                let _ = live.send(if refused { Err(self.unavailable()) } else { Ok(()) });
            }
        }
        self.link.held(&self.topics);
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
        let packet = publish_packet_size(&message.topic, message.body.len());
        if packet > self.max_packet {
            let max = self.max_packet - publish_packet_size(&message.topic, 0);
            return Err(BrokerError::TooLarge { size: message.body.len(), max });
        }
        let (done, acked) = oneshot::channel();
        let publishing = Publishing { topic: message.topic, body: message.body, done };
        self.publishes.try_send(publishing).map_err(|_| unavailable())?;
        match tokio::time::timeout(REQUEST_TIMEOUT, acked).await {
            Ok(Ok(result)) => result.map(|()| PublishAck { id: None }),
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
