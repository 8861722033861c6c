//! The bounded queue between the registry and one connection's writer.
//!
//! Policy for a client that reads slower than events arrive: when the queue is full, the oldest
//! queued `next` is dropped and counted (`subhub_dropped_total{reason="slow_consumer"}`). With
//! [`SlowConsumerPolicy::DropOldest`], a connection whose queue keeps overflowing for longer than
//! `close_after` without the client catching up is closed with 1013; with
//! [`SlowConsumerPolicy::Close`] the first overflow closes it. Terminal messages (`error`,
//! `complete`) are never dropped.
//!
//! Memory: a queued message is a pointer to its subscription and a reference to the payload
//! shared by every subscriber, so a queue costs a few dozen bytes per entry however large the
//! payload is.
//!
//! Write-through: while a connection's queue is empty and its writer is idle, a `next` does not
//! wait in the queue at all. The execution hands it to the connection's [`WriteThrough`], which
//! writes the frame straight into the socket when the kernel takes it at once; only a socket
//! that would block gets the message queued and its connection's task woken. A broadcast to
//! idle clients therefore costs one write per subscriber and no task wake-up.

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use subhub_protocol::{FramePrefix, Protocol};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::hold::Hold;
use crate::lock;
use crate::metrics::Metrics;
pub use crate::payload::SharedPayload;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SlowConsumerPolicy {
    /// Drop the oldest queued message; close with 1013 once behind for longer than `close_after`.
    #[default]
    DropOldest,
    /// Close with 1013 on the first overflow.
    Close,
}

/// Limits of one connection's queue.
#[derive(Clone, Copy, Debug)]
pub struct OutboxConfig {
    /// Queued messages at most.
    pub capacity: usize,
    /// Bytes of queued results at most (a result larger than this alone is still queued).
    pub max_bytes: usize,
    pub policy: SlowConsumerPolicy,
    pub close_after: Duration,
}

/// One client subscription as the writer sees it: its id, the prefix of its `next` frames, and
/// whether it is still active (messages for a completed subscription are skipped, not sent).
#[derive(Debug)]
pub struct Slot {
    pub id: Box<str>,
    pub prefix: FramePrefix,
    active: AtomicBool,
    /// A resumed subscription's live results wait here while its replay runs (see [`crate::hold`]).
    held: AtomicBool,
    hold: Mutex<Option<Hold>>,
}

impl Slot {
    pub fn new(protocol: Protocol, id: &str) -> Arc<Self> {
        Arc::new(Slot {
            id: id.into(),
            prefix: FramePrefix::new(protocol, id),
            active: AtomicBool::new(true),
            held: AtomicBool::new(false),
            hold: Mutex::new(None),
        })
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Relaxed)
    }

    /// Skips the slot's later messages. A connection ending a subscription goes through
    /// [`Outbox::deactivate`] instead, which also waits out a write in progress.
    pub fn deactivate(&self) {
        self.active.store(false, Relaxed);
    }
}

/// How a [`WriteThrough`] dealt with one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The socket took the whole frame.
    Written,
    /// The socket took part of it; the writer holds the rest until the connection flushes it.
    Started,
    /// Nothing was written (the socket is full, or the writer still holds earlier bytes): the
    /// message must be queued.
    Refused,
}

/// A connection's socket, written to directly by whoever delivers a `next` while the
/// connection has nothing queued (see the module's documentation).
pub trait WriteThrough: Send + Sync {
    /// Writes one `next` frame per payload, all in one write, without waiting.
    fn write_nexts(&self, prefix: &FramePrefix, payloads: &[SharedPayload]) -> WriteOutcome;
}

/// A message waiting for the writer.
#[derive(Debug)]
pub enum Outbound {
    Next {
        slot: Arc<Slot>,
        payload: SharedPayload,
    },
    /// Ends the operation with errors (a serialized JSON array).
    Error {
        slot: Arc<Slot>,
        errors: SharedPayload,
    },
    /// Ends the operation.
    Complete {
        slot: Arc<Slot>,
    },
}

impl Outbound {
    pub fn slot(&self) -> &Arc<Slot> {
        match self {
            Outbound::Next { slot, .. } | Outbound::Error { slot, .. } | Outbound::Complete { slot } => slot,
        }
    }

    fn is_droppable(&self) -> bool {
        matches!(self, Outbound::Next { .. })
    }

    /// The bytes it holds (shared with other connections, but held as long as it waits here).
    fn bytes(&self) -> usize {
        match self {
            Outbound::Next { payload, .. } => payload.len(),
            Outbound::Error { errors, .. } => errors.len(),
            Outbound::Complete { .. } => 0,
        }
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Outbound>,
    /// Bytes of the queued messages.
    queued_bytes: usize,
    /// When the queue first overflowed since the writer last emptied it.
    behind_since: Option<Instant>,
    slow: bool,
    closed: bool,
    /// The connection's task is writing: messages go through the queue, so they keep their
    /// order behind what it is writing.
    writing: bool,
    /// Where `next` messages go while nothing is queued and the task is not writing.
    through: Option<Arc<dyn WriteThrough>>,
}

/// One connection's queue.
pub struct Outbox {
    state: Mutex<State>,
    ready: Notify,
    /// Set once the connection stays behind past the policy: sticky, and seen by every waiter
    /// (the session loop and a flush in progress alike).
    slow: CancellationToken,
    config: OutboxConfig,
    metrics: Arc<Metrics>,
}

impl Outbox {
    pub fn new(config: OutboxConfig, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Outbox {
            state: Mutex::default(),
            ready: Notify::new(),
            slow: CancellationToken::new(),
            config,
            metrics,
        })
    }

    /// Lets `next` messages bypass the queue while it is empty and the connection is not
    /// writing.
    pub fn write_through(&self, through: Arc<dyn WriteThrough>) {
        lock(&self.state).through = Some(through);
    }

    /// Delivers a message: a `next` may be written through (see [`Outbox::push_nexts`]);
    /// anything else is queued.
    pub fn push(&self, message: Outbound) {
        match message {
            Outbound::Next { slot, payload } => self.push_nexts(&slot, std::slice::from_ref(&payload)),
            terminal => {
                let mut state = lock(&self.state);
                if state.closed {
                    return;
                }
                self.enqueue(&mut state, terminal);
                drop(state);
                self.ready.notify_one();
            }
        }
    }

    /// Delivers consecutive results of one subscription: held while the subscription's replay
    /// runs ([`Outbox::hold`]); else written through in one write when the queue is empty, the
    /// connection is not writing and the socket takes them; otherwise queued, applying the
    /// slow-consumer policy when the queue is full.
    pub fn push_nexts(&self, slot: &Arc<Slot>, payloads: &[SharedPayload]) {
        if slot.held.load(Acquire) {
            let mut hold = lock(&slot.hold);
            if let Some(waiting) = hold.as_mut() {
                let passed = waiting.take(payloads);
                self.metrics.dropped_slow_consumer.fetch_add(passed.dropped, Relaxed);
                self.deliver_nexts(slot, &passed.results);
                if passed.done {
                    *hold = None;
                    slot.held.store(false, Release);
                }
                return;
            }
        }
        self.deliver_nexts(slot, payloads);
    }

    /// Holds the slot's results until [`Outbox::release`]: its replay comes first.
    pub fn hold(&self, slot: &Slot) {
        *lock(&slot.hold) = Some(Hold::new(self.config.capacity));
        slot.held.store(true, Release);
    }

    /// A result of the slot's replay: queued, whatever the hold.
    pub fn push_replayed(&self, slot: &Arc<Slot>, payload: SharedPayload) {
        self.deliver_nexts(slot, std::slice::from_ref(&payload));
    }

    /// The slot's replay is over: what waited follows it (see [`Hold::release`]).
    pub fn release(
        &self,
        slot: &Arc<Slot>,
        replayed: std::collections::HashSet<String>,
        recovered: bool,
        sent_any: bool,
    ) {
        let mut hold = lock(&slot.hold);
        let Some(waiting) = hold.as_mut() else { return };
        let passed = waiting.release(replayed, recovered, sent_any);
        // Delivered before the slot stops holding: a result pushed meanwhile waits for the
        // hold's lock, and so comes after these.
        self.deliver_nexts(slot, &passed.results);
        if passed.done {
            *hold = None;
            slot.held.store(false, Release);
        }
    }

    fn deliver_nexts(&self, slot: &Arc<Slot>, payloads: &[SharedPayload]) {
        let mut state = lock(&self.state);
        if state.closed || payloads.is_empty() {
            return;
        }
        if let Some(through) = &state.through {
            if state.queue.is_empty() && !state.writing {
                if !slot.is_active() {
                    return;
                }
                match through.write_nexts(&slot.prefix, payloads) {
                    WriteOutcome::Written => {
                        self.metrics.deliveries.fetch_add(payloads.len() as u64, Relaxed);
                        return;
                    }
                    WriteOutcome::Started => {
                        self.metrics.deliveries.fetch_add(payloads.len() as u64, Relaxed);
                        state.writing = true;
                        drop(state);
                        self.ready.notify_one();
                        return;
                    }
                    WriteOutcome::Refused => {}
                }
            }
        }
        for payload in payloads {
            self.enqueue(&mut state, Outbound::Next { slot: slot.clone(), payload: payload.clone() });
        }
        drop(state);
        self.ready.notify_one();
    }

    /// Queues a message, dropping the oldest `next`s while the queue is full in messages or in
    /// bytes.
    fn enqueue(&self, state: &mut State, message: Outbound) {
        if message.is_droppable() {
            let full = |state: &State| {
                state.queue.len() >= self.config.capacity
                    || (!state.queue.is_empty() && state.queued_bytes + message.bytes() > self.config.max_bytes)
            };
            if full(state) {
                while full(state) {
                    let Some(oldest) = state.queue.iter().position(Outbound::is_droppable) else { break };
                    if let Some(dropped) = state.queue.remove(oldest) {
                        state.queued_bytes -= dropped.bytes();
                    }
                    self.metrics.queued.fetch_sub(1, Relaxed);
                    self.metrics.dropped_slow_consumer.fetch_add(1, Relaxed);
                }
                let now = Instant::now();
                let since = *state.behind_since.get_or_insert(now);
                let too_long = now.duration_since(since) >= self.config.close_after;
                if !state.slow && (self.config.policy == SlowConsumerPolicy::Close || too_long) {
                    state.slow = true;
                    self.slow.cancel();
                }
            }
        }
        state.queued_bytes += message.bytes();
        state.queue.push_back(message);
        self.metrics.queued.fetch_add(1, Relaxed);
    }

    /// Moves up to `max` queued messages into `out`. The connection is writing from now until
    /// [`Outbox::finish_writing`] finds the queue empty.
    pub fn drain_into(&self, out: &mut Vec<Outbound>, max: usize) {
        let mut state = lock(&self.state);
        state.writing = true;
        let n = state.queue.len().min(max);
        let drained: usize = state.queue.iter().take(n).map(Outbound::bytes).sum();
        state.queued_bytes -= drained;
        out.extend(state.queue.drain(..n));
        if state.queue.is_empty() {
            state.behind_since = None;
        }
        drop(state);
        self.metrics.queued.fetch_sub(n as i64, Relaxed);
    }

    /// Ends a write: true when nothing was queued meanwhile, so `next` messages may be written
    /// through again; false when the connection must drain the queue once more.
    pub fn finish_writing(&self) -> bool {
        let mut state = lock(&self.state);
        if state.queue.is_empty() {
            state.writing = false;
            true
        } else {
            false
        }
    }

    /// Waits until something may have been queued.
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Waits until the connection has stayed behind past the policy's threshold.
    pub async fn too_slow(&self) {
        self.slow.cancelled().await;
    }

    pub fn is_too_slow(&self) -> bool {
        lock(&self.state).slow
    }

    pub fn len(&self) -> usize {
        lock(&self.state).queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends a subscription on this connection: its messages are skipped from now on, and a
    /// `next` being written through for it (under this lock) is finished before this returns,
    /// so whatever the connection sends for the id afterwards (`complete`) comes last.
    pub fn deactivate(&self, slot: &Slot) {
        let _writing = lock(&self.state);
        slot.deactivate();
    }

    /// Refuses every later message and frees the queued ones: the connection is gone.
    pub fn close(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        state.through = None;
        let n = state.queue.len();
        state.queue.clear();
        state.queued_bytes = 0;
        drop(state);
        self.metrics.queued.fetch_sub(n as i64, Relaxed);
    }

    /// Whether one more message fits without dropping one: a replay waits for room rather than
    /// push out what it replayed.
    pub fn has_room(&self) -> bool {
        let state = lock(&self.state);
        state.closed || (state.queue.len() < self.config.capacity && state.queued_bytes < self.config.max_bytes)
    }

    /// Bytes of the queued messages.
    pub fn queued_bytes(&self) -> usize {
        lock(&self.state).queued_bytes
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn outbox(capacity: usize, policy: SlowConsumerPolicy, close_after: Duration) -> (Arc<Outbox>, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let config = OutboxConfig { capacity, max_bytes: 1 << 20, policy, close_after };
        (Outbox::new(config, metrics.clone()), metrics)
    }

    fn next(slot: &Arc<Slot>, n: u32) -> Outbound {
        Outbound::Next { slot: slot.clone(), payload: n.to_string().into() }
    }

    #[test]
    fn drops_the_oldest_next_and_keeps_terminal_messages() {
        let (outbox, metrics) = outbox(3, SlowConsumerPolicy::DropOldest, Duration::from_secs(60));
        let slot = Slot::new(Protocol::TransportWs, "1");
        outbox.push(Outbound::Complete { slot: slot.clone() });
        for n in 0..5 {
            outbox.push(next(&slot, n));
        }
        let mut out = Vec::new();
        outbox.drain_into(&mut out, 100);
        let kept: Vec<String> = out
            .iter()
            .map(|m| match m {
                Outbound::Next { payload, .. } => payload.to_string(),
                Outbound::Complete { .. } => "complete".into(),
                Outbound::Error { .. } => "error".into(),
            })
            .collect();
        assert_eq!(kept, ["complete", "3", "4"]);
        assert_eq!(metrics.dropped_slow_consumer.load(Relaxed), 3);
        assert_eq!(metrics.queued.load(Relaxed), 0);
        assert!(!outbox.is_too_slow());
    }

    #[test]
    fn close_policy_flags_the_first_overflow() {
        let (outbox, _) = outbox(1, SlowConsumerPolicy::Close, Duration::from_secs(60));
        let slot = Slot::new(Protocol::TransportWs, "1");
        outbox.push(next(&slot, 1));
        assert!(!outbox.is_too_slow());
        outbox.push(next(&slot, 2));
        assert!(outbox.is_too_slow());
    }

    #[test]
    fn staying_behind_past_the_threshold_flags_the_connection() {
        let (outbox, metrics) = outbox(1, SlowConsumerPolicy::DropOldest, Duration::ZERO);
        let slot = Slot::new(Protocol::TransportWs, "1");
        outbox.push(next(&slot, 1));
        outbox.push(next(&slot, 2));
        assert!(outbox.is_too_slow());
        outbox.close();
        outbox.push(next(&slot, 3));
        assert_eq!(metrics.queued.load(Relaxed), 0);
    }

    /// A socket that takes or refuses frames as told, and records what it took.
    #[derive(Default)]
    struct Socket {
        outcomes: Mutex<VecDeque<WriteOutcome>>,
        taken: Mutex<Vec<String>>,
    }

    impl WriteThrough for Socket {
        fn write_nexts(&self, _prefix: &FramePrefix, payloads: &[SharedPayload]) -> WriteOutcome {
            let outcome = lock(&self.outcomes).pop_front().unwrap_or(WriteOutcome::Written);
            if outcome != WriteOutcome::Refused {
                lock(&self.taken).extend(payloads.iter().map(|p| p.to_string()));
            }
            outcome
        }
    }

    fn queued(outbox: &Outbox) -> Vec<String> {
        let mut out = Vec::new();
        outbox.drain_into(&mut out, 100);
        out.iter()
            .map(|m| match m {
                Outbound::Next { payload, .. } => payload.to_string(),
                _ => "terminal".into(),
            })
            .collect()
    }

    #[test]
    fn writes_through_only_while_nothing_is_queued_or_being_written() {
        let (outbox, metrics) = outbox(16, SlowConsumerPolicy::DropOldest, Duration::from_secs(60));
        let socket = Arc::new(Socket::default());
        outbox.write_through(socket.clone());
        let slot = Slot::new(Protocol::TransportWs, "1");

        outbox.push(next(&slot, 1));
        assert_eq!(*lock(&socket.taken), ["1"]);
        assert_eq!(metrics.deliveries.load(Relaxed), 1);
        assert!(outbox.is_empty());

        // A full socket: the message is queued, and so is the next one, which must not overtake.
        lock(&socket.outcomes).push_back(WriteOutcome::Refused);
        outbox.push(next(&slot, 2));
        outbox.push(next(&slot, 3));
        assert_eq!(*lock(&socket.taken), ["1"]);
        assert_eq!(queued(&outbox), ["2", "3"]);
        // The connection is writing what it drained: later messages queue behind it.
        outbox.push(next(&slot, 4));
        assert!(!outbox.finish_writing());
        assert_eq!(queued(&outbox), ["4"]);
        assert!(outbox.finish_writing());

        // A frame taken in part: the rest is the connection's to flush, so the next one queues.
        lock(&socket.outcomes).push_back(WriteOutcome::Started);
        outbox.push(next(&slot, 5));
        outbox.push(next(&slot, 6));
        assert_eq!(*lock(&socket.taken), ["1", "5"]);
        assert_eq!(queued(&outbox), ["6"]);
        assert!(outbox.finish_writing());

        // Results of an inactive subscription are not written.
        slot.deactivate();
        outbox.push(next(&slot, 7));
        assert_eq!(*lock(&socket.taken), ["1", "5"]);
        assert_eq!(metrics.deliveries.load(Relaxed), 2);
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_too() {
        let metrics = Arc::new(Metrics::default());
        let config = OutboxConfig {
            capacity: 1000,
            max_bytes: 10_000,
            policy: SlowConsumerPolicy::DropOldest,
            close_after: Duration::from_secs(60),
        };
        let outbox = Outbox::new(config, metrics.clone());
        let slot = Slot::new(Protocol::TransportWs, "1");
        for n in 0..50 {
            let payload: SharedPayload = format!("{n:04}{}", "x".repeat(996)).into();
            outbox.push_nexts(&slot, &[payload]);
        }
        outbox.push(Outbound::Complete { slot: slot.clone() });
        assert!(outbox.queued_bytes() <= 10_000, "{} bytes queued", outbox.queued_bytes());
        assert_eq!(metrics.dropped_slow_consumer.load(Relaxed), 40);
        let mut out = Vec::new();
        outbox.drain_into(&mut out, usize::MAX);
        let kept: Vec<String> = out
            .iter()
            .filter_map(|message| match message {
                Outbound::Next { payload, .. } => Some(payload[..4].to_owned()),
                _ => None,
            })
            .collect();
        assert_eq!(kept, (40..50).map(|n| format!("{n:04}")).collect::<Vec<_>>(), "the newest are kept, in order");
        assert!(matches!(out.last(), Some(Outbound::Complete { .. })), "terminal messages are never dropped");
        assert_eq!(outbox.queued_bytes(), 0);
        // One result larger than the budget still goes out, alone.
        outbox.push_nexts(&slot, &["y".repeat(20_000).into()]);
        assert_eq!(outbox.len(), 1);
    }

    /// A socket that records frames, and holds a write-through in the middle of its write until
    /// released.
    struct HeldSocket {
        frames: Mutex<Vec<String>>,
        entered: std::sync::mpsc::Sender<()>,
        release: Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl HeldSocket {
        /// A held socket `outbox` writes through to; `entering` hears of each write as it
        /// begins, and a message on `released` lets one finish.
        fn under(outbox: &Outbox) -> (Arc<Self>, std::sync::mpsc::Receiver<()>, std::sync::mpsc::Sender<()>) {
            let (entered, entering) = std::sync::mpsc::channel();
            let (released, release) = std::sync::mpsc::channel();
            let socket = Arc::new(HeldSocket { frames: Mutex::default(), entered, release: Mutex::new(release) });
            outbox.write_through(socket.clone());
            (socket, entering, released)
        }
    }

    impl WriteThrough for HeldSocket {
        fn write_nexts(&self, _prefix: &FramePrefix, payloads: &[SharedPayload]) -> WriteOutcome {
            let _ = self.entered.send(());
            let _ = lock(&self.release).recv();
            lock(&self.frames).extend(payloads.iter().map(|p| format!("next {}", p.json())));
            WriteOutcome::Written
        }
    }

    /// A subscription ended (legacy `stop`, shutdown) while an execution writes a `next` for
    /// it straight into the socket: the `complete` the connection then sends comes after it.
    #[test]
    fn no_frame_of_a_subscription_follows_what_its_end_sends() {
        let (outbox, _metrics) = outbox(8, SlowConsumerPolicy::DropOldest, Duration::from_secs(1));
        let (socket, entering, released) = HeldSocket::under(&outbox);
        let slot = Slot::new(Protocol::TransportWs, "1");

        let execution = std::thread::spawn({
            let (outbox, slot) = (outbox.clone(), slot.clone());
            move || outbox.push_nexts(&slot, &["{}".into()])
        });
        entering.recv().expect("the write began");
        let connection = std::thread::spawn({
            let (outbox, slot, socket) = (outbox.clone(), slot.clone(), socket.clone());
            move || {
                outbox.deactivate(&slot);
                lock(&socket.frames).push("complete".to_owned());
            }
        });
        // Give an unordered `complete` the chance to overtake the write (it cannot once ordered).
        let overtaken = (0..20).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            lock(&socket.frames).iter().any(|frame| frame == "complete")
        });
        released.send(()).expect("release the write");
        execution.join().expect("execution");
        connection.join().expect("connection");
        assert!(!overtaken, "`complete` was written while a `next` was being written");
        assert_eq!(*lock(&socket.frames), ["next {}", "complete"]);
        // And nothing of the slot is written after.
        outbox.push_nexts(&slot, &["{}".into()]);
        assert_eq!(lock(&socket.frames).len(), 2);
    }

    /// A resumed subscription's replay ends, letting go of the live results held meanwhile. The
    /// slot stops holding only once they are delivered: a live result the execution pushes in
    /// between waits for the hold (and comes after them) instead of racing them to the queue.
    #[test]
    fn a_hold_is_let_go_only_once_its_results_are_delivered() {
        let (outbox, _metrics) = outbox(8, SlowConsumerPolicy::DropOldest, Duration::from_secs(1));
        let (socket, entering, released) = HeldSocket::under(&outbox);
        let slot = Slot::new(Protocol::TransportWs, "1");
        let event = |id: &str| SharedPayload::of_event(format!(r#"{{"n":"{id}"}}"#), Some(id), Some(id));
        outbox.hold(&slot);
        outbox.push_nexts(&slot, &[event("2")]);
        let replay = std::thread::spawn({
            let (outbox, slot) = (outbox.clone(), slot.clone());
            move || outbox.release(&slot, ["1".to_owned()].into(), true, true)
        });
        entering.recv().expect("the held result is being written");
        let holding = slot.held.load(Acquire);
        released.send(()).expect("release the write");
        replay.join().expect("replay");
        assert!(holding, "the slot let go of its hold while the held results were still on their way");
        released.send(()).expect("let the next write through");
        outbox.push_nexts(&slot, &[event("3")]);
        assert_eq!(*lock(&socket.frames), [r#"next {"n":"2"}"#, r#"next {"n":"3"}"#]);
    }
}
