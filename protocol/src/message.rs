//! Client messages of both protocols, parsed and validated the way the reference servers do.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::Protocol;

/// A JSON object, as `payload`, `variables` and `extensions` are.
pub type Object = Map<String, Value>;

/// The GraphQL request a `subscribe` (or legacy `start`) carries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OperationPayload {
    pub query: String,
    pub operation_name: Option<String>,
    pub variables: Option<Object>,
    pub extensions: Option<Object>,
}

/// A message from a client, the same for both protocols where they mean the same thing.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientMessage {
    ConnectionInit {
        payload: Option<Object>,
    },
    /// graphql-transport-ws only.
    Ping {
        payload: Option<Object>,
    },
    /// graphql-transport-ws only.
    Pong {
        payload: Option<Object>,
    },
    /// `subscribe` (graphql-transport-ws) or `start` (graphql-ws).
    Subscribe {
        id: String,
        payload: OperationPayload,
    },
    /// `complete` (graphql-transport-ws) or `stop` (graphql-ws).
    Complete {
        id: String,
    },
    /// graphql-ws only: the client ends the session.
    ConnectionTerminate,
}

/// Why a text frame is not a valid client message. The text is safe to show the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMessage {
    #[error("Invalid message received")]
    NotJson,
    #[error("Invalid message received: missing 'type'")]
    MissingType,
    #[error("Unexpected message of type {0} received")]
    UnknownType(String, Option<String>),
    #[error("Invalid message received: \"{kind}\" message expects {what}")]
    BadShape { kind: &'static str, what: &'static str, id: Option<String> },
}

impl InvalidMessage {
    /// The operation id the message named, where it named one (graphql-ws reports per id).
    pub fn id(&self) -> Option<&str> {
        match self {
            InvalidMessage::UnknownType(_, id) | InvalidMessage::BadShape { id, .. } => id.as_deref(),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct RawMessage {
    #[serde(rename = "type")]
    kind: Option<Value>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    payload: Option<Value>,
}

impl ClientMessage {
    /// Parses one text frame of the given protocol.
    pub fn parse(protocol: Protocol, text: &str) -> Result<Self, InvalidMessage> {
        let raw: RawMessage = serde_json::from_str(text).map_err(|_| InvalidMessage::NotJson)?;
        let kind = match raw.kind {
            Some(Value::String(kind)) => kind,
            _ => return Err(InvalidMessage::MissingType),
        };
        let id_text = match &raw.id {
            Some(Value::String(id)) => Some(id.clone()),
            _ => None,
        };
        match (protocol, kind.as_str()) {
            (_, "connection_init") => Ok(ClientMessage::ConnectionInit {
                payload: optional_object(raw.payload)
                    .map_err(|()| shape("connection_init", "'payload' to be an object or null", None))?,
            }),
            (Protocol::TransportWs, "ping") => Ok(ClientMessage::Ping {
                payload: optional_object(raw.payload)
                    .map_err(|()| shape("ping", "'payload' to be an object or null", None))?,
            }),
            (Protocol::TransportWs, "pong") => Ok(ClientMessage::Pong {
                payload: optional_object(raw.payload)
                    .map_err(|()| shape("pong", "'payload' to be an object or null", None))?,
            }),
            (Protocol::TransportWs, "subscribe") | (Protocol::LegacyWs, "start") => {
                let name = if protocol == Protocol::TransportWs { "subscribe" } else { "start" };
                let id = required_id(raw.id).map_err(|()| shape(name, ID_SHAPE, None))?;
                let payload = operation(raw.payload).map_err(|what| shape(name, what, Some(id.clone())))?;
                Ok(ClientMessage::Subscribe { id, payload })
            }
            (Protocol::TransportWs, "complete") | (Protocol::LegacyWs, "stop") => {
                let name = if protocol == Protocol::TransportWs { "complete" } else { "stop" };
                let id = required_id(raw.id).map_err(|()| shape(name, ID_SHAPE, None))?;
                Ok(ClientMessage::Complete { id })
            }
            (Protocol::LegacyWs, "connection_terminate") => Ok(ClientMessage::ConnectionTerminate),
            _ => Err(InvalidMessage::UnknownType(kind, id_text)),
        }
    }
}

fn shape(kind: &'static str, what: &'static str, id: Option<String>) -> InvalidMessage {
    InvalidMessage::BadShape { kind, what, id }
}

fn optional_object(value: Option<Value>) -> Result<Option<Object>, ()> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(()),
    }
}

/// Operation ids longer than this are refused: every `next` frame carries its id, and the
/// session keeps it for as long as the operation runs (reference clients send UUIDs).
pub const MAX_ID_BYTES: usize = 128;
const ID_SHAPE: &str = "'id' to be a non-empty string of at most 128 bytes";

fn required_id(value: Option<Value>) -> Result<String, ()> {
    match value {
        Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_ID_BYTES => Ok(id),
        _ => Err(()),
    }
}

fn operation(value: Option<Value>) -> Result<OperationPayload, &'static str> {
    let Some(Value::Object(mut map)) = value else {
        return Err("'payload' to be an object");
    };
    let query = match map.remove("query") {
        Some(Value::String(query)) => query,
        _ => return Err("'payload.query' to be a string"),
    };
    let operation_name = match map.remove("operationName") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name),
        Some(_) => return Err("'payload.operationName' to be a string or null"),
    };
    let variables =
        optional_object(map.remove("variables")).map_err(|()| "'payload.variables' to be an object or null")?;
    let extensions =
        optional_object(map.remove("extensions")).map_err(|()| "'payload.extensions' to be an object or null")?;
    Ok(OperationPayload { query, operation_name, variables, extensions })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Protocol::*;

    #[test]
    fn parses_each_transport_ws_message() {
        assert_eq!(
            ClientMessage::parse(TransportWs, r#"{"type":"connection_init"}"#),
            Ok(ClientMessage::ConnectionInit { payload: None })
        );
        let sub = ClientMessage::parse(
            TransportWs,
            r#"{"type":"subscribe","id":"1","payload":{"query":"subscription{x}","variables":{"a":1},"operationName":null}}"#,
        )
        .unwrap();
        match sub {
            ClientMessage::Subscribe { id, payload } => {
                assert_eq!(id, "1");
                assert_eq!(payload.query, "subscription{x}");
                assert_eq!(payload.variables.unwrap()["a"], 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            ClientMessage::parse(TransportWs, r#"{"type":"complete","id":"1"}"#),
            Ok(ClientMessage::Complete { id: "1".into() })
        );
        assert_eq!(ClientMessage::parse(TransportWs, r#"{"type":"ping"}"#), Ok(ClientMessage::Ping { payload: None }));
    }

    #[test]
    fn legacy_names_map_to_the_same_messages() {
        assert!(matches!(
            ClientMessage::parse(LegacyWs, r#"{"type":"start","id":"a","payload":{"query":"{x}"}}"#),
            Ok(ClientMessage::Subscribe { .. })
        ));
        assert_eq!(
            ClientMessage::parse(LegacyWs, r#"{"type":"stop","id":"a"}"#),
            Ok(ClientMessage::Complete { id: "a".into() })
        );
        assert_eq!(
            ClientMessage::parse(LegacyWs, r#"{"type":"connection_terminate"}"#),
            Ok(ClientMessage::ConnectionTerminate)
        );
        // Each protocol refuses the other's names.
        assert!(ClientMessage::parse(LegacyWs, r#"{"type":"subscribe","id":"a","payload":{"query":"{x}"}}"#).is_err());
        assert!(ClientMessage::parse(TransportWs, r#"{"type":"start","id":"a","payload":{"query":"{x}"}}"#).is_err());
    }

    /// Every `next` carries its id and the session keeps it: a megabyte id, a hundred times
    /// over on one connection, held a hundred megabytes.
    #[test]
    fn ids_are_bounded() {
        let subscribe = |id: &str| format!(r#"{{"type":"subscribe","id":"{id}","payload":{{"query":"{{x}}"}}}}"#);
        assert!(ClientMessage::parse(TransportWs, &subscribe(&"i".repeat(MAX_ID_BYTES))).is_ok());
        let error = ClientMessage::parse(TransportWs, &subscribe(&"i".repeat(MAX_ID_BYTES + 1))).unwrap_err();
        assert!(error.to_string().contains("at most 128 bytes"), "{error}");
        assert!(
            ClientMessage::parse(TransportWs, &format!(r#"{{"type":"complete","id":"{}"}}"#, "i".repeat(200))).is_err()
        );
    }

    #[test]
    fn rejects_bad_json_types_and_shapes() {
        assert_eq!(ClientMessage::parse(TransportWs, "{nope"), Err(InvalidMessage::NotJson));
        assert_eq!(ClientMessage::parse(TransportWs, r#"{"id":"1"}"#), Err(InvalidMessage::MissingType));
        assert!(matches!(
            ClientMessage::parse(TransportWs, r#"{"type":"bogus"}"#),
            Err(InvalidMessage::UnknownType(..))
        ));
        assert!(matches!(
            ClientMessage::parse(TransportWs, r#"{"type":"next","id":"1"}"#),
            Err(InvalidMessage::UnknownType(..))
        ));
        assert!(ClientMessage::parse(TransportWs, r#"{"type":"subscribe","id":"","payload":{"query":"{x}"}}"#).is_err());
        assert!(ClientMessage::parse(TransportWs, r#"{"type":"subscribe","id":"1","payload":{"query":1}}"#).is_err());
        assert!(ClientMessage::parse(
            TransportWs,
            r#"{"type":"subscribe","id":"1","payload":{"query":"{x}","variables":[]}}"#
        )
        .is_err());
        assert!(ClientMessage::parse(TransportWs, r#"{"type":"connection_init","payload":"x"}"#).is_err());
    }
}
