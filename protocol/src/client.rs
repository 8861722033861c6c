//! The client side of both protocols, for talking to upstream servers: messages a client sends,
//! and the server messages it reads.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::message::{Object, OperationPayload};
use crate::Protocol;

/// `connection_init` with an optional payload.
pub fn connection_init(payload: Option<&Object>) -> String {
    match payload {
        Some(payload) => json!({"type": "connection_init", "payload": payload}).to_string(),
        None => r#"{"type":"connection_init"}"#.to_owned(),
    }
}

/// `subscribe` (graphql-transport-ws) or `start` (graphql-ws).
pub fn subscribe(protocol: Protocol, id: &str, operation: &OperationPayload) -> String {
    let kind = match protocol {
        Protocol::TransportWs => "subscribe",
        Protocol::LegacyWs => "start",
    };
    let mut payload = json!({"query": operation.query});
    if let Some(name) = &operation.operation_name {
        payload["operationName"] = json!(name);
    }
    if let Some(variables) = &operation.variables {
        payload["variables"] = Value::Object(variables.clone());
    }
    if let Some(extensions) = &operation.extensions {
        payload["extensions"] = Value::Object(extensions.clone());
    }
    json!({"type": kind, "id": id, "payload": payload}).to_string()
}

/// `complete` (graphql-transport-ws) or `stop` (graphql-ws).
pub fn stop(protocol: Protocol, id: &str) -> String {
    let kind = match protocol {
        Protocol::TransportWs => "complete",
        Protocol::LegacyWs => "stop",
    };
    json!({"type": kind, "id": id}).to_string()
}

/// graphql-transport-ws `ping`.
pub const PING: &str = r#"{"type":"ping"}"#;

/// A message from a server, the same for both protocols where they mean the same thing.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerMessage {
    ConnectionAck,
    /// graphql-ws: the server refused `connection_init` (or a message).
    ConnectionError(Value),
    /// graphql-ws keep-alive.
    KeepAlive,
    Ping(Option<Value>),
    Pong,
    /// `next` or `data`: one execution result.
    Next {
        id: String,
        payload: Value,
    },
    /// The operation failed; no `complete` follows on graphql-transport-ws.
    Error {
        id: String,
        payload: Value,
    },
    Complete {
        id: String,
    },
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    payload: Option<Value>,
}

/// A server message that is not valid for the negotiated protocol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid message from the server: {0}")]
pub struct InvalidServerMessage(pub String);

impl ServerMessage {
    pub fn parse(protocol: Protocol, text: &str) -> Result<Self, InvalidServerMessage> {
        let raw: Raw = serde_json::from_str(text).map_err(|_| InvalidServerMessage("not a JSON message".into()))?;
        let id =
            |raw: &Raw| raw.id.clone().ok_or_else(|| InvalidServerMessage(format!("`{}` without an id", raw.kind)));
        Ok(match (protocol, raw.kind.as_str()) {
            (_, "connection_ack") => ServerMessage::ConnectionAck,
            (Protocol::LegacyWs, "connection_error") => {
                ServerMessage::ConnectionError(raw.payload.unwrap_or(Value::Null))
            }
            (Protocol::LegacyWs, "ka") => ServerMessage::KeepAlive,
            (Protocol::TransportWs, "ping") => ServerMessage::Ping(raw.payload),
            (Protocol::TransportWs, "pong") => ServerMessage::Pong,
            (Protocol::TransportWs, "next") | (Protocol::LegacyWs, "data") => {
                ServerMessage::Next { id: id(&raw)?, payload: raw.payload.unwrap_or(Value::Null) }
            }
            (_, "error") => ServerMessage::Error { id: id(&raw)?, payload: raw.payload.unwrap_or(Value::Null) },
            (_, "complete") => ServerMessage::Complete { id: id(&raw)? },
            (_, other) => return Err(InvalidServerMessage(format!("unexpected message type `{other}`"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_protocols_read_to_the_same_messages() {
        let next = ServerMessage::parse(Protocol::TransportWs, r#"{"id":"1","type":"next","payload":{"data":{}}}"#);
        let data = ServerMessage::parse(Protocol::LegacyWs, r#"{"id":"1","type":"data","payload":{"data":{}}}"#);
        assert_eq!(next, data);
        assert_eq!(ServerMessage::parse(Protocol::LegacyWs, r#"{"type":"ka"}"#), Ok(ServerMessage::KeepAlive));
        assert!(ServerMessage::parse(Protocol::TransportWs, r#"{"type":"ka"}"#).is_err());
        assert!(ServerMessage::parse(Protocol::TransportWs, r#"{"type":"next"}"#).is_err());
        assert!(ServerMessage::parse(Protocol::TransportWs, "hello").is_err());
    }

    #[test]
    fn client_messages_name_the_protocol_s_types() {
        let operation = OperationPayload { query: "subscription { x }".into(), ..Default::default() };
        let start: Value = serde_json::from_str(&subscribe(Protocol::LegacyWs, "7", &operation)).unwrap();
        assert_eq!(
            (start["type"].as_str(), start["payload"]["query"].as_str()),
            (Some("start"), Some("subscription { x }"))
        );
        assert!(stop(Protocol::TransportWs, "7").contains("\"complete\""));
        assert!(stop(Protocol::LegacyWs, "7").contains("\"stop\""));
    }
}
