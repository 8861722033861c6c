//! A token bucket: `rate` admissions per second on average, with bursts of as many. Each
//! connection has one for its subscribes (`limits.subscribe_rate`), so a client looping on
//! subscribe and complete cannot turn into broker subscribe and unsubscribe traffic at line rate.

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

    fn admit_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.refilled = now;
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
}
