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
//! Bytes are bounded as for WebSocket: `connection_queue` and `connection_buffer_bytes` in the
//! outbox, one chunk of at most [`CHUNK_BYTES`] (or one result) waiting for the body, and
//! hyper's own write buffer.
//!
//! ## Layout
//! - [`framing`]: the bytes of each transport.
//! - this file: starting a stream, and the task that writes it.

pub mod framing;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use subhub_protocol::{OperationPayload, Protocol};
use subhub_subscriptions::{Outbound, Outbox, Slot};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

pub use framing::Framing;

use super::error_response;
use crate::auth::Identity;
use crate::documents::Prepared;
use crate::hub::Hub;
use crate::operation::{self, Caller, Running};
use crate::server::HttpPlace;

/// Framed bytes are handed to the body once this many are ready (or the outbox is empty).
pub const CHUNK_BYTES: usize = 64 * 1024;
/// How long the last bytes of a stream ended by shutdown may take to go out.
const CLOSING_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Starts a prepared operation and answers with its stream. Refusals that come before any
/// result (the hub shutting down, no place for one more session) are HTTP errors.
pub fn serve(
    hub: &Arc<Hub>,
    framing: Framing,
    payload: &OperationPayload,
    prepared: &Prepared,
    identity: &Identity,
    place: Option<&HttpPlace>,
) -> Response {
    if hub.shutdown.is_cancelled() {
        return error_response(StatusCode::SERVICE_UNAVAILABLE, "the hub is shutting down");
    }
    let Some(permit) = hub.admit_session() else {
        let most = hub.config.limits.max_connections;
        let message = format!("the hub serves {most} connections, its limit (limits.max_connections); retry later");
        return error_response(StatusCode::SERVICE_UNAVAILABLE, &message);
    };
    let outbox = Outbox::new(hub.outbox_config(), hub.metrics.clone());
    // Streams frame results themselves; the slot's WebSocket prefix is never used.
    let slot = Slot::new(Protocol::TransportWs, "");
    let caller = Caller { identity, init_payload: None };
    let running = match operation::start(hub, payload, prepared, caller, &outbox, slot.clone()) {
        Ok(running) => running,
        Err(full) => return ended(framing, &subhub_protocol::server::error_list(&full.to_string())),
    };
    let (body, chunks) = mpsc::channel::<Bytes>(1);
    let writer = StreamWriter { hub: hub.clone(), framing, outbox, slot, body, out: Vec::new() };
    hub.sessions.spawn(writer.run(running, permit));
    // The stream counts as a session from here, not as one of the HTTP connections; the
    // connection closes when the stream ends, so it never serves a request uncounted.
    if let Some(place) = place {
        place.release();
    }
    let mut response = streaming(
        framing,
        Body::from_stream(futures_util::stream::unfold(chunks, |mut chunks| async move {
            let chunk = chunks.recv().await?;
            Some((Ok::<_, std::convert::Infallible>(chunk), chunks))
        })),
    );
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
    /// The operation completed or failed, or the hub is shutting down: the last bytes are framed.
    Finished,
    /// The client went away, or took nothing for `write_timeout`.
    Gone,
}

struct StreamWriter {
    hub: Arc<Hub>,
    framing: Framing,
    outbox: Arc<Outbox>,
    slot: Arc<Slot>,
    body: mpsc::Sender<Bytes>,
    /// Framed bytes not yet handed to the body.
    out: Vec<u8>,
}

impl StreamWriter {
    async fn run(mut self, running: Running, _permit: OwnedSemaphorePermit) {
        let transport = self.framing.transport();
        self.hub.metrics.connection_opened(transport);
        let end = self.write().await;
        // The subscription is released before the last bytes wait for a slow client.
        drop(running);
        self.outbox.close();
        if let End::Finished = end {
            let _ =
                tokio::time::timeout(CLOSING_WRITE_TIMEOUT, self.body.send(std::mem::take(&mut self.out).into())).await;
        }
        self.hub.metrics.connection_closed(transport);
    }

    async fn write(&mut self) -> End {
        let limits = &self.hub.config.limits;
        let period = match self.framing {
            Framing::Sse => limits.keepalive,
            Framing::Multipart => limits.multipart_heartbeat,
        };
        self.framing.opening(&mut self.out);
        if let Err(end) = self.flush().await {
            return end;
        }
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (hub, outbox) = (self.hub.clone(), self.outbox.clone());
        let ready = outbox.ready();
        tokio::pin!(ready);
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                biased;
                () = hub.shutdown.cancelled() => {
                    self.framing.complete(&mut self.out);
                    return End::Finished;
                }
                () = outbox.too_slow() => {
                    hub.metrics.slow_consumer_closes.fetch_add(1, Relaxed);
                    self.framing.transport_error(&mut self.out, "the client stayed behind its queue for too long");
                    return End::Finished;
                }
                () = self.body.closed() => return End::Gone,
                _ = beat.tick() => {
                    self.framing.heartbeat(&mut self.out);
                    if let Err(end) = self.flush().await {
                        return end;
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
                        if self.out.len() >= CHUNK_BYTES {
                            if let Err(end) = self.flush().await {
                                return end;
                            }
                        }
                    }
                    outbox.finish_writing();
                    if let Err(end) = self.flush().await {
                        return end;
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
        match message {
            Outbound::Next { payload, .. } => {
                self.framing.next(&mut self.out, &payload);
                self.hub.metrics.deliveries.fetch_add(1, Relaxed);
                false
            }
            Outbound::Error { errors, .. } => {
                self.framing.errors(&mut self.out, &errors);
                true
            }
            Outbound::Complete { .. } => {
                self.framing.complete(&mut self.out);
                true
            }
        }
    }

    /// Hands the framed bytes to the body, waiting while the client reads, at most
    /// `write_timeout` without progress.
    async fn flush(&mut self) -> Result<(), End> {
        if self.out.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.out));
        let write_timeout = self.hub.config.limits.write_timeout;
        // Biased: bytes the body can take at once go out even when the hub is shutting down.
        tokio::select! {
            biased;
            sent = self.body.send(chunk) => sent.map_err(|_| End::Gone),
            () = tokio::time::sleep(write_timeout) => {
                self.hub.metrics.stalled_closes.fetch_add(1, Relaxed);
                Err(End::Gone)
            }
            // A client that does not read holds no one up past shutdown.
            () = self.hub.shutdown.cancelled() => Err(End::Gone),
        }
    }
}
