//! One TCP connection: refused at once when the hub cannot serve it, else served as HTTP/1.1,
//! which may become a WebSocket (the upgrade hands the TCP stream itself to the session, see
//! `ws::socket`) or carry a stream. Every request carries the connection's places (see
//! `session::ConnectionPlaces`), which a session takes over.
//!
//! hyper closes a connection that sends no complete request head within
//! `limits.header_timeout`, idle keep-alive connections included; the HTTP layers cut a request
//! not read and answered within `limits.request_timeout`. On shutdown, a request in flight
//! finishes and the connection then closes.
//!
//! For a peer in `[http] trusted_proxies`, the client is known only from each request's head:
//! each request is held to its client's per-address limits (a connect of its rate, one of its
//! open places for as long as it runs, or as its session lasts) and answered 429 past them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::address::{AddressLimits, OverLimit, TrustedProxies};
use crate::hub::Hub;
use crate::session::ConnectionPlaces;

/// Why a connection is not served.
#[derive(Clone, Copy, Debug)]
pub enum Refused {
    /// Its address is over one of its limits.
    Address(OverLimit),
    /// Every place among `limits.max_http_connections` is taken.
    Full,
}

/// Everything a connection is served with, shared by all of them.
#[derive(Clone)]
pub struct Served {
    pub router: axum::Router,
    pub hub: Arc<Hub>,
    pub addresses: Arc<AddressLimits>,
    pub proxies: TrustedProxies,
}

impl Served {
    /// Serves one connection from `peer` until it closes, or until shutdown once its request in
    /// flight is answered.
    pub async fn serve(self, stream: TcpStream, peer: SocketAddr, places: ConnectionPlaces) {
        let shutdown = self.hub.shutdown.clone();
        let header_timeout = self.hub.config.limits.header_timeout;
        let proxied = self.proxies.contains(peer.ip());
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            let served = self.clone();
            let places = places.clone();
            async move {
                let places = if proxied {
                    match served.admit_forwarded(peer, request.headers(), &places) {
                        Ok(places) => places,
                        Err(refused) => return Ok(*refused),
                    }
                } else {
                    places
                };
                request.extensions_mut().insert(places);
                tower_service::Service::call(&mut served.router.clone(), request).await
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
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

    /// The places of one request a trusted proxy forwards: its client's, by the address the
    /// proxy names; the answer to give when that client is over one of its limits.
    fn admit_forwarded(
        &self,
        peer: SocketAddr,
        headers: &axum::http::HeaderMap,
        places: &ConnectionPlaces,
    ) -> Result<ConnectionPlaces, Box<Response>> {
        let client = self.proxies.client_of(peer.ip(), headers);
        match self.addresses.connect(client) {
            Ok(slot) => Ok(places.for_request(slot)),
            Err(over) => {
                self.hub.metrics.refuse(super::refusal(over));
                let mut response = crate::http::error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    &message(&self.hub, Refused::Address(over)),
                );
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
                Err(Box::new(response))
            }
        }
    }
}

/// What a refused client is told.
fn message(hub: &Hub, refused: Refused) -> String {
    let limits = &hub.config.limits;
    match refused {
        Refused::Address(OverLimit::Rate) => format!(
            "too many connects from this address: at most {} a second (limits.connect_rate_per_ip)",
            limits.connect_rate_per_ip
        ),
        Refused::Address(OverLimit::Open) => format!(
            "this address has {} connections open, its limit (limits.connections_per_ip)",
            limits.connections_per_ip
        ),
        Refused::Full => format!(
            "the hub serves {} HTTP connections, its limit (limits.max_http_connections); retry later",
            limits.max_http_connections
        ),
    }
}

/// Answers a connection the hub does not serve (429 for an address over its limits, 503 when
/// every HTTP place is taken) and closes it, parsing nothing it sent: what it sent is read and
/// discarded for a moment, so the answer is not lost under a reset.
pub async fn refuse(mut stream: TcpStream, hub: Arc<Hub>, refused: Refused) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const DRAIN: Duration = Duration::from_millis(500);
    let status = match refused {
        Refused::Address(_) => "429 Too Many Requests",
        Refused::Full => "503 Service Unavailable",
    };
    let body = serde_json::json!({ "errors": [{ "message": message(&hub, refused) }] }).to_string();
    let answer = format!(
        "HTTP/1.1 {status}\r\nretry-after: 1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    drop(hub);
    let answered = async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut discard = [0u8; 2048];
        while stream.read(&mut discard).await? > 0 {}
        std::io::Result::Ok(())
    };
    let _ = tokio::time::timeout(DRAIN, answered).await;
}
