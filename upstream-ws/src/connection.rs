//! One WebSocket connection to an upstream, shared by every forwarded subscription with the same
//! credentials, on the shared reconnect loop ([`subhub_core::session`]). It offers both
//! sub-protocols and speaks the one the server picks, re-sends every live subscription after a
//! reconnect, and pings: no frame for two keepalive intervals means the connection is lost, and
//! so does a write the upstream does not take within one (an upstream that stopped reading).
//! A refusal that may pass (HTTP 429, 502, 503 or 504 from a proxy in front of the upstream) is
//! retried like an unreachable upstream; only a rejection or a server that speaks no GraphQL
//! protocol ends the connection's subscriptions for good.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value};
use subhub_core::{ConnectError, Heartbeat, Reconnect, SessionEnd, Stopped};
use subhub_protocol::client::{self, ServerMessage};
use subhub_protocol::{OperationPayload, Protocol};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::UpstreamError;
use crate::stats::UpstreamStats;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long connecting and `connection_ack` may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an upstream `complete` is held before it is passed on. A server going away
/// completes every subscription and then closes with 1001 (or 1012): those subscriptions are
/// re-sent after reconnecting instead, so clients stay subscribed across an upstream restart.
const COMPLETE_GRACE: Duration = Duration::from_millis(250);

/// What an upstream sent for one subscription.
#[derive(Clone, Debug)]
pub enum Item {
    Next(Value),
    /// Errors (a JSON array); the subscription is over.
    Error(Value),
    Complete,
}

/// How to reach one upstream with one set of credentials.
#[derive(Clone, Debug)]
pub struct Target {
    pub upstream: Arc<str>,
    pub url: String,
    pub init_payload: Option<Map<String, Value>>,
    pub keepalive: Duration,
    pub stats: Arc<UpstreamStats>,
    /// Largest message the upstream may send: a larger one ends the connection (reconnected),
    /// rather than sit in the hub's buffers.
    pub max_message_bytes: usize,
}

pub enum Request {
    Start {
        id: u64,
        /// Boxed: a request waits in a channel, and the operation is by far its largest part.
        operation: Box<OperationPayload>,
        results: broadcast::Sender<Arc<Item>>,
        live: oneshot::Sender<Result<(), UpstreamError>>,
    },
    Stop {
        id: u64,
    },
}

struct Running {
    operation: OperationPayload,
    results: broadcast::Sender<Arc<Item>>,
}

/// HTTP statuses a proxy in front of an upstream answers while it passes: retried.
const TRANSIENT_STATUSES: [u16; 4] = [429, 502, 503, 504];

/// Opens the socket and completes `connection_init`.
pub async fn connect(target: &Target) -> Result<(Socket, Protocol), UpstreamError> {
    let unreachable = |reason: String| UpstreamError::Unreachable {
        upstream: target.upstream.to_string(),
        url: target.url.clone(),
        reason,
    };
    let not_graphql = |reason: String| UpstreamError::NotGraphql {
        upstream: target.upstream.to_string(),
        url: target.url.clone(),
        reason,
    };
    let mut request = target.url.as_str().into_client_request().map_err(|e| unreachable(e.to_string()))?;
    let offered = Protocol::NAMES.join(", ");
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", offered.parse().map_err(|_| unreachable("bad header".into()))?);
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(target.max_message_bytes))
        .max_frame_size(Some(target.max_message_bytes));
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), false);
    let connected = tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await;
    let (mut socket, response) = match connected {
        Err(_) => return Err(unreachable("no answer within 10s".into())),
        Ok(Err(WsError::Io(error))) => return Err(unreachable(error.to_string())),
        Ok(Err(WsError::Http(response))) if TRANSIENT_STATUSES.contains(&response.status().as_u16()) => {
            return Err(unreachable(format!("answered HTTP {}", response.status())))
        }
        Ok(Err(WsError::Http(response))) => {
            return Err(not_graphql(format!("answered HTTP {} instead of a WebSocket", response.status())))
        }
        Ok(Err(WsError::Protocol(_))) => {
            return Err(not_graphql("selected neither graphql-transport-ws nor graphql-ws".into()))
        }
        Ok(Err(error)) => return Err(unreachable(error.to_string())),
        Ok(Ok(pair)) => pair,
    };
    let protocol = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .and_then(Protocol::from_name)
        .ok_or_else(|| not_graphql("selected neither graphql-transport-ws nor graphql-ws".into()))?;
    send(&mut socket, client::connection_init(target.init_payload.as_ref()), HANDSHAKE_TIMEOUT)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let acknowledged = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => match ServerMessage::parse(protocol, &text) {
                    Ok(ServerMessage::ConnectionAck) => return Ok(()),
                    Ok(ServerMessage::Ping(_)) => send(&mut socket, r#"{"type":"pong"}"#.into(), HANDSHAKE_TIMEOUT)
                        .await
                        .map_err(|e| unreachable(e.to_string()))?,
                    Ok(ServerMessage::KeepAlive | ServerMessage::Pong) => {}
                    Ok(ServerMessage::ConnectionError(payload)) => return Err(rejected(target, &payload.to_string())),
                    Ok(other) => return Err(not_graphql(format!("sent {other:?} before connection_ack"))),
                    Err(error) => return Err(not_graphql(error.to_string())),
                },
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) =
                        frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
                    return Err(if code == 4403 || code == 4401 {
                        rejected(target, &format!("closed {code} {reason}"))
                    } else {
                        unreachable(format!("closed {code} {reason} during connection_init"))
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(unreachable(error.to_string())),
                None => return Err(unreachable("closed during connection_init".into())),
            }
        }
    })
    .await;
    match acknowledged {
        Ok(Ok(())) => Ok((socket, protocol)),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(not_graphql("no connection_ack within 10s".into())),
    }
}

fn rejected(target: &Target, reason: &str) -> UpstreamError {
    UpstreamError::Rejected { upstream: target.upstream.to_string(), reason: reason.to_owned() }
}

/// Sends one message; an upstream that does not take it within `deadline` is lost.
async fn send(socket: &mut Socket, text: String, deadline: Duration) -> Result<(), WsError> {
    write(socket, Message::Text(text.into()), deadline).await
}

async fn write(socket: &mut Socket, message: Message, deadline: Duration) -> Result<(), WsError> {
    match tokio::time::timeout(deadline, socket.send(message)).await {
        Ok(sent) => sent,
        Err(_) => {
            Err(WsError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "the upstream took no write in time")))
        }
    }
}

/// The connection's task: runs until the pool drops its request sender.
pub async fn run(target: Target, mut requests: mpsc::UnboundedReceiver<Request>) {
    let mut connection = Connection { target, running: BTreeMap::new(), waiting: Vec::new(), refusal: None };
    if subhub_core::run(&mut connection, &mut requests, Reconnect::default()).await == Stopped::Refused {
        connection.refused(requests).await;
    }
}

/// The state a connection keeps across its sessions.
struct Connection {
    target: Target,
    running: BTreeMap<u64, Running>,
    /// Starts confirmed once the next session has sent them.
    waiting: Vec<oneshot::Sender<Result<(), UpstreamError>>>,
    /// Why the upstream refused the connection for good.
    refusal: Option<UpstreamError>,
}

impl subhub_core::Session for Connection {
    type Request = Request;
    type Connection = (Socket, Protocol);
    type Error = UpstreamError;
    const KIND: &'static str = "upstream";

    fn name(&self) -> &str {
        &self.target.upstream
    }

    async fn connect(&mut self) -> Result<(Socket, Protocol), ConnectError<UpstreamError>> {
        match connect(&self.target).await {
            Ok(connected) => {
                self.target.stats.failing.store(false, Relaxed);
                Ok(connected)
            }
            Err(error @ (UpstreamError::Rejected { .. } | UpstreamError::NotGraphql { .. })) => {
                self.refusal = Some(error);
                Err(ConnectError::Refused)
            }
            Err(error) => {
                self.target.stats.failing.store(true, Relaxed);
                Err(ConnectError::Retry(error))
            }
        }
    }

    async fn serve(
        &mut self,
        (socket, protocol): (Socket, Protocol),
        requests: &mut mpsc::UnboundedReceiver<Request>,
    ) -> SessionEnd {
        self.target.stats.connections.fetch_add(1, Relaxed);
        let end = session(&self.target, socket, protocol, requests, &mut self.running, &mut self.waiting).await;
        self.target.stats.connections.fetch_sub(1, Relaxed);
        match end {
            Err(refusal) => {
                self.refusal = Some(refusal);
                SessionEnd::Refused
            }
            Ok(end) => end,
        }
    }

    /// While waiting out the backoff, starts are kept: they are sent once reconnected.
    fn offline(&mut self, request: Request) {
        match request {
            Request::Start { id, operation, results, live } => {
                self.running.insert(id, Running { operation: *operation, results });
                self.waiting.push(live);
            }
            Request::Stop { id } => {
                self.running.remove(&id);
            }
        }
    }
}

impl Connection {
    /// The upstream refused the connection for good: every subscription and waiter hears so,
    /// and so does every later start until the pool lets this connection go.
    async fn refused(mut self, mut requests: mpsc::UnboundedReceiver<Request>) {
        let Some(error) = self.refusal.take() else { return };
        tracing::warn!(upstream = %self.target.upstream, %error, "upstream refused the connection");
        let errors = error.client_errors();
        for (_, subscription) in std::mem::take(&mut self.running) {
            let _ = subscription.results.send(Arc::new(Item::Error(errors.clone())));
        }
        for live in self.waiting.drain(..) {
            let _ = live.send(Err(error.clone()));
        }
        while let Some(request) = requests.recv().await {
            if let Request::Start { live, .. } = request {
                let _ = live.send(Err(error.clone()));
            }
        }
    }
}

/// Completions held when a session ends are not a restart's: they are passed on.
type Completing = Vec<(u64, Running, tokio::time::Instant)>;

async fn session(
    target: &Target,
    socket: Socket,
    protocol: Protocol,
    requests: &mut mpsc::UnboundedReceiver<Request>,
    running: &mut BTreeMap<u64, Running>,
    waiting: &mut Vec<oneshot::Sender<Result<(), UpstreamError>>>,
) -> Result<SessionEnd, UpstreamError> {
    let mut completing = Completing::new();
    let end = serve(target, socket, protocol, requests, running, waiting, &mut completing).await;
    for (_, subscription, _) in completing {
        let _ = subscription.results.send(Arc::new(Item::Complete));
    }
    end
}

async fn serve(
    target: &Target,
    mut socket: Socket,
    protocol: Protocol,
    requests: &mut mpsc::UnboundedReceiver<Request>,
    running: &mut BTreeMap<u64, Running>,
    waiting: &mut Vec<oneshot::Sender<Result<(), UpstreamError>>>,
    completing: &mut Completing,
) -> Result<SessionEnd, UpstreamError> {
    // One keepalive interval: for pings to be answered, and for every write to be taken.
    let deadline = target.keepalive;
    for (id, subscription) in running.iter() {
        if send(&mut socket, client::subscribe(protocol, &id.to_string(), &subscription.operation), deadline)
            .await
            .is_err()
        {
            return Ok(SessionEnd::Disconnected);
        }
    }
    for live in waiting.drain(..) {
        let _ = live.send(Ok(()));
    }
    let mut heartbeat = Heartbeat::new(target.keepalive);
    loop {
        let next_completion = completing.first().map(|(_, _, at)| *at);
        tokio::select! {
            () = sleep_until(next_completion) => {
                let now = tokio::time::Instant::now();
                let (due, held): (Vec<_>, Vec<_>) = completing.drain(..).partition(|(_, _, at)| *at <= now);
                *completing = held;
                for (_, subscription, _) in due {
                    let _ = subscription.results.send(Arc::new(Item::Complete));
                }
            }
            request = requests.recv() => match request {
                None => {
                    let _ = tokio::time::timeout(deadline, socket.close(None)).await;
                    return Ok(SessionEnd::Shutdown);
                }
                Some(Request::Start { id, operation, results, live }) => {
                    let operation = *operation;
                    if let Err(error) = send(&mut socket, client::subscribe(protocol, &id.to_string(), &operation), deadline).await {
                        tracing::warn!(upstream = %target.upstream, %error, "upstream connection lost; reconnecting");
                        running.insert(id, Running { operation, results });
                        waiting.push(live);
                        return Ok(SessionEnd::Disconnected);
                    }
                    running.insert(id, Running { operation, results });
                    let _ = live.send(Ok(()));
                }
                Some(Request::Stop { id }) => {
                    if running.remove(&id).is_some() && send(&mut socket, client::stop(protocol, &id.to_string()), deadline).await.is_err() {
                        return Ok(SessionEnd::Disconnected);
                    }
                }
            },
            message = socket.next() => {
                heartbeat.heard();
                match message {
                    Some(Ok(Message::Text(text))) => match ServerMessage::parse(protocol, &text) {
                        Ok(ServerMessage::Complete { id }) => {
                            if let Some((id, subscription)) = id.parse::<u64>().ok().and_then(|id| running.remove(&id).map(|s| (id, s))) {
                                completing.push((id, subscription, tokio::time::Instant::now() + COMPLETE_GRACE));
                            }
                        }
                        Ok(message) => {
                            if let Some(reply) = handle(message, running) {
                                if send(&mut socket, reply, deadline).await.is_err() {
                                    return Ok(SessionEnd::Disconnected);
                                }
                            }
                        }
                        Err(error) => tracing::debug!(upstream = %target.upstream, %error, "ignoring an upstream message"),
                    },
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.as_ref().map(|f| f.code);
                        if code == Some(CloseCode::Library(4403)) {
                            return Err(rejected(target, "closed 4403 Forbidden"));
                        }
                        if matches!(code, Some(CloseCode::Away | CloseCode::Restart)) {
                            // Completed because the server is going away: subscribe again later.
                            for (id, subscription, _) in completing.drain(..) {
                                running.insert(id, subscription);
                            }
                        }
                        tracing::warn!(upstream = %target.upstream, ?code, "upstream closed the connection; reconnecting");
                        return Ok(SessionEnd::Disconnected);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => {
                        tracing::warn!(upstream = %target.upstream, %error, "upstream connection lost; reconnecting");
                        return Ok(SessionEnd::Disconnected);
                    }
                    None => return Ok(SessionEnd::Disconnected),
                }
            }
            () = heartbeat.due() => {
                if !heartbeat.heard_since_last_probe() {
                    tracing::warn!(upstream = %target.upstream, "no answer from the upstream within the keepalive; reconnecting");
                    return Ok(SessionEnd::Disconnected);
                }
                if let Err(error) = write(&mut socket, Message::Ping(Default::default()), deadline).await {
                    tracing::warn!(upstream = %target.upstream, %error, "upstream connection lost; reconnecting");
                    return Ok(SessionEnd::Disconnected);
                }
            }
        }
    }
}

/// Resolves at `at`, or never.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Routes one upstream message; returns a reply to send, if any.
fn handle(message: ServerMessage, running: &mut BTreeMap<u64, Running>) -> Option<String> {
    let lookup = |id: &str| id.parse::<u64>().ok();
    match message {
        ServerMessage::Next { id, payload } => {
            if let Some(subscription) = lookup(&id).and_then(|id| running.get(&id)) {
                let _ = subscription.results.send(Arc::new(Item::Next(payload)));
            }
        }
        ServerMessage::Error { id, payload } => {
            if let Some(subscription) = lookup(&id).and_then(|id| running.remove(&id)) {
                let errors = if payload.is_array() { payload } else { Value::Array(vec![payload]) };
                let _ = subscription.results.send(Arc::new(Item::Error(errors)));
            }
        }
        ServerMessage::Complete { id } => {
            if let Some(subscription) = lookup(&id).and_then(|id| running.remove(&id)) {
                let _ = subscription.results.send(Arc::new(Item::Complete));
            }
        }
        ServerMessage::Ping(_) => return Some(r#"{"type":"pong"}"#.to_owned()),
        ServerMessage::ConnectionAck
        | ServerMessage::ConnectionError(_)
        | ServerMessage::KeepAlive
        | ServerMessage::Pong => {}
    }
    None
}
