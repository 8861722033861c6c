//! One WebSocket connection to an upstream, shared by every forwarded subscription with the same
//! credentials. It offers both sub-protocols and speaks the one the server picks, re-sends every
//! live subscription after a reconnect, and pings: no frame for two keepalive intervals means the
//! connection is lost.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value};
use subhub_protocol::backoff::Backoff;
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

enum End {
    Shutdown,
    Lost,
    /// The upstream refused us for good (rejected init, not a GraphQL server).
    Refused(UpstreamError),
}

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
    send(&mut socket, client::connection_init(target.init_payload.as_ref()))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let acknowledged = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => match ServerMessage::parse(protocol, &text) {
                    Ok(ServerMessage::ConnectionAck) => return Ok(()),
                    Ok(ServerMessage::Ping(_)) => {
                        send(&mut socket, r#"{"type":"pong"}"#.into()).await.map_err(|e| unreachable(e.to_string()))?
                    }
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

async fn send(socket: &mut Socket, text: String) -> Result<(), WsError> {
    socket.send(Message::Text(text.into())).await
}

/// The connection's task: runs until the pool drops its request sender.
pub async fn run(target: Target, mut requests: mpsc::UnboundedReceiver<Request>) {
    let mut running: BTreeMap<u64, Running> = BTreeMap::new();
    let mut waiting: Vec<oneshot::Sender<Result<(), UpstreamError>>> = Vec::new();
    let mut backoff = Backoff::default();
    loop {
        let end = match connect(&target).await {
            Ok((socket, protocol)) => {
                target.stats.failing.store(false, Relaxed);
                target.stats.connections.fetch_add(1, Relaxed);
                if backoff.failures() > 0 {
                    tracing::info!(upstream = %target.upstream, restored = running.len(), "reconnected to upstream");
                }
                backoff.reset();
                let end = session(&target, socket, protocol, &mut requests, &mut running, &mut waiting).await;
                target.stats.connections.fetch_sub(1, Relaxed);
                end
            }
            Err(error @ (UpstreamError::Rejected { .. } | UpstreamError::NotGraphql { .. })) => End::Refused(error),
            Err(error) => {
                target.stats.failing.store(true, Relaxed);
                if backoff.failures() == 0 {
                    tracing::warn!(upstream = %target.upstream, %error, "upstream unreachable; retrying");
                }
                End::Lost
            }
        };
        match end {
            End::Shutdown => return,
            End::Refused(error) => {
                tracing::warn!(upstream = %target.upstream, %error, "upstream refused the connection");
                let message = serde_json::json!([{ "message": error.to_string() }]);
                for (_, subscription) in std::mem::take(&mut running) {
                    let _ = subscription.results.send(Arc::new(Item::Error(message.clone())));
                }
                for live in waiting.drain(..) {
                    let _ = live.send(Err(error.clone()));
                }
                // Refuse every later request the same way until the pool lets this connection go.
                while let Some(request) = requests.recv().await {
                    if let Request::Start { live, .. } = request {
                        let _ = live.send(Err(error.clone()));
                    }
                }
                return;
            }
            End::Lost => {}
        }
        // Wait out the backoff, still taking requests: they are sent once reconnected.
        let sleep = tokio::time::sleep(backoff.next_delay());
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                request = requests.recv() => match request {
                    None => return,
                    Some(Request::Start { id, operation, results, live }) => {
                        running.insert(id, Running { operation: *operation, results });
                        waiting.push(live);
                    }
                    Some(Request::Stop { id }) => {
                        running.remove(&id);
                    }
                },
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
) -> End {
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
) -> End {
    for (id, subscription) in running.iter() {
        if send(&mut socket, client::subscribe(protocol, &id.to_string(), &subscription.operation)).await.is_err() {
            return End::Lost;
        }
    }
    for live in waiting.drain(..) {
        let _ = live.send(Ok(()));
    }
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + target.keepalive, target.keepalive);
    let mut heard = true;
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
                    let _ = socket.close(None).await;
                    return End::Shutdown;
                }
                Some(Request::Start { id, operation, results, live }) => {
                    let operation = *operation;
                    if send(&mut socket, client::subscribe(protocol, &id.to_string(), &operation)).await.is_err() {
                        running.insert(id, Running { operation, results });
                        waiting.push(live);
                        return End::Lost;
                    }
                    running.insert(id, Running { operation, results });
                    let _ = live.send(Ok(()));
                }
                Some(Request::Stop { id }) => {
                    if running.remove(&id).is_some() && send(&mut socket, client::stop(protocol, &id.to_string())).await.is_err() {
                        return End::Lost;
                    }
                }
            },
            message = socket.next() => {
                heard = true;
                match message {
                    Some(Ok(Message::Text(text))) => match ServerMessage::parse(protocol, &text) {
                        Ok(ServerMessage::Complete { id }) => {
                            if let Some((id, subscription)) = id.parse::<u64>().ok().and_then(|id| running.remove(&id).map(|s| (id, s))) {
                                completing.push((id, subscription, tokio::time::Instant::now() + COMPLETE_GRACE));
                            }
                        }
                        Ok(message) => {
                            if let Some(reply) = handle(message, running) {
                                if send(&mut socket, reply).await.is_err() {
                                    return End::Lost;
                                }
                            }
                        }
                        Err(error) => tracing::debug!(upstream = %target.upstream, %error, "ignoring an upstream message"),
                    },
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.as_ref().map(|f| f.code);
                        if code == Some(CloseCode::Library(4403)) {
                            return End::Refused(rejected(target, "closed 4403 Forbidden"));
                        }
                        if matches!(code, Some(CloseCode::Away | CloseCode::Restart)) {
                            // Completed because the server is going away: subscribe again later.
                            for (id, subscription, _) in completing.drain(..) {
                                running.insert(id, subscription);
                            }
                        }
                        tracing::warn!(upstream = %target.upstream, ?code, "upstream closed the connection; reconnecting");
                        return End::Lost;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => {
                        tracing::warn!(upstream = %target.upstream, %error, "upstream connection lost; reconnecting");
                        return End::Lost;
                    }
                    None => return End::Lost,
                }
            }
            _ = keepalive.tick() => {
                if !heard {
                    tracing::warn!(upstream = %target.upstream, "no answer from the upstream within the keepalive; reconnecting");
                    return End::Lost;
                }
                heard = false;
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return End::Lost;
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
