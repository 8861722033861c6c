//! Binding the listener and serving until shutdown: stop accepting, `complete` every
//! subscription and close 1001 (the sessions do that when the hub's token is cancelled), then
//! wait for the sessions to drain under `limits.shutdown_timeout`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::hub::{Hub, StartError};

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
        let listener = listener.tap_io(|tcp| {
            // Frames are small and already batched per socket: no Nagle delay.
            let _ = tcp.set_nodelay(true);
        });
        let token = hub.shutdown.clone();
        let app = crate::http::router(hub.clone());
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                signal.await;
                tracing::info!("shutting down: completing subscriptions and closing connections");
                token.cancel();
            })
            .await?;
        // Upgraded WebSockets are not tracked by axum: wait for the sessions ourselves.
        hub.shutdown.cancel();
        hub.sessions.close();
        let deadline = hub.config.limits.shutdown_timeout;
        if tokio::time::timeout(deadline, hub.sessions.wait()).await.is_err() {
            tracing::warn!(remaining = hub.sessions.len(), "shutdown deadline passed with sessions still open");
        }
        Ok(())
    }
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
