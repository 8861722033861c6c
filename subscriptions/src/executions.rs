//! One shared execution per operation key: N clients running the same operation cost one
//! execution per event, serialized once; each client's writer only frames the shared bytes.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::lock;
use crate::metrics::Metrics;
use crate::outbox::{Outbound, Outbox, SharedPayload, Slot};

/// What makes two operations the same: document, operation name, variables (canonical JSON)
/// and the auth scope they run under.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct OperationKey {
    pub document: Arc<str>,
    pub operation_name: Option<String>,
    pub variables: String,
    pub scope: String,
}

/// One result of an execution.
#[derive(Clone, Debug)]
pub enum ExecutionItem {
    /// The execution's sources are live: every event published from now on reaches it. Its
    /// subscribers count in `subhub_subscriptions` from this moment.
    Live,
    /// A serialized execution result, sent as `next`.
    Next(SharedPayload),
    /// The operation failed before producing results: a serialized error list, sent as `error`.
    /// Ends the execution.
    Error(SharedPayload),
}

/// The results of an execution; its end completes every subscriber.
pub type ExecutionStream = BoxStream<'static, ExecutionItem>;

/// The shared executions alive.
pub struct Executions {
    alive: Mutex<HashMap<OperationKey, Arc<Execution>>>,
    metrics: Arc<Metrics>,
}

struct Execution {
    key: OperationKey,
    state: Mutex<ExecutionState>,
    cancel: CancellationToken,
}

#[derive(Default)]
struct ExecutionState {
    next_subscriber: u64,
    subscribers: HashMap<u64, Subscriber>,
    /// Its subscribers are counted in `subhub_subscriptions`.
    live: bool,
    ended: bool,
}

struct Subscriber {
    outbox: Arc<Outbox>,
    slot: Arc<Slot>,
}

impl Executions {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Executions { alive: Mutex::default(), metrics })
    }

    /// Number of executions alive.
    pub fn len(&self) -> usize {
        lock(&self.alive).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Subscribes `slot` on `outbox` to the execution of `key`, starting it with `start` if no
    /// execution of that key is alive. Dropping the attachment unsubscribes; the last one to
    /// leave cancels the execution, which releases its sources.
    pub fn attach(
        self: &Arc<Self>,
        key: OperationKey,
        outbox: Arc<Outbox>,
        slot: Arc<Slot>,
        start: impl FnOnce() -> ExecutionStream,
    ) -> Attachment {
        let subscriber = Subscriber { outbox, slot: slot.clone() };
        let mut alive = lock(&self.alive);
        if let Some(execution) = alive.get(&key) {
            let mut state = lock(&execution.state);
            if !state.ended {
                let id = state.add(subscriber, &self.metrics);
                drop(state);
                return Attachment { executions: self.clone(), execution: execution.clone(), subscriber: id, slot };
            }
        }
        let execution =
            Arc::new(Execution { key: key.clone(), state: Mutex::default(), cancel: CancellationToken::new() });
        let id = lock(&execution.state).add(subscriber, &self.metrics);
        alive.insert(key, execution.clone());
        self.metrics.executions.fetch_add(1, Relaxed);
        drop(alive);
        tokio::spawn(self.clone().run(execution.clone(), start()));
        Attachment { executions: self.clone(), execution, subscriber: id, slot }
    }

    async fn run(self: Arc<Self>, execution: Arc<Execution>, mut results: ExecutionStream) {
        loop {
            let item = tokio::select! {
                biased;
                () = execution.cancel.cancelled() => return,
                item = results.next() => item,
            };
            match item {
                Some(ExecutionItem::Live) => {
                    let mut state = lock(&execution.state);
                    if !state.live && !state.ended {
                        state.live = true;
                        self.metrics.subscriptions.fetch_add(state.subscribers.len() as i64, Relaxed);
                    }
                }
                Some(ExecutionItem::Next(payload)) => {
                    let state = lock(&execution.state);
                    for subscriber in state.subscribers.values() {
                        subscriber
                            .outbox
                            .push(Outbound::Next { slot: subscriber.slot.clone(), payload: payload.clone() });
                    }
                }
                Some(ExecutionItem::Error(errors)) => {
                    return self.end(&execution, |slot| Outbound::Error { slot, errors: errors.clone() });
                }
                None => return self.end(&execution, |slot| Outbound::Complete { slot }),
            }
        }
    }

    /// The execution ended by itself: every subscriber gets its last message.
    fn end(&self, execution: &Arc<Execution>, last: impl Fn(Arc<Slot>) -> Outbound) {
        let subscribers = {
            let mut alive = lock(&self.alive);
            self.forget(&mut alive, execution);
            let mut state = lock(&execution.state);
            state.ended = true;
            let subscribers = std::mem::take(&mut state.subscribers);
            state.uncount(subscribers.len(), &self.metrics);
            subscribers
        };
        for subscriber in subscribers.into_values() {
            subscriber.outbox.push(last(subscriber.slot));
        }
    }

    fn forget(&self, alive: &mut HashMap<OperationKey, Arc<Execution>>, execution: &Arc<Execution>) {
        if alive.get(&execution.key).is_some_and(|current| Arc::ptr_eq(current, execution)) {
            alive.remove(&execution.key);
            self.metrics.executions.fetch_sub(1, Relaxed);
        }
    }

    fn detach(&self, execution: &Arc<Execution>, subscriber: u64) {
        let mut alive = lock(&self.alive);
        let mut state = lock(&execution.state);
        if state.subscribers.remove(&subscriber).is_some() {
            state.uncount(1, &self.metrics);
        }
        if state.subscribers.is_empty() && !state.ended {
            state.ended = true;
            drop(state);
            self.forget(&mut alive, execution);
            execution.cancel.cancel();
        }
    }
}

impl ExecutionState {
    fn add(&mut self, subscriber: Subscriber, metrics: &Metrics) -> u64 {
        let id = self.next_subscriber;
        self.next_subscriber += 1;
        self.subscribers.insert(id, subscriber);
        if self.live {
            metrics.subscriptions.fetch_add(1, Relaxed);
        }
        id
    }

    fn uncount(&self, n: usize, metrics: &Metrics) {
        if self.live {
            metrics.subscriptions.fetch_sub(n as i64, Relaxed);
        }
    }
}

/// One client subscription's membership of a shared execution.
pub struct Attachment {
    executions: Arc<Executions>,
    execution: Arc<Execution>,
    subscriber: u64,
    slot: Arc<Slot>,
}

impl Attachment {
    pub fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.slot.deactivate();
        self.executions.detach(&self.execution, self.subscriber);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{OutboxConfig, SlowConsumerPolicy};
    use std::time::Duration;
    use subhub_protocol::Protocol;
    use tokio::sync::mpsc;

    fn key(document: &str) -> OperationKey {
        OperationKey { document: document.into(), operation_name: None, variables: "{}".into(), scope: String::new() }
    }

    fn outbox(metrics: &Arc<Metrics>) -> Arc<Outbox> {
        let config =
            OutboxConfig { capacity: 16, policy: SlowConsumerPolicy::DropOldest, close_after: Duration::from_secs(1) };
        Outbox::new(config, metrics.clone())
    }

    #[tokio::test]
    async fn one_execution_per_key_shared_by_its_subscribers() {
        let metrics = Arc::new(Metrics::default());
        let executions = Executions::new(metrics.clone());
        let (tx, rx) = mpsc::unbounded_channel::<ExecutionItem>();
        let stream: ExecutionStream =
            futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) }).boxed();
        let mut start = Some(stream);
        let (a, b) = (outbox(&metrics), outbox(&metrics));
        let first =
            executions.attach(key("q"), a.clone(), Slot::new(Protocol::TransportWs, "1"), || start.take().unwrap());
        let second = executions.attach(key("q"), b.clone(), Slot::new(Protocol::TransportWs, "2"), || unreachable!());
        assert_eq!(executions.len(), 1);
        assert_eq!(metrics.executions.load(Relaxed), 1);
        assert_eq!(metrics.subscriptions.load(Relaxed), 0);

        tx.send(ExecutionItem::Live).unwrap();
        tx.send(ExecutionItem::Next("{}".into())).unwrap();
        b.ready().await;
        let mut out = Vec::new();
        b.drain_into(&mut out, 10);
        assert!(matches!(&out[..], [Outbound::Next { slot, .. }] if &*slot.id == "2"));

        assert_eq!(metrics.subscriptions.load(Relaxed), 2);
        drop(first);
        assert_eq!(metrics.subscriptions.load(Relaxed), 1);
        assert_eq!(executions.len(), 1);
        drop(second);
        assert_eq!(executions.len(), 0);
        assert_eq!(metrics.executions.load(Relaxed), 0);
        assert_eq!(metrics.subscriptions.load(Relaxed), 0);
        // The cancelled task drops its stream, and with it the sender's receiver.
        tokio::time::timeout(Duration::from_secs(5), tx.closed()).await.unwrap();
    }
}
