//! Jittered exponential backoff between reconnect attempts.
//!
//! The delay doubles from `min` to `max`; each wait is drawn from its upper half so that hubs
//! restarted together do not reconnect in lockstep. When to start again from `min` is the
//! caller's: [`crate::session::run`] does it only after a session that stayed up.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
    failures: u32,
}

/// Why a backoff cannot be made from these bounds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBackoff {
    #[error("the shortest delay must be longer than 0s")]
    ZeroMin,
    #[error("the shortest delay ({min:?}) is longer than the longest ({max:?})")]
    MinAboveMax { min: Duration, max: Duration },
}

impl Backoff {
    /// The shortest and longest delays of [`Backoff::default`].
    pub const DEFAULT_MIN: Duration = Duration::from_millis(100);
    pub const DEFAULT_MAX: Duration = Duration::from_secs(10);

    /// Delays from `min` up to `max`; `min` must be positive and at most `max`.
    pub fn new(min: Duration, max: Duration) -> Result<Self, InvalidBackoff> {
        if min.is_zero() {
            return Err(InvalidBackoff::ZeroMin);
        }
        if min > max {
            return Err(InvalidBackoff::MinAboveMax { min, max });
        }
        Ok(Backoff { min, max, current: min, failures: 0 })
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.current;
        self.current = (self.current * 2).min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = ceiling / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Delays handed out since the last reset: attempts that did not lead to a healthy session.
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
        Backoff { min: Self::DEFAULT_MIN, max: Self::DEFAULT_MAX, current: Self::DEFAULT_MIN, failures: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_within_bounds_and_reset() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).expect("valid");
        let delays: Vec<_> = (0..8).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(1)));
        assert!(delays[7] >= Duration::from_millis(500));
        assert_eq!(backoff.failures(), 8);
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn bounds_are_checked_when_made() {
        assert_eq!(Backoff::new(Duration::ZERO, Duration::from_secs(1)).err(), Some(InvalidBackoff::ZeroMin));
        let (min, max) = (Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(Backoff::new(min, max).err(), Some(InvalidBackoff::MinAboveMax { min, max }));
        let default = Backoff::default();
        assert!(Backoff::new(default.min, default.max).is_ok(), "the default's own bounds are valid");
    }
}
