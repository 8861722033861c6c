//! Keepalive for every WebSocket session, from one task: a ring of slots one grid step apart,
//! one keepalive period round. Each tick pings the sessions of one slot by writing a pre-built
//! ping frame straight into their sockets, so an idle session costs one write and one read (its
//! pong) per period, and its own task wakes only for the pong. A session that answered nothing
//! since its last ping is told to go.
//!
//! A session whose socket still holds unwritten bytes is busy, not idle: it is not pinged that
//! round, and TCP's own retransmission timeout finds a dead peer there.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
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
    /// The last step whose slot was pinged: a session enrolled now joins that slot, whose next
    /// turn is a whole period away. (The slot of the current step may not have had its turn
    /// yet, and would ping a session enrolled into it at once.)
    pinged: AtomicU64,
    /// `ka` and a ping, as one write.
    ka_and_ping: Vec<u8>,
}

impl Keepalive {
    /// Starts the pinger; it stops when `shutdown` is cancelled or the returned handle is dropped.
    pub fn start(period: Duration, shutdown: CancellationToken) -> Arc<Self> {
        let keepalive = Self::new(period);
        tokio::spawn(ping_loop(Arc::downgrade(&keepalive), shutdown));
        keepalive
    }

    fn new(period: Duration) -> Arc<Self> {
        let steps = (period.as_nanos().div_ceil(GRID.as_nanos()) as usize).max(1);
        let mut ka_and_ping = Vec::with_capacity(KEEP_ALIVE.len() + 4);
        push_ws_frame_header(&mut ka_and_ping, WS_TEXT, KEEP_ALIVE.len());
        ka_and_ping.extend_from_slice(KEEP_ALIVE.as_bytes());
        ka_and_ping.extend_from_slice(&PING);
        Arc::new(Keepalive {
            slots: Mutex::new(vec![Vec::new(); steps]),
            start: Instant::now(),
            pinged: AtomicU64::new(0),
            ka_and_ping,
        })
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
        let slot = self.pinged.load(Relaxed) as usize % slots.len();
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

    /// Pings the slots of every step up to now that has not had its turn; a late tick catches
    /// up on every step it missed.
    fn catch_up(&self) {
        let steps = self.slots().len() as u64;
        let mut done = self.pinged.load(Relaxed) + 1;
        while done <= self.step() {
            self.ping_slot((done % steps) as usize);
            self.pinged.store(done, Relaxed);
            done += 1;
        }
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
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(keepalive) = keepalive.upgrade() else { return };
        keepalive.catch_up();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::socket::SessionSocket;

    async fn session(keepalive: &Keepalive) -> (Arc<Liveness>, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let socket = SessionSocket::new(server, 1024);
        (keepalive.enroll(socket.writer()), client)
    }

    fn pinged(liveness: &Liveness) -> bool {
        liveness.awaiting.load(Relaxed)
    }

    /// A session enrolled after a step began but before that step's slot had its turn was
    /// pinged at once, not a period later: a graphql-ws client saw `ka` among its first results.
    #[tokio::test(start_paused = true)]
    async fn the_first_ping_comes_a_period_after_enrolment() {
        let keepalive = Keepalive::new(GRID * 10);
        tokio::time::advance(GRID * 4 + GRID / 2).await;
        keepalive.catch_up();
        // Step 5 has begun; its slot has not had its turn.
        tokio::time::advance(GRID * 7 / 10).await;
        let (liveness, _client) = session(&keepalive).await;
        keepalive.catch_up();
        assert!(!pinged(&liveness), "pinged as it enrolled");
        tokio::time::advance(GRID * 8).await;
        keepalive.catch_up();
        assert!(!pinged(&liveness), "pinged before a period had passed");
        tokio::time::advance(GRID).await;
        keepalive.catch_up();
        assert!(pinged(&liveness), "not pinged after a period");
    }
}
