//! A client session, whatever carries it: a WebSocket, an SSE or multipart response, or the
//! dashboard's status stream. Each is admitted, counted, ended and released the same way:
//!
//! - admitted before the upgrade or the response, against `limits.max_connections`
//!   ([`Admission`]; refused with 503 and counted when every place is taken);
//! - once it runs ([`ClientSession`]), counted in `subhub_connections{transport}`; the HTTP
//!   connection that carries it gives its place among `limits.max_http_connections` back, and
//!   the session holds its client address's place among `limits.connections_per_ip` instead;
//! - ended by [`ClientSession::ending`] when the hub shuts down or the token it was opened with
//!   expires (DESIGN §11), each transport saying so its own way: WebSocket 1001 or 4403
//!   `Token expired`, SSE and multipart their error framing and then their end;
//! - released, place and gauge, when it is dropped; tracked in `hub.sessions`, so shutdown
//!   waits for it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use subhub_subscriptions::{Refusal, Transport};
use tokio::sync::OwnedSemaphorePermit;

use crate::address::AddressSlot;
use crate::auth::Identity;
use crate::hub::Hub;

/// What the client is told when a session's time is up because its token expired.
pub const TOKEN_EXPIRED: &str = "Token expired";

/// The places an HTTP connection holds, in every request's extensions: one among
/// `limits.max_http_connections`, and its client address's among `limits.connections_per_ip`
/// (the connection's own for a client that connected itself; the request's for one behind a
/// trusted proxy). A session started by a request takes them over.
#[derive(Clone, Default)]
pub struct ConnectionPlaces {
    http: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
    address: Arc<Mutex<Option<AddressSlot>>>,
}

impl ConnectionPlaces {
    pub fn new(http: OwnedSemaphorePermit, address: Option<AddressSlot>) -> Self {
        ConnectionPlaces { http: Arc::new(Mutex::new(Some(http))), address: Arc::new(Mutex::new(address)) }
    }

    /// The places of one request on this connection, from a client whose address is `address`.
    pub fn for_request(&self, address: AddressSlot) -> Self {
        ConnectionPlaces { http: self.http.clone(), address: Arc::new(Mutex::new(Some(address))) }
    }

    /// The connection now carries a session, which counts among the sessions: the HTTP place is
    /// given back, and the client address's place goes to the session.
    fn hand_over(&self) -> Option<AddressSlot> {
        self.http.lock().unwrap_or_else(PoisonError::into_inner).take();
        self.address.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// Why a session was not admitted: the client is answered 503 with this.
#[derive(Debug, thiserror::Error)]
pub enum NotAdmitted {
    #[error("the hub is shutting down")]
    ShuttingDown,
    #[error("the hub serves {0} connections, its limit (limits.max_connections); retry later")]
    Full(usize),
}

/// A session admitted, not yet running: its place among `limits.max_connections` is taken.
pub struct Admission {
    hub: Arc<Hub>,
    place: OwnedSemaphorePermit,
    connection: Option<ConnectionPlaces>,
}

impl Admission {
    /// A place for one more session on the connection whose places are `connection`, or why
    /// not (a refusal for want of places is counted).
    pub fn new(hub: &Arc<Hub>, connection: Option<&ConnectionPlaces>) -> Result<Self, NotAdmitted> {
        if hub.shutdown.is_cancelled() {
            return Err(NotAdmitted::ShuttingDown);
        }
        let Ok(place) = hub.session_permits.clone().try_acquire_owned() else {
            hub.metrics.refuse(Refusal::Limit);
            return Err(NotAdmitted::Full(hub.config.limits.max_connections));
        };
        Ok(Admission { hub: hub.clone(), place, connection: connection.cloned() })
    }

    /// The session begins over `transport`.
    pub fn open(self, transport: Transport) -> ClientSession {
        let address = self.connection.as_ref().and_then(ConnectionPlaces::hand_over);
        self.hub.metrics.connection_opened(transport);
        ClientSession { hub: self.hub, transport, _place: self.place, _address: address, expires: None }
    }
}

/// How a session's time ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// The hub is shutting down.
    Shutdown,
    /// The token the session was opened with expired.
    TokenExpired,
}

/// Resolves when a session's time is up.
pub type Ending = Pin<Box<dyn Future<Output = SessionEnd> + Send>>;

/// A running client session; see the module's documentation.
pub struct ClientSession {
    hub: Arc<Hub>,
    transport: Transport,
    _place: OwnedSemaphorePermit,
    _address: Option<AddressSlot>,
    expires: Option<SystemTime>,
}

impl ClientSession {
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// From now on the session ends when `identity`'s token expires.
    pub fn expires_with(&mut self, identity: &Identity) {
        self.expires = identity.expires;
    }

    /// Resolves when the hub shuts down or the session's token expires (shutdown first, when
    /// both have come). Made again after [`ClientSession::expires_with`] to follow it.
    pub fn ending(&self) -> Ending {
        let shutdown = self.hub.shutdown.clone();
        let left = self.expires.map(|expires| expires.duration_since(SystemTime::now()).unwrap_or_default());
        Box::pin(async move {
            let expiry = async {
                match left {
                    Some(left) => tokio::time::sleep(left).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = shutdown.cancelled() => SessionEnd::Shutdown,
                () = expiry => SessionEnd::TokenExpired,
            }
        })
    }
}

impl Drop for ClientSession {
    fn drop(&mut self) {
        self.hub.metrics.connection_closed(self.transport);
    }
}
