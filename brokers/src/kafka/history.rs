//! A resumed client's history: the messages after its cursor, read by a consumer of its own.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::lookup::LOOKUP_TIMEOUT;
use super::message::{cursor, to_event};
use crate::broker::{BrokerError, History};

/// Reads a page of history (see [`KafkaBroker::history`]); blocks, so it runs on a blocking thread.
pub fn read_history(
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
    let metadata = consumer.fetch_metadata(Some(topic), LOOKUP_TIMEOUT).map_err(|_| unavailable())?;
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
        let (low, high) = consumer.fetch_watermarks(topic, partition, LOOKUP_TIMEOUT).map_err(|_| unavailable())?;
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
    let deadline = Instant::now() + LOOKUP_TIMEOUT;
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
