//! One run: open the connections, make sure every subscription is live (probe events until each
//! connection has seen one), then publish open-loop through one or more measurement windows.
//! Everything runs on one thread: pin the generator with `taskset`, away from the server.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::accounting::{Sequence, Tally};
use crate::client::{self, number_after, target, Target};
use crate::latency::{Latencies, Percentiles, Second};
use crate::options::{RunOptions, Scenario};
use crate::plain;
use crate::publish::Publisher;
use crate::reconnect::ReconnectTally;
use crate::server;

/// Publishing lanes: each sends its topics' events one after another, in order. Enough of them
/// that thousands of events a second over HTTP do not wait behind each other's round trips.
const PUBLISH_LANES: usize = 32;
/// How long to wait for the last deliveries after the last publish.
const DRAIN: Duration = Duration::from_secs(5);
/// How long every connection has to become live before the run gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What one kind of subscriber (the server's WebSocket clients, or plain broker clients) received.
#[derive(Default)]
struct Receivers {
    latencies: Latencies,
    sequences: Vec<Sequence>,
    live: Vec<bool>,
    live_count: usize,
    /// The latest probe round received, and how many subscribers have received it.
    last_probe: (u64, usize),
    delivered: u64,
}

impl Receivers {
    fn new(count: usize) -> Self {
        Receivers { sequences: vec![Sequence::default(); count], live: vec![false; count], ..Receivers::default() }
    }

    /// Takes one event body received by subscriber `index` at `now` (Unix ns). A probe makes the
    /// subscriber live; an event inside a window is counted, and its (seq, latency in µs) returned.
    fn receive(&mut self, index: usize, body: &str, now: u64, window_start: Option<Instant>) -> Option<(u64, u64)> {
        if let Some(round) = number_after(body, "\"probe\":") {
            if !self.live[index] {
                self.live[index] = true;
                self.live_count += 1;
            }
            match round.cmp(&self.last_probe.0) {
                std::cmp::Ordering::Greater => self.last_probe = (round, 1),
                std::cmp::Ordering::Equal => self.last_probe.1 += 1,
                std::cmp::Ordering::Less => {}
            }
            return None;
        }
        let (seq, sent) = (number_after(body, "\"seq\":")?, number_after(body, "\"t\":")?);
        let start = window_start?;
        let latency_us = now.saturating_sub(sent) / 1000;
        self.latencies.record(start.elapsed().as_secs() as usize, latency_us);
        self.sequences[index].record(seq);
        self.delivered += 1;
        Some((seq, latency_us))
    }

    /// Whether every live subscriber has received probe `round`, and so every probe before it.
    fn has_probe(&self, round: u64) -> bool {
        self.live_count == 0 || (self.last_probe.0 == round && self.last_probe.1 >= self.live_count)
    }

    /// Starts a window: nothing counted yet.
    fn reset(&mut self) {
        self.latencies = Latencies::default();
        self.sequences.iter_mut().for_each(|s| *s = Sequence::default());
        self.delivered = 0;
    }
}

#[derive(Default)]
struct State {
    /// Measurement window in progress: its start.
    window_start: Option<Instant>,
    /// The server's subscribers.
    hub: Receivers,
    /// Plain broker subscribers (--plain).
    plain: Receivers,
    acknowledged: usize,
    connect_errors: u64,
    first_error: Option<String>,
    protocol_errors: u64,
    /// Burst: per sequence number, (first, last, count) latency in µs.
    bursts: HashMap<u64, (u64, u64, u64)>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Burst {
    pub bursts: usize,
    pub complete: usize,
    pub median_first_us: u64,
    pub median_last_us: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ServerUse {
    pub cpu_seconds: f64,
    pub cpu_percent: f64,
    pub cpu_us_per_delivery: Option<f64>,
    pub rss_bytes: u64,
    pub rss_bytes_per_connection: Option<f64>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Window {
    pub rate: f64,
    pub seconds: f64,
    pub published: u64,
    pub publish_errors: u64,
    pub tally: Tally,
    pub deliveries_per_second: f64,
    pub latency: Percentiles,
    pub timeline: Vec<Second>,
    pub distribution: Vec<(f64, u64)>,
    pub burst: Option<Burst>,
    pub server: Option<ServerUse>,
    pub churn: Option<Churn>,
    /// Reconnect: what the drop-and-resume cycles found, and what the server replayed.
    pub reconnect: Option<Reconnect>,
    pub plain: Option<Plain>,
    /// The generator's own CPU over the window: above ~70% of its core, it may be the bottleneck.
    pub generator_cpu_percent: Option<f64>,
}

/// Plain broker subscribers read the same events as the server's clients (--plain).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Plain {
    pub broker: &'static str,
    pub subscribers: usize,
    pub tally: Tally,
    pub latency: Percentiles,
    /// The server's clients' p50 minus the plain subscribers' p50: what the server adds.
    pub hub_added_p50_us: i64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Reconnect {
    pub tally: ReconnectTally,
    /// Events the server sent from its broker's history (`subhub_replayed_total` over the window).
    pub replayed: Option<f64>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Churn {
    pub cycles: u64,
    pub connect: Percentiles,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    pub label: String,
    pub scenario: Scenario,
    pub url: String,
    pub connections: usize,
    pub stalled: usize,
    pub topics: usize,
    pub connect_errors: u64,
    pub connect_seconds: f64,
    pub idle: Option<ServerUse>,
    pub windows: Vec<Window>,
    /// subhub's sources and executions still open after every client left (churn).
    pub left_open: Option<(f64, f64)>,
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

async fn client(
    index: usize,
    options: Rc<RunOptions>,
    target: Rc<Target>,
    state: Rc<RefCell<State>>,
    stalled: bool,
    stop: CancellationToken,
) {
    let connected = async {
        let mut socket = client::open(index, &options.url, &target).await?;
        client::handshake(&mut socket).await?;
        client::subscribe(&mut socket, "s", &client::subscription(&options, &options.topic(index), None)).await?;
        anyhow::Ok(socket)
    };
    let mut socket = match connected.await {
        Ok(socket) => socket,
        Err(error) => {
            let mut state = state.borrow_mut();
            state.connect_errors += 1;
            state.first_error.get_or_insert_with(|| format!("{error:#}"));
            return;
        }
    };
    state.borrow_mut().acknowledged += 1;
    if stalled {
        // A slow consumer: it holds its socket and never reads again.
        stop.cancelled().await;
        return;
    }
    loop {
        let message = tokio::select! {
            message = socket.next() => message,
            () = stop.cancelled() => return,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return,
        };
        let now = unix_nanos(SystemTime::now());
        let mut state = state.borrow_mut();
        if !text.contains("\"next\"") {
            if text.contains("\"error\"") {
                state.protocol_errors += 1;
                state.first_error.get_or_insert_with(|| text.to_string());
            }
            continue;
        }
        let window_start = state.window_start;
        let Some((seq, latency_us)) = state.hub.receive(index, &text, now, window_start) else { continue };
        if options.scenario == Scenario::Burst {
            let entry = state.bursts.entry(seq).or_insert((u64::MAX, 0, 0));
            entry.0 = entry.0.min(latency_us);
            entry.1 = entry.1.max(latency_us);
            entry.2 += 1;
        }
    }
}

/// A plain broker subscriber: takes the bodies its broker client reads.
async fn plain_client(
    index: usize,
    mut bodies: tokio::sync::mpsc::Receiver<String>,
    state: Rc<RefCell<State>>,
    stop: CancellationToken,
) {
    loop {
        let body = tokio::select! {
            body = bodies.recv() => body,
            () = stop.cancelled() => return,
        };
        let Some(body) = body else { return };
        let now = unix_nanos(SystemTime::now());
        let mut state = state.borrow_mut();
        let window_start = state.window_start;
        state.plain.receive(index, &body, now, window_start);
    }
}

pub async fn run(options: RunOptions, progress: bool) -> anyhow::Result<Report> {
    options.validate().map_err(|e| anyhow!(e))?;
    let options = Rc::new(options);
    let target = Rc::new(target(&options.url)?);
    let http = reqwest::Client::new();
    let base = options.http_base();
    let state = Rc::new(RefCell::new(State {
        hub: Receivers::new(options.connections),
        plain: Receivers::new(options.plain),
        ..State::default()
    }));
    let stop = CancellationToken::new();
    let stalled = match options.scenario {
        Scenario::SlowConsumers => (options.connections / 100).max(1),
        _ => 0,
    };
    let baseline = options.server_pid.and_then(server::sample);

    // Open the connections at the ramp rate.
    let connect_start = Instant::now();
    let mut ramp = tokio::time::interval(Duration::from_secs_f64(1.0 / options.ramp));
    let mut clients = Vec::with_capacity(options.connections);
    for index in 0..options.connections {
        ramp.tick().await;
        let is_stalled = index >= options.connections - stalled;
        clients.push(tokio::task::spawn_local(client(
            index,
            options.clone(),
            target.clone(),
            state.clone(),
            is_stalled,
            stop.clone(),
        )));
    }
    let healthy = options.connections - stalled;
    let reached = wait_until(READY_TIMEOUT, || {
        let state = state.borrow();
        state.acknowledged as u64 + state.connect_errors >= options.connections as u64
    })
    .await;
    {
        let state = state.borrow();
        if state.acknowledged == 0 {
            bail!(
                "no connection succeeded: {}",
                state.first_error.clone().unwrap_or_else(|| "connections timed out".into())
            );
        }
        if !reached {
            bail!(
                "only {} of {} connections were acknowledged within {READY_TIMEOUT:?}",
                state.acknowledged,
                options.connections
            );
        }
    }
    for index in 0..options.plain {
        let bodies = plain::subscribe(&options, &options.topic(index), index)
            .await
            .with_context(|| format!("plain {} subscriber", options.publish.name()))?;
        clients.push(tokio::task::spawn_local(plain_client(index, bodies, state.clone(), stop.clone())));
    }
    let publisher = Rc::new(Publisher::connect(&options).await.context("cannot publish")?);

    // Probe until every healthy subscription has received an event: then it is live.
    let ready_by = Instant::now() + READY_TIMEOUT;
    let acknowledged_healthy = healthy.min(state.borrow().acknowledged);
    let mut round = 0;
    loop {
        let (live, plain_live) = (state.borrow().hub.live_count, state.borrow().plain.live_count);
        if live >= acknowledged_healthy && plain_live == options.plain {
            break;
        }
        if Instant::now() > ready_by {
            bail!(
                "only {live} of {acknowledged_healthy} subscriptions and {plain_live} of {} plain subscribers became live",
                options.plain
            );
        }
        round += 1;
        let probe = format!(r#"{{"probe":{round},"t":{}}}"#, unix_nanos(SystemTime::now()));
        for topic in 0..options.topics() {
            if let Err(error) = publisher.publish(&options.topic_name(topic), probe.clone()).await {
                bail!("cannot publish: {error:#}");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Probes published while the last subscriptions became live may still be on their way; their
    // fan-out (tens of ms per event at 10,000 subscribers) must not fall inside a window.
    let settled = round == 0
        || wait_until(DRAIN, || {
            let state = state.borrow();
            state.hub.has_probe(round) && state.plain.has_probe(round)
        })
        .await;
    if !settled {
        bail!("the last probe did not reach every live subscriber within {DRAIN:?}");
    }
    let connect_seconds = connect_start.elapsed().as_secs_f64();
    let idle = match (options.server_pid, baseline) {
        (Some(pid), Some(before)) if options.scenario == Scenario::Idle => {
            let start = server::sample(pid);
            tokio::time::sleep(options.duration).await;
            let end = server::sample(pid);
            start.zip(end).map(|(start, end)| ServerUse {
                cpu_seconds: end.cpu_seconds - start.cpu_seconds,
                cpu_percent: 100.0 * (end.cpu_seconds - start.cpu_seconds) / options.duration.as_secs_f64(),
                cpu_us_per_delivery: None,
                rss_bytes: end.rss_bytes,
                rss_bytes_per_connection: Some(
                    end.rss_bytes.saturating_sub(before.rss_bytes) as f64 / options.connections as f64,
                ),
            })
        }
        _ => None,
    };

    let mut windows = Vec::new();
    if options.scenario != Scenario::Idle {
        let mut rate = options.rate;
        loop {
            let window = measure(&options, rate, &state, &publisher, &target, &http, &base, healthy, progress).await?;
            let stop_stepping = match options.step {
                Some(bound_ms) => {
                    window.latency.p99_us as f64 > bound_ms * 1000.0 || window.tally.lost > 0 || windows.len() >= 12
                }
                None => true,
            };
            windows.push(window);
            if stop_stepping {
                break;
            }
            rate *= 2.0;
        }
    }

    stop.cancel();
    for client in clients {
        let _ = client.await;
    }
    // After every client left, a subhub must have closed every source and execution.
    let left_open = if options.scenario == Scenario::Churn {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let sources = server::metric(&http, &base, "subhub_sources_open").await;
            let executions = server::metric(&http, &base, "subhub_executions").await;
            let open = sources.zip(executions);
            if open.is_none_or(|(s, e)| s == 0.0 && e == 0.0) || Instant::now() > deadline {
                break open;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    } else {
        None
    };
    let state = state.borrow();
    Ok(Report {
        label: options.label.clone(),
        scenario: options.scenario,
        url: options.url.clone(),
        connections: options.connections,
        stalled,
        topics: options.topics(),
        connect_errors: state.connect_errors,
        connect_seconds,
        idle,
        windows,
        left_open,
    })
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    options: &Rc<RunOptions>,
    rate: f64,
    state: &Rc<RefCell<State>>,
    publisher: &Rc<Publisher>,
    target: &Rc<Target>,
    http: &reqwest::Client,
    base: &str,
    healthy: usize,
    progress: bool,
) -> anyhow::Result<Window> {
    {
        let mut state = state.borrow_mut();
        state.hub.reset();
        state.plain.reset();
        state.bursts.clear();
        state.window_start = Some(Instant::now());
    }
    let (rate, count) = match options.scenario {
        Scenario::Burst => (1.0, options.bursts as u64),
        _ => (rate, (rate * options.duration.as_secs_f64()).round().max(1.0) as u64),
    };
    let server_start = options.server_pid.and_then(server::sample);
    let pad = "x".repeat(options.payload_bytes.saturating_sub(40));
    let topics = options.topics();
    let mut published_per_topic = vec![0u64; topics];
    let errors = Rc::new(std::cell::Cell::new(0u64));
    let start = Instant::now();
    let start_wall = SystemTime::now();
    let churn = match options.scenario {
        Scenario::Churn => Some(
            crate::churn::start((**options).clone(), (**target).clone(), options.connections)
                .context("cannot start the churn thread")?,
        ),
        _ => None,
    };
    let replayed_before = server::metric(http, base, "subhub_replayed_total").await;
    let reconnecting = match options.scenario {
        Scenario::Reconnect => Some(
            crate::reconnect::start((**options).clone(), (**target).clone(), options.connections)
                .context("cannot start the reconnect thread")?,
        ),
        _ => None,
    };
    let lanes: Vec<tokio::sync::mpsc::UnboundedSender<(String, String)>> = (0..topics.min(PUBLISH_LANES))
        .map(|_| {
            let (lane, mut queue) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
            let (publisher, errors) = (publisher.clone(), errors.clone());
            tokio::task::spawn_local(async move {
                while let Some((topic, body)) = queue.recv().await {
                    if publisher.publish(&topic, body).await.is_err() {
                        errors.set(errors.get() + 1);
                    }
                }
            });
            lane
        })
        .collect();
    let generator_start = server::sample(std::process::id());
    let mut last_progress = Instant::now();
    for k in 0..count {
        let offset = Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until((start + offset).into()).await;
        let topic = (k as usize) % topics;
        let seq = published_per_topic[topic];
        published_per_topic[topic] += 1;
        let intended = unix_nanos(start_wall + offset);
        let body = if options.nested_payload {
            format!(r#"{{"seq":{seq},"t":{intended},"detail":{{"pad":"{pad}"}}}}"#)
        } else {
            format!(r#"{{"seq":{seq},"t":{intended},"pad":"{pad}"}}"#)
        };
        // Each topic always goes through the same lane, which publishes in order: a server
        // receives a topic's events in sequence, so reordering it reports is its own.
        let _ = lanes[topic % lanes.len()].send((options.topic_name(topic), body));
        if progress && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            let state = state.borrow();
            let second = start.elapsed().as_secs() as usize;
            let p99 = state.hub.latencies.second(second.saturating_sub(1)).map_or(0, |p| p.p99_us);
            eprint!(
                "\r  {:>4}s/{:.0}s  rate {rate:.0}/s  delivered {:>10}  p99(last s) {:>8.2} ms   ",
                second,
                options.duration.as_secs_f64(),
                state.hub.delivered,
                p99 as f64 / 1000.0
            );
        }
    }
    drop(lanes);
    let publishing = start.elapsed().as_secs_f64();
    let churn = match churn {
        Some(churning) => Some(churning.finish().await),
        None => None,
    };
    let reconnect = match reconnecting {
        Some(reconnecting) => {
            let tally = reconnecting.finish().await;
            let replayed_after = server::metric(http, base, "subhub_replayed_total").await;
            let replayed = replayed_before.zip(replayed_after).map(|(before, after)| after - before);
            Some(Reconnect { tally, replayed })
        }
        None => None,
    };
    // Every healthy subscriber of a topic should see every event published on it. (Counted
    // by index: comparing topic names would format tens of millions of strings in partitioned
    // runs and stall this thread, and with it every reader, for seconds.)
    let expected: u64 = (0..healthy).map(|i| published_per_topic[options.topic_index(i)]).sum();
    let plain_expected: u64 = (0..options.plain).map(|i| published_per_topic[options.topic_index(i)]).sum();
    wait_until(DRAIN, || {
        let state = state.borrow();
        state.hub.delivered >= expected && state.plain.delivered >= plain_expected
    })
    .await;
    let elapsed = start.elapsed().as_secs_f64();
    if progress {
        eprintln!();
    }
    let server_end = options.server_pid.and_then(server::sample);
    let generator_cpu_percent = generator_start
        .zip(server::sample(std::process::id()))
        .map(|(a, b)| 100.0 * (b.cpu_seconds - a.cpu_seconds) / elapsed);
    // subhub's own count, where the server is one, cross-checks the generator's.
    let _ = server::metric(http, base, "subhub_deliveries_total").await;
    let mut state = state.borrow_mut();
    state.window_start = None;
    let mut tally = Tally::default();
    for index in 0..healthy {
        tally += state.hub.sequences[index].tally(published_per_topic[options.topic_index(index)]);
    }
    let plain = (options.plain > 0).then(|| {
        let mut tally = Tally::default();
        for index in 0..options.plain {
            tally += state.plain.sequences[index].tally(published_per_topic[options.topic_index(index)]);
        }
        let latency = state.plain.latencies.percentiles();
        let hub_p50 = state.hub.latencies.percentiles().p50_us;
        Plain {
            broker: options.publish.name(),
            subscribers: options.plain,
            tally,
            hub_added_p50_us: hub_p50 as i64 - latency.p50_us as i64,
            latency,
        }
    });
    let server = server_start.zip(server_end).map(|(a, b)| {
        let cpu = b.cpu_seconds - a.cpu_seconds;
        ServerUse {
            cpu_seconds: cpu,
            cpu_percent: 100.0 * cpu / elapsed,
            cpu_us_per_delivery: (tally.received > 0).then(|| cpu * 1e6 / tally.received as f64),
            rss_bytes: b.rss_bytes,
            rss_bytes_per_connection: None,
        }
    });
    let burst = (options.scenario == Scenario::Burst).then(|| {
        let mut complete: Vec<(u64, u64)> = state
            .bursts
            .values()
            .filter(|(_, _, n)| *n == healthy as u64)
            .map(|(first, last, _)| (*first, *last))
            .collect();
        let median = |values: &mut Vec<u64>| {
            values.sort_unstable();
            values.get(values.len() / 2).copied().unwrap_or(0)
        };
        let mut firsts: Vec<u64> = complete.iter().map(|c| c.0).collect();
        let mut lasts: Vec<u64> = complete.drain(..).map(|c| c.1).collect();
        Burst {
            bursts: state.bursts.len(),
            complete: lasts.len(),
            median_first_us: median(&mut firsts),
            median_last_us: median(&mut lasts),
        }
    });
    let churn = churn.map(|tally| {
        state.connect_errors += tally.errors;
        if let Some(error) = tally.first_error {
            state.first_error.get_or_insert(error);
        }
        Churn { cycles: tally.cycles, connect: tally.connect.percentiles() }
    });
    Ok(Window {
        rate,
        seconds: publishing,
        published: count,
        publish_errors: errors.get(),
        deliveries_per_second: tally.received as f64 / elapsed.max(publishing).max(1e-9),
        latency: state.hub.latencies.percentiles(),
        timeline: state.hub.latencies.timeline(),
        distribution: state
            .hub
            .latencies
            .distribution(&[0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0]),
        tally,
        burst,
        server,
        churn,
        reconnect,
        plain,
        generator_cpu_percent,
    })
}

/// Polls `condition` every 10 ms until it holds or `limit` passes.
async fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_round_is_complete_when_every_live_subscriber_has_it() {
        let probe = |round: u64| format!(r#"{{"probe":{round},"t":1}}"#);
        let mut receivers = Receivers::new(3);
        assert!(receivers.has_probe(1), "no subscriber is waiting for anything");
        receivers.receive(0, &probe(1), 0, None);
        receivers.receive(1, &probe(2), 0, None);
        receivers.receive(0, &probe(2), 0, None);
        assert_eq!(receivers.live_count, 2);
        assert!(receivers.has_probe(2), "both live subscribers have round 2");
        receivers.receive(2, &probe(3), 0, None);
        assert!(!receivers.has_probe(3), "subscribers 0 and 1 are still waiting for round 3");
        receivers.receive(1, &probe(3), 0, None);
        receivers.receive(0, &probe(3), 0, None);
        assert!(receivers.has_probe(3));
        assert_eq!(receivers.delivered, 0, "probes are not deliveries");
    }
}
