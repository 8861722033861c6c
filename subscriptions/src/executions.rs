//! One shared execution per operation key: N clients running the same operation cost one
//! execution per event, serialized once; each client's writer only frames the shared bytes.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::lock;
use crate::metrics::{Metrics, Refusal};
use crate::outbox::{Outbound, Outbox, SharedPayload, Slot};

/// Results written to one subscriber in one write at most.
const MAX_RESULTS_PER_WRITE: usize = 64;
/// Results an execution holds that not every subscriber has been sent yet, at most: beyond
/// that, results wait in the stream that produces them.
const MAX_UNSENT_RESULTS: usize = 1024;
/// What the subscribers of an execution that panicked are sent; nothing of the panic reaches
/// clients.
const INTERNAL_ERROR: &str = r#"[{"message":"internal error"}]"#;
/// Subscribers an execution writes to before it lets other tasks run.
const SUBSCRIBERS_PER_TURN: usize = 128;

/// What makes two operations the same: document, operation name, variables (canonical JSON)
/// and the auth scope they run under.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct OperationKey {
    pub document: Arc<str>,
    pub operation_name: Option<String>,
    pub variables: String,
    pub scope: String,
}

/// A source an execution listens to, as the dashboard lists it: a broker's topic, or an
/// operation forwarded to an upstream.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceRef {
    /// `broker` or `upstream`.
    pub kind: &'static str,
    /// The broker's or the upstream's name.
    pub origin: Arc<str>,
    /// The topic, or the forwarded operation.
    pub topic: Arc<str>,
}

/// One execution as the dashboard sees it: what it listens to and how many subscribers it has.
#[derive(Clone, Debug)]
pub struct ExecutionView {
    pub sources: Arc<[SourceRef]>,
    pub subscribers: usize,
}

/// One result of an execution.
#[derive(Clone, Debug)]
pub enum ExecutionItem {
    /// The execution's sources are live: every event published from now on reaches it. Its
    /// subscribers count in `subhub_subscriptions` from this moment.
    Live(Arc<[SourceRef]>),
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
    /// Executions alive at once at most; a subscription that needs one more is refused.
    max: usize,
    metrics: Arc<Metrics>,
}

/// The hub runs its limit of executions: a subscription that needs a new one is refused (one
/// that joins an execution alive is not). The text is safe to show clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the hub runs {0} executions, its limit (limits.max_executions); try again later")]
pub struct TooManyExecutions(pub usize);

struct Execution {
    key: OperationKey,
    state: Mutex<ExecutionState>,
    cancel: CancellationToken,
    /// `Some(true)` once live, `Some(false)` once ended; a resumed subscriber waits for it.
    went_live: tokio::sync::watch::Sender<Option<bool>>,
}

#[derive(Default)]
struct ExecutionState {
    next_subscriber: u64,
    subscribers: HashMap<u64, Arc<Subscriber>>,
    /// The subscribers as a list to fan out over, rebuilt after a change of membership.
    snapshot: Option<Arc<[Arc<Subscriber>]>>,
    /// Number of the next result the execution takes in: a subscriber joining now is sent
    /// results from this one on.
    head: u64,
    /// Its subscribers are counted in `subhub_subscriptions`.
    live: bool,
    /// What it listens to, once live.
    sources: Option<Arc<[SourceRef]>>,
    ended: bool,
}

struct Subscriber {
    outbox: Arc<Outbox>,
    slot: Arc<Slot>,
    /// Number of the first result this subscriber has not been sent (only the execution's
    /// task moves it).
    next: AtomicU64,
}

impl Executions {
    /// At most `max` executions alive at once.
    pub fn new(metrics: Arc<Metrics>, max: usize) -> Arc<Self> {
        Arc::new(Executions { alive: Mutex::default(), max, metrics })
    }

    /// Number of executions alive.
    pub fn len(&self) -> usize {
        lock(&self.alive).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live executions: their sources and subscriber counts.
    pub fn views(&self) -> Vec<ExecutionView> {
        let executions: Vec<Arc<Execution>> = lock(&self.alive).values().cloned().collect();
        executions
            .iter()
            .filter_map(|execution| {
                let state = lock(&execution.state);
                let sources = state.sources.clone()?;
                Some(ExecutionView { sources, subscribers: state.subscribers.len() })
            })
            .collect()
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
    ) -> Result<Attachment, TooManyExecutions> {
        let subscriber = Subscriber { outbox: outbox.clone(), slot: slot.clone(), next: AtomicU64::new(0) };
        let mut alive = lock(&self.alive);
        if let Some(execution) = alive.get(&key) {
            let mut state = lock(&execution.state);
            if !state.ended {
                let id = state.add(subscriber, &self.metrics);
                drop(state);
                return Ok(Attachment {
                    executions: self.clone(),
                    execution: execution.clone(),
                    subscriber: id,
                    slot,
                    outbox,
                });
            }
        }
        if alive.len() >= self.max {
            drop(alive);
            self.metrics.refuse(Refusal::Limit);
            return Err(TooManyExecutions(self.max));
        }
        let execution = Arc::new(Execution {
            key: key.clone(),
            state: Mutex::default(),
            cancel: CancellationToken::new(),
            went_live: tokio::sync::watch::Sender::new(None),
        });
        let id = lock(&execution.state).add(subscriber, &self.metrics);
        alive.insert(key, execution.clone());
        self.metrics.executions.fetch_add(1, Relaxed);
        drop(alive);
        tokio::spawn(self.clone().guard(execution.clone(), start()));
        Ok(Attachment { executions: self.clone(), execution, subscriber: id, slot, outbox })
    }

    /// Runs the execution; if it panics, the entry goes (later subscribers start a new one)
    /// and its subscribers get an `error`, instead of waiting on a dead execution for good.
    async fn guard(self: Arc<Self>, execution: Arc<Execution>, results: ExecutionStream) {
        let run = std::panic::AssertUnwindSafe(self.clone().run(execution.clone(), results));
        if let Err(panic) = run.catch_unwind().await {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(document = %execution.key.document, panic = %what, "an execution panicked; its subscribers get an error");
            let errors: SharedPayload = INTERNAL_ERROR.into();
            self.end(&execution, |slot| Outbound::Error { slot, errors: errors.clone() });
        }
    }

    async fn run(self: Arc<Self>, execution: Arc<Execution>, mut results: ExecutionStream) {
        let mut fanout = Fanout::default();
        loop {
            let item = match fanout.held.take() {
                Some(item) => item,
                None => tokio::select! {
                    biased;
                    () = execution.cancel.cancelled() => return,
                    item = results.next() => item,
                },
            };
            match item {
                Some(ExecutionItem::Live(sources)) => {
                    let mut state = lock(&execution.state);
                    state.sources = Some(sources);
                    if !state.live && !state.ended {
                        state.live = true;
                        self.metrics.subscriptions.fetch_add(state.subscribers.len() as i64, Relaxed);
                    }
                    drop(state);
                    execution.went_live.send_replace(Some(true));
                }
                Some(ExecutionItem::Next(payload)) => {
                    fanout.take_in(payload, &execution, &mut results);
                    if !fanout.sweep(&execution, &mut results).await {
                        return;
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
        execution.went_live.send_if_modified(|live| {
            let ended = live.is_none();
            if ended {
                *live = Some(false);
            }
            ended
        });
        let subscribers = {
            let mut alive = lock(&self.alive);
            self.forget(&mut alive, execution);
            let mut state = lock(&execution.state);
            state.ended = true;
            state.snapshot = None;
            let subscribers = std::mem::take(&mut state.subscribers);
            state.uncount(subscribers.len(), &self.metrics);
            subscribers
        };
        for subscriber in subscribers.into_values() {
            subscriber.outbox.push(last(subscriber.slot.clone()));
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
            state.snapshot = None;
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

/// Fanning results out: sweeps over the subscribers, each write carrying every result its
/// subscriber has not been sent yet. Results that arrive during a sweep are taken in at once, so
/// the subscribers still ahead in the sweep get them in the same write, and a backlog costs
/// fewer writes rather than more; idle sockets take each write straight away (write-through).
#[derive(Default)]
struct Fanout {
    /// Results not yet sent to every subscriber; the first is result number `base`.
    log: Vec<SharedPayload>,
    base: u64,
    /// A non-result item taken in while fanning out: handled once the results before it are out.
    held: Option<Option<ExecutionItem>>,
}

impl Fanout {
    fn head(&self) -> u64 {
        self.base + self.log.len() as u64
    }

    /// Takes in a result and those already waiting behind it.
    fn take_in(&mut self, payload: SharedPayload, execution: &Execution, results: &mut ExecutionStream) {
        self.log.push(payload);
        if !self.pull(execution, results) {
            lock(&execution.state).head = self.head();
        }
    }

    /// Takes in the results that are already waiting; true if there were any.
    fn pull(&mut self, execution: &Execution, results: &mut ExecutionStream) -> bool {
        let before = self.log.len();
        while self.held.is_none() && self.log.len() < MAX_UNSENT_RESULTS {
            match results.next().now_or_never() {
                Some(Some(ExecutionItem::Next(payload))) => self.log.push(payload),
                Some(other) => self.held = Some(other),
                None => break,
            }
        }
        let arrived = self.log.len() > before;
        if arrived {
            lock(&execution.state).head = self.head();
        }
        arrived
    }

    /// Sweeps until every subscriber has every result; false if the execution was cancelled.
    async fn sweep(&mut self, execution: &Execution, results: &mut ExecutionStream) -> bool {
        loop {
            let start = self.head();
            let subscribers = lock(&execution.state).snapshot();
            let mut arrived = false;
            for (n, subscriber) in subscribers.iter().enumerate() {
                let next = subscriber.next.load(Relaxed).max(self.base);
                let head = self.head();
                if next < head {
                    let unsent = &self.log[(next - self.base) as usize..];
                    for results in unsent.chunks(MAX_RESULTS_PER_WRITE) {
                        subscriber.outbox.push_nexts(&subscriber.slot, results);
                    }
                    subscriber.next.store(head, Relaxed);
                }
                if n % SUBSCRIBERS_PER_TURN == SUBSCRIBERS_PER_TURN - 1 {
                    // Writing to thousands of sockets takes a while: let the tasks that publish
                    // run, and take in what they published for the rest of this sweep.
                    tokio::task::yield_now().await;
                    if execution.cancel.is_cancelled() {
                        return false;
                    }
                    arrived |= self.pull(execution, results);
                }
            }
            // Everyone has what was logged when this sweep began.
            self.log.drain(..(start - self.base) as usize);
            self.base = start;
            if !arrived {
                return true;
            }
        }
    }
}

impl ExecutionState {
    fn add(&mut self, subscriber: Subscriber, metrics: &Metrics) -> u64 {
        let id = self.next_subscriber;
        self.next_subscriber += 1;
        subscriber.next.store(self.head, Relaxed);
        self.subscribers.insert(id, Arc::new(subscriber));
        self.snapshot = None;
        if self.live {
            metrics.subscriptions.fetch_add(1, Relaxed);
        }
        id
    }

    fn snapshot(&mut self) -> Arc<[Arc<Subscriber>]> {
        self.snapshot.get_or_insert_with(|| self.subscribers.values().cloned().collect()).clone()
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
    outbox: Arc<Outbox>,
}

impl Attachment {
    pub fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }

    /// Waits until the execution's sources are live (true), or it ended first (false): from
    /// then on, every event reaches this subscriber.
    pub fn live(&self) -> impl std::future::Future<Output = bool> + Send + 'static {
        let mut live = self.execution.went_live.subscribe();
        async move { live.wait_for(Option::is_some).await.ok().and_then(|live| *live).unwrap_or(false) }
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // Through the outbox: once this returns, no `next` of the slot is being written, so
        // the `complete` the connection sends next is its last frame.
        self.outbox.deactivate(&self.slot);
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

    /// An execution stream fed by hand through the returned sender.
    fn channel_stream() -> (mpsc::UnboundedSender<ExecutionItem>, ExecutionStream) {
        let (tx, rx) = mpsc::unbounded_channel::<ExecutionItem>();
        let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) });
        (tx, stream.boxed())
    }

    fn outbox(metrics: &Arc<Metrics>) -> Arc<Outbox> {
        let config = OutboxConfig {
            capacity: 16,
            max_bytes: 1 << 20,
            policy: SlowConsumerPolicy::DropOldest,
            close_after: Duration::from_secs(1),
        };
        Outbox::new(config, metrics.clone())
    }

    #[tokio::test]
    async fn one_execution_per_key_shared_by_its_subscribers() {
        let metrics = Arc::new(Metrics::default());
        let executions = Executions::new(metrics.clone(), 16);
        let (tx, stream) = channel_stream();
        let mut start = Some(stream);
        let (a, b) = (outbox(&metrics), outbox(&metrics));
        let first = executions
            .attach(key("q"), a.clone(), Slot::new(Protocol::TransportWs, "1"), || start.take().unwrap())
            .unwrap();
        let second =
            executions.attach(key("q"), b.clone(), Slot::new(Protocol::TransportWs, "2"), || unreachable!()).unwrap();
        assert_eq!(executions.len(), 1);
        assert_eq!(metrics.executions.load(Relaxed), 1);
        assert_eq!(metrics.subscriptions.load(Relaxed), 0);

        tx.send(ExecutionItem::Live(Arc::from([]))).unwrap();
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

    #[tokio::test]
    async fn a_panicking_execution_is_forgotten_and_its_subscribers_get_an_error() {
        let metrics = Arc::new(Metrics::default());
        let executions = Executions::new(metrics.clone(), 16);
        let (tx, stream) = channel_stream();
        let exploding = stream
            .map(|item| match item {
                ExecutionItem::Next(payload) if &*payload == "boom" => panic!("a resolver bug"),
                other => other,
            })
            .boxed();
        let mut start = Some(exploding);
        let a = outbox(&metrics);
        let slot = Slot::new(Protocol::TransportWs, "1");
        let _first = executions.attach(key("q"), a.clone(), slot, || start.take().unwrap()).unwrap();
        tx.send(ExecutionItem::Live(Arc::from([]))).unwrap();
        tx.send(ExecutionItem::Next("boom".into())).unwrap();
        tokio::time::timeout(Duration::from_secs(5), a.ready()).await.expect("the subscriber hears of it");
        let mut out = Vec::new();
        a.drain_into(&mut out, 10);
        assert!(matches!(&out[..], [Outbound::Error { errors, .. }] if &**errors == INTERNAL_ERROR), "{out:?}");
        assert_eq!(
            (executions.len(), metrics.executions.load(Relaxed), metrics.subscriptions.load(Relaxed)),
            (0, 0, 0)
        );

        // The next subscriber of the same key starts a new execution.
        let (tx, stream) = channel_stream();
        let mut start = Some(stream);
        let b = outbox(&metrics);
        let _second = executions
            .attach(key("q"), b.clone(), Slot::new(Protocol::TransportWs, "2"), || start.take().unwrap())
            .unwrap();
        tx.send(ExecutionItem::Live(Arc::from([]))).unwrap();
        tx.send(ExecutionItem::Next("{}".into())).unwrap();
        tokio::time::timeout(Duration::from_secs(5), b.ready()).await.expect("a live execution");
        let mut out = Vec::new();
        b.drain_into(&mut out, 10);
        assert!(matches!(&out[..], [Outbound::Next { .. }]), "{out:?}");
    }

    #[tokio::test]
    async fn results_arriving_during_a_sweep_reach_every_subscriber_once_in_order() {
        let metrics = Arc::new(Metrics::default());
        let executions = Executions::new(metrics.clone(), 16);
        let (tx, stream) = channel_stream();
        let mut start = Some(stream);
        // More subscribers than one turn, so results arrive while a sweep is under way.
        let config = OutboxConfig {
            capacity: 1000,
            max_bytes: 1 << 20,
            policy: SlowConsumerPolicy::DropOldest,
            close_after: Duration::from_secs(60),
        };
        let outboxes: Vec<_> =
            (0..3 * SUBSCRIBERS_PER_TURN + 7).map(|_| Outbox::new(config, metrics.clone())).collect();
        let _attachments: Vec<_> = outboxes
            .iter()
            .enumerate()
            .map(|(i, outbox)| {
                let slot = Slot::new(Protocol::TransportWs, &i.to_string());
                executions.attach(key("q"), outbox.clone(), slot, || start.take().unwrap()).unwrap()
            })
            .collect();
        tx.send(ExecutionItem::Live(Arc::from([]))).unwrap();
        let events = 200;
        let feeder = tokio::spawn(async move {
            for n in 0..events {
                tx.send(ExecutionItem::Next(n.to_string().into())).unwrap();
                if n % 7 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            tx
        });
        let _tx = feeder.await.unwrap();
        for outbox in &outboxes {
            let mut received = Vec::new();
            while received.len() < events {
                tokio::time::timeout(Duration::from_secs(5), outbox.ready()).await.expect("results keep coming");
                let mut out = Vec::new();
                outbox.drain_into(&mut out, usize::MAX);
                received.extend(out.into_iter().map(|message| match message {
                    Outbound::Next { payload, .. } => payload.parse::<usize>().unwrap(),
                    other => panic!("unexpected {other:?}"),
                }));
            }
            assert_eq!(received, (0..events).collect::<Vec<_>>());
        }
    }
}
