//! # subhub-protocol
//!
//! Wire types and session rules of the two GraphQL-over-WebSocket protocols the hub speaks:
//! `graphql-transport-ws` (enisdenjo/graphql-ws) and the legacy `graphql-ws`
//! (subscriptions-transport-ws). Nothing here does IO or knows a web framework: the server, the
//! upstream client and the load generator all share these types.
//!
//! ## Layout
//! - [`canonical`]: JSON with sorted keys, for the keys that decide sharing.
//! - [`client`]: the client side, for upstream servers: client messages built, server messages read.
//! - [`close`]: close codes and reasons, cut to the 123 bytes a close frame can carry.
//! - [`message`]: client messages of both protocols, parsed and validated.
//! - [`server`]: server messages, and the `next` frame built around shared payload bytes.
//! - [`session`]: the per-connection state machine (init, ack, active ids, shutdown).

pub mod canonical;
pub mod client;
pub mod close;
pub mod message;
pub mod server;
pub mod session;

pub use close::CloseFrame;
pub use message::{ClientMessage, InvalidMessage, OperationPayload};
pub use server::FramePrefix;
pub use session::{ProtocolState, Step};

/// The WebSocket sub-protocol a connection negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `graphql-transport-ws`, the current protocol of graphql-ws.
    TransportWs,
    /// `graphql-ws`, the legacy protocol of subscriptions-transport-ws.
    LegacyWs,
}

impl Protocol {
    /// Sub-protocol names in order of preference.
    pub const NAMES: [&'static str; 2] = ["graphql-transport-ws", "graphql-ws"];

    /// The sub-protocol name as it appears in `Sec-WebSocket-Protocol`.
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::TransportWs => "graphql-transport-ws",
            Protocol::LegacyWs => "graphql-ws",
        }
    }

    /// The protocol named by a `Sec-WebSocket-Protocol` value.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "graphql-transport-ws" => Some(Protocol::TransportWs),
            "graphql-ws" => Some(Protocol::LegacyWs),
            _ => None,
        }
    }
}
