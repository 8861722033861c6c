//! Jittered exponential backoff between reconnect attempts, shared by every broker session and
//! every upstream connection.
//! The delay doubles from `min` to `max`; each wait is drawn from its upper half so that hubs
//! restarted together do not reconnect in lockstep. It resets only after a healthy session.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
    failures: u32,
}

impl Backoff {
    /// `min` must be positive and at most `max`; the hub's own values are checked by a test.
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        let max = max.max(min);
        Backoff { min, max, current: min, failures: 0 }
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.current;
        self.current = (self.current * 2).min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = ceiling / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Attempts that failed since the last healthy session.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A session went well: start again from `min`.
    pub fn reset(&mut self) {
        self.current = self.min;
        self.failures = 0;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_within_bounds_and_reset() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<_> = (0..8).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(1)));
        assert!(delays[7] >= Duration::from_millis(500));
        assert_eq!(backoff.failures(), 8);
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
