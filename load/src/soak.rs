//! A soak: a long run of churn against a hub on every configured broker and an upstream, with
//! clients that stay (their events counted, nothing may be lost), clients that stop reading,
//! and faults injected from outside (`load/soak.sh` restarts Redis and the upstream and kills
//! RabbitMQ's connections). What it proves is the registry's promise under faults: once the
//! clients are gone, nothing is left open (on the hub and on the brokers), and the hub's memory
//! and file descriptors come back to where they were after warm-up.
//!
//! The run: warm-up (the same mix of clients for `--warmup`), every client gone, a baseline of
//! RSS and FDs taken once the hub is idle; then the soak proper for `--duration`; then every
//! client gone again and the same figures taken. Samples every few seconds go to a CSV and an SVG chart.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::{handshake, number_after, open, target, Target};
use crate::server;

#[derive(Args, Clone, Debug)]
pub struct SoakOptions {
    /// The hub's GraphQL WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:4000/graphql")]
    pub url: String,
    /// The hub's process id, for its memory and file descriptors.
    #[arg(long)]
    pub server_pid: u32,
    /// How long the soak proper runs, after the warm-up.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// The hub's brokers to churn on, as NAME:KIND (KIND: redis, streams, amqp, kafka, memory).
    #[arg(long, value_delimiter = ',', default_value = "cache:redis,log:streams,rabbit:amqp,events:kafka")]
    pub brokers: Vec<String>,
    /// An upstream subscription field taking `topic` (the upstream's `events`), to churn on too.
    #[arg(long)]
    pub upstream_field: Option<String>,
    /// Connect-subscribe-leave cycles started per second.
    #[arg(long, default_value_t = 20.0)]
    pub churn_rate: f64,
    /// Topics per broker the cycles pick from (Kafka topics `soak-k0…` must exist).
    #[arg(long, default_value_t = 10)]
    pub topics: usize,
    /// Clients that stay connected through the run, on `soak-steady` of every broker that keeps
    /// history (streams, kafka); each must get every event published there, in order, once.
    #[arg(long, default_value_t = 20)]
    pub steady: usize,
    /// Events per second published (through the hub) on each steady topic.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Redis, to count what is left subscribed on it at the end (PUBSUB NUMSUB).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// The hub's RabbitMQ exchange, to count the bindings left on it at the end (rabbitmqctl).
    #[arg(long)]
    pub amqp_exchange: Option<String>,
    /// Where the samples (CSV), chart (SVG) and summary (JSON) go: PREFIX.csv, .svg, .json.
    #[arg(long, default_value = "load/results/soak")]
    pub out: PathBuf,
}

#[derive(Clone, Debug)]
struct Broker {
    name: String,
    kind: String,
}

impl Broker {
    fn topic(&self, n: usize) -> String {
        if self.kind == "kafka" {
            format!("soak-k{n}")
        } else {
            format!("soak.{}.{n}", self.name)
        }
    }

    fn keeps_history(&self) -> bool {
        self.kind == "streams" || self.kind == "kafka"
    }
}

/// One row of samples.
#[derive(Clone, Debug, Default, Serialize)]
struct Sample {
    seconds: f64,
    phase: &'static str,
    rss_mib: f64,
    fds: usize,
    connections: f64,
    subscriptions: f64,
    sources: f64,
    executions: f64,
    upstream_connections: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct SoakSummary {
    pub cycles: u64,
    pub cycle_errors: u64,
    pub first_error: Option<String>,
    pub stalled_clients: u64,
    /// Events published on each steady topic, and what the steady clients missed, saw twice or
    /// out of order there.
    pub steady: BTreeMap<String, SteadyTally>,
    pub baseline_rss_mib: f64,
    pub baseline_fds: usize,
    pub end_rss_mib: f64,
    /// Open FDs as soon as the hub had no connection, source or execution left.
    pub end_fds_at_idle: usize,
    /// Open FDs once they stopped falling (at most 30 s later).
    pub end_fds: usize,
    pub end_sources: f64,
    pub end_executions: f64,
    pub end_upstream_connections: f64,
    pub end_broker_subscriptions: f64,
    /// `subhub_dropped_total` over the run, every reason.
    pub dropped: f64,
    pub stalled_closes: f64,
    pub slow_consumer_closes: f64,
    /// PUBSUB NUMSUB over every Redis pub/sub topic the run used.
    pub redis_numsub: i64,
    /// Bindings left on the hub's RabbitMQ exchange; `None` when not checked.
    pub amqp_bindings: Option<usize>,
}

#[derive(Debug, Default, Serialize, Clone)]
pub struct SteadyTally {
    pub published: u64,
    pub clients: usize,
    pub missing: u64,
    /// The clients that missed any, and the first sequence number each missed.
    pub first_missing: Vec<u64>,
    pub duplicated: u64,
    pub reordered: u64,
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Runs the soak; the summary is also written to `--out`.json.
pub async fn soak(options: SoakOptions) -> anyhow::Result<SoakSummary> {
    let brokers: Vec<Broker> = options
        .brokers
        .iter()
        .map(|spec| {
            let (name, kind) = spec.split_once(':').ok_or_else(|| anyhow!("--brokers {spec}: write NAME:KIND"))?;
            Ok(Broker { name: name.to_owned(), kind: kind.to_owned() })
        })
        .collect::<anyhow::Result<_>>()?;
    let target = target(&options.url)?;
    let base = options.url.replace("ws://", "http://").replace("/graphql", "");
    let http = reqwest::Client::new();
    let started = Instant::now();
    let samples = Rc::new(RefCell::new(Vec::<Sample>::new()));
    let phase = Rc::new(RefCell::new("warm-up"));
    let sampling = CancellationToken::new();
    let sampler = tokio::task::spawn_local(sample_loop(
        options.server_pid,
        base.clone(),
        started,
        samples.clone(),
        phase.clone(),
        sampling.clone(),
    ));
    let mut summary = SoakSummary::default();

    // Warm-up: the same mix as the soak (so every pool and buffer the run needs exists), then
    // everyone gone and the baseline taken once the hub is idle.
    let warm = run_clients(&options, &brokers, &target, &http, &base, options.warmup).await?;
    summary.cycles += warm.cycles;
    settle(&http, &base).await;
    let baseline = idle_sample(options.server_pid)?;
    (summary.baseline_rss_mib, summary.baseline_fds) = baseline;
    eprintln!("soak: baseline after warm-up: {:.1} MiB RSS, {} FDs", baseline.0, baseline.1);

    // The soak proper: churn, stalled clients, steady clients and their publisher.
    *phase.borrow_mut() = "soak";
    let run = run_clients(&options, &brokers, &target, &http, &base, options.duration).await?;
    summary.cycles += run.cycles;
    summary.cycle_errors = run.errors;
    summary.first_error = run.first_error;
    summary.stalled_clients = run.stalled;
    summary.steady = run.steady;

    // Everyone gone: what is left.
    *phase.borrow_mut() = "end";
    settle(&http, &base).await;
    (summary.end_rss_mib, summary.end_fds_at_idle) = idle_sample(options.server_pid)?;
    // Sockets of the last clients may still be closing (a lingering close reads what a client
    // still sends for a few seconds): the end counts once they are.
    summary.end_fds = fds_settled(options.server_pid, summary.baseline_fds).await;
    let metric = |name: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move { server::metric(&http, &base, name).await.unwrap_or(f64::NAN) }
    };
    summary.end_sources = metric("subhub_sources_open").await;
    summary.end_executions = metric("subhub_executions").await;
    summary.end_upstream_connections = metric("subhub_upstream_connections").await;
    summary.end_broker_subscriptions = metric("subhub_broker_subscriptions").await;
    // Drops by policy, to tell them from losses when a steady client misses an event.
    summary.dropped = metric("subhub_dropped_total").await;
    summary.stalled_closes = metric("subhub_stalled_closes_total").await;
    summary.slow_consumer_closes = metric("subhub_slow_consumer_closes_total").await;
    summary.redis_numsub = redis_numsub(&options, &brokers).await?;
    summary.amqp_bindings = match &options.amqp_exchange {
        Some(exchange) => Some(amqp_bindings(exchange)?),
        None => None,
    };
    sampling.cancel();
    let _ = sampler.await;
    write_results(&options.out, &samples.borrow(), &summary)?;
    Ok(summary)
}

/// What one phase of clients did.
struct Phase {
    cycles: u64,
    errors: u64,
    first_error: Option<String>,
    stalled: u64,
    steady: BTreeMap<String, SteadyTally>,
}

/// Churn, stalled clients, and steady clients with their publisher, for `duration`.
async fn run_clients(
    options: &SoakOptions,
    brokers: &[Broker],
    target: &Target,
    http: &reqwest::Client,
    base: &str,
    duration: Duration,
) -> anyhow::Result<Phase> {
    let stop = CancellationToken::new();
    let steady = Steady::start(options, brokers, target, http, base, stop.clone()).await?;
    let stalled = tokio::task::spawn_local(stalled_clients(options.clone(), brokers.to_vec(), stop.clone()));
    let tally = churn(options, brokers, target, duration).await;
    stop.cancel();
    Ok(Phase {
        cycles: tally.cycles,
        errors: tally.errors,
        first_error: tally.first_error,
        stalled: stalled.await.unwrap_or(0),
        steady: steady.finish().await,
    })
}

/// Samples the hub every few seconds until cancelled.
async fn sample_loop(
    pid: u32,
    base: String,
    started: Instant,
    samples: Rc<RefCell<Vec<Sample>>>,
    phase: Rc<RefCell<&'static str>>,
    stop: CancellationToken,
) {
    let http = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let metric = |name| server::metric(&http, &base, name);
        // Copied out: the run moves to its next phase while samples are being read.
        let now = *phase.borrow();
        let sample = Sample {
            seconds: started.elapsed().as_secs_f64(),
            phase: now,
            rss_mib: server::sample(pid).map_or(f64::NAN, |s| s.rss_bytes as f64 / (1 << 20) as f64),
            fds: open_fds(pid),
            connections: metric("subhub_connections").await.unwrap_or(f64::NAN),
            subscriptions: metric("subhub_subscriptions").await.unwrap_or(f64::NAN),
            sources: metric("subhub_sources_open").await.unwrap_or(f64::NAN),
            executions: metric("subhub_executions").await.unwrap_or(f64::NAN),
            upstream_connections: metric("subhub_upstream_connections").await.unwrap_or(f64::NAN),
        };
        samples.borrow_mut().push(sample);
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

/// RSS (MiB) and FDs of the idle hub.
fn idle_sample(pid: u32) -> anyhow::Result<(f64, usize)> {
    let sample = server::sample(pid).ok_or_else(|| anyhow!("the hub (pid {pid}) is gone"))?;
    Ok((sample.rss_bytes as f64 / (1 << 20) as f64, open_fds(pid)))
}

/// The hub's open FDs once they reach `baseline` or stop falling for 10 s (30 s at most).
async fn fds_settled(pid: u32, baseline: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut last, mut since) = (open_fds(pid), Instant::now());
    while last > baseline && Instant::now() < deadline && since.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = open_fds(pid);
        if now < last {
            (last, since) = (now, Instant::now());
        }
    }
    last
}

/// Waits until the hub has no connection, source, execution or upstream connection left (at
/// most a minute; what is left then is reported, not waited for).
async fn settle(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let mut total = 0.0;
        for name in ["subhub_connections", "subhub_sources_open", "subhub_executions", "subhub_upstream_connections"] {
            total += server::metric(http, base, name).await.unwrap_or(1.0);
        }
        if total == 0.0 {
            // A moment for the allocator to give back what the last connections held.
            tokio::time::sleep(Duration::from_secs(2)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[derive(Default)]
struct ChurnTally {
    cycles: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Connect-subscribe-leave cycles at `--churn-rate` for `duration`.
async fn churn(options: &SoakOptions, brokers: &[Broker], target: &Target, duration: Duration) -> ChurnTally {
    let tally = Rc::new(RefCell::new(ChurnTally::default()));
    let cycles = TaskTracker::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / options.churn_rate));
    let end = Instant::now() + duration;
    let mut index = 0;
    while Instant::now() < end {
        tick.tick().await;
        index += 1;
        let (options, brokers, target, tally) = (options.clone(), brokers.to_vec(), target.clone(), tally.clone());
        cycles.spawn_local(async move {
            let result = cycle(index, &options, &brokers, &target).await;
            let mut tally = tally.borrow_mut();
            match result {
                Ok(()) => tally.cycles += 1,
                Err(error) => {
                    tally.errors += 1;
                    tally.first_error.get_or_insert_with(|| format!("{error:#}"));
                }
            }
        });
    }
    cycles.close();
    cycles.wait().await;
    tally.take()
}

/// One client: connects, subscribes to one to three random topics (broker topics and the
/// upstream's), reads for a while, then leaves politely or drops its socket.
async fn cycle(index: usize, options: &SoakOptions, brokers: &[Broker], target: &Target) -> anyhow::Result<()> {
    let mut socket = open(index, &options.url, target).await?;
    handshake(&mut socket).await?;
    let subscriptions = 1 + fastrand::usize(..3);
    for id in 0..subscriptions {
        let topic_index = fastrand::usize(..options.topics);
        let choices = brokers.len() + usize::from(options.upstream_field.is_some());
        let pick = fastrand::usize(..choices);
        let payload = match brokers.get(pick) {
            Some(broker) => serde_json::json!({
                "query": "subscription($t: String!, $b: String) { events(topic: $t, broker: $b) { id payload } }",
                "variables": {"t": broker.topic(topic_index), "b": broker.name},
            }),
            None => serde_json::json!({
                "query": format!("subscription($t: String!) {{ {}(topic: $t) {{ payload }} }}", options.upstream_field.as_deref().unwrap_or_default()),
                "variables": {"t": format!("soak.up.{topic_index}")},
            }),
        };
        let message = serde_json::json!({"type": "subscribe", "id": id.to_string(), "payload": payload});
        socket.send(Message::Text(message.to_string().into())).await?;
    }
    let hold = Duration::from_millis(200 + fastrand::u64(..2800));
    let _ = tokio::time::timeout(hold, async {
        while let Some(message) = socket.next().await {
            if message.is_err() {
                return;
            }
        }
    })
    .await;
    if fastrand::bool() {
        for id in 0..subscriptions {
            let complete = serde_json::json!({"type": "complete", "id": id.to_string()});
            socket.send(Message::Text(complete.to_string().into())).await?;
        }
        socket.close(None).await?;
    }
    // Otherwise the socket is dropped as it is: a client gone without a word.
    Ok(())
}

/// Clients that stop reading, one every few seconds, on the busiest topics: half read nothing
/// at all (the window goes to zero), half read a message a second. Each stays 10–40 s, then
/// drops its socket. Returns how many came.
async fn stalled_clients(options: SoakOptions, brokers: Vec<Broker>, stop: CancellationToken) -> u64 {
    let clients = TaskTracker::new();
    let mut count = 0;
    let busy: Vec<&Broker> = brokers.iter().filter(|b| b.keeps_history()).collect();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        let Some(broker) = busy.get(count as usize % busy.len().max(1)).map(|b| (*b).clone()) else { break };
        count += 1;
        let (url, stop) = (options.url.clone(), stop.clone());
        clients.spawn_local(async move {
            let Ok(mut socket) = small_window(&url).await else { return };
            if handshake(&mut socket).await.is_err() {
                return;
            }
            let subscribe = serde_json::json!({"type": "subscribe", "id": "s", "payload": {
                "query": "subscription($t: String!, $b: String) { events(topic: $t, broker: $b) { payload } }",
                "variables": {"t": "soak-steady", "b": broker.name},
            }});
            if socket.send(Message::Text(subscribe.to_string().into())).await.is_err() {
                return;
            }
            let stay = Duration::from_secs(10 + fastrand::u64(..30));
            let reads = fastrand::bool();
            let _ = tokio::time::timeout(stay, async {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    if reads && socket.next().await.is_none() {
                        return;
                    }
                }
            })
            .await;
        });
    }
    clients.close();
    clients.wait().await;
    count
}

/// A connection whose receive buffer is tiny, so what it does not read backs up into the hub.
async fn small_window(url: &str) -> anyhow::Result<Socket> {
    let addr = target(url)?;
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let stream = socket.connect(addr.addr()).await?;
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
    Ok(tokio_tungstenite::client_async(request, stream).await?.0)
}

/// The clients that stay, and the publisher of their topics.
struct Steady {
    readers: Vec<tokio::task::JoinHandle<(String, Vec<u64>)>>,
    publisher: tokio::task::JoinHandle<BTreeMap<String, u64>>,
    clients: BTreeMap<String, usize>,
}

impl Steady {
    async fn start(
        options: &SoakOptions,
        brokers: &[Broker],
        target: &Target,
        http: &reqwest::Client,
        base: &str,
        stop: CancellationToken,
    ) -> anyhow::Result<Steady> {
        let history: Vec<Broker> = brokers.iter().filter(|b| b.keeps_history()).cloned().collect();
        let mut readers = Vec::new();
        let mut clients = BTreeMap::new();
        for broker in &history {
            for n in 0..options.steady {
                let mut socket = open(100_000 + readers.len(), &options.url, target).await?;
                handshake(&mut socket).await?;
                let subscribe = serde_json::json!({"type": "subscribe", "id": "s", "payload": {
                    "query": "subscription($t: String!, $b: String) { events(topic: $t, broker: $b) { payload } }",
                    "variables": {"t": "soak-steady", "b": broker.name},
                }});
                socket.send(Message::Text(subscribe.to_string().into())).await?;
                let (name, stop) = (broker.name.clone(), stop.clone());
                readers.push(tokio::task::spawn_local(read_sequence(socket, name, stop, n)));
            }
            clients.insert(broker.name.clone(), options.steady);
        }
        // Every steady client must be live before the first event counts.
        let want = (history.len() * options.steady) as f64;
        let deadline = Instant::now() + Duration::from_secs(30);
        while server::metric(http, base, "subhub_subscriptions").await.unwrap_or(0.0) < want {
            if Instant::now() > deadline {
                return Err(anyhow!("the steady clients did not all become live"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let publisher = tokio::task::spawn_local(publish_sequences(
            http.clone(),
            base.to_owned(),
            history.iter().map(|b| b.name.clone()).collect(),
            options.rate,
            stop,
        ));
        Ok(Steady { readers, publisher, clients })
    }

    async fn finish(self) -> BTreeMap<String, SteadyTally> {
        let published = self.publisher.await.unwrap_or_default();
        // What was published last gets a moment to arrive.
        let mut tallies: BTreeMap<String, SteadyTally> = BTreeMap::new();
        for reader in self.readers {
            let Ok((broker, seen)) = reader.await else { continue };
            let total = published.get(&broker).copied().unwrap_or(0);
            let tally = tallies.entry(broker.clone()).or_default();
            tally.published = total;
            tally.clients = self.clients.get(&broker).copied().unwrap_or(0);
            let mut expected = 0u64;
            let mut got = vec![0u32; total as usize];
            for &seq in &seen {
                if seq < expected {
                    tally.reordered += 1;
                }
                expected = expected.max(seq + 1);
                if let Some(count) = got.get_mut(seq as usize) {
                    *count += 1;
                }
            }
            let missed = got.iter().filter(|&&c| c == 0).count() as u64;
            tally.missing += missed;
            if let Some(first) = got.iter().position(|&c| c == 0) {
                tally.first_missing.push(first as u64);
            }
            tally.duplicated += got.iter().filter(|&&c| c > 1).map(|&c| u64::from(c - 1)).sum::<u64>();
        }
        tallies
    }
}

/// Reads `seq` numbers until stopped, then a little longer for the last events to arrive.
async fn read_sequence(mut socket: Socket, broker: String, stop: CancellationToken, _n: usize) -> (String, Vec<u64>) {
    let mut seen = Vec::new();
    let mut read = |text: &str| {
        if let Some(seq) = number_after(text, "\"seq\":") {
            seen.push(seq);
        }
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => read(&text),
                Some(Ok(_)) => {}
                _ => return (broker, seen),
            },
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Text(text) = message {
                read(&text);
            }
        }
    })
    .await;
    (broker, seen)
}

/// Publishes `{"seq": N}` on each broker's `soak-steady` through the hub at `rate`, retrying an
/// event until the hub accepts it (a broker restarting refuses it meanwhile). Returns how many
/// were accepted per broker.
async fn publish_sequences(
    http: reqwest::Client,
    base: String,
    brokers: Vec<String>,
    rate: f64,
    stop: CancellationToken,
) -> BTreeMap<String, u64> {
    let mut published: BTreeMap<String, u64> = brokers.iter().map(|b| (b.clone(), 0)).collect();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    while !stop.is_cancelled() {
        tick.tick().await;
        for broker in &brokers {
            let seq = published[broker];
            let body = format!(r#"{{"seq":{seq}}}"#);
            let url = format!("{base}/publish/soak-steady?broker={broker}");
            loop {
                let accepted = http.post(&url).body(body.clone()).send().await.is_ok_and(|r| r.status().is_success());
                if accepted {
                    published.insert(broker.clone(), seq + 1);
                    break;
                }
                if stop.is_cancelled() {
                    return published;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    published
}

/// PUBSUB NUMSUB over every Redis pub/sub topic the run could have used.
async fn redis_numsub(options: &SoakOptions, brokers: &[Broker]) -> anyhow::Result<i64> {
    let channels: Vec<String> = brokers
        .iter()
        .filter(|b| b.kind == "redis")
        .flat_map(|b| (0..options.topics).map(move |n| b.topic(n)))
        .collect();
    if channels.is_empty() {
        return Ok(0);
    }
    let client = redis::Client::open(options.redis_url.as_str()).context("--redis-url")?;
    let mut redis = client.get_multiplexed_async_connection().await.context("connect to Redis")?;
    let reply: Vec<(String, i64)> =
        redis::cmd("PUBSUB").arg("NUMSUB").arg(&channels).query_async(&mut redis).await.context("PUBSUB NUMSUB")?;
    Ok(reply.iter().map(|(_, n)| n).sum())
}

/// Bindings whose source is `exchange`, from `rabbitmqctl list_bindings`.
fn amqp_bindings(exchange: &str) -> anyhow::Result<usize> {
    let output = std::process::Command::new("rabbitmqctl")
        .args(["list_bindings", "-q", "--no-table-headers", "source_name"])
        .output()
        .context("run rabbitmqctl list_bindings")?;
    if !output.status.success() {
        return Err(anyhow!("rabbitmqctl list_bindings: {}", String::from_utf8_lossy(&output.stderr)));
    }
    Ok(String::from_utf8_lossy(&output.stdout).lines().filter(|line| line.trim() == exchange).count())
}

fn write_results(prefix: &std::path::Path, samples: &[Sample], summary: &SoakSummary) -> anyhow::Result<()> {
    if let Some(dir) = prefix.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut csv =
        String::from("seconds,phase,rss_mib,fds,connections,subscriptions,sources,executions,upstream_connections\n");
    for s in samples {
        let _ = writeln!(
            csv,
            "{:.1},{},{:.2},{},{},{},{},{},{}",
            s.seconds,
            s.phase,
            s.rss_mib,
            s.fds,
            s.connections,
            s.subscriptions,
            s.sources,
            s.executions,
            s.upstream_connections
        );
    }
    std::fs::write(prefix.with_extension("csv"), csv)?;
    std::fs::write(prefix.with_extension("svg"), chart(samples))?;
    std::fs::write(prefix.with_extension("json"), serde_json::to_string_pretty(summary)?)?;
    Ok(())
}

/// One figure of a sample.
type Reading = fn(&Sample) -> f64;

/// Four line charts, one above the other: RSS, FDs, connections, sources (with executions).
fn chart(samples: &[Sample]) -> String {
    let (width, height, margin) = (900.0, 160.0, 50.0);
    let series: [(&str, Reading); 4] = [
        ("RSS (MiB)", |s| s.rss_mib),
        ("open FDs", |s| s.fds as f64),
        ("connections", |s| s.connections),
        ("sources", |s| s.sources),
    ];
    let end = samples.last().map_or(1.0, |s| s.seconds).max(1.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="12">"#,
        width + margin * 2.0,
        (height + margin) * series.len() as f64 + margin
    );
    for (row, (label, value)) in series.iter().enumerate() {
        let top = margin + row as f64 * (height + margin);
        let max = samples.iter().map(value).filter(|v| v.is_finite()).fold(1.0f64, f64::max) * 1.1;
        let points: Vec<String> = samples
            .iter()
            .filter(|s| value(s).is_finite())
            .map(|s| format!("{:.1},{:.1}", margin + s.seconds / end * width, top + height - value(s) / max * height))
            .collect();
        let _ = write!(
            svg,
            r##"<rect x="{margin}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#ccc"/><text x="{margin}" y="{}">{label} (max {:.0})</text><polyline fill="none" stroke="#1f6feb" stroke-width="1.5" points="{}"/>"##,
            top - 6.0,
            max / 1.1,
            points.join(" ")
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{margin}" y="{}">seconds since start: 0 to {end:.0}</text></svg>"#,
        (height + margin) * series.len() as f64 + margin - 10.0
    );
    svg
}
