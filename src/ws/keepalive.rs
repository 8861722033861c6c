//! Keepalive for every WebSocket session, from one task: a ring of slots one grid step apart,
//! one keepalive period round. Each tick pings the sessions of one slot by writing a pre-built
//! ping frame straight into their sockets, so an idle session costs one write and one read (its
//! pong) per period, and its own task wakes only for the pong. A session that answered nothing
//! since its last ping is told to go.
//!
//! A session whose socket still holds unwritten bytes is busy, not idle: it is not pinged that
//! round, and TCP's own retransmission timeout finds a dead peer there.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use subhub_protocol::server::{push_ws_frame_header, KEEP_ALIVE, WS_TEXT};
use tokio::sync::Notify;
use tokio::time::{interval, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::socket::SocketWriter;

/// Pings of the sessions due in one step go out together, in one wake-up of the runtime: on
/// an idle hub, waking up is most of what a ping would otherwise cost.
const GRID: Duration = Duration::from_millis(100);
/// A WebSocket ping frame from the server (unmasked, empty).
const PING: [u8; 2] = [0x89, 0x00];

/// One session's part in the keepalive.
pub struct Liveness {
    writer: Arc<SocketWriter>,
    /// Pinged, and nothing received since.
    awaiting: AtomicBool,
    /// A graphql-ws (legacy) session past its ack: it gets `ka` with every ping.
    legacy_ka: AtomicBool,
    silent: Notify,
}

impl Liveness {
    /// The client sent something: it is alive.
    pub fn heard(&self) {
        self.awaiting.store(false, Relaxed);
    }

    /// From now on a `ka` message goes with every ping (graphql-ws clients time out without it).
    pub fn send_ka(&self) {
        self.legacy_ka.store(true, Relaxed);
    }

    /// Resolves once the client has been silent for a whole period after a ping.
    pub async fn silent(&self) {
        self.silent.notified().await
    }
}

pub struct Keepalive {
    /// Slot `i` holds the sessions pinged at steps `i`, `i + len`, `i + 2 len`, …
    slots: Mutex<Vec<Vec<Weak<Liveness>>>>,
    start: Instant,
    /// `ka` and a ping, as one write.
    ka_and_ping: Vec<u8>,
}

impl Keepalive {
    /// Starts the pinger; it stops when `shutdown` is cancelled or the returned handle is dropped.
    pub fn start(period: Duration, shutdown: CancellationToken) -> Arc<Self> {
        let steps = (period.as_nanos().div_ceil(GRID.as_nanos()) as usize).max(1);
        let mut ka_and_ping = Vec::with_capacity(KEEP_ALIVE.len() + 4);
        push_ws_frame_header(&mut ka_and_ping, WS_TEXT, KEEP_ALIVE.len());
        ka_and_ping.extend_from_slice(KEEP_ALIVE.as_bytes());
        ka_and_ping.extend_from_slice(&PING);
        let keepalive =
            Arc::new(Keepalive { slots: Mutex::new(vec![Vec::new(); steps]), start: Instant::now(), ka_and_ping });
        tokio::spawn(ping_loop(Arc::downgrade(&keepalive), shutdown));
        keepalive
    }

    /// Enrolls a session: its first ping goes out one period from now.
    pub fn enroll(&self, writer: Arc<SocketWriter>) -> Arc<Liveness> {
        let liveness = Arc::new(Liveness {
            writer,
            awaiting: AtomicBool::new(false),
            legacy_ka: AtomicBool::new(false),
            silent: Notify::new(),
        });
        let mut slots = self.slots();
        let slot = self.step() as usize % slots.len();
        slots[slot].push(Arc::downgrade(&liveness));
        liveness
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<Vec<Weak<Liveness>>>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Grid steps since the start.
    fn step(&self) -> u64 {
        (self.start.elapsed().as_nanos() / GRID.as_nanos()) as u64
    }

    /// Pings the sessions of one slot; those gone are forgotten, and those silent since their
    /// last ping are told so (and forgotten: they are on their way out).
    fn ping_slot(&self, slot: usize) {
        // Taken out, so sessions can enroll while the slot's sockets are written to.
        let mut due = std::mem::take(&mut self.slots()[slot]);
        due.retain(|weak| {
            let Some(liveness) = weak.upgrade() else { return false };
            if liveness.awaiting.load(Relaxed) {
                liveness.silent.notify_one();
                return false;
            }
            let frames = if liveness.legacy_ka.load(Relaxed) { &self.ka_and_ping[..] } else { &PING[..] };
            if liveness.writer.write_control(frames) {
                liveness.awaiting.store(true, Relaxed);
            }
            true
        });
        // Kept in place, with any session enrolled meanwhile.
        let mut slots = self.slots();
        due.append(&mut slots[slot]);
        slots[slot] = due;
    }
}

async fn ping_loop(keepalive: Weak<Keepalive>, shutdown: CancellationToken) {
    let mut tick = interval(GRID);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Slot 0 is due one whole period after the start, like every session enrolled then.
    let mut done = 1u64;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(keepalive) = keepalive.upgrade() else { return };
        let steps = keepalive.slots().len() as u64;
        // A late tick catches up on every step it missed.
        while done <= keepalive.step() {
            keepalive.ping_slot((done % steps) as usize);
            done += 1;
        }
    }
}
