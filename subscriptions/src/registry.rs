//! The registry of sources, whatever opens them (broker topics, upstream operations): one
//! source per key, opened by the first lease, shared by every later one, closed when the last
//! lease is dropped (after the origin's `linger`).
//!
//! Opening runs on a task of its own, started with the entry: an acquire that is cancelled
//! while it waits (a client gone during an outage) neither cancels the opening halfway nor
//! decides its outcome for the others. A source whose opening failed leaves the map at once, so
//! the next acquire tries again. A lingering close is tied to the idle period that started it:
//! a source left, rejoined and left again lingers from the second leave.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{broadcast, watch};

use crate::lock;
use crate::metrics::Metrics;

/// What a registry opens sources on.
pub trait Origin: Send + Sync + 'static {
    /// What names one source.
    type Key: Clone + Eq + Hash + Debug + Send + Sync + 'static;
    /// What a source yields.
    type Item: Clone + Send + 'static;
    /// Holds the source open; dropping it closes the source on the origin.
    type Guard: Send + 'static;
    /// Why a source could not be opened; the text is safe to show clients.
    type Error: Clone + std::fmt::Display + Send + Sync + 'static;

    /// Opens the source of `key`, its items sent to `items`; resolves once the source is live.
    /// Called under the registry's lock: what it does before returning its future happens in
    /// the order the sources of a key are opened (the future itself runs on a task of its own).
    fn open(
        &self,
        key: &Self::Key,
        items: broadcast::Sender<Self::Item>,
    ) -> BoxFuture<'static, Result<Self::Guard, Self::Error>>;

    /// How long the source of `key` stays open after its last lease.
    fn linger(&self, key: &Self::Key) -> Duration;

    /// `subhub_sources_open` for `key`: `delta` is +1 when its source opens, -1 when it closes.
    fn count_open(&self, key: &Self::Key, delta: i64);

    /// Whether `item` is the source's last (an upstream's `error` or `complete`): later leases
    /// open the source anew.
    fn ends(_item: &Self::Item) -> bool {
        false
    }
}

/// Sources open at once, shared by every registry of the hub (`limits.max_sources`).
#[derive(Debug)]
pub struct Capacity {
    open: AtomicUsize,
    max: usize,
}

impl Capacity {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Capacity { open: AtomicUsize::new(0), max })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    fn reserve(&self) -> bool {
        self.open.fetch_update(SeqCst, SeqCst, |open| (open < self.max).then_some(open + 1)).is_ok()
    }

    fn free(&self) {
        self.open.fetch_sub(1, SeqCst);
    }
}

/// Why a lease could not be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcquireError<E> {
    /// The origin could not open the source.
    Open(E),
    /// `limits.max_sources` are open.
    Full(usize),
    /// The opening never finished: the runtime is shutting down.
    Gone,
}

/// The open sources of one origin.
pub struct Registry<O: Origin> {
    origin: Arc<O>,
    entries: Mutex<HashMap<O::Key, Arc<Entry<O>>>>,
    buffer: usize,
    capacity: Arc<Capacity>,
    metrics: Arc<Metrics>,
}

struct Entry<O: Origin> {
    key: O::Key,
    /// `None` while opening; then whether the source went live.
    live: watch::Receiver<Option<Result<(), O::Error>>>,
    state: Mutex<EntryState<O::Guard, O::Item>>,
}

struct EntryState<G, I> {
    /// What leases subscribe to, until the entry leaves the map. Dropped then: once the origin
    /// lets go of its own senders, leases read what is left and end, those that joined after
    /// the source's last item included.
    items: Option<broadcast::Sender<I>>,
    leases: usize,
    guard: Option<G>,
    /// Counted in `subhub_sources_open`.
    counted: bool,
    /// Out of the map: a guard that arrives now is dropped at once.
    detached: bool,
    /// Bumped each time the last lease goes: a lingering close applies only to its own period.
    idle_period: u64,
}

impl<O: Origin> Registry<O> {
    /// `buffer`: items a lease may fall behind its source before it loses the oldest.
    pub fn new(origin: Arc<O>, buffer: usize, capacity: Arc<Capacity>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Registry { origin, entries: Mutex::default(), buffer: buffer.max(1), capacity, metrics })
    }

    pub fn origin(&self) -> &Arc<O> {
        &self.origin
    }

    /// Sources open or opening.
    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A lease on the source of `key`, once it is live: every item the source yields after this
    /// returns is received.
    pub async fn acquire(self: &Arc<Self>, key: O::Key) -> Result<Lease<O>, AcquireError<O::Error>> {
        let lease = {
            let mut entries = lock(&self.entries);
            let entry = match entries.get(&key) {
                Some(entry) => entry.clone(),
                None => {
                    if !self.capacity.reserve() {
                        return Err(AcquireError::Full(self.capacity.max()));
                    }
                    tracing::debug!(?key, "opening a source");
                    let entry = self.start(key.clone());
                    entries.insert(key, entry.clone());
                    entry
                }
            };
            let receiver = {
                let mut state = lock(&entry.state);
                state.leases += 1;
                state.items.as_ref().map(broadcast::Sender::subscribe)
            };
            // An entry in the map has its sender; were it gone, the lease would end at once.
            let receiver = receiver.unwrap_or_else(|| broadcast::channel(1).1);
            // The lease exists before the first await, so a cancelled acquire gives it back.
            Lease { registry: self.clone(), entry, receiver }
        };
        let mut live = lease.entry.live.clone();
        let outcome = match live.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone(),
            Err(_) => None,
        };
        match outcome {
            Some(Ok(())) => Ok(lease),
            Some(Err(error)) => Err(AcquireError::Open(error)),
            // The opening task is gone without a word: only a runtime shutting down does that.
            None => Err(AcquireError::Gone),
        }
    }

    /// A new entry, its opening already under way on a task of its own.
    fn start(self: &Arc<Self>, key: O::Key) -> Arc<Entry<O>> {
        let (outcome, live) = watch::channel(None);
        let (items, _) = broadcast::channel(self.buffer);
        let state = EntryState {
            items: Some(items.clone()),
            leases: 0,
            guard: None,
            counted: false,
            detached: false,
            idle_period: 0,
        };
        let entry = Arc::new(Entry { key, live, state: Mutex::new(state) });
        let opening = self.origin.open(&entry.key, items);
        let (registry, opened) = (self.clone(), entry.clone());
        tokio::spawn(async move {
            let result = opening.await;
            let reported = match result {
                Ok(guard) => {
                    let mut state = lock(&opened.state);
                    if state.detached {
                        drop(state);
                        tracing::debug!(key = ?opened.key, "a source closed while opening is closed now");
                        drop(guard);
                    } else {
                        state.guard = Some(guard);
                        state.counted = true;
                        registry.origin.count_open(&opened.key, 1);
                    }
                    Ok(())
                }
                Err(error) => {
                    // Clients can cause this at their subscribe rate (an unknown topic): counted,
                    // and logged only at debug.
                    registry.metrics.source_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::debug!(key = ?opened.key, %error, "cannot open source");
                    registry.detach(&opened);
                    Err(error)
                }
            };
            outcome.send_replace(Some(reported));
        });
        entry
    }

    fn release(self: &Arc<Self>, entry: &Arc<Entry<O>>) {
        let period = {
            let mut state = lock(&entry.state);
            state.leases -= 1;
            if state.leases > 0 {
                return;
            }
            state.idle_period += 1;
            state.idle_period
        };
        let linger = self.origin.linger(&entry.key);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !linger.is_zero() => {
                let (registry, entry) = (self.clone(), entry.clone());
                runtime.spawn(async move {
                    tokio::time::sleep(linger).await;
                    registry.close_if_idle(&entry, period);
                });
            }
            _ => self.close_if_idle(entry, period),
        }
    }

    /// Closes the source if nobody came back since idle period `period` began. The check and
    /// the removal are one step under the map's lock, which every acquire takes to join an
    /// entry: a lease is either had before the check (and the source stays) or on a new entry.
    fn close_if_idle(&self, entry: &Arc<Entry<O>>, period: u64) {
        let mut entries = lock(&self.entries);
        let mut state = lock(&entry.state);
        if state.leases > 0 || state.idle_period != period {
            return;
        }
        let guard = self.detach_locked(&mut entries, &mut state, entry);
        drop((state, entries));
        drop(guard);
    }

    /// Takes the entry out of the map (later acquires open anew) and closes its source; leases
    /// still held read what the origin sent and end once it lets go of its senders.
    fn detach(&self, entry: &Arc<Entry<O>>) {
        let mut entries = lock(&self.entries);
        let mut state = lock(&entry.state);
        let guard = self.detach_locked(&mut entries, &mut state, entry);
        drop((state, entries));
        drop(guard);
    }

    /// [`Registry::detach`] with both locks held; the guard it returns is dropped (the source
    /// closed on the origin) once they are not.
    fn detach_locked(
        &self,
        entries: &mut HashMap<O::Key, Arc<Entry<O>>>,
        state: &mut EntryState<O::Guard, O::Item>,
        entry: &Arc<Entry<O>>,
    ) -> Option<O::Guard> {
        if state.detached {
            return None;
        }
        state.detached = true;
        state.items = None;
        tracing::debug!(key = ?entry.key, opened = state.guard.is_some(), "closing a source");
        if entries.get(&entry.key).is_some_and(|current| Arc::ptr_eq(current, entry)) {
            entries.remove(&entry.key);
        }
        self.capacity.free();
        if std::mem::take(&mut state.counted) {
            self.origin.count_open(&entry.key, -1);
        }
        state.guard.take()
    }
}

/// A share of one source. Items arrive through [`Lease::recv`]; dropping the lease gives the
/// share back, and the last one closes the source.
pub struct Lease<O: Origin> {
    registry: Arc<Registry<O>>,
    entry: Arc<Entry<O>>,
    receiver: broadcast::Receiver<O::Item>,
}

impl<O: Origin> Lease<O> {
    /// The next item, or `None` when the source has ended. Items missed because this reader
    /// fell more than the buffer behind are counted as `lagged` and skipped.
    pub async fn recv(&mut self) -> Option<O::Item> {
        loop {
            match self.receiver.recv().await {
                Ok(item) => {
                    if O::ends(&item) {
                        self.registry.detach(&self.entry);
                    }
                    return Some(item);
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    self.registry.metrics.dropped_lagged.fetch_add(missed, Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    pub fn key(&self) -> &O::Key {
        &self.entry.key
    }
}

impl<O: Origin> Drop for Lease<O> {
    fn drop(&mut self) {
        self.registry.release(&self.entry);
    }
}

#[cfg(test)]
mod tests {
    //! The registry's own rules, on an origin that counts what it opens and can be held at its
    //! opening or made to fail. Broker topics and upstream operations are tested end to end in
    //! the server's tests, on real brokers and a real upstream.

    use super::*;
    use futures_util::FutureExt;
    use std::sync::atomic::{AtomicBool, AtomicI64};
    use tokio::sync::Semaphore;

    #[derive(Default)]
    struct Counting {
        opened: AtomicUsize,
        open_now: Arc<AtomicI64>,
        gauge: AtomicI64,
        fail: AtomicBool,
        /// When set, each opening waits for a permit.
        gate: Option<Arc<Semaphore>>,
        linger: Duration,
        /// Where the source opened last delivers, until a test takes it.
        items: Mutex<Option<broadcast::Sender<u32>>>,
    }

    impl Counting {
        fn take_items(&self) -> broadcast::Sender<u32> {
            lock(&self.items).take().expect("a source was opened")
        }
    }

    struct Open(Arc<AtomicI64>);

    impl Drop for Open {
        fn drop(&mut self) {
            self.0.fetch_sub(1, SeqCst);
        }
    }

    impl Origin for Counting {
        type Key = &'static str;
        type Item = u32;
        type Guard = Open;
        type Error = String;

        fn open(&self, _key: &&'static str, items: broadcast::Sender<u32>) -> BoxFuture<'static, Result<Open, String>> {
            self.opened.fetch_add(1, SeqCst);
            *lock(&self.items) = Some(items);
            let (fail, gate, open_now) = (self.fail.load(SeqCst), self.gate.clone(), self.open_now.clone());
            Box::pin(async move {
                if let Some(gate) = gate {
                    gate.acquire().await.map_err(|_| "closed".to_owned())?.forget();
                }
                if fail {
                    return Err("refused".to_owned());
                }
                open_now.fetch_add(1, SeqCst);
                Ok(Open(open_now))
            })
        }

        fn linger(&self, _key: &&'static str) -> Duration {
            self.linger
        }

        fn count_open(&self, _key: &&'static str, delta: i64) {
            self.gauge.fetch_add(delta, SeqCst);
        }

        fn ends(item: &u32) -> bool {
            *item == 0
        }
    }

    fn registry(origin: Counting) -> Arc<Registry<Counting>> {
        Registry::new(Arc::new(origin), 16, Capacity::new(100), Arc::new(Metrics::default()))
    }

    /// Waits (on the paused clock, without sleeping on the real one) until `condition` holds.
    async fn until(condition: impl Fn() -> bool) {
        for _ in 0..1000 {
            if condition() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("condition never held");
    }

    #[tokio::test]
    async fn concurrent_acquires_open_once_and_the_last_release_closes() {
        let registry = registry(Counting::default());
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let registry = registry.clone();
                tokio::spawn(async move { registry.acquire("t").await })
            })
            .collect();
        let mut leases = Vec::new();
        for task in tasks {
            leases.push(task.await.expect("join").expect("acquire"));
        }
        let origin = registry.origin();
        assert_eq!((origin.opened.load(SeqCst), origin.open_now.load(SeqCst), origin.gauge.load(SeqCst)), (1, 1, 1));
        leases.truncate(1);
        assert_eq!(origin.open_now.load(SeqCst), 1);
        drop(leases);
        assert_eq!((origin.open_now.load(SeqCst), origin.gauge.load(SeqCst), registry.len()), (0, 0, 0));
    }

    #[tokio::test]
    async fn a_cancelled_first_acquire_neither_stops_the_opening_nor_fails_the_next() {
        let gate = Arc::new(Semaphore::new(0));
        let registry = registry(Counting { gate: Some(gate.clone()), ..Counting::default() });
        let acquire = || {
            let registry = registry.clone();
            tokio::spawn(async move { registry.acquire("t").await })
        };
        let leases =
            |registry: &Registry<Counting>| lock(&registry.entries).get("t").map_or(0, |e| lock(&e.state).leases);
        // Two executions wait for the source; the first one's client goes away meanwhile.
        let first = acquire();
        let second = acquire();
        until(|| leases(&registry) == 2).await;
        first.abort();
        assert!(first.await.is_err_and(|error| error.is_cancelled()));
        assert_eq!(leases(&registry), 1);
        gate.add_permits(1);
        let lease = second.await.expect("join").expect("the second acquire gets the source");
        assert_eq!((registry.origin().opened.load(SeqCst), registry.origin().open_now.load(SeqCst)), (1, 1));
        drop(lease);
        assert_eq!((registry.origin().open_now.load(SeqCst), registry.len()), (0, 0));
    }

    #[tokio::test]
    async fn a_source_abandoned_while_opening_is_closed_when_it_opens() {
        let gate = Arc::new(Semaphore::new(0));
        let registry = registry(Counting { gate: Some(gate.clone()), ..Counting::default() });
        let only = tokio::spawn({
            let registry = registry.clone();
            async move { registry.acquire("t").await.map(|_| ()) }
        });
        until(|| registry.origin().opened.load(SeqCst) == 1).await;
        only.abort();
        let _ = only.await;
        assert_eq!(registry.len(), 0, "nobody holds it: out of the map at once");
        gate.add_permits(1);
        until(|| registry.origin().open_now.load(SeqCst) == 0 && registry.origin().gauge.load(SeqCst) == 0).await;
    }

    #[tokio::test]
    async fn a_failed_opening_is_tried_again_by_the_next_acquire() {
        let registry = registry(Counting { fail: AtomicBool::new(true), ..Counting::default() });
        assert_eq!(registry.acquire("t").await.err(), Some(AcquireError::Open("refused".to_owned())));
        assert_eq!(registry.len(), 0);
        registry.origin().fail.store(false, SeqCst);
        let lease = registry.acquire("t").await.expect("the source opens now");
        assert_eq!((registry.origin().opened.load(SeqCst), registry.origin().gauge.load(SeqCst)), (2, 1));
        drop(lease);
    }

    #[tokio::test]
    async fn close_then_reopen_opens_a_new_source() {
        let registry = registry(Counting::default());
        drop(registry.acquire("t").await.expect("first"));
        let lease = registry.acquire("t").await.expect("again");
        let origin = registry.origin();
        assert_eq!((origin.opened.load(SeqCst), origin.open_now.load(SeqCst), origin.gauge.load(SeqCst)), (2, 1, 1));
        drop(lease);
        assert_eq!(origin.open_now.load(SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn linger_runs_from_the_last_leave_not_the_first() {
        let registry = registry(Counting { linger: Duration::from_secs(1), ..Counting::default() });
        drop(registry.acquire("t").await.expect("first"));
        tokio::time::sleep(Duration::from_millis(600)).await;
        drop(registry.acquire("t").await.expect("rejoined within the linger"));
        assert_eq!(registry.origin().opened.load(SeqCst), 1, "rejoining reuses the lingering source");
        // The first leave's linger ends here; the second's has 400 ms to go.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(registry.origin().open_now.load(SeqCst), 1, "closed by the first leave's timer");
        tokio::time::sleep(Duration::from_millis(500)).await;
        until(|| registry.origin().open_now.load(SeqCst) == 0).await;
        assert_eq!(registry.len(), 0);
    }

    #[tokio::test]
    async fn a_last_item_ends_the_source_for_later_acquires() {
        let registry = registry(Counting::default());
        let mut lease = registry.acquire("t").await.expect("acquire");
        let items = registry.origin().take_items();
        items.send(7).expect("a reader");
        items.send(0).expect("a reader");
        assert_eq!(lease.recv().await, Some(7));
        assert_eq!(lease.recv().await, Some(0));
        assert_eq!((registry.len(), registry.origin().open_now.load(SeqCst)), (0, 0));
        let again = registry.acquire("t").await.expect("a new source");
        assert_eq!(registry.origin().opened.load(SeqCst), 2);
        drop((lease, again));
        assert_eq!(registry.origin().gauge.load(SeqCst), 0);
    }

    /// A lease that joins a source after its last item was sent, before any reader has seen
    /// it, ends with the source instead of waiting on it for good.
    #[tokio::test]
    async fn a_lease_joining_a_source_that_sent_its_last_item_ends_with_it() {
        let registry = registry(Counting::default());
        let mut first = registry.acquire("t").await.expect("acquire");
        let items = registry.origin().take_items();
        items.send(0).expect("a reader");
        let mut late = registry.acquire("t").await.expect("the source is still in the map");
        assert_eq!(first.recv().await, Some(0));
        // The origin lets go of a source that has ended (an upstream connection forgets the
        // subscription it completed).
        drop(items);
        assert_eq!(late.recv().now_or_never(), Some(None), "the late lease waits on a source that ended");
        drop((first, late));
        let again = registry.acquire("t").await.expect("a new source");
        assert_eq!((registry.origin().opened.load(SeqCst), registry.origin().gauge.load(SeqCst)), (2, 1));
        drop(again);
    }

    #[tokio::test]
    async fn the_capacity_is_shared_by_registries() {
        let capacity = Capacity::new(1);
        let metrics = Arc::new(Metrics::default());
        let one = Registry::new(Arc::new(Counting::default()), 4, capacity.clone(), metrics.clone());
        let other = Registry::new(Arc::new(Counting::default()), 4, capacity, metrics);
        let lease = one.acquire("a").await.expect("room for one");
        assert_eq!(other.acquire("b").await.err(), Some(AcquireError::Full(1)));
        drop(lease);
        drop(other.acquire("b").await.expect("room again"));
    }

    /// Holds the registry's map lock while it opens `other` (as every opening does while
    /// [`Origin::open`] runs), until a lease is released: the last lease of `t` leaves while an
    /// acquire of `t` is queued behind the lock. The sources open now deliver what
    /// [`Stalling::send`] gives them.
    struct Stalling {
        open: Arc<Mutex<HashMap<&'static str, broadcast::Sender<u32>>>>,
        opening: std::sync::mpsc::Sender<()>,
        released: Mutex<std::sync::mpsc::Receiver<()>>,
        release: std::sync::mpsc::Sender<()>,
    }

    struct Registered(Arc<Mutex<HashMap<&'static str, broadcast::Sender<u32>>>>, &'static str, broadcast::Sender<u32>);

    impl Drop for Registered {
        fn drop(&mut self) {
            // A closed source's guard may go after its key was opened anew.
            let mut open = lock(&self.0);
            if open.get(self.1).is_some_and(|items| items.same_channel(&self.2)) {
                open.remove(self.1);
            }
        }
    }

    impl Stalling {
        fn send(&self, key: &'static str, item: u32) -> bool {
            lock(&self.open).get(key).is_some_and(|items| items.send(item).is_ok())
        }
    }

    impl Origin for Stalling {
        type Key = &'static str;
        type Item = u32;
        type Guard = Registered;
        type Error = String;

        fn open(
            &self,
            key: &&'static str,
            items: broadcast::Sender<u32>,
        ) -> BoxFuture<'static, Result<Registered, String>> {
            if *key == "other" {
                let _ = self.opening.send(());
                let _ = lock(&self.released).recv();
            }
            lock(&self.open).insert(key, items.clone());
            let registered = Registered(self.open.clone(), key, items);
            Box::pin(async move { Ok(registered) })
        }

        fn linger(&self, _key: &&'static str) -> Duration {
            // Called as a last lease leaves, before the registry looks at closing its source.
            let _ = self.release.send(());
            Duration::ZERO
        }

        fn count_open(&self, _key: &&'static str, _delta: i64) {}
    }

    /// The last lease of `t` leaves while an acquire of `t` waits for the map's lock: the
    /// acquire gets either the source still open or a new one, and its lease delivers.
    #[test]
    fn a_lease_taken_as_the_last_one_leaves_delivers() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime");
        let mut dead = 0;
        const TRIALS: usize = 50;
        for _ in 0..TRIALS {
            let (opening, opened) = std::sync::mpsc::channel();
            let (release, released) = std::sync::mpsc::channel();
            let origin = Stalling { open: Arc::default(), opening, released: Mutex::new(released), release };
            let registry = Registry::new(Arc::new(origin), 16, Capacity::new(100), Arc::new(Metrics::default()));
            let last = runtime.block_on(registry.acquire("t")).expect("t");
            let (runtime, registry) = (&runtime, &registry);
            std::thread::scope(|threads| {
                // Opens `other`, holding the map's lock until `last` is dropped.
                let stalled = threads.spawn(|| runtime.block_on(registry.acquire("other")).map(drop));
                opened.recv().expect("opening other");
                let (joining, joins) = std::sync::mpsc::channel();
                let joiner = threads.spawn(move || {
                    let _ = joining.send(());
                    runtime.block_on(registry.acquire("t"))
                });
                joins.recv().expect("joining t");
                threads.spawn(move || drop(last)).join().expect("leave");
                stalled.join().expect("other").expect("other opens");
                let mut lease = joiner.join().expect("join").expect("t");
                if !registry.origin().send("t", 7) || lease.recv().now_or_never() != Some(Some(7)) {
                    dead += 1;
                }
            });
        }
        assert_eq!(dead, 0, "{dead} of {TRIALS} leases are on a source that closed as they joined");
    }
}
