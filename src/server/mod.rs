//! Binding the listener and serving until shutdown: stop accepting, `complete` every
//! subscription and close 1001 (the sessions do that when the hub's token is cancelled), then
//! wait for the sessions to drain under `limits.shutdown_timeout`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::hub::{Hub, StartError};
use crate::rate::PerAddress;
use subhub_subscriptions::Refusal;

/// How long accepting pauses after a failure that is not the client's, such as running out of
/// file descriptors.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A hub bound to its address, ready to serve.
pub struct Server {
    hub: Arc<Hub>,
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl Server {
    /// Starts the hub and binds `config.listen`.
    pub async fn bind(config: Config) -> Result<Self, ServeError> {
        let addr = config.listen;
        let listener = TcpListener::bind(addr).await.map_err(|error| ServeError::Listen {
            addr,
            reason: match error.kind() {
                std::io::ErrorKind::AddrInUse => {
                    "address already in use (is another subhub running? pick another with --listen)".to_owned()
                }
                std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
                _ => error.to_string(),
            },
        })?;
        let local_addr = listener.local_addr()?;
        let hub = Hub::new(config).await?;
        Ok(Server { hub, listener, local_addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Serves until `signal` resolves, then shuts down gracefully.
    pub async fn run(self, signal: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
        let Server { hub, listener, local_addr } = self;
        tracing::info!(%local_addr, "subhub serving: GraphQL at /graphql, GraphiQL at /graphiql");
        let router = crate::http::router(hub.clone());
        let connections = TaskTracker::new();
        // HTTP connections not (yet) sessions: while `max_http_connections` are open, the hub
        // accepts no more and new ones wait in the listen backlog. An upgraded connection gives
        // its permit back and counts as a session instead.
        let http_permits = Arc::new(Semaphore::new(hub.config.limits.max_http_connections));
        let connects = PerAddress::per_second(hub.config.limits.connect_rate_per_ip);
        tokio::pin!(signal);
        loop {
            let (stream, peer, permit) = tokio::select! {
                () = &mut signal => break,
                accepted = accept(&listener, &http_permits, &hub) => match accepted {
                    Some(accepted) => accepted,
                    None => continue,
                },
            };
            if !connects.admit(peer.ip()) {
                hub.metrics.refuse(Refusal::Rate);
                connections.spawn(too_many_connects(stream));
                continue;
            }
            // Frames are small and already batched per socket: no Nagle delay.
            let _ = stream.set_nodelay(true);
            connections.spawn(serve_connection(stream, permit, router.clone(), hub.shutdown.clone()));
        }
        tracing::info!("shutting down: completing subscriptions and closing connections");
        drop(listener);
        hub.shutdown.cancel();
        connections.close();
        hub.sessions.close();
        let deadline = hub.config.limits.shutdown_timeout;
        let drained = async {
            connections.wait().await;
            hub.sessions.wait().await;
        };
        if tokio::time::timeout(deadline, drained).await.is_err() {
            tracing::warn!(remaining = hub.sessions.len(), "shutdown deadline passed with sessions still open");
        }
        Ok(())
    }
}

/// Waits for a free place, then accepts a connection into it; `None` when accepting failed.
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
    hub: &Hub,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let permit = match permits.clone().try_acquire_owned() {
        Ok(permit) => permit,
        Err(_) => {
            hub.metrics.accept_waits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            permits.clone().acquire_owned().await.ok()?
        }
    };
    match listener.accept().await {
        Ok((stream, peer)) => Some((stream, peer, permit)),
        Err(error) => {
            accept_failed(error).await;
            None
        }
    }
}

/// Serves one HTTP/1.1 connection, which may become a WebSocket: the upgrade hands the TCP
/// stream itself to the session (see `ws::socket`), and the connection's place among the HTTP
/// connections is given back. A request that becomes a long stream (SSE, multipart) gives the
/// place back too, through the [`HttpPlace`] each request carries. On shutdown, a request in flight finishes and the connection
/// then closes. hyper closes a connection that sends no complete request head for 30 s, idle
/// keep-alive connections included.
async fn serve_connection(
    stream: TcpStream,
    permit: OwnedSemaphorePermit,
    router: axum::Router,
    shutdown: CancellationToken,
) {
    let place = HttpPlace(Arc::new(std::sync::Mutex::new(Some(permit))));
    let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(place.clone());
        tower_service::Service::call(&mut router.clone(), request)
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
            return;
        }
        () = shutdown.cancelled() => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// A connection's place among `limits.max_http_connections`, in every request's extensions.
#[derive(Clone)]
pub struct HttpPlace(Arc<std::sync::Mutex<Option<OwnedSemaphorePermit>>>);

impl HttpPlace {
    /// Gives the place back: the connection now carries a stream, which counts as a session.
    pub fn release(&self) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    }
}

/// Answers a client address over `connect_rate_per_ip` with 429 and closes, parsing nothing it
/// sent: what it sent is read and discarded for a moment, so the answer is not lost under a
/// reset.
async fn too_many_connects(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const TOO_MANY: &[u8] =
        b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    const DRAIN: std::time::Duration = std::time::Duration::from_millis(500);
    let answer = async {
        stream.write_all(TOO_MANY).await?;
        stream.shutdown().await?;
        let mut discard = [0u8; 2048];
        while stream.read(&mut discard).await? > 0 {}
        std::io::Result::Ok(())
    };
    let _ = tokio::time::timeout(DRAIN, answer).await;
}

/// A failed `accept` is the client's problem when the connection broke on the way in; anything
/// else (out of file descriptors, say) is the hub's, and retrying at once would spin.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::warn!(%error, "cannot accept connections");
    tokio::time::sleep(ACCEPT_RETRY).await;
}

/// Resolves on SIGINT or SIGTERM.
pub async fn termination_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
