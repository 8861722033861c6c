//! One upstream's connections and subscriptions: one connection per set of forwarded
//! credentials, opened for its first subscription and closed after its last (after `linger`);
//! one upstream subscription per identical forwarded operation, shared by every hub execution
//! that needs it.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value};
use subhub_protocol::OperationPayload;
use tokio::sync::{broadcast, mpsc, oneshot, OnceCell};

use crate::connection::{self, Item, Request, Target};
use crate::error::UpstreamError;
use crate::stats::UpstreamStats;

/// Results an execution may fall behind one upstream subscription before losing the oldest.
const RESULTS_BUFFER: usize = 256;

/// Forwarded credentials as canonical text: connections are keyed by them.
type Credentials = String;

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct SubscriptionKey {
    credentials: Credentials,
    query: String,
    operation_name: Option<String>,
    variables: String,
}

struct ConnectionEntry {
    requests: mpsc::UnboundedSender<Request>,
    subscriptions: usize,
}

struct Shared {
    key: SubscriptionKey,
    id: u64,
    results: broadcast::Sender<Arc<Item>>,
    live: OnceCell<Result<(), UpstreamError>>,
    confirmation: Mutex<Option<oneshot::Receiver<Result<(), UpstreamError>>>>,
    leases: Mutex<usize>,
}

#[derive(Default)]
struct State {
    connections: HashMap<Credentials, ConnectionEntry>,
    subscriptions: HashMap<SubscriptionKey, Arc<Shared>>,
    next_id: u64,
}

/// One configured upstream.
pub struct Upstream {
    name: Arc<str>,
    url: String,
    keepalive: Duration,
    linger: Duration,
    stats: Arc<UpstreamStats>,
    state: Mutex<State>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Upstream {
    pub fn new(name: &str, url: &str, keepalive: Duration, linger: Duration) -> Arc<Self> {
        Arc::new(Upstream {
            name: name.into(),
            url: url.to_owned(),
            keepalive,
            linger,
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

    pub fn stats(&self) -> &Arc<UpstreamStats> {
        &self.stats
    }

    fn target(&self, init_payload: Option<Map<String, Value>>) -> Target {
        Target {
            upstream: self.name.clone(),
            url: self.url.clone(),
            init_payload,
            keepalive: self.keepalive,
            stats: self.stats.clone(),
        }
    }

    /// Subscribes `operation` with `init_payload` as the connection's credentials. Returns once
    /// the subscription was sent on an acknowledged connection.
    pub async fn subscribe(
        self: &Arc<Self>,
        init_payload: Option<Map<String, Value>>,
        operation: &OperationPayload,
    ) -> Result<Lease, UpstreamError> {
        let credentials = init_payload.as_ref().map_or_else(String::new, |p| Value::Object(p.clone()).to_string());
        let key = SubscriptionKey {
            credentials: credentials.clone(),
            query: operation.query.clone(),
            operation_name: operation.operation_name.clone(),
            variables: operation.variables.as_ref().map_or_else(String::new, |v| Value::Object(v.clone()).to_string()),
        };
        let (shared, receiver) = {
            let mut state = lock(&self.state);
            let existing = state.subscriptions.get(&key).cloned();
            let shared = match existing {
                Some(shared) => shared,
                None => {
                    state.next_id += 1;
                    let id = state.next_id;
                    let (confirm, confirmation) = oneshot::channel();
                    let shared = Arc::new(Shared {
                        key: key.clone(),
                        id,
                        results: broadcast::channel(RESULTS_BUFFER).0,
                        live: OnceCell::new(),
                        confirmation: Mutex::new(Some(confirmation)),
                        leases: Mutex::new(0),
                    });
                    let connection = state.connections.entry(credentials).or_insert_with(|| {
                        let (requests, receiver) = mpsc::unbounded_channel();
                        tokio::spawn(connection::run(self.target(init_payload), receiver));
                        ConnectionEntry { requests, subscriptions: 0 }
                    });
                    connection.subscriptions += 1;
                    let start = Request::Start {
                        id,
                        operation: Box::new(operation.clone()),
                        results: shared.results.clone(),
                        live: confirm,
                    };
                    let _ = connection.requests.send(start);
                    state.subscriptions.insert(key, shared.clone());
                    shared
                }
            };
            *lock(&shared.leases) += 1;
            let receiver = shared.results.subscribe();
            (shared, receiver)
        };
        let lease = Lease { upstream: self.clone(), shared: shared.clone(), receiver };
        let confirmed = shared
            .live
            .get_or_init(|| async {
                let confirmation = lock(&shared.confirmation).take();
                let result = match confirmation {
                    Some(confirmation) => confirmation.await.unwrap_or_else(|_| Err(self.gone())),
                    None => Err(self.gone()),
                };
                if result.is_ok() {
                    self.stats.sources_open.fetch_add(1, Relaxed);
                }
                result
            })
            .await
            .clone();
        confirmed.map(|()| lease)
    }

    fn gone(&self) -> UpstreamError {
        UpstreamError::Unreachable {
            upstream: self.name.to_string(),
            url: self.url.clone(),
            reason: "connection closed".into(),
        }
    }

    /// A lease was dropped; the last one stops the upstream subscription, and the last
    /// subscription of a connection closes it (after `linger`).
    fn release(self: &Arc<Self>, shared: &Arc<Shared>) {
        let last = {
            let mut leases = lock(&shared.leases);
            *leases -= 1;
            *leases == 0
        };
        if !last {
            return;
        }
        let mut state = lock(&self.state);
        if *lock(&shared.leases) > 0 {
            return;
        }
        self.forget(&mut state, shared, true);
    }

    /// The upstream ended the subscription (`error` or `complete`): later subscribers start anew.
    fn ended(self: &Arc<Self>, shared: &Arc<Shared>) {
        let mut state = lock(&self.state);
        self.forget(&mut state, shared, false);
    }

    fn forget(self: &Arc<Self>, state: &mut State, shared: &Arc<Shared>, stop: bool) {
        if !state.subscriptions.get(&shared.key).is_some_and(|current| Arc::ptr_eq(current, shared)) {
            return;
        }
        state.subscriptions.remove(&shared.key);
        if matches!(shared.live.get(), Some(Ok(()))) {
            self.stats.sources_open.fetch_sub(1, Relaxed);
        }
        let credentials = &shared.key.credentials;
        let Some(connection) = state.connections.get_mut(credentials) else { return };
        if stop {
            let _ = connection.requests.send(Request::Stop { id: shared.id });
        }
        connection.subscriptions -= 1;
        if connection.subscriptions > 0 {
            return;
        }
        if self.linger.is_zero() {
            // Dropping the sender ends the connection's task, which closes the socket.
            state.connections.remove(credentials);
        } else if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger_then_close(Arc::downgrade(self), credentials.clone(), self.linger));
        } else {
            state.connections.remove(credentials);
        }
    }
}

async fn linger_then_close(upstream: std::sync::Weak<Upstream>, credentials: Credentials, linger: Duration) {
    tokio::time::sleep(linger).await;
    let Some(upstream) = upstream.upgrade() else { return };
    let mut state = lock(&upstream.state);
    if state.connections.get(&credentials).is_some_and(|c| c.subscriptions == 0) {
        state.connections.remove(&credentials);
    }
}

/// A share of one upstream subscription; dropping it gives the share back.
pub struct Lease {
    upstream: Arc<Upstream>,
    shared: Arc<Shared>,
    receiver: broadcast::Receiver<Arc<Item>>,
}

impl Lease {
    /// The next result; `None` after the upstream completed it. Results missed by falling more
    /// than the buffer behind are skipped and counted in `lagged`.
    pub async fn recv(&mut self, lagged: &std::sync::atomic::AtomicU64) -> Option<Arc<Item>> {
        loop {
            match self.receiver.recv().await {
                Ok(item) => {
                    if !matches!(*item, Item::Next(_)) {
                        self.upstream.ended(&self.shared);
                    }
                    return Some(item);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    lagged.fetch_add(n, Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.upstream.release(&self.shared);
    }
}
