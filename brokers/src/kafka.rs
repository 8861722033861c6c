//! Kafka: one consumer per configured broker per hub instance, with a group id unique to the
//! instance, committing nothing. Topics join and leave its assignment as subscribers come and go:
//! a topic is assigned at each partition's high watermark, so once the assignment is made the
//! source is live and every later message is read. Publishing goes through one shared producer.
//! librdkafka reconnects by itself and the consumer resumes from its positions, so an outage
//! loses nothing. Only ordinary client configuration is used: `options` passes librdkafka
//! properties (security, timeouts) through unchanged.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::broker::{Broker, BrokerError, History, Publish, PublishAck, SourceGuard};
use crate::event::Event;
use crate::session::{self, Command, Commands};
use crate::sink::{BrokerStats, EventSink};

/// How long metadata and watermark requests may take before a subscription fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the connection to the cluster is checked for `subhub_broker_connected`.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// Topic lookups (metadata and watermarks) running at once; more wait their turn.
const CONCURRENT_LOOKUPS: usize = 4;

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
    known_topics: Mutex<HashSet<String>>,
    /// How a resumed client's history is read: a consumer of its own per read, at most
    /// `CONCURRENT_LOOKUPS` at once.
    history: ClientConfig,
    history_reads: Arc<Semaphore>,
}

impl KafkaConfig {
    /// Checks the servers and every option without connecting.
    pub fn validate(&self, name: &str) -> Result<(), BrokerError> {
        self.client_config(name).map(drop)
    }

    fn client_config(&self, name: &str) -> Result<ClientConfig, BrokerError> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(BrokerError::Config {
                key: format!("brokers.{name}.bootstrap_servers"),
                reason: "must name at least one host:port".into(),
            });
        }
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", &self.bootstrap_servers);
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
    pub fn start(name: &str, config: &KafkaConfig) -> Result<Self, BrokerError> {
        let client = config.client_config(name)?;
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
        let producer: FutureProducer<KafkaContext> = client.create_with_context(context()).map_err(bad_option)?;
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
            known_topics: Mutex::default(),
            history: history_config,
            history_reads: Arc::new(Semaphore::new(CONCURRENT_LOOKUPS)),
        })
    }

    /// Without auto-creation, a publish to a topic the cluster does not have is refused.
    async fn check_topic_exists(&self, topic: &str) -> Result<(), BrokerError> {
        if self.auto_create || self.known_topics.lock().unwrap_or_else(PoisonError::into_inner).contains(topic) {
            return Ok(());
        }
        let (consumer, owned) = (self.metadata.clone(), topic.to_owned());
        let partitions = tokio::task::spawn_blocking(move || partitions(&consumer, &owned, false))
            .await
            .map_err(|_| BrokerError::Unavailable(self.name.to_string()))?;
        match partitions {
            Ok(_) => {
                self.known_topics.lock().unwrap_or_else(PoisonError::into_inner).insert(topic.to_owned());
                Ok(())
            }
            Err(TopicProblem::Missing) => {
                Err(BrokerError::NoSuchTopic { broker: self.name.to_string(), topic: topic.to_owned() })
            }
            Err(TopicProblem::Unreachable) => Err(BrokerError::Unavailable(self.name.to_string())),
        }
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
        session::subscribe(&self.commands, &self.name, topic, sink).await
    }

    /// The messages after a cursor (every partition's next offset), read by a consumer of its
    /// own from those offsets up to each partition's high watermark now. The cursor is lost when
    /// a partition no longer starts at or before its offset (retention deleted what followed).
    async fn history(&self, topic: &str, cursor: &str, limit: usize) -> Result<History, BrokerError> {
        let Some(next) = parse_cursor(cursor) else { return Ok(History::Lost) };
        let (config, name, topic) = (self.history.clone(), self.name.clone(), topic.to_owned());
        let unavailable = BrokerError::Unavailable(self.name.to_string());
        let Ok(_permit) = self.history_reads.clone().acquire_owned().await else { return Err(unavailable) };
        tokio::task::spawn_blocking(move || read_history(&config, &name, &topic, next, limit))
            .await
            .unwrap_or(Err(unavailable))
    }

    async fn publish(&self, message: Publish) -> Result<PublishAck, BrokerError> {
        self.check_topic_exists(&message.topic).await?;
        let mut record = FutureRecord::to(&message.topic).payload(message.body.as_ref());
        if let Some(key) = &message.key {
            record = record.key(key.as_str());
        }
        match self.producer.send(record, REQUEST_TIMEOUT).await {
            Ok(delivery) => Ok(PublishAck { id: Some(format!("{}:{}", delivery.partition, delivery.offset)) }),
            Err((error, _)) => {
                tracing::warn!(broker = %self.name, %error, "publish to Kafka failed");
                match error.rdkafka_error_code() {
                    Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                        Err(BrokerError::NoSuchTopic { broker: self.name.to_string(), topic: message.topic })
                    }
                    _ => Err(BrokerError::Unavailable(self.name.to_string())),
                }
            }
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

enum TopicProblem {
    Missing,
    Unreachable,
}

/// The partitions of a topic (blocking). With `wait_for_creation`, a topic that is being
/// auto-created is waited for until the request timeout.
fn partitions(consumer: &KafkaConsumer, topic: &str, wait_for_creation: bool) -> Result<Vec<i32>, TopicProblem> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        let metadata = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT).map_err(|_| TopicProblem::Unreachable)?;
        let found = metadata.topics().iter().find(|t| t.name() == topic);
        match found {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                return Ok(t.partitions().iter().map(|p| p.id()).collect());
            }
            _ if wait_for_creation && Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => return Err(TopicProblem::Missing),
        }
    }
}

/// How long a closed topic's partitions stay assigned, for a source that reopens at once.
const RELEASE_AFTER: Duration = Duration::from_millis(500);

struct Session {
    name: Arc<str>,
    stats: Arc<BrokerStats>,
    auto_create: bool,
}

/// A topic the session serves, or is about to.
enum TopicState {
    /// Its partitions and their offsets are being looked up, away from the consumer loop.
    Resolving { sink: EventSink, live: oneshot::Sender<Result<(), BrokerError>>, generation: u64 },
    /// Its partitions are in the assignment; `next` is each one's next offset to read, the
    /// cursor of the topic's last event.
    Assigned { sink: EventSink, partitions: Vec<i32>, next: BTreeMap<i32, i64> },
    /// Its last source closed: its partitions leave the assignment after `RELEASE_AFTER`,
    /// unless a new source takes them over first. Unassigning a partition and assigning it
    /// again at once races inside librdkafka (the new assignment can end up not fetching).
    Releasing { partitions: Vec<i32>, next: BTreeMap<i32, i64>, since: Instant },
}

impl TopicState {
    fn sink(&self) -> Option<&EventSink> {
        match self {
            TopicState::Resolving { sink, .. } | TopicState::Assigned { sink, .. } => Some(sink),
            TopicState::Releasing { .. } => None,
        }
    }
}

/// A lookup's result: where each partition of a topic starts.
struct Resolved {
    topic: String,
    generation: u64,
    result: Result<TopicPartitionList, TopicProblem>,
}

impl Session {
    /// The consumer loop: reads messages and applies subscribe and unsubscribe requests in
    /// order. Looking a topic up (metadata and watermarks: round trips of up to
    /// `REQUEST_TIMEOUT` each) runs in tasks of its own, so a subscribe never holds up the
    /// delivery of every other topic; only the assignment itself happens here.
    async fn run(self, consumer: Arc<KafkaConsumer>, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut topics: HashMap<String, TopicState> = HashMap::new();
        let (resolved_tx, mut resolved) = mpsc::unbounded_channel::<Resolved>();
        let lookups = Arc::new(Semaphore::new(CONCURRENT_LOOKUPS));
        let mut generation = 0u64;
        let mut release = tokio::time::interval(RELEASE_AFTER / 2);
        release.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    None => return,
                    Some(Command::Subscribe { topic, sink, live }) => {
                        // A stale request (see `EventSink::opened_before`) is confirmed and
                        // otherwise ignored.
                        if topics.get(&topic).and_then(TopicState::sink).is_some_and(|current| sink.opened_before(current)) {
                            let _ = live.send(Ok(()));
                            continue;
                        }
                        match topics.remove(&topic) {
                            // Still assigned, for a source closing or closed: the new one takes
                            // the assignment over, already live.
                            Some(TopicState::Assigned { partitions, next, .. } | TopicState::Releasing { partitions, next, .. }) => {
                                tracing::debug!(broker = %self.name, topic, "a new source takes the assignment over");
                                topics.insert(topic, TopicState::Assigned { sink, partitions, next });
                                let _ = live.send(Ok(()));
                                continue;
                            }
                            // A lookup still running for a closing source is ignored when it ends.
                            Some(TopicState::Resolving { .. }) | None => {}
                        }
                        generation += 1;
                        tracing::debug!(broker = %self.name, topic, generation, "looking the topic up");
                        topics.insert(topic.clone(), TopicState::Resolving { sink, live, generation });
                        let lookup = (consumer.clone(), lookups.clone(), resolved_tx.clone(), self.auto_create);
                        tokio::spawn(resolve(lookup, topic, generation));
                    }
                    Some(Command::Unsubscribe { topic, sink }) => {
                        if !topics.get(&topic).and_then(TopicState::sink).is_some_and(|current| current.same_source(&sink)) {
                            continue;
                        }
                        tracing::debug!(broker = %self.name, topic, "the topic's source closed");
                        // A lookup still running for it is ignored when it ends.
                        if let Some(TopicState::Assigned { partitions, next, .. }) = topics.remove(&topic) {
                            topics.insert(topic, TopicState::Releasing { partitions, next, since: Instant::now() });
                        }
                    }
                },
                _ = release.tick() => {
                    let due: Vec<String> = topics
                        .iter()
                        .filter(|(_, state)| matches!(state, TopicState::Releasing { since, .. } if since.elapsed() >= RELEASE_AFTER))
                        .map(|(topic, _)| topic.clone())
                        .collect();
                    for topic in due {
                        if let Some(TopicState::Releasing { partitions, .. }) = topics.remove(&topic) {
                            self.unassign(&consumer, &topic, &partitions);
                        }
                    }
                },
                Some(done) = resolved.recv() => self.assign(&consumer, &mut topics, done),
                message = consumer.recv() => match message {
                    Ok(message) => self.deliver(&mut topics, &message),
                    Err(error) => tracing::debug!(broker = %self.name, %error, "Kafka consumer error"),
                },
            }
        }
    }

    /// Adds a looked-up topic to the assignment at the offsets found, if it is still wanted.
    /// Once assigned, every message produced after the lookup is read.
    fn assign(&self, consumer: &KafkaConsumer, topics: &mut HashMap<String, TopicState>, done: Resolved) {
        let wanted = matches!(
            topics.get(&done.topic),
            Some(TopicState::Resolving { generation, .. }) if *generation == done.generation
        );
        if !wanted {
            tracing::debug!(broker = %self.name, topic = done.topic, generation = done.generation, "a lookup no longer wanted");
            return;
        }
        let Some(TopicState::Resolving { sink, live, .. }) = topics.remove(&done.topic) else { return };
        let result = done.result.and_then(|list| {
            consumer.incremental_assign(&list).map_err(|_| TopicProblem::Unreachable)?;
            let next: BTreeMap<i32, i64> = list
                .elements()
                .iter()
                .map(|element| (element.partition(), element.offset().to_raw().unwrap_or(0)))
                .collect();
            Ok((list.elements().iter().map(|element| element.partition()).collect::<Vec<i32>>(), next))
        });
        match result {
            Ok((partitions, next)) => {
                tracing::debug!(broker = %self.name, topic = done.topic, ?next, "assigned");
                self.stats.broker_subscriptions.fetch_add(1, Relaxed);
                topics.insert(done.topic, TopicState::Assigned { sink, partitions, next });
                let _ = live.send(Ok(()));
            }
            Err(problem) => {
                let error = match problem {
                    TopicProblem::Missing => {
                        BrokerError::NoSuchTopic { broker: self.name.to_string(), topic: done.topic }
                    }
                    TopicProblem::Unreachable => BrokerError::Unavailable(self.name.to_string()),
                };
                let _ = live.send(Err(error));
            }
        }
    }

    fn unassign(&self, consumer: &KafkaConsumer, topic: &str, partitions: &[i32]) {
        let mut list = TopicPartitionList::new();
        for &partition in partitions {
            list.add_partition(topic, partition);
        }
        match consumer.incremental_unassign(&list) {
            Ok(()) => {
                tracing::debug!(broker = %self.name, topic, "unassigned");
                self.stats.broker_subscriptions.fetch_sub(1, Relaxed);
            }
            Err(error) => {
                tracing::warn!(broker = %self.name, topic, %error, "cannot remove a topic from the assignment")
            }
        }
    }

    fn deliver(&self, topics: &mut HashMap<String, TopicState>, message: &rdkafka::message::BorrowedMessage<'_>) {
        let Some(TopicState::Assigned { sink, next, .. }) = topics.get_mut(message.topic()) else {
            tracing::trace!(broker = %self.name, topic = message.topic(), "a message no source reads");
            return;
        };
        next.insert(message.partition(), message.offset() + 1);
        let body = message.payload().unwrap_or_default();
        if !sink.admits(body.len()) {
            return;
        }
        let event = to_event(&self.name, message, Bytes::copy_from_slice(body)).with_cursor(Some(cursor(next)));
        sink.send(event);
    }
}

/// A message as an event: its id `partition:offset`, its key, timestamp and headers.
fn to_event(name: &Arc<str>, message: &impl Message, body: Bytes) -> Event {
    let key = message.key().map(|k| String::from_utf8_lossy(k).into_owned());
    let mut event = Event::new(name.clone(), message.topic().into(), body).with_key(key).with_id(Some(format!(
        "{}:{}",
        message.partition(),
        message.offset()
    )));
    if let Some(millis) = message.timestamp().to_millis().and_then(|ms| u64::try_from(ms).ok()) {
        event = event.with_timestamp(SystemTime::UNIX_EPOCH + Duration::from_millis(millis));
    }
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            let value = header.value.map(|v| String::from_utf8_lossy(v).into_owned());
            event = event
                .with_header(header.key.to_owned(), value.map_or(serde_json::Value::Null, serde_json::Value::String));
        }
    }
    event
}

/// A topic's cursor: every partition's next offset, `partition:offset` joined by commas.
fn cursor(next: &BTreeMap<i32, i64>) -> String {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(next.len() * 12);
    for (partition, offset) in next {
        if !text.is_empty() {
            text.push(',');
        }
        let _ = write!(text, "{partition}:{offset}");
    }
    text
}

/// Reads a page of history (see [`KafkaBroker::history`]); blocks, so it runs on a blocking thread.
fn read_history(
    config: &ClientConfig,
    name: &Arc<str>,
    topic: &str,
    mut next: BTreeMap<i32, i64>,
    limit: usize,
) -> Result<History, BrokerError> {
    use rdkafka::consumer::BaseConsumer;
    let unavailable = || BrokerError::Unavailable(name.to_string());
    let consumer: BaseConsumer = config.create().map_err(|_| unavailable())?;
    // A cursor names the topic's partitions, no others: one listing partitions the topic does
    // not have (a client's invention) costs no lookup of each.
    let metadata = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT).map_err(|_| unavailable())?;
    let known: HashSet<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if !next.keys().all(|partition| known.contains(partition)) {
        return Ok(History::Lost);
    }
    let mut list = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for (&partition, &offset) in &next {
        let (low, high) = consumer.fetch_watermarks(topic, partition, REQUEST_TIMEOUT).map_err(|_| unavailable())?;
        if offset < low {
            return Ok(History::Lost);
        }
        if offset < high {
            list.add_partition_offset(topic, partition, Offset::Offset(offset)).map_err(|_| unavailable())?;
            ends.insert(partition, high);
        }
    }
    let mut events = Vec::new();
    if ends.is_empty() {
        return Ok(History::Events(events));
    }
    consumer.assign(&list).map_err(|_| unavailable())?;
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    while !ends.is_empty() && events.len() < limit && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else { continue };
        let message = message.map_err(|_| unavailable())?;
        let (partition, offset) = (message.partition(), message.offset());
        if ends.get(&partition).is_none_or(|end| offset >= *end) {
            continue;
        }
        next.insert(partition, offset + 1);
        if offset + 1 >= ends[&partition] {
            ends.remove(&partition);
        }
        let body = Bytes::copy_from_slice(message.payload().unwrap_or_default());
        events.push(to_event(name, &message, body).with_cursor(Some(cursor(&next))));
    }
    if events.is_empty() && !ends.is_empty() {
        // Nothing arrived in time from partitions that hold more.
        return Err(unavailable());
    }
    Ok(History::Events(events))
}

/// A cursor read back; `None` when it is not one.
fn parse_cursor(text: &str) -> Option<BTreeMap<i32, i64>> {
    text.split(',')
        .map(|pair| {
            let (partition, offset) = pair.split_once(':')?;
            Some((partition.parse().ok()?, offset.parse().ok()?))
        })
        .collect()
}

/// Looks a topic up: its partitions, each at its high watermark. At most `CONCURRENT_LOOKUPS`
/// run at once, each on a blocking thread (librdkafka's calls block).
async fn resolve(
    (consumer, lookups, resolved, auto_create): (
        Arc<KafkaConsumer>,
        Arc<Semaphore>,
        mpsc::UnboundedSender<Resolved>,
        bool,
    ),
    topic: String,
    generation: u64,
) {
    let Ok(_permit) = lookups.acquire().await else { return };
    let owned = topic.clone();
    let result = tokio::task::spawn_blocking(move || {
        let partitions = partitions(&consumer, &owned, auto_create)?;
        let mut list = TopicPartitionList::new();
        for partition in partitions {
            let (_, high) = watermarks(&consumer, &owned, partition)?;
            list.add_partition_offset(&owned, partition, Offset::Offset(high))
                .map_err(|_| TopicProblem::Unreachable)?;
        }
        Ok(list)
    })
    .await
    .unwrap_or(Err(TopicProblem::Unreachable));
    let _ = resolved.send(Resolved { topic, generation, result });
}

fn watermarks(consumer: &KafkaConsumer, topic: &str, partition: i32) -> Result<(i64, i64), TopicProblem> {
    consumer.fetch_watermarks(topic, partition, REQUEST_TIMEOUT).map_err(|_| TopicProblem::Unreachable)
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
