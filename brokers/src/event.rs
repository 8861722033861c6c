//! One message read from a broker.

use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value};

/// Header that marks a payload delivered base64-encoded because its body was not UTF-8.
pub const ENCODING_HEADER: &str = "encoding";

/// An event: the body as the broker delivered it, and its `payload` decoded once for every
/// execution that reads it.
#[derive(Debug)]
pub struct Event {
    pub broker: Arc<str>,
    pub topic: Arc<str>,
    pub key: Option<String>,
    /// The broker's position of the message (Kafka `partition:offset`, a stream id, a sequence).
    pub id: Option<String>,
    pub timestamp: SystemTime,
    pub body: Bytes,
    /// JSON when the body is JSON, else the body as a string, else base64.
    pub payload: Value,
    pub headers: Map<String, Value>,
}

impl Event {
    pub fn new(broker: Arc<str>, topic: Arc<str>, body: Bytes) -> Self {
        let mut headers = Map::new();
        let payload = decode_payload(&body, &mut headers);
        Event { broker, topic, key: None, id: None, timestamp: SystemTime::now(), body, payload, headers }
    }

    pub fn with_key(mut self, key: Option<String>) -> Self {
        self.key = key;
        self
    }

    pub fn with_id(mut self, id: Option<String>) -> Self {
        self.id = id;
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

/// Decodes a body: JSON stays JSON, other UTF-8 becomes a string, anything else is base64 with
/// the encoding marked in the headers. Nothing is dropped.
fn decode_payload(body: &[u8], headers: &mut Map<String, Value>) -> Value {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        return value;
    }
    match std::str::from_utf8(body) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => {
            headers.insert(ENCODING_HEADER.to_owned(), Value::String("base64".to_owned()));
            Value::String(base64::engine::general_purpose::STANDARD.encode(body))
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
    fn bodies_decode_to_json_text_or_base64() {
        assert_eq!(event(br#"{"a":1}"#).payload["a"], 1);
        assert_eq!(event(b"hello").payload, Value::String("hello".into()));
        let binary = event(&[0xff, 0x00, 0x01]);
        assert_eq!(binary.payload, Value::String("/wAB".into()));
        assert_eq!(binary.headers[ENCODING_HEADER], "base64");
        assert!(event(b"1").timestamp_rfc3339().ends_with('Z'));
    }
}
