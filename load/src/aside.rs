//! Work on a thread of its own beside the run's (both on the generator's core): churn and
//! reconnect cycles. On the run's thread a cycle's handshake steps would wait behind the
//! thousands of reads the measuring connections make while a server fans an event out, and its
//! times would measure the generator; the kernel schedules a waking thread at once.

use std::future::Future;

use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Work going on; [`Aside::finish`] stops it and returns what it found.
pub struct Aside<T> {
    stop: CancellationToken,
    done: oneshot::Receiver<T>,
}

impl<T: Default + Send + 'static> Aside<T> {
    /// Runs `work` on a current-thread runtime of its own, on a thread named `name`; `failed`
    /// makes the result when that runtime cannot start.
    pub fn start<W, F>(name: &str, work: W, failed: fn(String) -> T) -> std::io::Result<Self>
    where
        W: FnOnce(CancellationToken) -> F + Send + 'static,
        F: Future<Output = T> + 'static,
    {
        let stop = CancellationToken::new();
        let (report, done) = oneshot::channel();
        let stopped = stop.clone();
        std::thread::Builder::new().name(name.to_owned()).spawn(move || {
            let found = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => {
                    let local = tokio::task::LocalSet::new();
                    runtime.block_on(local.run_until(work(stopped)))
                }
                Err(error) => failed(error.to_string()),
            };
            let _ = report.send(found);
        })?;
        Ok(Aside { stop, done })
    }

    pub async fn finish(self) -> T {
        self.stop.cancel();
        self.done.await.unwrap_or_default()
    }
}

/// Starts `cycle(n)` `rate` times a second, numbering from `first`, until `stop`; then gives
/// the cycles under way `finish` to end.
pub async fn every<C, F>(rate: f64, first: usize, stop: &CancellationToken, finish: Duration, mut cycle: C)
where
    C: FnMut(usize) -> F,
    F: Future<Output = ()> + 'static,
{
    let cycles = TaskTracker::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    for index in first.. {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        cycles.spawn_local(cycle(index));
    }
    cycles.close();
    let _ = tokio::time::timeout(finish, cycles.wait()).await;
}
