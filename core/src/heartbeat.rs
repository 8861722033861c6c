//! A connection's liveness deadline.
//!
//! A connection can die without a word: after a silent partition (no FIN, no RST) nothing fails
//! until something is sent and no answer comes, and a session that only listens waits for good.
//! So a session probes the far side every interval (a Redis PING, a WebSocket ping) and takes
//! the connection for lost when the answer does not come within the same interval. Requests
//! whose answer proves the connection as well (a SUBSCRIBE, a write) run under the same deadline.

use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

pub struct Heartbeat {
    every: Duration,
    ticks: Interval,
    heard: bool,
}

/// No answer came within the deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no answer within {0:?}")]
pub struct Silent(pub Duration);

impl Heartbeat {
    /// A probe every `every`, the first one interval from now; `every` is also the deadline.
    pub fn new(every: Duration) -> Self {
        let every = every.max(Duration::from_millis(1));
        let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Heartbeat { every, ticks, heard: true }
    }

    /// The interval, and the deadline of every answer.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// Resolves when the next probe is due.
    pub async fn due(&mut self) {
        self.ticks.tick().await;
    }

    /// Waits for `request` (a probe, or any request answered by the far side) at most one
    /// interval.
    pub async fn within<F: Future>(&self, request: F) -> Result<F::Output, Silent> {
        tokio::time::timeout(self.every, request).await.map_err(|_| Silent(self.every))
    }

    /// For connections whose answers arrive through the session's reader (a WebSocket pong):
    /// something came from the far side.
    pub fn heard(&mut self) {
        self.heard = true;
    }

    /// At a due probe, for such connections: whether anything came since the last probe. The
    /// next probe is sent only if so; otherwise the connection is lost.
    pub fn heard_since_last_probe(&mut self) -> bool {
        std::mem::replace(&mut self.heard, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_answer_must_come_within_the_interval() {
        let mut heartbeat = Heartbeat::new(Duration::from_secs(1));
        let started = Instant::now();
        heartbeat.due().await;
        assert_eq!(started.elapsed(), Duration::from_secs(1), "the first probe is one interval away");
        assert_eq!(heartbeat.within(async { 7 }).await, Ok(7));
        let silent = heartbeat.within(std::future::pending::<()>()).await;
        assert_eq!(silent, Err(Silent(Duration::from_secs(1))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_heard_nothing_since_the_last_probe_is_silent() {
        let mut heartbeat = Heartbeat::new(Duration::from_secs(1));
        heartbeat.due().await;
        assert!(heartbeat.heard_since_last_probe(), "a new connection counts as heard");
        heartbeat.due().await;
        assert!(!heartbeat.heard_since_last_probe());
        heartbeat.heard();
        assert!(heartbeat.heard_since_last_probe());
    }
}
