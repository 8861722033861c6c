//! Kafka messages as events, and the cursor a client resumes from.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rdkafka::message::{Headers, Message};

use crate::event::Event;

/// A message as an event: its id `partition:offset`, its key, timestamp and headers.
pub fn to_event(name: &Arc<str>, message: &impl Message, body: Bytes) -> Event {
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
pub fn cursor(next: &BTreeMap<i32, i64>) -> String {
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

/// A cursor read back; `None` when it is not one.
pub fn parse_cursor(text: &str) -> Option<BTreeMap<i32, i64>> {
    text.split(',')
        .map(|pair| {
            let (partition, offset) = pair.split_once(':')?;
            Some((partition.parse().ok()?, offset.parse().ok()?))
        })
        .collect()
}
