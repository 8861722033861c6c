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
