//! The WebSocket endpoint: `GET /graphql` with `Upgrade: websocket`, sub-protocols
//! `graphql-transport-ws` and legacy `graphql-ws`.
//!
//! ## Layout
//! - [`handshake`]: the opening handshake and sub-protocol choice.
//! - `socket`: the TCP stream shared by the session and the executions writing through to it.
//! - `connection`: one session, from `connection_init` to close.
//! - [`keepalive`]: pings for every session from one task.
//! - `operations`: the operations a session is running.

mod connection;
pub mod handshake;
pub mod keepalive;
mod operations;
mod socket;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::hub::Hub;
use crate::session::{Admission, ConnectionPlaces};
use handshake::Upgrade;
use socket::SessionSocket;

/// Bytes read from a socket at a time. Client messages are small, and this buffer is allocated
/// for every connection up front (tungstenite's default of 128 KiB would cost 1.3 GB for 10,000
/// idle clients).
const READ_BUFFER_BYTES: usize = 1024;
/// Queued frames are written once this much is buffered, or at the end of a batch.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Answers a WebSocket upgrade: 101 and a session, once the hub admits one more (see
/// `session`); 503 when it does not.
pub fn upgrade(upgrade: Upgrade, hub: Arc<Hub>, places: Option<&ConnectionPlaces>) -> Response {
    let limits = &hub.config.limits;
    let admission = match Admission::new(&hub, places) {
        Ok(admission) => admission,
        Err(refused) => return crate::http::error_response(StatusCode::SERVICE_UNAVAILABLE, &refused.to_string()),
    };
    let response = upgrade.accept();
    let Upgrade { protocol, on_upgrade, .. } = upgrade;
    let max_message = limits.max_message_bytes;
    // tungstenite hands whole frames to the socket, which holds at most
    // `connection_buffer_bytes` of them (and one frame, however large).
    let max_pending = limits.connection_buffer_bytes;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(WRITE_BUFFER_BYTES + 2 * max_message + 1024)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    let sessions = hub.sessions.clone();
    tokio::spawn(sessions.track_future(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => return tracing::debug!(%error, "WebSocket upgrade failed"),
        };
        // The hub's own listener serves every connection as a plain TCP stream.
        let Ok(hyper::upgrade::Parts { io, read_buf, .. }) = upgraded.downcast::<TokioIo<TcpStream>>() else {
            return tracing::error!("WebSocket upgrade on a connection that is not a TCP stream");
        };
        // Copied out, so the HTTP layer's read buffer is freed rather than held by every session.
        let read_ahead = read_buf.to_vec();
        drop(read_buf);
        let socket = SessionSocket::new(io.into_inner(), max_pending);
        let writer = socket.writer();
        let stream = WebSocketStream::from_partially_read(socket, read_ahead, Role::Server, Some(config)).await;
        connection::serve(stream, writer, protocol, admission).await;
    }));
    response
}
