//! Binding the listener and serving until shutdown: stop accepting, `complete` every
//! subscription and close 1001 (the sessions do that when the hub's token is cancelled), then
//! wait for the sessions to drain under `limits.shutdown_timeout`.
//!
//! The accept loop never waits: a connection the hub cannot serve is answered at once (429 for
//! an address over its limits, 503 when every place among `limits.max_http_connections` is
//! taken) and closed, so no client can stop the hub accepting the others.
//!
//! ## Layout
//! - this file: binding, the accept loop, shutdown.
//! - `connection`: one TCP connection: its refusals, its HTTP, and for a trusted proxy the
//!   per-address limits of each request.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

mod connection;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::address::{AddressLimits, OverLimit, TrustedProxies};
use crate::config::Config;
use crate::hub::{Hub, StartError};
use crate::session::ConnectionPlaces;
use connection::{Refused, Served};
use subhub_subscriptions::Refusal;

/// How long accepting pauses after a failure that is not the client's, such as running out of
/// file descriptors.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(100);
/// Refused connections being answered at once at most (each for up to half a second); past
/// this, in a flood, a refused connection is closed without an answer.
const REFUSALS_IN_FLIGHT: usize = 1024;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Config(String),
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
        let routes = crate::http::routes().merge(crate::pages::routes(&hub));
        let router = crate::http::serve(routes, hub.clone());
        let connections = TaskTracker::new();
        // HTTP connections not (yet) sessions: a place each among `max_http_connections`; a
        // connection that becomes a session gives its place back and counts as a session.
        let http_places = Arc::new(Semaphore::new(hub.config.limits.max_http_connections));
        let limits = &hub.config.limits;
        let addresses = AddressLimits::new(limits.connect_rate_per_ip, limits.connections_per_ip);
        let proxies = TrustedProxies::new(hub.config.http.proxies().map_err(ServeError::Config)?);
        let served = Served { router, hub: hub.clone(), addresses: addresses.clone(), proxies: proxies.clone() };
        let refusals = Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT));
        let refuse = |stream, refused| {
            if let Ok(answering) = refusals.clone().try_acquire_owned() {
                let answer = connection::refuse(stream, hub.clone(), refused);
                connections.spawn(async move {
                    answer.await;
                    drop(answering);
                });
            }
        };
        tokio::pin!(signal);
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut signal => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        accept_failed(error).await;
                        continue;
                    }
                },
            };
            // A trusted proxy's clients are known from each request's head; any other peer
            // is the client itself, held to its address's limits from here.
            let address = if proxies.contains(peer.ip()) {
                None
            } else {
                match addresses.connect(peer.ip()) {
                    Ok(slot) => Some(slot),
                    Err(over) => {
                        hub.metrics.refuse(refusal(over));
                        refuse(stream, Refused::Address(over));
                        continue;
                    }
                }
            };
            let Ok(http_place) = http_places.clone().try_acquire_owned() else {
                hub.metrics.refuse(Refusal::Limit);
                refuse(stream, Refused::Full);
                continue;
            };
            // Frames are small and already batched per socket: no Nagle delay.
            let _ = stream.set_nodelay(true);
            let places = ConnectionPlaces::new(http_place, address);
            connections.spawn(served.clone().serve(stream, peer, places));
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

/// The refusal an address over one of its limits is counted as.
fn refusal(over: OverLimit) -> Refusal {
    match over {
        OverLimit::Rate => Refusal::Rate,
        OverLimit::Open => Refusal::Limit,
    }
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
