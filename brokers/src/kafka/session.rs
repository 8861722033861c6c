//! The consumer's session: one consumer per broker per hub instance, topics joining and leaving
//! its assignment as their sources open and close. librdkafka reconnects by itself, so this
//! loop never reconnects: it only applies requests in order and delivers messages.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::TopicPartitionList;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::lookup::{resolve, TopicProblem, CONCURRENT_LOOKUPS};
use super::message::{cursor, to_event};
use super::KafkaConsumer;
use crate::broker::BrokerError;
use crate::session::Command;
use crate::sink::{BrokerStats, EventSink};

/// How long a closed topic's partitions stay assigned, for a source that reopens at once.
const RELEASE_AFTER: Duration = Duration::from_millis(500);

pub struct Session {
    pub name: Arc<str>,
    pub stats: Arc<BrokerStats>,
    pub auto_create: bool,
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
pub struct Resolved {
    pub topic: String,
    pub generation: u64,
    pub result: Result<TopicPartitionList, TopicProblem>,
}

impl Session {
    /// The consumer loop: reads messages and applies subscribe and unsubscribe requests in
    /// order. Looking a topic up (metadata and watermarks: round trips of up to
    /// `LOOKUP_TIMEOUT` each) runs in tasks of its own, so a subscribe never holds up the
    /// delivery of every other topic; only the assignment itself happens here.
    pub async fn run(self, consumer: Arc<KafkaConsumer>, mut commands: mpsc::UnboundedReceiver<Command>) {
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
