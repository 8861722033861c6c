//! The WebSocket endpoint: `GET /graphql` with `Upgrade: websocket`, sub-protocols
//! `graphql-transport-ws` and legacy `graphql-ws`.

mod connection;
mod operations;

use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use subhub_protocol::Protocol;

use crate::hub::Hub;

/// Bytes read from a socket at a time. Client messages are small, and this buffer is allocated
/// for every connection up front (tungstenite's default of 128 KiB would cost 1.3 GB for 10,000
/// idle clients).
const READ_BUFFER_BYTES: usize = 1024;
/// Queued frames are written once this much is buffered, or at the end of a batch.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

pub fn upgrade(ws: WebSocketUpgrade, hub: Arc<Hub>) -> Response {
    let limits = &hub.config.limits;
    if hub.metrics.connections() >= limits.max_connections as i64 {
        let body = serde_json::json!({"errors": [{"message": "too many connections; retry later"}]});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    if hub.shutdown.is_cancelled() {
        let body = serde_json::json!({"errors": [{"message": "the hub is shutting down"}]});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    let max_message = limits.max_message_bytes;
    ws.protocols(Protocol::NAMES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(WRITE_BUFFER_BYTES + 2 * max_message + 1024)
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .on_upgrade(move |socket| {
            let protocol = socket.protocol().and_then(|p| p.to_str().ok()).and_then(Protocol::from_name);
            let sessions = hub.sessions.clone();
            sessions.track_future(connection::serve(socket, protocol, hub))
        })
}
