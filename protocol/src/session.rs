//! The per-connection state machine: what each client message means in the session's current
//! phase. It decides, the caller acts: executing operations and writing to the socket happen
//! elsewhere.

use std::collections::HashSet;

use crate::close::CloseFrame;
use crate::message::{ClientMessage, InvalidMessage, Object, OperationPayload};
use crate::server;
use crate::Protocol;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    AwaitingInit,
    Initialising,
    Acknowledged,
}

/// What the caller must do after a client message.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Send this text to the client.
    Reply(String),
    /// Close the connection with this code and reason.
    Close(CloseFrame),
    /// The client asked to connect: authorise the payload, then call
    /// [`ProtocolState::acknowledge`] or [`ProtocolState::reject`].
    Init(Option<Object>),
    /// Start an operation. `replaces` is set when a graphql-ws client reused an active id: the
    /// old operation must be stopped first, as the reference server does.
    Subscribe { id: String, payload: OperationPayload, replaces: bool },
    /// Stop an active operation, then send `reply` if there is one.
    Unsubscribe { id: String, reply: Option<String> },
    /// Nothing to do.
    Ignore,
}

/// One client's protocol state: the phase of its connection and the ids it has running.
#[derive(Debug)]
pub struct ProtocolState {
    protocol: Protocol,
    phase: Phase,
    active: HashSet<String>,
}

impl ProtocolState {
    pub fn new(protocol: Protocol) -> Self {
        ProtocolState { protocol, phase: Phase::AwaitingInit, active: HashSet::new() }
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// True once `connection_ack` was sent.
    pub fn is_acknowledged(&self) -> bool {
        self.phase == Phase::Acknowledged
    }

    /// Number of operations the client has running.
    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    pub fn is_active(&self, id: &str) -> bool {
        self.active.contains(id)
    }

    /// Reads one text frame.
    pub fn receive(&mut self, text: &str) -> Step {
        match ClientMessage::parse(self.protocol, text) {
            Ok(message) => self.handle(message),
            Err(invalid) => self.invalid(invalid),
        }
    }

    fn invalid(&self, invalid: InvalidMessage) -> Step {
        match self.protocol {
            Protocol::TransportWs => Step::Close(CloseFrame::bad_request(invalid.to_string())),
            // graphql-ws answers bad messages without closing: per id where one was given.
            Protocol::LegacyWs => match invalid.id() {
                Some(id) => Step::Reply(server::error(id, &server::error_list(&invalid.to_string()))),
                None => Step::Reply(server::connection_error(&invalid.to_string())),
            },
        }
    }

    fn handle(&mut self, message: ClientMessage) -> Step {
        match message {
            ClientMessage::ConnectionInit { payload } => {
                if self.phase != Phase::AwaitingInit {
                    return match self.protocol {
                        Protocol::TransportWs => Step::Close(CloseFrame::too_many_init()),
                        Protocol::LegacyWs => Step::Reply(server::connection_error("Too many initialisation requests")),
                    };
                }
                self.phase = Phase::Initialising;
                Step::Init(payload)
            }
            ClientMessage::Ping { payload } => Step::Reply(server::pong(payload.as_ref())),
            ClientMessage::Pong { .. } => Step::Ignore,
            ClientMessage::Subscribe { id, payload } => {
                if self.phase != Phase::Acknowledged {
                    return match self.protocol {
                        Protocol::TransportWs => Step::Close(CloseFrame::unauthorized()),
                        Protocol::LegacyWs => Step::Reply(server::error(
                            &id,
                            &server::error_list("Unauthorized: send connection_init and wait for connection_ack"),
                        )),
                    };
                }
                let replaces = !self.active.insert(id.clone());
                if replaces && self.protocol == Protocol::TransportWs {
                    return Step::Close(CloseFrame::subscriber_exists(&id));
                }
                Step::Subscribe { id, payload, replaces }
            }
            ClientMessage::Complete { id } => {
                if !self.active.remove(&id) {
                    return Step::Ignore;
                }
                let reply = match self.protocol {
                    Protocol::TransportWs => None,
                    Protocol::LegacyWs => Some(server::complete(&id)),
                };
                Step::Unsubscribe { id, reply }
            }
            ClientMessage::ConnectionTerminate => Step::Close(CloseFrame::new(crate::close::NORMAL, "")),
        }
    }

    /// Accepts the connection; returns the messages to send (`connection_ack`, and `ka` on graphql-ws).
    pub fn acknowledge(&mut self) -> Vec<&'static str> {
        self.phase = Phase::Acknowledged;
        match self.protocol {
            Protocol::TransportWs => vec![server::CONNECTION_ACK],
            Protocol::LegacyWs => vec![server::CONNECTION_ACK, server::KEEP_ALIVE],
        }
    }

    /// Refuses the connection: the message to send first (graphql-ws) and the close frame.
    pub fn reject(&mut self, message: &str) -> (Option<String>, CloseFrame) {
        match self.protocol {
            Protocol::TransportWs => (None, CloseFrame::forbidden()),
            Protocol::LegacyWs => (Some(server::connection_error(message)), CloseFrame::forbidden()),
        }
    }

    /// The server ended an operation (`complete` or `error` sent): its id may be used again.
    pub fn operation_ended(&mut self, id: &str) -> bool {
        self.active.remove(id)
    }

    /// The hub is going away: a `complete` for every active operation, then close 1001.
    pub fn shutdown(&mut self) -> (Vec<String>, CloseFrame) {
        let completes = self.active.drain().map(|id| server::complete(&id)).collect();
        (completes, CloseFrame::going_away())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::close;

    const SUB: &str = r#"{"type":"subscribe","id":"1","payload":{"query":"subscription{x}"}}"#;

    fn acked(protocol: Protocol) -> ProtocolState {
        let mut session = ProtocolState::new(protocol);
        assert!(matches!(session.receive(r#"{"type":"connection_init"}"#), Step::Init(None)));
        session.acknowledge();
        session
    }

    fn close_code(step: Step) -> u16 {
        match step {
            Step::Close(frame) => frame.code,
            other => panic!("expected a close, got {other:?}"),
        }
    }

    #[test]
    fn transport_ws_rules() {
        let mut session = ProtocolState::new(Protocol::TransportWs);
        assert_eq!(close_code(session.receive(SUB)), close::UNAUTHORIZED);
        assert!(matches!(session.receive(r#"{"type":"ping"}"#), Step::Reply(_)));
        assert_eq!(close_code(session.receive("not json")), close::BAD_REQUEST);

        let mut session = acked(Protocol::TransportWs);
        assert_eq!(close_code(session.receive(r#"{"type":"connection_init"}"#)), close::TOO_MANY_INIT_REQUESTS);
        assert!(matches!(session.receive(SUB), Step::Subscribe { replaces: false, .. }));
        assert_eq!(close_code(session.receive(SUB)), close::SUBSCRIBER_ALREADY_EXISTS);

        let mut session = acked(Protocol::TransportWs);
        session.receive(SUB);
        assert_eq!(
            session.receive(r#"{"type":"complete","id":"1"}"#),
            Step::Unsubscribe { id: "1".into(), reply: None }
        );
        assert_eq!(session.receive(r#"{"type":"complete","id":"1"}"#), Step::Ignore);
        // The id is free again once completed.
        assert!(matches!(session.receive(SUB), Step::Subscribe { .. }));
        let (completes, frame) = session.shutdown();
        assert_eq!(completes.len(), 1);
        assert_eq!(frame.code, close::GOING_AWAY);
    }

    #[test]
    fn legacy_rules_answer_instead_of_closing() {
        let start = r#"{"type":"start","id":"1","payload":{"query":"subscription{x}"}}"#;
        let mut session = ProtocolState::new(Protocol::LegacyWs);
        assert!(matches!(session.receive(start), Step::Reply(text) if text.contains(r#""type":"error""#)));
        assert!(matches!(session.receive("not json"), Step::Reply(text) if text.contains("connection_error")));
        let mut session = acked(Protocol::LegacyWs);
        assert!(matches!(session.receive(start), Step::Subscribe { replaces: false, .. }));
        assert!(matches!(session.receive(start), Step::Subscribe { replaces: true, .. }));
        assert!(matches!(session.receive(r#"{"type":"stop","id":"1"}"#), Step::Unsubscribe { reply: Some(_), .. }));
        assert!(matches!(session.receive(r#"{"type":"connection_terminate"}"#), Step::Close(_)));
    }
}
