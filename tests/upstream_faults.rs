//! How the hub takes an upstream's faults, against a small real graphql-transport-ws server of
//! the test's own (its schema given to the hub as SDL): a transient HTTP status in front of the
//! upstream is retried, not taken as final; an upstream that stops reading is given up after
//! the write deadline; one that acknowledges and drops every connection is redialled with a
//! growing delay; and clients are told fixed texts with a code, never the upstream's address or
//! an IO error.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::*;
use serde_json::{json, Value};
use tokio::sync::broadcast;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Acknowledges, takes subscriptions and sends what the test asks it to.
    Serve,
    /// Acknowledges `connection_init`, then closes.
    AckAndClose,
    /// Acknowledges `connection_init`, then reads nothing more.
    AckAndStall,
}

struct Shared {
    behaviour: Behaviour,
    /// Answered instead of the WebSocket upgrade while not 0.
    status: AtomicU16,
    /// WebSocket connections accepted, upgrades refused with `status`, subscriptions received.
    connections: AtomicUsize,
    refused: AtomicUsize,
    subscriptions: AtomicUsize,
    /// Closes every open connection.
    kick: broadcast::Sender<()>,
    /// A `next` payload for every subscription of every open connection.
    next: broadcast::Sender<Value>,
}

struct Upstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Upstream {
    async fn start(behaviour: Behaviour) -> Self {
        let shared = Arc::new(Shared {
            behaviour,
            status: AtomicU16::new(0),
            connections: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            subscriptions: AtomicUsize::new(0),
            kick: broadcast::channel(4).0,
            next: broadcast::channel(16).0,
        });
        let app = axum::Router::new().route("/graphql", axum::routing::get(upgrade)).with_state(shared.clone());
        // A small receive buffer (which accepted sockets take from the listener): an upstream
        // that stops reading is full after a few kilobytes, not after the megabytes loopback
        // would otherwise take.
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        socket.bind("127.0.0.1:0".parse().expect("address")).expect("bind");
        let listener = socket.listen(64).expect("listen");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Upstream { addr, shared }
    }

    fn hub_config(&self, extra: &str) -> String {
        format!(
            "[upstreams.up]\nurl = \"ws://{}/graphql\"\nsdl = \"tests/fixtures/builtin.graphql\"\n{extra}",
            self.addr
        )
    }

    async fn wait(&self, what: &str, counter: impl Fn(&Shared) -> usize, at_least: usize) {
        let reached = wait_for(PATIENCE, || async { counter(&self.shared) >= at_least }).await;
        assert!(reached, "{what}: {} of {at_least}", counter(&self.shared));
    }
}

async fn upgrade(State(shared): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    let status = shared.status.load(Relaxed);
    if status != 0 {
        shared.refused.fetch_add(1, Relaxed);
        return StatusCode::from_u16(status).expect("status").into_response();
    }
    ws.protocols(["graphql-transport-ws"]).on_upgrade(move |socket| serve(shared, socket)).into_response()
}

async fn serve(shared: Arc<Shared>, mut socket: WebSocket) {
    shared.connections.fetch_add(1, Relaxed);
    let (mut kick, mut next) = (shared.kick.subscribe(), shared.next.subscribe());
    let mut ids = Vec::new();
    loop {
        tokio::select! {
            message = socket.recv() => {
                let Some(Ok(Message::Text(text))) = message else { return };
                let message: Value = serde_json::from_str(&text).unwrap_or_default();
                let reply = match message["type"].as_str() {
                    Some("connection_init") => json!({"type": "connection_ack"}),
                    Some("ping") => json!({"type": "pong"}),
                    Some("subscribe") => {
                        shared.subscriptions.fetch_add(1, Relaxed);
                        ids.push(message["id"].clone());
                        continue;
                    }
                    _ => continue,
                };
                if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                    return;
                }
                match shared.behaviour {
                    Behaviour::Serve => {}
                    Behaviour::AckAndClose => return,
                    Behaviour::AckAndStall => std::future::pending::<()>().await,
                }
            }
            _ = kick.recv() => return,
            Ok(payload) = next.recv() => {
                // The hub forwards `up_events` as `up_events: events`: the result comes back
                // under the alias, as from any GraphQL server.
                for id in &ids {
                    let message = json!({"id": id, "type": "next", "payload": {"data": {"up_events": {"payload": payload}}}});
                    if socket.send(Message::Text(message.to_string().into())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

const QUERY: &str = "subscription($topic: String!) { up_events(topic: $topic) { payload } }";

/// A 502 from a proxy in front of the upstream while the hub reconnects is a passing fault:
/// the hub tries again, and the subscription goes on once the upstream is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_502_is_retried_and_the_subscription_goes_on() {
    let upstream = Upstream::start(Behaviour::Serve).await;
    let hub = TestHub::with_config(&upstream.hub_config("")).await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", QUERY, json!({"topic": "t"})).await;
    upstream.wait("subscriptions", |s| s.subscriptions.load(Relaxed), 1).await;

    upstream.shared.status.store(502, Relaxed);
    let _ = upstream.shared.kick.send(());
    upstream.wait("upgrades refused with 502", |s| s.refused.load(Relaxed), 2).await;
    upstream.shared.status.store(0, Relaxed);
    upstream.wait("subscriptions after the 502s", |s| s.subscriptions.load(Relaxed), 2).await;

    let _ = upstream.shared.next.send(json!(7));
    let message = client.recv_json().await;
    assert_eq!(message["type"], "next", "{message}");
    assert_eq!(message["payload"]["data"]["up_events"]["payload"], 7);
}

/// An upstream that stops reading fills the socket; the hub's writes to it give up after the
/// deadline (the keepalive interval) and it connects again, instead of its connection task
/// waiting for good with every subscription and its pings behind the stuck write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_stops_reading_is_given_up_after_the_write_deadline() {
    let upstream = Upstream::start(Behaviour::AckAndStall).await;
    let hub = TestHub::with_config(&upstream.hub_config(
        "keepalive = \"200ms\"\n[limits]\nmax_message_bytes = 4194304\nmax_subscriptions_per_connection = 10\n",
    ))
    .await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    // Six forwarded subscriptions of 3 MB each: more than the sockets' buffers hold.
    for n in 0..6 {
        let topic = format!("{n}{}", "x".repeat(3 << 20));
        client.subscribe(&n.to_string(), QUERY, json!({ "topic": topic })).await;
    }
    upstream.wait("connections", |s| s.connections.load(Relaxed), 2).await;
}

/// An upstream that acknowledges each connection and closes it at once is redialled with a
/// growing delay: its backoff starts again only after a connection that stayed up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_drops_every_connection_is_redialled_with_a_growing_delay() {
    let upstream = Upstream::start(Behaviour::AckAndClose).await;
    let hub = TestHub::with_config(&upstream.hub_config("")).await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", QUERY, json!({"topic": "t"})).await;
    upstream.wait("connections", |s| s.connections.load(Relaxed), 1).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    // From the upper half of 100 ms, 200 ms, 400 ms…: at most seven attempts in six seconds,
    // one more for slack. Redialled 50 to 100 ms after each drop, there would be sixty.
    let connections = upstream.shared.connections.load(Relaxed);
    assert!(connections <= 8, "{connections} connections in six seconds");
    drop(hub);
}

/// What a client is told about an upstream it cannot use: a fixed text naming the upstream and
/// a code, not the upstream's URL or what the socket said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_hear_a_fixed_text_and_a_code_not_the_upstream_address() {
    let upstream = Upstream::start(Behaviour::Serve).await;
    upstream.shared.status.store(404, Relaxed);
    let hub = TestHub::with_config(&upstream.hub_config("")).await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", QUERY, json!({"topic": "t"})).await;
    let error = client.recv_json().await;
    assert_eq!(error["type"], "error", "{error}");
    let text = error["payload"].to_string();
    assert_eq!(error["payload"][0]["extensions"]["code"], "UPSTREAM_NOT_GRAPHQL", "{error}");
    assert!(error["payload"][0]["message"].as_str().is_some_and(|m| m.contains("`up`")), "{error}");
    for leak in [upstream.addr.to_string(), "ws://".to_owned(), "404".to_owned()] {
        assert!(!text.contains(&leak), "{leak} reached the client: {error}");
    }
}
