//! Looking topics up: their partitions and where each starts (blocking librdkafka calls, run on
//! blocking threads, a few at a time), and what the hub already knows of which topics exist.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lru::LruCache;
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, Semaphore};

use super::session::Resolved;
use super::KafkaConsumer;

/// How long metadata and watermark requests may take before a lookup fails.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Topic lookups (metadata and watermarks) running at once; more wait their turn.
pub const CONCURRENT_LOOKUPS: usize = 4;

pub enum TopicProblem {
    Missing,
    Unreachable,
}

/// The partitions of a topic (blocking). With `wait_for_creation`, a topic that is being
/// auto-created is waited for until the request timeout.
pub fn partitions(consumer: &KafkaConsumer, topic: &str, wait_for_creation: bool) -> Result<Vec<i32>, TopicProblem> {
    let deadline = Instant::now() + LOOKUP_TIMEOUT;
    loop {
        let metadata = consumer.fetch_metadata(Some(topic), LOOKUP_TIMEOUT).map_err(|_| TopicProblem::Unreachable)?;
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

/// Looks a topic up: its partitions, each at its high watermark. At most `CONCURRENT_LOOKUPS`
/// run at once, each on a blocking thread (librdkafka's calls block).
pub async fn resolve(
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
    consumer.fetch_watermarks(topic, partition, LOOKUP_TIMEOUT).map_err(|_| TopicProblem::Unreachable)
}

/// Topics whose existence the hub remembers, at most; the least recently used are forgotten.
const KNOWN_TOPICS: usize = 10_000;
/// How long a topic found missing is taken as missing: one created meanwhile is published to
/// after this.
const MISSING_FOR: Duration = Duration::from_secs(10);

/// What the hub knows of which topics exist, so that publishing to a topic costs a metadata
/// round trip once (once per `MISSING_FOR` for a missing one), not at every publish.
pub struct KnownTopics {
    answers: Mutex<LruCache<String, Known>>,
}

#[derive(Clone, Copy)]
enum Known {
    Exists,
    Missing { since: Instant },
}

impl KnownTopics {
    pub fn new() -> Self {
        let capacity = NonZeroUsize::new(KNOWN_TOPICS).unwrap_or(NonZeroUsize::MIN);
        KnownTopics { answers: Mutex::new(LruCache::new(capacity)) }
    }

    /// Whether `topic` exists, if the hub knows.
    pub fn exists(&self, topic: &str) -> Option<bool> {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        match answers.get(topic).copied() {
            Some(Known::Exists) => Some(true),
            Some(Known::Missing { since }) if since.elapsed() < MISSING_FOR => Some(false),
            Some(Known::Missing { .. }) => {
                answers.pop(topic);
                None
            }
            None => None,
        }
    }

    pub fn record(&self, topic: &str, exists: bool) {
        let known = if exists { Known::Exists } else { Known::Missing { since: Instant::now() } };
        self.answers.lock().unwrap_or_else(PoisonError::into_inner).put(topic.to_owned(), known);
    }
}
