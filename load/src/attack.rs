//! A hostile client, scripted: what one connection (or one client's handful) can throw at a
//! hub, to run beside a measured scenario (`load/attack.sh`). Each attack loops until its time
//! is up and reports how often it tried and what the hub answered, so a run shows the attack
//! was really made. Against a hub on loopback every connection comes from one address,
//! 127.0.1.1, as from one client machine (the measured clients use 127.0.0.2–251).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use clap::{Args, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{handshake, open_from, target, Target};

/// The attacker's own address on loopback.
const SOURCE: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 1, 1);

async fn open(url: &str, target: &Target) -> anyhow::Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>> {
    let source = target.is_loopback().then_some(SOURCE);
    open_from(source, url, target).await
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Attack {
    /// Frames of 16 MiB, again and again, each on a new connection.
    Oversized,
    /// Subscriptions with thousands of aliases of `payload` on the measured topic.
    Aliases,
    /// subscribe and complete in a loop, on new topics, as fast as the socket takes them.
    SubscribeLoop,
    /// Bursts of hundreds of connects at once, dropped and made again.
    ConnectBurst,
    /// Connections full of subscriptions to distinct topics, until the hub's caps refuse more.
    Topics,
    /// A routing key of a dozen `#` words on RabbitMQ, and long routing keys published to it.
    AmqpPattern,
    /// Subscribes to Kafka topics that do not exist, one after another, from ten connections.
    KafkaLookups,
    /// TCP connections that send nothing, as many as the hub takes, opened again as it closes
    /// them (`--connections` at most).
    IdleSockets,
    /// `POST /publish` requests whose body comes a byte every `--trickle`, as many as the hub
    /// takes, opened again as it answers them.
    TrickledBodies,
    /// `GET /status` streams (the dashboard's feed), as many as the hub takes, held open and
    /// read.
    StatusStreams,
    /// `POST /publish/{topic}?broker=BROKER` with a body of `--body-bytes` (11 KiB: over
    /// rumqttc's default packet limit), every 50 ms.
    MqttOversized,
}

#[derive(Args, Clone, Debug)]
pub struct AttackOptions {
    /// The hub's GraphQL WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:4000/graphql")]
    pub url: String,
    #[arg(long, value_enum)]
    pub kind: Attack,
    /// How long to attack.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// The topic the measured clients use (the aliases attack joins it).
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// The broker the attack aims at, where it needs one (`rabbit`, `events`).
    #[arg(long)]
    pub broker: Option<String>,
    /// Connections per burst (connect-burst).
    #[arg(long, default_value_t = 500)]
    pub burst: usize,
    /// Connections held at most (idle-sockets, trickled-bodies, status-streams).
    #[arg(long, default_value_t = 2048)]
    pub connections: usize,
    /// How often a trickled body gets its next byte.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub trickle: Duration,
    /// Body size of the oversized publish (mqtt-oversized).
    #[arg(long, default_value_t = 11 * 1024)]
    pub body_bytes: usize,
}

/// What an attack did: attempts, and the hub's answers by kind.
#[derive(Debug, Default)]
pub struct AttackTally {
    pub attempts: u64,
    pub answers: BTreeMap<String, u64>,
}

impl AttackTally {
    fn answer(&mut self, what: impl Into<String>) {
        *self.answers.entry(what.into()).or_default() += 1;
    }

    pub fn summary(&self, kind: Attack) -> String {
        let answers: Vec<String> = self.answers.iter().map(|(what, n)| format!("{what}: {n}")).collect();
        format!("attack {kind:?}: {} attempts; answers: {}", self.attempts, answers.join(", "))
    }
}

/// Runs the attack until its time is up.
pub async fn attack(options: AttackOptions) -> anyhow::Result<AttackTally> {
    let target = target(&options.url)?;
    let deadline = Instant::now() + options.duration;
    let mut tally = AttackTally::default();
    let attack = async {
        match options.kind {
            Attack::Oversized => oversized(&options, &target, &mut tally).await,
            Attack::Aliases => aliases(&options, &target, &mut tally).await,
            Attack::SubscribeLoop => subscribe_loop(&options, &target, &mut tally).await,
            Attack::ConnectBurst => connect_burst(&options, &target, &mut tally).await,
            Attack::Topics => topics(&options, &target, &mut tally).await,
            Attack::AmqpPattern => amqp_pattern(&options, &target, &mut tally).await,
            Attack::KafkaLookups => kafka_lookups(&options, &target, &mut tally).await,
            Attack::IdleSockets => hold(&options, &target, &mut tally, Held::Idle).await,
            Attack::TrickledBodies => hold(&options, &target, &mut tally, Held::Trickle).await,
            Attack::StatusStreams => hold(&options, &target, &mut tally, Held::Status).await,
            Attack::MqttOversized => mqtt_oversized(&options, &mut tally).await,
        }
    };
    match tokio::time::timeout_at(deadline.into(), attack).await {
        Ok(Err(error)) => Err(error),
        _ => Ok(tally),
    }
}

async fn connect(options: &AttackOptions, target: &Target) -> anyhow::Result<Socket> {
    let mut socket = open(&options.url, target).await?;
    handshake(&mut socket).await?;
    Ok(socket)
}

fn subscribe(id: &str, query: &str, variables: serde_json::Value) -> Message {
    let message =
        serde_json::json!({"type": "subscribe", "id": id, "payload": {"query": query, "variables": variables}});
    Message::Text(message.to_string().into())
}

/// What the hub answered a subscribe with, in a word: the limit an error names, or its type.
fn classify(text: &str) -> String {
    let Ok(message) = serde_json::from_str::<serde_json::Value>(text) else { return "not JSON".into() };
    let kind = message["type"].as_str().unwrap_or("?").to_owned();
    if kind != "error" {
        return kind;
    }
    let error = message["payload"][0]["message"].as_str().unwrap_or_default();
    match error.split("limits.").nth(1) {
        Some(rest) => format!(
            "error limits.{}",
            rest.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').next().unwrap_or("")
        ),
        None if error.contains("does not exist") => "error no such topic".into(),
        None => format!("error: {}", error.chars().take(60).collect::<String>()),
    }
}

async fn next_text(socket: &mut Socket) -> Option<Result<String, Option<CloseFrame>>> {
    loop {
        match socket.next().await? {
            Ok(Message::Text(text)) => return Some(Ok(text.to_string())),
            Ok(Message::Close(frame)) => return Some(Err(frame)),
            Ok(_) => {}
            Err(_) => return Some(Err(None)),
        }
    }
}

async fn oversized(options: &AttackOptions, target: &Target, tally: &mut AttackTally) -> anyhow::Result<()> {
    let frame = format!(r#"{{"type":"ping","payload":{{"pad":"{}"}}}}"#, "x".repeat(16 << 20));
    loop {
        let mut socket = connect(options, target).await?;
        tally.attempts += 1;
        let _ = socket.send(Message::Text(frame.clone().into())).await;
        match next_text(&mut socket).await {
            Some(Err(Some(close))) => tally.answer(format!("close {}", u16::from(close.code))),
            Some(Err(None)) | None => tally.answer("reset"),
            Some(Ok(text)) => tally.answer(classify(&text)),
        }
    }
}

async fn aliases(options: &AttackOptions, target: &Target, tally: &mut AttackTally) -> anyhow::Result<()> {
    let fields: String = (0..5000).map(|n| format!("p{n}: payload ")).collect();
    let query = format!("subscription($topic: String!) {{ events(topic: $topic) {{ {fields} }} }}");
    let mut socket = connect(options, target).await?;
    for n in 0u64.. {
        tally.attempts += 1;
        socket.send(subscribe(&n.to_string(), &query, serde_json::json!({"topic": options.topic}))).await?;
        match next_text(&mut socket).await {
            Some(Ok(text)) => tally.answer(classify(&text)),
            _ => {
                tally.answer("closed");
                socket = connect(options, target).await?;
            }
        }
    }
    Ok(())
}

async fn subscribe_loop(options: &AttackOptions, target: &Target, tally: &mut AttackTally) -> anyhow::Result<()> {
    let query = "subscription($topic: String!) { events(topic: $topic) { id } }";
    let socket = connect(options, target).await?;
    let (mut write, mut read) = socket.split();
    let complete = Message::Text(r#"{"type":"complete","id":"x"}"#.into());
    let AttackTally { attempts, answers } = tally;
    let sending = async {
        for n in 0u64.. {
            write.send(subscribe("x", query, serde_json::json!({"topic": format!("attack.{n}")}))).await?;
            write.send(complete.clone()).await?;
            *attempts += 1;
        }
        anyhow::Ok(())
    };
    let reading = async {
        while let Some(Ok(message)) = read.next().await {
            if let Message::Text(text) = message {
                *answers.entry(classify(&text)).or_default() += 1;
            }
        }
    };
    // Runs until the attack's time is up (or the hub closes the connection).
    tokio::select! {
        result = sending => result?,
        () = reading => {}
    }
    Ok(())
}

async fn connect_burst(options: &AttackOptions, target: &Target, tally: &mut AttackTally) -> anyhow::Result<()> {
    loop {
        let attempts: Vec<_> = (0..options.burst)
            .map(|_| {
                let (url, target) = (options.url.clone(), target.clone());
                tokio::spawn(async move { open(&url, &target).await })
            })
            .collect();
        let mut open_now = Vec::new();
        for attempt in attempts {
            tally.attempts += 1;
            match attempt.await.map_err(|e| anyhow!("{e}"))? {
                Ok(socket) => {
                    tally.answer("101");
                    open_now.push(socket);
                }
                Err(error) if format!("{error:#}").contains("503") => tally.answer("503"),
                Err(error) if format!("{error:#}").contains("429") => tally.answer("429"),
                Err(error) => tally.answer(format!("failed: {error:#}")),
            }
        }
        drop(open_now);
    }
}

async fn topics(options: &AttackOptions, target: &Target, tally: &mut AttackTally) -> anyhow::Result<()> {
    let query = "subscription($topic: String!) { events(topic: $topic) { id } }";
    let mut held = Vec::new();
    for connection in 0.. {
        let Ok(mut socket) = connect(options, target).await else {
            tally.answer("connect refused");
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        for n in 0..100 {
            tally.attempts += 1;
            let topic = format!("attack.{connection}.{n}");
            socket.send(subscribe(&n.to_string(), query, serde_json::json!({"topic": topic}))).await?;
        }
        // A ping is answered after every subscribe before it was handled.
        socket.send(Message::Text(r#"{"type":"ping"}"#.into())).await?;
        while let Some(Ok(text)) = next_text(&mut socket).await {
            if text.contains("\"pong\"") {
                break;
            }
            tally.answer(classify(&text));
        }
        held.push(socket);
    }
    Ok(())
}

async fn amqp_pattern(options: &AttackOptions, target: &Target, tally: &mut AttackTally) -> anyhow::Result<()> {
    let broker = options.broker.clone().context("--broker names the RabbitMQ broker")?;
    let query = "subscription($topic: String!, $broker: String) { events(topic: $topic, broker: $broker) { id } }";
    let mut socket = connect(options, target).await?;
    for (id, topic) in [("hash", "#.#.#.#.#.#.#.#.#.#.#.#.z"), ("split", "#.a.#.a.#.a.#.z")] {
        tally.attempts += 1;
        socket.send(subscribe(id, query, serde_json::json!({"topic": topic, "broker": broker}))).await?;
    }
    let http = reqwest::Client::new();
    let base = options.url.replacen("ws://", "http://", 1);
    let base = base.strip_suffix("/graphql").unwrap_or(&base).to_owned();
    let long_key = ["a"; 126].join(".") + ".z";
    let url = format!("{base}/publish/{long_key}?broker={broker}");
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                tally.attempts += 1;
                match http.post(&url).body("{}").send().await {
                    Ok(response) => tally.answer(format!("publish {}", response.status().as_u16())),
                    Err(_) => tally.answer("publish failed"),
                }
            }
            text = next_text(&mut socket) => match text {
                Some(Ok(text)) => tally.answer(classify(&text)),
                _ => return Err(anyhow!("the hub closed the attacking connection")),
            },
        }
    }
}

async fn kafka_lookups(options: &AttackOptions, target: &Target, tally: &mut AttackTally) -> anyhow::Result<()> {
    let broker = options.broker.clone().context("--broker names the Kafka broker")?;
    let query = "subscription($topic: String!, $broker: String) { events(topic: $topic, broker: $broker) { id } }";
    let shared = std::cell::RefCell::new(tally);
    let lookups = (0..10).map(|connection| {
        let (broker, shared) = (broker.clone(), &shared);
        async move {
            let mut socket = connect(options, target).await?;
            for n in 0u64.. {
                shared.borrow_mut().attempts += 1;
                let topic = format!("missing-{connection}-{n}");
                socket
                    .send(subscribe(&n.to_string(), query, serde_json::json!({"topic": topic, "broker": broker})))
                    .await?;
                match next_text(&mut socket).await {
                    Some(Ok(text)) => shared.borrow_mut().answer(classify(&text)),
                    _ => break,
                }
            }
            anyhow::Ok(())
        }
    });
    futures_util::future::join_all(lookups).await.into_iter().collect::<Result<Vec<()>, _>>().map(drop)
}

/// What each connection of a lock-out attack does with its place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    Idle,
    Trickle,
    Status,
}

/// What became of one held connection.
enum Outcome {
    /// The hub answered it with this status line's code, or closed it (`None`).
    Answered(Option<String>),
    /// Could not connect.
    Failed(String),
}

/// Keeps up to `--connections` connections of one kind open from the attacker's address,
/// opening a new one whenever one ends, and tallies how the hub ended each.
async fn hold(options: &AttackOptions, target: &Target, tally: &mut AttackTally, held: Held) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    let (ended, mut outcomes) = tokio::sync::mpsc::unbounded_channel::<Outcome>();
    let open = std::sync::Arc::new(AtomicUsize::new(0));
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    // Runs until the attack's time is up.
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // A few new connections a tick, up to the cap: a steady pressure, as an attacker
                // re-opening what the hub closes.
                for _ in 0..8 {
                    if open.load(Relaxed) >= options.connections {
                        break;
                    }
                    open.fetch_add(1, Relaxed);
                    tally.attempts += 1;
                    let (ended, open) = (ended.clone(), open.clone());
                    let (addr, source, trickle) = (target.addr(), target.is_loopback().then_some(SOURCE), options.trickle);
                    tokio::spawn(async move {
                        let outcome = held_connection(addr, source, held, trickle).await;
                        open.fetch_sub(1, Relaxed);
                        let _ = ended.send(outcome);
                    });
                }
            }
            Some(outcome) = outcomes.recv() => match outcome {
                Outcome::Answered(Some(status)) => tally.answer(status),
                Outcome::Answered(None) => tally.answer("closed"),
                Outcome::Failed(error) => tally.answer(format!("failed: {error}")),
            },
        }
    }
}

async fn held_connection(
    addr: std::net::SocketAddr,
    source: Option<std::net::Ipv4Addr>,
    held: Held,
    trickle: Duration,
) -> Outcome {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = match tokio::net::TcpSocket::new_v4() {
        Ok(socket) => socket,
        Err(error) => return Outcome::Failed(error.kind().to_string()),
    };
    if let Some(source) = source {
        if let Err(error) = socket.bind(std::net::SocketAddr::new(source.into(), 0)) {
            return Outcome::Failed(error.kind().to_string());
        }
    }
    let mut stream = match socket.connect(addr).await {
        Ok(stream) => stream,
        Err(error) => return Outcome::Failed(error.kind().to_string()),
    };
    let head: &[u8] = match held {
        Held::Idle => b"",
        Held::Trickle => b"POST /publish/attack HTTP/1.1\r\nhost: hub\r\ncontent-length: 1048576\r\n\r\n",
        Held::Status => b"GET /status HTTP/1.1\r\nhost: hub\r\n\r\n",
    };
    if stream.write_all(head).await.is_err() {
        return Outcome::Answered(None);
    }
    let (mut read, mut write) = stream.into_split();
    let trickling = async {
        if held != Held::Trickle {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(trickle).await;
            if write.write_all(b" ").await.is_err() {
                return;
            }
        }
    };
    // The status line the hub answers with, then whatever follows (a status stream's
    // snapshots), until it closes.
    let reading = async {
        let mut buffer = vec![0u8; 16 * 1024];
        let mut first = Vec::new();
        loop {
            match read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) if first.len() < 12 => first.extend_from_slice(&buffer[..n]),
                Ok(_) => {}
            }
        }
        let line = String::from_utf8_lossy(&first).lines().next().unwrap_or_default().to_owned();
        line.split(' ').nth(1).map(str::to_owned)
    };
    tokio::select! {
        status = reading => Outcome::Answered(status),
        () = trickling => Outcome::Answered(None),
    }
}

async fn mqtt_oversized(options: &AttackOptions, tally: &mut AttackTally) -> anyhow::Result<()> {
    let broker = options.broker.clone().context("--broker names the MQTT broker")?;
    let http = reqwest::Client::builder().local_address(Some(std::net::IpAddr::V4(SOURCE))).build()?;
    let base = options.url.replacen("ws://", "http://", 1);
    let base = base.strip_suffix("/graphql").unwrap_or(&base).to_owned();
    let url = format!("{base}/publish/attack?broker={broker}");
    let body = format!("\"{}\"", "x".repeat(options.body_bytes.saturating_sub(2)));
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        tally.attempts += 1;
        match http.post(&url).body(body.clone()).send().await {
            Ok(response) => tally.answer(format!("publish {}", response.status().as_u16())),
            Err(_) => tally.answer("publish failed"),
        }
    }
}
