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

    /// Appends the whole WebSocket frame (header included) of the message for one payload.
    pub fn push_ws_frame(&self, out: &mut Vec<u8>, payload: &str) {
        push_ws_frame_header(out, WS_TEXT, self.0.len() + payload.len() + 1);
        out.extend_from_slice(self.0.as_bytes());
        out.extend_from_slice(payload.as_bytes());
        out.push(b'}');
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// WebSocket opcode of a text frame.
pub const WS_TEXT: u8 = 0x1;

/// Appends the header of a final, unmasked (server to client) WebSocket frame of `len` bytes,
/// with the shortest length encoding.
pub fn push_ws_frame_header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
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
    fn frame_headers_use_the_shortest_length_encoding() {
        let header = |len| {
            let mut out = Vec::new();
            push_ws_frame_header(&mut out, WS_TEXT, len);
            out
        };
        assert_eq!(header(125), [0x81, 125]);
        assert_eq!(header(126), [0x81, 126, 0, 126]);
        assert_eq!(header(65_535), [0x81, 126, 0xff, 0xff]);
        assert_eq!(header(65_536), [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        let mut frame = Vec::new();
        FramePrefix::new(Protocol::TransportWs, "1").push_ws_frame(&mut frame, "{}");
        assert_eq!(frame, b"\x81\x25{\"id\":\"1\",\"type\":\"next\",\"payload\":{}}");
    }

    #[test]
    fn control_messages_are_valid_json() {
        for text in [error("1", &error_list("boom")), complete("1"), connection_error("no"), pong(None)] {
            serde_json::from_str::<Value>(&text).unwrap();
        }
    }
}
