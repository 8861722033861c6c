//! Messages the server sends. `next` frames are built around shared payload bytes: the payload
//! of an event is serialized once, and each subscriber only adds its own prefix.

use serde_json::Value;

use crate::message::Object;
use crate::Protocol;

pub const CONNECTION_ACK: &str = r#"{"type":"connection_ack"}"#;
/// graphql-ws keep-alive.
pub const KEEP_ALIVE: &str = r#"{"type":"ka"}"#;
pub const PONG: &str = r#"{"type":"pong"}"#;
pub const PING: &str = r#"{"type":"ping"}"#;

/// The bytes that come before the shared payload in one subscriber's `next` (or legacy `data`)
/// message: `{"id":"<id>","type":"next","payload":`. Built once per subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FramePrefix(Box<str>);

impl FramePrefix {
    pub fn new(protocol: Protocol, id: &str) -> Self {
        let kind = match protocol {
            Protocol::TransportWs => "next",
            Protocol::LegacyWs => "data",
        };
        FramePrefix(format!(r#"{{"id":{},"type":"{kind}","payload":"#, json_string(id)).into_boxed_str())
    }

    /// The whole message for one payload: prefix, payload, closing brace.
    pub fn frame(&self, payload: &str) -> String {
        let mut text = String::with_capacity(self.0.len() + payload.len() + 1);
        text.push_str(&self.0);
        text.push_str(payload);
        text.push('}');
        text
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Bytes of the whole message for a payload of `payload_len` bytes.
    pub fn message_len(&self, payload_len: usize) -> usize {
        self.0.len() + payload_len + 1
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `pong`, echoing the ping's payload as graphql-ws does.
pub fn pong(payload: Option<&Object>) -> String {
    match payload {
        None => PONG.to_owned(),
        Some(payload) => serde_json::json!({"type": "pong", "payload": payload}).to_string(),
    }
}

/// `error` for one operation; `errors` is a serialized JSON array of GraphQL errors.
pub fn error(id: &str, errors: &str) -> String {
    format!(r#"{{"id":{},"type":"error","payload":{errors}}}"#, json_string(id))
}

/// `complete` for one operation.
pub fn complete(id: &str) -> String {
    format!(r#"{{"id":{},"type":"complete"}}"#, json_string(id))
}

/// graphql-ws `connection_error` with a message.
pub fn connection_error(message: &str) -> String {
    serde_json::json!({"type": "connection_error", "payload": {"message": message}}).to_string()
}

/// A JSON array holding one GraphQL error with this message.
pub fn error_list(message: &str) -> String {
    serde_json::json!([{ "message": message }]).to_string()
}

fn json_string(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_wrap_shared_payloads_with_an_escaped_id() {
        let prefix = FramePrefix::new(Protocol::TransportWs, "a\"b");
        let text = prefix.frame(r#"{"data":{"x":1}}"#);
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["id"], "a\"b");
        assert_eq!(parsed["type"], "next");
        assert_eq!(parsed["payload"]["data"]["x"], 1);
        let legacy = FramePrefix::new(Protocol::LegacyWs, "7").frame("{}");
        assert_eq!(legacy, r#"{"id":"7","type":"data","payload":{}}"#);
    }

    #[test]
    fn control_messages_are_valid_json() {
        for text in [error("1", &error_list("boom")), complete("1"), connection_error("no"), pong(None)] {
            serde_json::from_str::<Value>(&text).unwrap();
        }
    }
}
