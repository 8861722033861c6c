//! A token bucket: `rate` admissions per second on average, with bursts of as many. Each
//! connection has one for its subscribes (`limits.subscribe_rate`), so a client looping on
//! subscribe and complete cannot turn into broker subscribe and unsubscribe traffic at line
//! rate, and one for every message it sends (`limits.message_rate`), so no client can keep the
//! hub busy reading it. Each client address has one for its connects
//! (`limits.connect_rate_per_ip`, see `address::limits`), so no client can keep the hub busy
//! opening sessions.

use std::time::Instant;

pub struct RateLimit {
    rate: f64,
    tokens: f64,
    refilled: Instant,
}

impl RateLimit {
    /// Starts full: a client may send a whole burst at once.
    pub fn per_second(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        RateLimit { rate, tokens: rate, refilled: Instant::now() }
    }

    /// Takes one token if there is one.
    pub fn admit(&mut self) -> bool {
        self.admit_at(Instant::now())
    }

    /// Takes one token whether there is one or not: the debt is how long the caller must wait
    /// before taking the next (`None` when there is no debt).
    pub fn take(&mut self) -> Option<std::time::Duration> {
        self.take_at(Instant::now())
    }

    fn take_at(&mut self, now: Instant) -> Option<std::time::Duration> {
        self.refill(now);
        self.tokens -= 1.0;
        (self.tokens < 0.0).then(|| std::time::Duration::from_secs_f64(-self.tokens / self.rate))
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.refilled = now;
    }

    /// Whether the bucket has refilled to its burst by `now`: it remembers nothing.
    pub fn is_full_at(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.rate
    }

    pub fn admit_at(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate() {
        let mut limit = RateLimit::per_second(5);
        let start = limit.refilled;
        assert_eq!((0..20).filter(|_| limit.admit_at(start)).count(), 5);
        // A fifth of a second refills one token, and no more than the burst ever accrues.
        assert!(limit.admit_at(start + Duration::from_millis(200)));
        assert!(!limit.admit_at(start + Duration::from_millis(200)));
        assert_eq!((0..20).filter(|_| limit.admit_at(start + Duration::from_secs(60))).count(), 5);
    }

    #[test]
    fn taking_beyond_the_burst_runs_up_a_debt_to_wait() {
        let mut limit = RateLimit::per_second(10);
        let start = limit.refilled;
        assert!((0..10).all(|_| limit.take_at(start).is_none()));
        assert_eq!(limit.take_at(start), Some(Duration::from_millis(100)));
        // Waiting out the debt brings it to nothing; the next take owes one token again.
        assert_eq!(limit.take_at(start + Duration::from_millis(100)).map(|d| d.as_millis()), Some(100));
    }
}
