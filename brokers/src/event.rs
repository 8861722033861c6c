//! One message read from a broker.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value};

/// Header that marks a payload delivered base64-encoded because its body was not UTF-8.
pub const ENCODING_HEADER: &str = "encoding";

/// An event: its payload as JSON text, checked once when it arrives, for every execution that
/// reads it.
#[derive(Debug)]
pub struct Event {
    pub broker: Arc<str>,
    pub topic: Arc<str>,
    pub key: Option<String>,
    /// The broker's position of the message (Kafka `partition:offset`, a stream id, a sequence).
    pub id: Option<String>,
    /// Where a client that saw this event resumes from (DESIGN §12): the id, except where one
    /// id does not say it all (Kafka: every partition's offset). `None` where the broker keeps
    /// no history.
    pub cursor: Option<String>,
    /// When it was published, where the broker or the publisher says so; else when it arrived.
    pub timestamp: SystemTime,
    /// When the hub read it: the start of its way to subscribers (`subhub_delivery_seconds`).
    pub arrived: Instant,
    /// The payload as JSON text: a JSON body as it was published (the same bytes), else the
    /// body as a JSON string, else base64 in a JSON string.
    payload: Box<str>,
    /// The body was JSON.
    payload_is_json: bool,
    pub headers: Map<String, Value>,
}

impl Event {
    pub fn new(broker: Arc<str>, topic: Arc<str>, body: Bytes) -> Self {
        let mut headers = Map::new();
        let (payload, payload_is_json) = payload_json(body, &mut headers);
        Event {
            broker,
            topic,
            key: None,
            id: None,
            cursor: None,
            timestamp: SystemTime::now(),
            arrived: Instant::now(),
            payload,
            payload_is_json,
            headers,
        }
    }

    /// The payload as JSON text (see [`Event`]).
    pub fn payload_json(&self) -> &str {
        &self.payload
    }

    /// The body itself, when it was JSON.
    pub fn json_body(&self) -> Option<&str> {
        self.payload_is_json.then_some(&*self.payload)
    }

    pub fn with_key(mut self, key: Option<String>) -> Self {
        self.key = key;
        self
    }

    pub fn with_id(mut self, id: Option<String>) -> Self {
        self.id = id;
        self
    }

    /// Marks the event resumable from `cursor`.
    pub fn with_cursor(mut self, cursor: Option<String>) -> Self {
        self.cursor = cursor;
        self
    }

    pub fn with_timestamp(mut self, timestamp: SystemTime) -> Self {
        self.timestamp = timestamp;
        self
    }

    pub fn with_header(mut self, name: String, value: Value) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// The timestamp as RFC 3339 with milliseconds, as the schema serves it.
    pub fn timestamp_rfc3339(&self) -> String {
        humantime::format_rfc3339_millis(self.timestamp).to_string()
    }
}

/// A body as JSON text: JSON stays as it is (checked, not decoded into a tree), other UTF-8
/// becomes a JSON string, anything else base64 in a JSON string with the encoding marked in the
/// headers. Nothing is dropped.
fn payload_json(body: Bytes, headers: &mut Map<String, Value>) -> (Box<str>, bool) {
    match String::from_utf8(Vec::from(body)) {
        Ok(text) if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok() => (text.into_boxed_str(), true),
        Ok(text) => (Value::String(text).to_string().into_boxed_str(), false),
        Err(error) => {
            headers.insert(ENCODING_HEADER.to_owned(), Value::String("base64".to_owned()));
            let encoded = base64::engine::general_purpose::STANDARD.encode(error.as_bytes());
            (Value::String(encoded).to_string().into_boxed_str(), false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(body: &'static [u8]) -> Event {
        Event::new("b".into(), "t".into(), Bytes::from_static(body))
    }

    #[test]
    fn bodies_become_json_text_or_base64() {
        // JSON passes as it was published: key order and spacing kept.
        let json = event(br#"{"z":1, "a":2}"#);
        assert_eq!((json.payload_json(), json.json_body()), (r#"{"z":1, "a":2}"#, Some(r#"{"z":1, "a":2}"#)));
        let text = event(b"he said \"hi\"");
        assert_eq!((text.payload_json(), text.json_body()), (r#""he said \"hi\"""#, None));
        let binary = event(&[0xff, 0x00, 0x01]);
        assert_eq!(binary.payload_json(), r#""/wAB""#);
        assert_eq!(binary.headers[ENCODING_HEADER], "base64");
        assert!(event(b"1").timestamp_rfc3339().ends_with('Z'));
    }
}
