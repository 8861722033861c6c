//! What a broker's session task and the rest of the hub say to each other, and what every
//! reconnecting broker session keeps. The session task owns the broker connection and runs the
//! shared reconnect loop ([`subhub_core::session`]); subscribing sends it a request that is
//! answered only once the subscription is live, and dropping the returned guard asks it to
//! unsubscribe.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::broker::{BrokerError, SourceGuard};
use crate::sink::{BrokerStats, EventSink};

/// A request to a session task. The channel carrying these is unbounded on purpose: at most one
/// subscribe and one unsubscribe per source, and sources are bounded by the registry.
pub enum Command {
    Subscribe { topic: String, sink: EventSink, live: Confirm },
    Unsubscribe { topic: String, sink: EventSink },
}

pub type Commands = mpsc::UnboundedSender<Command>;

/// Answers a subscribe request once its subscription is live, or why not.
pub type Confirm = oneshot::Sender<Result<(), BrokerError>>;

/// Asks the session to subscribe and waits until the subscription is live.
pub async fn subscribe(
    commands: &Commands,
    broker: &str,
    topic: &str,
    sink: EventSink,
) -> Result<SourceGuard, BrokerError> {
    let (live, confirmed) = oneshot::channel();
    let command = Command::Subscribe { topic: topic.to_owned(), sink: sink.clone(), live };
    commands.send(command).map_err(|_| BrokerError::Unavailable(broker.to_owned()))?;
    // A guard exists from here on, so a subscriber that leaves while waiting still unsubscribes.
    let guard = Unsubscriber { commands: commands.clone(), topic: topic.to_owned(), sink };
    confirmed.await.map_err(|_| BrokerError::Unavailable(broker.to_owned()))??;
    Ok(Box::new(guard))
}

struct Unsubscriber {
    commands: Commands,
    topic: String,
    sink: EventSink,
}

impl Drop for Unsubscriber {
    fn drop(&mut self) {
        let command = Command::Unsubscribe { topic: std::mem::take(&mut self.topic), sink: self.sink.clone() };
        // The session is gone only when the hub is: nothing left to unsubscribe then.
        let _ = self.commands.send(command);
    }
}

/// The topics a broker session serves, and the subscribe requests it will confirm once
/// connected.
#[derive(Default)]
pub struct SessionTopics {
    pub active: HashMap<String, EventSink>,
    pub waiting: Vec<(String, Confirm)>,
}

impl SessionTopics {
    /// Removes `topic` if `sink` is still the source serving it; true when removed.
    pub fn remove(&mut self, topic: &str, sink: &EventSink) -> bool {
        if self.active.get(topic).is_some_and(|current| current.same_source(sink)) {
            self.active.remove(topic);
            self.waiting.retain(|(waiting, _)| waiting != topic);
            return true;
        }
        false
    }

    /// True when `topic` is served by a source opened after `sink`'s: a subscribe request for
    /// `sink` is stale (see [`EventSink::opened_before`]). It is confirmed and otherwise ignored.
    pub fn superseded(&self, topic: &str, sink: &EventSink) -> bool {
        self.active.get(topic).is_some_and(|current| sink.opened_before(current))
    }

    /// A subscribe request. A stale one (see [`SessionTopics::superseded`]) is confirmed at
    /// once and `None` returned; otherwise `sink` serves `topic` from now on and the waiter is
    /// returned, for the session to answer once the broker has the subscription.
    pub fn accept(&mut self, topic: &str, sink: EventSink, live: Confirm) -> Option<Confirm> {
        if self.superseded(topic, &sink) {
            let _ = live.send(Ok(()));
            return None;
        }
        self.active.insert(topic.to_owned(), sink);
        Some(live)
    }

    /// Takes a command while disconnected: subscriptions wait for the next session.
    pub fn apply_offline(&mut self, command: Command) {
        match command {
            Command::Subscribe { topic, sink, live } => {
                if let Some(live) = self.accept(&topic, sink, live) {
                    self.waiting.push((topic, live));
                }
            }
            Command::Unsubscribe { topic, sink } => {
                self.remove(&topic, &sink);
            }
        }
    }

    /// Confirms every waiting subscription: the session restored them all.
    pub fn confirm_waiting(&mut self) {
        for (_, live) in self.waiting.drain(..) {
            let _ = live.send(Ok(()));
        }
    }
}

/// Who a broker session is, for its stats and logs, so that "connected", "what the broker
/// holds" and the log lines mean the same for every broker.
pub struct Link {
    name: Arc<str>,
    stats: Arc<BrokerStats>,
}

impl Link {
    pub fn new(name: Arc<str>, stats: Arc<BrokerStats>) -> Self {
        Link { name, stats }
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// A session is up with every topic restored: mark it connected and confirm the waiting
    /// subscriptions.
    pub fn up(&self, topics: &mut SessionTopics) {
        self.stats.connected.store(true, Relaxed);
        self.held(topics);
        topics.confirm_waiting();
    }

    /// Records how many subscriptions the broker holds for the hub.
    pub fn held(&self, topics: &SessionTopics) {
        self.stats.broker_subscriptions.store(topics.active.len() as i64, Relaxed);
    }

    /// The session ended: the broker is down and holds nothing of the hub's.
    pub fn down(&self) {
        self.stats.connected.store(false, Relaxed);
        self.stats.broker_subscriptions.store(0, Relaxed);
    }
}

/// The connection of the session in progress, for calls made beside the session task
/// (publishes, history reads): set when a session is up, cleared when it ends, so such a call
/// during an outage is refused at once instead of waiting for a connection of its own. Only
/// until the session's first attempt has an outcome does a call wait for it.
pub struct Current<T>(Arc<watch::Sender<Connection<T>>>);

enum Connection<T> {
    /// The session has not finished its first attempt.
    Starting,
    Up(T),
    Down,
}

impl<T: Clone> Current<T> {
    /// The connection, waiting at most `deadline` for the session's first attempt.
    pub async fn get(&self, deadline: Duration) -> Option<T> {
        let mut state = self.0.subscribe();
        let settled = state.wait_for(|state| !matches!(state, Connection::Starting));
        let _ = tokio::time::timeout(deadline, settled).await;
        let current = match &*state.borrow() {
            Connection::Up(connection) => Some(connection.clone()),
            Connection::Starting | Connection::Down => None,
        };
        current
    }

    pub fn set(&self, connection: T) {
        self.0.send_replace(Connection::Up(connection));
    }

    /// The session ended, or an attempt failed.
    pub fn clear(&self) {
        self.0.send_replace(Connection::Down);
    }
}

impl<T> Clone for Current<T> {
    fn clone(&self) -> Self {
        Current(self.0.clone())
    }
}

impl<T> Default for Current<T> {
    fn default() -> Self {
        Current(Arc::new(watch::Sender::new(Connection::Starting)))
    }
}
