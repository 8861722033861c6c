//! Drop-and-resume cycles during a broadcast (the `reconnect` scenario), on a thread of their
//! own (see [`crate::aside`]). Each cycle subscribes, reads a while, remembers the last event's
//! `seq` and `extensions.cursor`, drops its socket without a word, stays away, then subscribes
//! again with `extensions.resume` and reads on: every event after the last one it saw must come,
//! once, in order, the first saying `recovered: true`. What the server replayed is read from
//! its `subhub_replayed_total`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::aside::Aside;
use crate::client::{self, number_after, Target};
use crate::options::RunOptions;

/// How long a cycle reads before it drops its socket, stays away, and reads after resuming.
const BEFORE: Duration = Duration::from_millis(500);
const AWAY: Duration = Duration::from_secs(1);
const AFTER: Duration = Duration::from_millis(1500);
/// How long cycles under way at the end may take to finish.
const FINISH: Duration = Duration::from_secs(4);

/// What the cycles of one window found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReconnectTally {
    /// Cycles that dropped, resumed and read on.
    pub cycles: u64,
    /// Events received after resuming (replayed and live).
    pub received_after: u64,
    /// Events after the last one seen before the drop that never came: must be 0.
    pub gap: u64,
    /// Events received twice, or from before the drop: must be 0.
    pub duplicated: u64,
    /// Resumes whose first result did not say `recovered: true`.
    pub not_recovered: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// Cycles going on; `finish` stops them and returns what they found.
pub type Reconnecting = Aside<ReconnectTally>;

/// Starts `options.churn_rate` cycles a second on a thread of their own; connections numbered
/// from `first`.
pub(crate) fn start(options: RunOptions, target: Target, first: usize) -> std::io::Result<Reconnecting> {
    Aside::start(
        "reconnect",
        move |stop| run(options, target, first, stop),
        |error| ReconnectTally { errors: 1, first_error: Some(format!("reconnect: {error}")), ..Default::default() },
    )
}

async fn run(options: RunOptions, target: Target, first: usize, stop: CancellationToken) -> ReconnectTally {
    let (options, target) = (Rc::new(options), Rc::new(target));
    let tally = Rc::new(RefCell::new(ReconnectTally::default()));
    crate::aside::every(options.churn_rate, first, &stop.clone(), FINISH * 2, |index| {
        let (options, target, tally, stop) = (options.clone(), target.clone(), tally.clone(), stop.clone());
        async move {
            // A cycle cut short by the end of the window says nothing.
            let outcome = tokio::select! {
                outcome = cycle(index, &options, &target) => outcome,
                () = async { stop.cancelled().await; tokio::time::sleep(FINISH).await } => return,
            };
            tally.borrow_mut().add(outcome);
        }
    })
    .await;
    tally.take()
}

impl ReconnectTally {
    fn add(&mut self, outcome: anyhow::Result<Found>) {
        match outcome {
            Ok(found) => {
                self.cycles += 1;
                self.received_after += found.received_after;
                self.gap += found.gap;
                self.duplicated += found.duplicated;
                self.not_recovered += u64::from(!found.recovered);
            }
            Err(error) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| format!("reconnect: {error:#}"));
            }
        }
    }
}

struct Found {
    received_after: u64,
    gap: u64,
    duplicated: u64,
    recovered: bool,
}

/// The cursor of a `next` message.
fn cursor(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value["payload"]["extensions"]["cursor"].as_str().map(str::to_owned)
}

async fn cycle(index: usize, options: &RunOptions, target: &Target) -> anyhow::Result<Found> {
    let mut socket = client::open(index, &options.url, target).await?;
    client::handshake(&mut socket).await?;
    client::subscribe(&mut socket, "r", &client::subscription(options, &options.topic(0), None)).await?;
    let mut last: Option<(u64, String)> = None;
    let _ = tokio::time::timeout(BEFORE, async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Text(text) = message {
                if let (Some(seq), Some(cursor)) = (number_after(&text, "\"seq\":"), cursor(&text)) {
                    last = Some((seq, cursor));
                }
            }
        }
    })
    .await;
    // Gone without a word, as a phone leaving coverage.
    drop(socket);
    let Some((last_seq, last_cursor)) = last else { anyhow::bail!("no event with a cursor before the drop") };
    tokio::time::sleep(AWAY).await;
    let mut socket = client::open(index, &options.url, target).await?;
    client::handshake(&mut socket).await?;
    let resumed = client::subscription(options, &options.topic(0), Some(&last_cursor));
    client::subscribe(&mut socket, "r", &resumed).await?;
    let mut seqs = Vec::new();
    let mut recovered = None;
    let _ = tokio::time::timeout(AFTER, async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Text(text) = message {
                if text.contains("\"next\"") {
                    recovered.get_or_insert(text.contains("\"recovered\":true"));
                }
                if let Some(seq) = number_after(&text, "\"seq\":") {
                    seqs.push(seq);
                }
            }
        }
    })
    .await;
    let _ = socket.close(None).await;
    let duplicated = seqs.iter().filter(|&&seq| seq <= last_seq).count() as u64
        + seqs.windows(2).filter(|pair| pair[1] <= pair[0]).count() as u64;
    let newest = seqs.iter().copied().max().unwrap_or(last_seq);
    let mut distinct: Vec<u64> = seqs.iter().copied().filter(|&seq| seq > last_seq).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let gap = (newest - last_seq).saturating_sub(distinct.len() as u64);
    // A resume after which nothing came has nothing to say about recovery.
    Ok(Found { received_after: seqs.len() as u64, gap, duplicated, recovered: recovered.unwrap_or(true) })
}
