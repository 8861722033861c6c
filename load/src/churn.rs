//! Connect-subscribe-leave cycles, on a thread of their own beside the run's (see [`crate::aside`]).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::aside::Aside;
use crate::client::{self, Target};
use crate::latency::Latencies;
use crate::options::RunOptions;

/// How long cycles under way at the end may take to finish.
const FINISH: Duration = Duration::from_secs(2);

/// What the cycles of one window did.
#[derive(Default)]
pub struct ChurnTally {
    /// From connect to `connection_ack`, in µs.
    pub connect: Latencies,
    pub cycles: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// Cycles going on; `finish` stops them and returns what they did.
pub type Churning = Aside<ChurnTally>;

/// Starts `options.churn_rate` cycles a second on a thread of their own; their connections are
/// numbered from `first` (which picks their source addresses).
pub(crate) fn start(options: RunOptions, target: Target, first: usize) -> std::io::Result<Churning> {
    Aside::start(
        "churn",
        move |stop| run(options, target, first, stop),
        |error| ChurnTally { errors: 1, first_error: Some(format!("churn: {error}")), ..Default::default() },
    )
}

async fn run(options: RunOptions, target: Target, first: usize, stop: CancellationToken) -> ChurnTally {
    let (options, target) = (Rc::new(options), Rc::new(target));
    let tally = Rc::new(RefCell::new(ChurnTally::default()));
    crate::aside::every(options.churn_rate, first, &stop, FINISH, |index| {
        cycle(index, options.clone(), target.clone(), tally.clone())
    })
    .await;
    tally.take()
}

/// One connect-subscribe-leave cycle, timed from connect to `connection_ack`.
async fn cycle(index: usize, options: Rc<RunOptions>, target: Rc<Target>, tally: Rc<RefCell<ChurnTally>>) {
    let started = Instant::now();
    let result = async {
        let mut socket = client::open(index, &options.url, &target).await?;
        client::handshake(&mut socket).await?;
        let connected = started.elapsed();
        client::subscribe(&mut socket, "c", &client::subscription(&options, &options.topic(0), None)).await?;
        client::complete(&mut socket, "c").await?;
        socket.close(None).await?;
        anyhow::Ok(connected)
    }
    .await;
    let mut tally = tally.borrow_mut();
    match result {
        Ok(connected) => {
            tally.connect.record(0, connected.as_micros() as u64);
            tally.cycles += 1;
        }
        Err(error) => {
            tally.errors += 1;
            tally.first_error.get_or_insert_with(|| format!("churn: {error:#}"));
        }
    }
}
