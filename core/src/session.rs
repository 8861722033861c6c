//! The reconnect loop every broker session and every upstream connection runs (STYLE §4):
//! connect under a deadline, serve the connection until the session ends for a named reason,
//! then wait out a jittered backoff while still taking requests, and connect again.
//!
//! The backoff starts again from its shortest delay only after a session that stayed up for
//! [`Reconnect::healthy_after`]. Resetting it on connect would redial a peer that accepts and
//! drops at once every 50 to 100 ms for ever, re-sending every subscription each time.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backoff::Backoff;

/// How a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// The owner is gone (its requests channel closed): stop.
    Shutdown,
    /// The connection broke or went silent: connect again after the backoff.
    Disconnected,
    /// The far side refused the session for good (rejected credentials, not the protocol
    /// expected): stop; the session keeps why, for whoever waits on it.
    Refused,
}

/// Why a connection attempt failed.
#[derive(Debug)]
pub enum ConnectError<E> {
    /// Worth trying again after the backoff: unreachable, dropped during the handshake, a
    /// passing refusal (a proxy's 502).
    Retry(E),
    /// Refused for good, as [`SessionEnd::Refused`].
    Refused,
}

/// Why [`run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    Shutdown,
    Refused,
}

/// How a session reconnects.
#[derive(Clone, Debug)]
pub struct Reconnect {
    pub backoff: Backoff,
    /// A session that stayed up this long starts the backoff again from its shortest delay.
    pub healthy_after: Duration,
    /// One connection attempt, handshake and restoring included, may take this long.
    pub connect_timeout: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            backoff: Backoff::default(),
            healthy_after: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// One reconnecting session: a broker's connection, or an upstream connection.
pub trait Session: Send {
    /// What the session's owner asks of it (subscribe, unsubscribe).
    type Request: Send;
    /// An open connection, as `connect` made it.
    type Connection: Send;
    /// Why an attempt failed, for the log.
    type Error: Display + Send;

    /// What the far side is, for the log ("Redis", "RabbitMQ", "upstream").
    const KIND: &'static str;

    /// The far side's configured name, for the log.
    fn name(&self) -> &str;

    /// Connects (and completes the protocol's handshake).
    fn connect(&mut self) -> impl Future<Output = Result<Self::Connection, ConnectError<Self::Error>>> + Send;

    /// Serves one connection, taking requests from `requests`, until it ends. Restores what the
    /// session served on its previous connection first.
    fn serve(
        &mut self,
        connection: Self::Connection,
        requests: &mut mpsc::UnboundedReceiver<Self::Request>,
    ) -> impl Future<Output = SessionEnd> + Send;

    /// Takes a request while there is no connection: kept for the next one.
    fn offline(&mut self, request: Self::Request);
}

/// Keeps `session` connected until its owner is gone or the far side refuses it for good.
pub async fn run<S: Session>(
    session: &mut S,
    requests: &mut mpsc::UnboundedReceiver<S::Request>,
    policy: Reconnect,
) -> Stopped {
    let Reconnect { mut backoff, healthy_after, connect_timeout } = policy;
    loop {
        match tokio::time::timeout(connect_timeout, session.connect()).await {
            Ok(Ok(connection)) => {
                if backoff.failures() > 0 {
                    tracing::info!(peer = session.name(), "connected to {} again", S::KIND);
                }
                let started = Instant::now();
                let end = session.serve(connection, requests).await;
                if started.elapsed() >= healthy_after {
                    backoff.reset();
                }
                match end {
                    SessionEnd::Shutdown => return Stopped::Shutdown,
                    SessionEnd::Refused => return Stopped::Refused,
                    SessionEnd::Disconnected => {}
                }
            }
            Ok(Err(ConnectError::Refused)) => return Stopped::Refused,
            Ok(Err(ConnectError::Retry(error))) => failed_attempt::<S>(session, &backoff, &error),
            Err(_) => failed_attempt::<S>(session, &backoff, &format_args!("no answer within {connect_timeout:?}")),
        }
        if !wait_offline(session, requests, backoff.next_delay()).await {
            return Stopped::Shutdown;
        }
    }
}

/// One warning for the first failed attempt in a row, not one per retry.
fn failed_attempt<S: Session>(session: &S, backoff: &Backoff, error: &dyn Display) {
    if backoff.failures() == 0 {
        tracing::warn!(peer = session.name(), %error, "{} is unreachable; retrying", S::KIND);
    } else {
        tracing::debug!(peer = session.name(), %error, attempts = backoff.failures(), "{} is still unreachable", S::KIND);
    }
}

/// Waits `delay` while still taking requests; false when the owner is gone.
async fn wait_offline<S: Session>(
    session: &mut S,
    requests: &mut mpsc::UnboundedReceiver<S::Request>,
    delay: Duration,
) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return true,
            request = requests.recv() => match request {
                Some(request) => session.offline(request),
                None => return false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    //! The loop against a session that counts its attempts and ends each connection as told,
    //! on tokio's paused clock: what is checked is the loop's arithmetic, not any IO.

    use super::*;

    struct Counting {
        /// When each attempt was made.
        attempts: Vec<Instant>,
        /// How long each connection stays up, and how it ends.
        up_for: Duration,
        end: SessionEnd,
        offline: usize,
    }

    impl Session for Counting {
        type Request = ();
        type Connection = ();
        type Error = &'static str;
        const KIND: &'static str = "test";

        fn name(&self) -> &str {
            "counting"
        }

        async fn connect(&mut self) -> Result<(), ConnectError<&'static str>> {
            self.attempts.push(Instant::now());
            Ok(())
        }

        async fn serve(&mut self, (): (), _: &mut mpsc::UnboundedReceiver<()>) -> SessionEnd {
            tokio::time::sleep(self.up_for).await;
            self.end
        }

        fn offline(&mut self, (): ()) {
            self.offline += 1;
        }
    }

    fn counting(up_for: Duration) -> Counting {
        Counting { attempts: Vec::new(), up_for, end: SessionEnd::Disconnected, offline: 0 }
    }

    /// Runs until `until` has passed on the paused clock; the attempts made by then.
    async fn attempts_within(session: &mut Counting, until: Duration) -> usize {
        let (_requests, mut receiver) = mpsc::unbounded_channel();
        let _ = tokio::time::timeout(until, run(session, &mut receiver, Reconnect::default())).await;
        session.attempts.len()
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_dropped_at_once_is_redialled_ever_more_slowly() {
        let mut session = counting(Duration::from_millis(10));
        let attempts = attempts_within(&mut session, Duration::from_secs(30)).await;
        // Delays of 0.05-0.1 s, 0.1-0.2 s … up to 5-10 s: nine to thirteen attempts in thirty
        // seconds, where a backoff reset at each connect would make hundreds.
        assert!((9..=13).contains(&attempts), "{attempts} attempts");
        let gaps: Vec<Duration> = session.attempts.windows(2).map(|pair| pair[1] - pair[0]).collect();
        // Each ceiling doubles, so a delay is at least any delay two attempts before it, until
        // they reach the longest.
        assert!(gaps[..6].windows(3).all(|w| w[2] >= w[0]), "the delay grows: {gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_that_stayed_up_starts_the_backoff_again() {
        let mut session = counting(Duration::from_secs(6));
        attempts_within(&mut session, Duration::from_secs(60)).await;
        let gaps: Vec<Duration> = session.attempts.windows(2).map(|pair| pair[1] - pair[0]).collect();
        // Each gap is the six seconds up plus the shortest delay again (50-100 ms).
        assert!(gaps.iter().all(|gap| *gap <= Duration::from_millis(6100)), "{gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn requests_while_offline_are_kept_and_a_refusal_or_shutdown_stops() {
        let mut session = counting(Duration::ZERO);
        let (requests, mut receiver) = mpsc::unbounded_channel();
        requests.send(()).expect("send");
        session.end = SessionEnd::Refused;
        assert_eq!(run(&mut session, &mut receiver, Reconnect::default()).await, Stopped::Refused);
        session.end = SessionEnd::Disconnected;
        drop(requests);
        assert_eq!(run(&mut session, &mut receiver, Reconnect::default()).await, Stopped::Shutdown);
        assert_eq!(session.offline, 1, "the request sent before was taken while offline");
    }
}
