//! One upstream's connections: one per set of forwarded credentials, opened for its first
//! subscription and closed after its last, every subscription multiplexed over it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value};
use subhub_protocol::OperationPayload;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::connection::{self, Item, Request, Target};
use crate::error::UpstreamError;
use crate::stats::UpstreamStats;

/// Forwarded credentials as canonical text: connections are keyed by them.
type Credentials = String;

struct ConnectionEntry {
    requests: mpsc::UnboundedSender<Request>,
    subscriptions: usize,
}

#[derive(Default)]
struct State {
    connections: HashMap<Credentials, ConnectionEntry>,
    next_id: u64,
}

/// One configured upstream.
pub struct Upstream {
    name: Arc<str>,
    url: String,
    keepalive: Duration,
    linger: Duration,
    max_message_bytes: usize,
    stats: Arc<UpstreamStats>,
    state: Mutex<State>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Upstream {
    /// `linger`: how long the hub's registry keeps this upstream's subscriptions after their
    /// last subscriber; `max_message_bytes`: the largest result the upstream may send.
    pub fn new(name: &str, url: &str, keepalive: Duration, linger: Duration, max_message_bytes: usize) -> Arc<Self> {
        Arc::new(Upstream {
            name: name.into(),
            url: url.to_owned(),
            keepalive,
            linger,
            max_message_bytes,
            stats: Arc::new(UpstreamStats::default()),
            state: Mutex::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn linger(&self) -> Duration {
        self.linger
    }

    pub fn stats(&self) -> &Arc<UpstreamStats> {
        &self.stats
    }

    /// Open connections to the upstream, one per set of forwarded credentials.
    pub fn connections(&self) -> usize {
        lock(&self.state).connections.len()
    }

    fn target(&self, init_payload: Option<Map<String, Value>>) -> Target {
        Target {
            upstream: self.name.clone(),
            url: self.url.clone(),
            init_payload,
            keepalive: self.keepalive,
            stats: self.stats.clone(),
            max_message_bytes: self.max_message_bytes,
        }
    }

    /// Starts `operation` on the connection of `init_payload`'s credentials (opened for it if
    /// need be); its results go to `results`. Resolves once the subscription was sent on an
    /// acknowledged connection. Dropping the [`Subscription`] stops it, and the last
    /// subscription of a connection closes it. Sharing identical operations between hub
    /// executions is the registry's (subhub-subscriptions), as for broker topics.
    pub async fn start(
        self: &Arc<Self>,
        credentials: Credentials,
        init_payload: Option<Map<String, Value>>,
        operation: &OperationPayload,
        results: broadcast::Sender<Arc<Item>>,
    ) -> Result<Subscription, UpstreamError> {
        let (live, confirmation) = oneshot::channel();
        let subscription = {
            let mut state = lock(&self.state);
            state.next_id += 1;
            let id = state.next_id;
            let connection = state.connections.entry(credentials.clone()).or_insert_with(|| {
                let (requests, receiver) = mpsc::unbounded_channel();
                tokio::spawn(connection::run(self.target(init_payload), receiver));
                ConnectionEntry { requests, subscriptions: 0 }
            });
            connection.subscriptions += 1;
            let _ =
                connection.requests.send(Request::Start { id, operation: Box::new(operation.clone()), results, live });
            // Made before the first await: a cancelled start still stops what it started.
            Subscription { upstream: self.clone(), credentials, id }
        };
        confirmation.await.unwrap_or_else(|_| Err(self.gone()))?;
        Ok(subscription)
    }

    fn gone(&self) -> UpstreamError {
        UpstreamError::Unreachable {
            upstream: self.name.to_string(),
            url: self.url.clone(),
            reason: "connection closed".into(),
        }
    }

    fn stop(&self, credentials: &str, id: u64) {
        let mut state = lock(&self.state);
        let Some(connection) = state.connections.get_mut(credentials) else { return };
        let _ = connection.requests.send(Request::Stop { id });
        connection.subscriptions -= 1;
        if connection.subscriptions == 0 {
            // Dropping the sender ends the connection's task, which closes the socket.
            state.connections.remove(credentials);
        }
    }
}

/// One subscription on an upstream connection; dropping it stops the subscription.
pub struct Subscription {
    upstream: Arc<Upstream>,
    credentials: Credentials,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.upstream.stop(&self.credentials, self.id);
    }
}

#[cfg(test)]
mod tests {
    //! The pool against a small real graphql-transport-ws server on loopback, which counts the
    //! connections it holds and the subscriptions it is sent.

    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering::SeqCst};

    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::handshake::server::{Request as HttpRequest, Response as HttpResponse};
    use tokio_tungstenite::tungstenite::Message;

    #[derive(Default)]
    struct Seen {
        connections: AtomicI64,
        subscriptions: AtomicI64,
    }

    /// Acks every `connection_init`, counts `subscribe` and `complete`, never sends results.
    async fn server() -> (String, Arc<Seen>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}/graphql", listener.local_addr().expect("addr"));
        let seen = Arc::new(Seen::default());
        let counts = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = counts.clone();
                tokio::spawn(async move {
                    // The callback's type is tungstenite's: its error is an HTTP response.
                    #[allow(clippy::result_large_err)]
                    let pick = |_: &HttpRequest, mut response: HttpResponse| {
                        let protocol =
                            tokio_tungstenite::tungstenite::http::HeaderValue::from_static("graphql-transport-ws");
                        response.headers_mut().insert("Sec-WebSocket-Protocol", protocol);
                        Ok(response)
                    };
                    let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, pick).await else { return };
                    seen.connections.fetch_add(1, SeqCst);
                    while let Some(Ok(message)) = socket.next().await {
                        let Message::Text(text) = message else { continue };
                        let message: Value = serde_json::from_str(&text).unwrap_or_default();
                        match message["type"].as_str() {
                            Some("connection_init") => {
                                let _ = socket.send(Message::Text(r#"{"type":"connection_ack"}"#.into())).await;
                            }
                            Some("subscribe") => {
                                seen.subscriptions.fetch_add(1, SeqCst);
                            }
                            Some("complete") => {
                                seen.subscriptions.fetch_sub(1, SeqCst);
                            }
                            Some("ping") => {
                                let _ = socket.send(Message::Text(r#"{"type":"pong"}"#.into())).await;
                            }
                            _ => {}
                        }
                    }
                    seen.connections.fetch_sub(1, SeqCst);
                });
            }
        });
        (url, seen)
    }

    async fn until(condition: impl Fn() -> bool) {
        for _ in 0..500 {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition never held");
    }

    fn operation(n: u32) -> OperationPayload {
        OperationPayload {
            query: format!("subscription {{ ticks{n} }}"),
            operation_name: None,
            variables: None,
            extensions: None,
        }
    }

    fn credentials(token: &str) -> (String, Option<Map<String, Value>>) {
        let payload = serde_json::json!({"authorization": token});
        (payload.to_string(), payload.as_object().cloned())
    }

    #[tokio::test]
    async fn one_connection_per_credentials_closed_with_its_last_subscription() {
        let (url, seen) = server().await;
        let upstream = Upstream::new("up", &url, Duration::from_secs(30), Duration::ZERO, 1 << 20);
        let results = || broadcast::channel(4).0;
        let (ada, ada_init) = credentials("ada");
        let (bob, bob_init) = credentials("bob");
        let a1 = upstream.start(ada.clone(), ada_init.clone(), &operation(1), results()).await.expect("a1");
        let a2 = upstream.start(ada, ada_init, &operation(2), results()).await.expect("a2");
        let b1 = upstream.start(bob, bob_init, &operation(1), results()).await.expect("b1");
        until(|| seen.connections.load(SeqCst) == 2 && seen.subscriptions.load(SeqCst) == 3).await;
        assert_eq!(upstream.connections(), 2);
        drop(a1);
        until(|| seen.subscriptions.load(SeqCst) == 2).await;
        assert_eq!(upstream.connections(), 2, "ada still has a subscription");
        drop((a2, b1));
        until(|| seen.connections.load(SeqCst) == 0 && seen.subscriptions.load(SeqCst) == 0).await;
        assert_eq!(upstream.connections(), 0);
    }

    #[tokio::test]
    async fn a_start_cancelled_before_the_ack_leaves_nothing_behind() {
        // Nothing answers on this address yet: the start waits on the connection's backoff.
        let address = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
        let upstream =
            Upstream::new("up", &format!("ws://{address}/graphql"), Duration::from_secs(30), Duration::ZERO, 1 << 20);
        let (ada, ada_init) = credentials("ada");
        let operation = operation(1);
        let start = upstream.start(ada, ada_init, &operation, broadcast::channel(4).0);
        assert!(tokio::time::timeout(Duration::from_millis(300), start).await.is_err(), "no upstream, no start");
        assert_eq!(upstream.connections(), 0, "the cancelled start closed what it opened");
    }
}
