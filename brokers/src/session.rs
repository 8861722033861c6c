//! What a broker's session task and the rest of the hub say to each other. The session task owns
//! the broker connection; subscribing sends it a request that is answered only once the
//! subscription is live, and dropping the returned guard asks it to unsubscribe.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};

use crate::broker::{BrokerError, SourceGuard};
use crate::sink::EventSink;

/// A request to a session task. The channel carrying these is unbounded on purpose: at most one
/// subscribe and one unsubscribe per source, and sources are bounded by the registry.
pub enum Command {
    Subscribe { topic: String, sink: EventSink, live: oneshot::Sender<Result<(), BrokerError>> },
    Unsubscribe { topic: String, sink: EventSink },
}

pub type Commands = mpsc::UnboundedSender<Command>;

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

/// The topics a session serves, and the subscribe requests it will confirm once connected.
#[derive(Default)]
pub struct Topics {
    pub active: HashMap<String, EventSink>,
    pub waiting: Vec<(String, oneshot::Sender<Result<(), BrokerError>>)>,
}

impl Topics {
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

    /// Takes a command while disconnected: subscriptions wait for the next session.
    pub fn apply_offline(&mut self, command: Command) {
        match command {
            Command::Subscribe { topic, sink, live } if self.superseded(&topic, &sink) => {
                let _ = live.send(Ok(()));
            }
            Command::Subscribe { topic, sink, live } => {
                self.active.insert(topic.clone(), sink);
                self.waiting.push((topic, live));
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

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// The hub dropped the broker: stop.
    Shutdown,
    /// The connection broke: reconnect after a backoff.
    Disconnected,
}

/// Waits `delay` while still taking commands; false when the hub dropped the broker.
pub async fn wait_offline(
    delay: std::time::Duration,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    topics: &mut Topics,
) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return true,
            command = commands.recv() => match command {
                Some(command) => topics.apply_offline(command),
                None => return false,
            },
        }
    }
}

/// The state every reconnecting broker session keeps between sessions: who it is, its stats, and
/// its backoff. Sessions report through it, so "connected", "what the broker holds" and the
/// logs mean the same for every broker.
pub struct Link {
    name: std::sync::Arc<str>,
    stats: std::sync::Arc<crate::sink::BrokerStats>,
    backoff: subhub_protocol::backoff::Backoff,
    what: &'static str,
}

impl Link {
    /// `what` names the broker in logs ("Redis", "RabbitMQ").
    pub fn new(name: std::sync::Arc<str>, stats: std::sync::Arc<crate::sink::BrokerStats>, what: &'static str) -> Self {
        Link { name, stats, backoff: subhub_protocol::backoff::Backoff::default(), what }
    }

    pub fn name(&self) -> &std::sync::Arc<str> {
        &self.name
    }

    /// A session is up with every topic restored: mark it connected and confirm the waiting
    /// subscriptions.
    pub fn up(&mut self, topics: &mut Topics) {
        use std::sync::atomic::Ordering::Relaxed;
        self.stats.connected.store(true, Relaxed);
        self.held(topics);
        if self.backoff.failures() > 0 {
            tracing::info!(broker = %self.name, restored = topics.active.len(), "reconnected to {}", self.what);
        }
        self.backoff.reset();
        topics.confirm_waiting();
    }

    /// Records how many subscriptions the broker holds for the hub.
    pub fn held(&self, topics: &Topics) {
        self.stats.broker_subscriptions.store(topics.active.len() as i64, std::sync::atomic::Ordering::Relaxed);
    }

    /// A connection attempt failed: one line for the first failure in a row, not one per retry.
    pub fn unreachable(&self, error: &dyn std::fmt::Display) {
        if self.backoff.failures() == 0 {
            tracing::warn!(broker = %self.name, %error, "{} is unreachable; retrying", self.what);
        }
    }

    /// The session ended: mark the broker down, then (unless the hub dropped the broker) wait
    /// out the backoff while still taking commands. False means stop.
    pub async fn down(
        &mut self,
        end: SessionEnd,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        topics: &mut Topics,
    ) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.stats.connected.store(false, Relaxed);
        self.stats.broker_subscriptions.store(0, Relaxed);
        end != SessionEnd::Shutdown && wait_offline(self.backoff.next_delay(), commands, topics).await
    }
}
