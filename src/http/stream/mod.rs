//! Operations whose results stream in one HTTP response: GraphQL over SSE (graphql-sse,
//! distinct connections) and multipart subscriptions (Apollo's `subscriptionSpec=1.0`).
//!
//! A stream is one more framing of the same shared bytes: the operation starts as a WebSocket
//! client's does (one shared execution per operation key, one source per topic), results
//! arrive in a bounded outbox like any connection's, and a task of its own frames them into
//! the response body. The client ends a stream by closing it; its subscription is released at
//! once. The task ends the stream when the operation completes, when the hub shuts down
//! (SSE `complete`, the closing boundary), when the client stays behind its queue past the
//! slow-consumer policy, or when the body takes no bytes for `limits.write_timeout`.
//!
//! The stream is a client session (see `session`): admitted against `limits.max_connections`,
//! counted in `subhub_connections`, and ended by the hub's shutdown (SSE `complete`, the
//! closing boundary) or by its token's expiry (the transport's error framing, then its end).
//!
//! Bytes are bounded as for WebSocket: `connection_queue` and `connection_buffer_bytes` in the
//! outbox, one chunk of at most [`CHUNK_BYTES`] (or one result) waiting for the body, and
//! hyper's own write buffer.
//!
//! ## Layout
//! - [`framing`]: the bytes of each transport.
//! - [`body`]: the streamed body a session's task writes, under `write_timeout`.
//! - this file: starting a stream, and the task that writes it.

pub mod body;
pub mod framing;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use subhub_protocol::{OperationPayload, Protocol};
use subhub_subscriptions::{Outbound, Outbox, Slot};

pub use framing::Framing;

use super::error_response;
use crate::auth::Identity;
use crate::documents::Prepared;
use crate::hub::Hub;
use crate::operation::{self, Caller, OperationHandle};
use crate::session::{Admission, ClientSession, ConnectionPlaces, SessionEnd, TOKEN_EXPIRED};
use body::{BodyWriter, Gone};

/// Framed bytes are handed to the body once this many are ready (or the outbox is empty).
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Starts a prepared operation and answers with its stream. Refusals that come before any
/// result (the hub shutting down, no place for one more session) are HTTP errors.
pub fn serve(
    hub: &Arc<Hub>,
    framing: Framing,
    payload: &OperationPayload,
    prepared: &Prepared,
    identity: &Identity,
    places: Option<&ConnectionPlaces>,
) -> Response {
    let admission = match Admission::new(hub, places) {
        Ok(admission) => admission,
        Err(refused) => return error_response(StatusCode::SERVICE_UNAVAILABLE, &refused.to_string()),
    };
    let outbox = Outbox::new(hub.outbox_config(), hub.metrics.clone());
    // Streams frame results themselves; the slot's WebSocket prefix is never used.
    let slot = Slot::new(Protocol::TransportWs, "");
    let caller = Caller { identity, init_payload: None };
    let operation = match operation::start(hub, payload, prepared, caller, &outbox, slot.clone()) {
        Ok(operation) => operation,
        Err(full) => return ended(framing, &subhub_protocol::server::error_list(&full.to_string())),
    };
    let (body, response_body) = body::channel(hub);
    let mut session = admission.open(framing.transport());
    session.expires_with(identity);
    let writer = StreamWriter { session, framing, outbox, slot, body };
    hub.sessions.spawn(writer.run(operation));
    session_response(framing, response_body)
}

/// The response that carries a session's stream. The connection closes when the stream ends,
/// so it never serves a request uncounted once its HTTP place went to the session.
pub fn session_response(framing: Framing, body: Body) -> Response {
    let mut response = streaming(framing, body);
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A stream that ends before it starts: the operation's errors, then its end. A document that
/// does not validate is reported so, as graphql-sse requires (`EventSource` cannot read an
/// error response's body).
pub fn ended(framing: Framing, errors_json: &str) -> Response {
    let mut out = Vec::new();
    framing.opening(&mut out);
    framing.errors(&mut out, errors_json);
    streaming(framing, Body::from(out))
}

fn streaming(framing: Framing, body: Body) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(framing.content_type())),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        // Proxies that buffer responses (nginx) would hold the events back.
        (header::HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no")),
    ];
    (StatusCode::OK, headers, body).into_response()
}

/// How a stream ended.
enum End {
    /// The operation completed or failed, or the session's time is up: the last bytes are framed.
    Finished,
    /// The client went away, or took nothing for `write_timeout`.
    Gone,
}

impl From<Gone> for End {
    fn from(Gone: Gone) -> Self {
        End::Gone
    }
}

struct StreamWriter {
    session: ClientSession,
    framing: Framing,
    outbox: Arc<Outbox>,
    slot: Arc<Slot>,
    body: BodyWriter,
}

impl StreamWriter {
    async fn run(mut self, operation: OperationHandle) {
        let end = self.write().await;
        // The subscription is released before the last bytes wait for a slow client.
        drop(operation);
        self.outbox.close();
        if let End::Finished = end {
            self.body.finish().await;
        }
    }

    async fn write(&mut self) -> End {
        let hub = self.session.hub().clone();
        let limits = &hub.config.limits;
        let period = match self.framing {
            Framing::Sse => limits.keepalive,
            Framing::Multipart => limits.multipart_heartbeat,
        };
        self.framing.opening(&mut self.body.out);
        if let Err(gone) = self.body.flush().await {
            return gone.into();
        }
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let outbox = self.outbox.clone();
        let ready = outbox.ready();
        let mut ending = self.session.ending();
        tokio::pin!(ready);
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                biased;
                end = &mut ending => {
                    match end {
                        SessionEnd::Shutdown => self.framing.complete(&mut self.body.out),
                        SessionEnd::TokenExpired => self.framing.transport_error(&mut self.body.out, TOKEN_EXPIRED),
                    }
                    return End::Finished;
                }
                () = outbox.too_slow() => {
                    hub.metrics.slow_consumer_closes.fetch_add(1, Relaxed);
                    self.framing.transport_error(&mut self.body.out, "the client stayed behind its queue for too long");
                    return End::Finished;
                }
                () = self.body.closed() => return End::Gone,
                _ = beat.tick() => {
                    self.framing.heartbeat(&mut self.body.out);
                    if let Err(gone) = self.body.flush().await {
                        return gone.into();
                    }
                }
                () = &mut ready => {
                    ready.set(outbox.ready());
                    loop {
                        // One at a time: a chunk holds at most `CHUNK_BYTES` or one result.
                        outbox.drain_into(&mut batch, 1);
                        let Some(message) = batch.pop() else { break };
                        if self.frame(message) {
                            return End::Finished;
                        }
                        if self.body.out.len() >= CHUNK_BYTES {
                            if let Err(gone) = self.body.flush().await {
                                return gone.into();
                            }
                        }
                    }
                    outbox.finish_writing();
                    if let Err(gone) = self.body.flush().await {
                        return gone.into();
                    }
                }
            }
        }
    }

    /// Frames one message; true when it ends the operation.
    fn frame(&mut self, message: Outbound) -> bool {
        if !self.slot.is_active() {
            return false;
        }
        let out = &mut self.body.out;
        match message {
            Outbound::Next { payload, .. } => {
                self.framing.next(out, &payload);
                self.session.hub().metrics.deliveries.fetch_add(1, Relaxed);
                false
            }
            Outbound::Error { errors, .. } => {
                self.framing.errors(out, &errors);
                true
            }
            Outbound::Complete { .. } => {
                self.framing.complete(out);
                true
            }
        }
    }
}
