//! One client connection: reads frames into the protocol session, starts and stops
//! operations, and writes everything queued for the socket in one write.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::OptionFuture;
use futures_util::{FutureExt, SinkExt, StreamExt};
use subhub_protocol::{server, CloseFrame, OperationPayload, Protocol, ProtocolState, Step};
use subhub_subscriptions::{Outbound, Outbox, Refusal, Slot, Transport};
use tokio::time::{sleep, timeout};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as WsCloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use super::keepalive::Liveness;
use super::operations::Operations;
use super::socket::{SessionSocket, SocketWriter};
use crate::auth::{Auth, Identity};
use crate::hub::Hub;
use crate::operation::{self, Caller};
use crate::rate::RateLimit;
use crate::session::{Admission, ClientSession, SessionEnd};

/// Queued messages written per batch at most, so one busy socket cannot starve its reads.
const MAX_BATCH: usize = 256;
/// How long a close frame or the last messages may take to go out before the socket is dropped.
const CLOSING_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// After the hub's close frame, what the client still sends is read and discarded until it
/// closes, pauses this long, or [`LINGER_TIME`] passes (nginx's `lingering_timeout`).
const LINGER_IDLE: Duration = Duration::from_secs(2);
/// The longest a closing connection is drained (nginx's `lingering_time`).
const LINGER_TIME: Duration = Duration::from_secs(10);

/// How a session ends.
enum Exit {
    /// Send this close frame, and wait for the client's.
    Close(CloseFrame),
    /// Send this close frame; what the client sends from here cannot be read as frames (it is
    /// in the middle of one over the limit), so it is discarded until the client closes.
    CloseUnread(CloseFrame),
    /// The client closed or the socket broke: nothing more to send.
    Gone,
}

type WebSocket = WebSocketStream<SessionSocket>;

pub async fn serve(mut socket: WebSocket, writer: Arc<SocketWriter>, protocol: Option<Protocol>, admission: Admission) {
    let Some(protocol) = protocol else {
        close(&mut socket, CloseFrame::subprotocol_not_acceptable(), Input::Frames).await;
        return;
    };
    let session = admission.open(Transport::Ws(protocol));
    let hub = session.hub().clone();
    let outbox = Outbox::new(hub.outbox_config(), hub.metrics.clone());
    let liveness = hub.keepalive.enroll(writer.clone());
    outbox.write_through(writer.clone());
    let mut connection = Connection {
        socket,
        session,
        protocol: ProtocolState::new(protocol),
        operations: Operations::default(),
        outbox,
        batch: Vec::with_capacity(0),
        liveness,
        writer,
        identity: Identity::default(),
        subscribes: RateLimit::per_second(hub.config.limits.subscribe_rate),
        messages: RateLimit::per_second(hub.config.limits.message_rate),
        init_payload: None,
        hub: hub.clone(),
    };
    let exit = connection.run().await;
    connection.finish(exit).await;
}

struct Connection {
    socket: WebSocket,
    /// Its place among the hub's sessions, and when its time is up.
    session: ClientSession,
    /// What the client's messages mean in the connection's phase.
    protocol: ProtocolState,
    operations: Operations,
    outbox: Arc<Outbox>,
    batch: Vec<Outbound>,
    /// Its part in the hub's keepalive.
    liveness: Arc<Liveness>,
    /// The socket's shared write side, watched for stalls.
    writer: Arc<SocketWriter>,
    /// Who the client authenticated as in `connection_init`.
    identity: Identity,
    /// `limits.subscribe_rate`.
    subscribes: RateLimit,
    /// `limits.message_rate`.
    messages: RateLimit,
    /// The client's `connection_init` payload, whose `forward_init` keys go upstream.
    init_payload: Option<serde_json::Map<String, serde_json::Value>>,
    hub: Arc<Hub>,
}

impl Connection {
    async fn run(&mut self) -> Exit {
        let limits = &self.hub.config.limits;
        // Dropped once the client is acknowledged: a timer left in the wheel would still wake
        // the session when it ran out, one wake-up per connection for nothing.
        let mut init_deadline = std::pin::pin!(Some(sleep(limits.connection_init_timeout)));
        // The hub's shutdown, and once the client is acknowledged its token's expiry.
        let mut ending = self.session.ending();
        // Armed while the client has sent faster than `limits.message_rate`: the hub reads
        // nothing from it until then, and TCP slows the client down.
        let mut throttled = std::pin::pin!(None::<tokio::time::Sleep>);
        let outbox = self.outbox.clone();
        // The waits live across iterations: re-registering them on every wake-up costs more
        // than the delivery itself. Only `ready` is armed again, after it fires.
        let too_slow = outbox.too_slow();
        let ready = outbox.ready();
        let liveness = self.liveness.clone();
        let silent = liveness.silent();
        tokio::pin!(too_slow, ready, silent);
        loop {
            if init_deadline.is_some() && self.protocol.is_acknowledged() {
                init_deadline.set(None);
                self.session.expires_with(&self.identity);
                ending = self.session.ending();
            }
            tokio::select! {
                biased;
                end = &mut ending => match end {
                    SessionEnd::Shutdown => return self.shutdown().await,
                    SessionEnd::TokenExpired => return Exit::Close(CloseFrame::token_expired()),
                },
                () = &mut too_slow => return self.too_slow(),
                Some(()) = OptionFuture::from(init_deadline.as_mut().as_pin_mut()), if init_deadline.is_some() => {
                    return Exit::Close(CloseFrame::init_timeout());
                }
                message = self.socket.next(), if throttled.is_none() => {
                    self.liveness.heard();
                    let exit = match message {
                        None => Some(Exit::Gone),
                        Some(Err(error)) => Some(self.read_failed(error)),
                        Some(Ok(message)) => self.on_message(message).await,
                    };
                    if let Some(exit) = exit {
                        return exit;
                    }
                    if let Some(debt) = self.messages.take() {
                        self.hub.metrics.throttled.fetch_add(1, Relaxed);
                        throttled.set(Some(sleep(debt)));
                    }
                }
                Some(()) = OptionFuture::from(throttled.as_mut().as_pin_mut()), if throttled.is_some() => {
                    throttled.set(None);
                }
                () = &mut ready => {
                    ready.set(outbox.ready());
                    if let Err(exit) = self.write_queued().await {
                        return exit;
                    }
                }
                () = &mut silent => {
                    tracing::debug!("client silent for a keepalive interval after a ping; dropping it");
                    return Exit::Gone;
                }
            }
        }
    }

    async fn on_message(&mut self, message: Message) -> Option<Exit> {
        match message {
            Message::Text(text) => self.on_text(text.as_str()).await,
            // Binary frames are read as text; one that is not UTF-8 is as invalid as bad JSON,
            // and the empty string takes that path.
            Message::Binary(bytes) => self.on_text(std::str::from_utf8(&bytes).unwrap_or("")).await,
            // tungstenite answers pings itself; any frame proves the client alive.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => None,
            // tungstenite has queued the close reply; flush it so the client sees a clean close.
            Message::Close(_) => {
                // Nothing may be written through after the close reply.
                self.outbox.close();
                let _ = timeout(CLOSING_WRITE_TIMEOUT, self.socket.flush()).await;
                Some(Exit::Gone)
            }
        }
    }

    async fn on_text(&mut self, text: &str) -> Option<Exit> {
        match self.protocol.receive(text) {
            Step::Ignore => None,
            Step::Reply(reply) => self.send(reply).await.err(),
            Step::Close(frame) => Some(Exit::Close(frame)),
            Step::Init(payload) => {
                let token = Auth::token_in_payload(payload.as_ref());
                match self.hub.identify(token) {
                    Ok(identity) => {
                        self.identity = identity;
                        self.init_payload = self.hub.upstreams.forwarded(payload);
                    }
                    Err(error) => {
                        tracing::debug!(%error, "connection_init refused");
                        self.hub.metrics.refuse(Refusal::Auth);
                        let (reply, frame) = self.protocol.reject(&error.to_string());
                        if let Some(reply) = reply {
                            let _ = self.send(reply).await;
                        }
                        return Some(Exit::Close(frame));
                    }
                }
                for message in self.protocol.acknowledge() {
                    if let Err(exit) = self.send(message.to_owned()).await {
                        return Some(exit);
                    }
                }
                if self.protocol.protocol() == Protocol::LegacyWs {
                    self.liveness.send_ka();
                }
                None
            }
            Step::Subscribe { id, payload, replaces } => {
                tracing::trace!(id, "subscribe");
                if replaces {
                    self.operations.stop(&id);
                }
                self.start(&id, &payload).await.err()
            }
            Step::Unsubscribe { id, reply } => {
                tracing::trace!(id, "unsubscribe");
                self.operations.stop(&id);
                match reply {
                    Some(reply) => self.send(reply).await.err(),
                    None => None,
                }
            }
        }
    }

    /// Starts an operation: a subscription joins the shared execution of its key, a query or
    /// mutation runs on its own. Results arrive through the outbox.
    async fn start(&mut self, id: &str, payload: &OperationPayload) -> Result<(), Exit> {
        let limits = &self.hub.config.limits;
        if !self.subscribes.admit() {
            let rate = limits.subscribe_rate;
            self.hub.metrics.refuse(Refusal::Rate);
            let message =
                format!("too many subscribes: at most {rate} per second on a connection (limits.subscribe_rate)");
            return self.refuse(id, &server::error_list(&message)).await;
        }
        let most = limits.max_subscriptions_per_connection;
        if self.operations.len() >= most {
            self.hub.metrics.refuse(Refusal::Limit);
            let message =
                format!("this connection runs {most} operations, its limit (limits.max_subscriptions_per_connection)");
            return self.refuse(id, &server::error_list(&message)).await;
        }
        let prepared = match self.hub.prepare(payload) {
            Ok(prepared) => prepared,
            Err(refused) => return self.refuse(id, refused.errors_json()).await,
        };
        let slot = Slot::new(self.protocol.protocol(), id);
        let caller = Caller { identity: &self.identity, init_payload: self.init_payload.as_ref() };
        let running = match operation::start(&self.hub, payload, &prepared, caller, &self.outbox, slot) {
            Ok(running) => running,
            Err(full) => return self.refuse(id, &server::error_list(&full.to_string())).await,
        };
        self.operations.insert(id, running);
        Ok(())
    }

    /// Ends an operation before it started: an `error` for its id.
    async fn refuse(&mut self, id: &str, errors_json: &str) -> Result<(), Exit> {
        self.protocol.operation_ended(id);
        self.send(server::error(id, errors_json)).await
    }

    /// Writes what the outbox holds, batch by batch, each batch flushed once, then hands `next`
    /// messages back to the write-through path.
    async fn write_queued(&mut self) -> Result<(), Exit> {
        loop {
            self.outbox.drain_into(&mut self.batch, MAX_BATCH);
            if self.batch.is_empty() {
                // Also the rest of a frame that was written through in part.
                self.flush().await?;
                if self.outbox.finish_writing() {
                    return Ok(());
                }
                continue;
            }
            let mut deliveries = 0;
            let mut batch = std::mem::take(&mut self.batch);
            for message in batch.drain(..) {
                let slot = message.slot();
                if !slot.is_active() {
                    continue;
                }
                let text = match &message {
                    Outbound::Next { slot, payload } => {
                        deliveries += 1;
                        slot.prefix.frame(payload)
                    }
                    Outbound::Error { slot, errors } => {
                        self.ended(slot);
                        server::error(&slot.id, errors)
                    }
                    Outbound::Complete { slot } => {
                        self.ended(slot);
                        server::complete(&slot.id)
                    }
                };
                if self.socket.feed(Message::Text(text.into())).await.is_err() {
                    return Err(Exit::Gone);
                }
            }
            self.batch = batch;
            self.flush().await?;
            self.hub.metrics.deliveries.fetch_add(deliveries, Relaxed);
        }
    }

    fn ended(&mut self, slot: &Arc<Slot>) {
        if self.operations.ended(slot) {
            self.protocol.operation_ended(&slot.id);
        }
    }

    /// Flushes the socket; a client that stopped reading cannot hold the session past its
    /// slow-consumer policy or the hub's shutdown.
    async fn flush(&mut self) -> Result<(), Exit> {
        // Usually the socket takes everything at once, and there is nothing else to watch for.
        if let Some(result) = self.socket.flush().now_or_never() {
            return result.map_err(|_| Exit::Gone);
        }
        let outbox = self.outbox.clone();
        let shutdown = self.hub.shutdown.clone();
        let writer = self.writer.clone();
        tokio::select! {
            result = self.socket.flush() => result.map_err(|_| Exit::Gone),
            () = outbox.too_slow() => Err(self.too_slow()),
            () = writer.stalled(self.hub.config.limits.write_timeout) => Err(self.stalled()),
            () = shutdown.cancelled() => Err(Exit::Gone),
        }
    }

    async fn send(&mut self, text: String) -> Result<(), Exit> {
        if self.socket.feed(Message::Text(text.into())).await.is_err() {
            return Err(Exit::Gone);
        }
        self.flush().await
    }

    /// A frame over `max_message_bytes` is answered 1009 (and counted); any other read error
    /// means the client is gone.
    fn read_failed(&self, error: tungstenite::Error) -> Exit {
        if matches!(error, tungstenite::Error::Capacity(_)) {
            self.hub.metrics.refuse(Refusal::Limit);
            Exit::CloseUnread(CloseFrame::message_too_big())
        } else {
            Exit::Gone
        }
    }

    /// The client took no byte for `write_timeout`: no close frame could reach it either.
    fn stalled(&self) -> Exit {
        self.hub.metrics.stalled_closes.fetch_add(1, Relaxed);
        Exit::Gone
    }

    fn too_slow(&self) -> Exit {
        self.hub.metrics.slow_consumer_closes.fetch_add(1, Relaxed);
        Exit::Close(CloseFrame::slow_consumer())
    }

    /// The hub is going away: `complete` every operation, then close 1001.
    async fn shutdown(&mut self) -> Exit {
        self.operations.clear();
        let (completes, frame) = self.protocol.shutdown();
        let write = async {
            for text in completes {
                self.socket.feed(Message::Text(text.into())).await?;
            }
            self.socket.flush().await
        };
        if timeout(CLOSING_WRITE_TIMEOUT, write).await.is_err() {
            return Exit::Gone;
        }
        Exit::Close(frame)
    }

    async fn finish(&mut self, exit: Exit) {
        self.operations.clear();
        self.outbox.close();
        match exit {
            Exit::Close(frame) => close(&mut self.socket, frame, Input::Frames).await,
            Exit::CloseUnread(frame) => close(&mut self.socket, frame, Input::Unreadable).await,
            Exit::Gone => {}
        }
    }
}

/// What the client's input is when the hub closes.
enum Input {
    /// Frames: the client's close frame ends the closing handshake.
    Frames,
    /// Unreadable from here on.
    Unreadable,
}

/// Sends the close frame, then waits until the client has read it: its close frame answers,
/// or it closes the connection. A client whose input cannot be read as frames, or that sends
/// anything but its close frame, is drained instead (see [`SessionSocket::linger`]): closing
/// with its bytes unread would reset the connection under the close frame.
async fn close(socket: &mut WebSocket, frame: CloseFrame, input: Input) {
    let message = Message::Close(Some(WsCloseFrame { code: CloseCode::from(frame.code), reason: frame.reason.into() }));
    if !matches!(timeout(CLOSING_WRITE_TIMEOUT, socket.send(message)).await, Ok(Ok(()))) {
        return;
    }
    if let Input::Frames = input {
        // Done when the client answers, closes, or goes quiet (nothing unread, so nothing to
        // reset); input that is not frames is drained below.
        let answered = async {
            loop {
                match timeout(LINGER_IDLE, socket.next()).await {
                    Err(_) | Ok(None) | Ok(Some(Ok(Message::Close(_)))) => return true,
                    Ok(Some(Err(_))) => return false,
                    Ok(Some(Ok(_))) => {}
                }
            }
        };
        if let Ok(true) = timeout(LINGER_TIME, answered).await {
            return;
        }
    }
    socket.get_mut().linger(LINGER_IDLE, LINGER_TIME).await;
}
