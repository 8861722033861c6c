//! Two hub processes on one backbone (DESIGN §10): one Redis (pub/sub and streams), one
//! RabbitMQ and one Kafka (mock) cluster. Events published through either hub (the mutation,
//! `POST /publish`) or straight into the broker reach every subscriber of both hubs exactly
//! once, in order; killing one hub loses nothing for the other's clients.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

const REDIS_URL: &str = "redis://127.0.0.1:6379";
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const CLIENTS_PER_HUB: usize = 5;

/// Kills the hub process when the test ends, however it ends.
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Publishes straight into one broker, as a service beside the hubs would.
enum Direct {
    Redis(redis::aio::MultiplexedConnection),
    Streams(redis::aio::MultiplexedConnection),
    Amqp(lapin::Channel, String),
    Kafka(FutureProducer),
}

impl Direct {
    async fn publish(&mut self, topic: &str, body: &str) {
        match self {
            Direct::Redis(redis) => {
                let _: i64 = redis::cmd("PUBLISH").arg(topic).arg(body).query_async(redis).await.expect("PUBLISH");
            }
            Direct::Streams(redis) => {
                let _: String = redis::cmd("XADD")
                    .arg(topic)
                    .arg("*")
                    .arg("payload")
                    .arg(body)
                    .query_async(redis)
                    .await
                    .expect("XADD");
            }
            Direct::Amqp(channel, exchange) => {
                let options = BasicPublishOptions::default();
                let publish = channel.basic_publish(
                    exchange.as_str().into(),
                    topic.into(),
                    options,
                    body.as_bytes(),
                    BasicProperties::default(),
                );
                publish.await.expect("publish").await.expect("confirm");
            }
            Direct::Kafka(producer) => {
                let record = FutureRecord::<(), str>::to(topic).payload(body);
                producer.send(record, Duration::from_secs(10)).await.expect("produce");
            }
        }
    }
}

async fn subscriber(hub: SocketAddr, broker: &str, topic: &str) -> Client {
    let mut client = Client::connect_url(&format!("ws://{hub}/graphql"), Some(TRANSPORT_WS)).await;
    client.init().await;
    let query = "subscription($t: String!, $b: String) { events(topic: $t, broker: $b) { payload } }";
    client.subscribe("s", query, json!({"t": topic, "b": broker})).await;
    client
}

/// Through a hub: `POST /publish` for even numbers, the `publish` mutation for odd ones.
async fn through_hub(http: &reqwest::Client, hub: SocketAddr, broker: &str, topic: &str, n: usize) {
    let body = json!({"n": n});
    let response = if n.is_multiple_of(2) {
        http.post(format!("http://{hub}/publish/{topic}?broker={broker}")).body(body.to_string()).send().await
    } else {
        let query =
            "mutation($t: String!, $p: JSON!, $b: String) { publish(topic: $t, payload: $p, broker: $b) { ok } }";
        let request = json!({"query": query, "variables": {"t": topic, "p": body, "b": broker}});
        http.post(format!("http://{hub}/graphql")).json(&request).send().await
    };
    let response = response.expect("publish through the hub");
    assert!(response.status().is_success(), "{}", response.text().await.unwrap_or_default());
}

/// Reads `numbers` in order from every client, then checks nothing else came.
async fn expect_all(clients: &mut [Client], numbers: std::ops::Range<usize>, what: &str) {
    for (i, client) in clients.iter_mut().enumerate() {
        for n in numbers.clone() {
            let message = client.recv_json().await;
            assert_eq!(message["payload"]["data"]["events"]["payload"]["n"], n, "{what}, client {i}: {message}");
        }
        let extra: Vec<Value> = client.until_pong().await;
        assert!(extra.is_empty(), "{what}, client {i} got more: {extra:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_share_one_backbone_and_one_hub_dying_loses_nothing_for_the_other() {
    if !broker_available("Redis", "127.0.0.1:6379") || !broker_available("RabbitMQ", "127.0.0.1:5672") {
        return;
    }
    let cluster = MockCluster::new(1).expect("mock cluster");
    let exchange = unique("subhub.two-hubs");
    let topics = [
        ("cache", unique("two-hubs")),
        ("log", unique("two-hubs-stream")),
        ("rabbit", unique("two-hubs")),
        ("events", unique("two-hubs").replace('.', "-")),
    ];
    cluster.create_topic(&topics[3].1, 1, 1).expect("kafka topic");
    let config = format!(
        "default_broker = \"cache\"\n\
         [brokers.cache]\nkind = \"redis\"\nurl = \"{REDIS_URL}\"\n\
         [brokers.log]\nkind = \"redis\"\nmode = \"streams\"\nurl = \"{REDIS_URL}\"\n\
         [brokers.rabbit]\nkind = \"amqp\"\nurl = \"{AMQP_URL}\"\nexchange = \"{exchange}\"\n\
         [brokers.events]\nkind = \"kafka\"\nbootstrap_servers = \"{}\"\noptions = {{ \"fetch.wait.max.ms\" = \"10\" }}\n",
        cluster.bootstrap_servers()
    );
    let path = std::env::temp_dir().join(format!("subhub-two-hubs-{}.toml", std::process::id()));
    std::fs::write(&path, config).expect("config");
    let path_text = path.to_string_lossy().into_owned();
    let (a, a_addr) = start_binary_with(&["--config", &path_text], &[]);
    let (b, b_addr) = start_binary_with(&["--config", &path_text], &[]);
    let mut a = Process(a);
    let _b = Process(b);

    let redis = redis::Client::open(REDIS_URL).expect("url").get_multiplexed_async_connection().await.expect("redis");
    let amqp = Connection::connect(AMQP_URL, ConnectionProperties::default()).await.expect("rabbitmq");
    let channel = amqp.create_channel().await.expect("channel");
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    channel
        .exchange_declare(exchange.as_str().into(), ExchangeKind::Topic, durable, FieldTable::default())
        .await
        .expect("exchange");
    channel.confirm_select(Default::default()).await.expect("confirms");
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", cluster.bootstrap_servers()).create().expect("producer");
    let mut direct = [
        Direct::Redis(redis.clone()),
        Direct::Streams(redis),
        Direct::Amqp(channel, exchange.clone()),
        Direct::Kafka(producer),
    ];

    // Each broker's topic: subscribers on both hubs.
    let mut on_a = Vec::new();
    let mut on_b = Vec::new();
    for (broker, topic) in &topics {
        let (mut clients_a, mut clients_b) = (Vec::new(), Vec::new());
        for _ in 0..CLIENTS_PER_HUB {
            clients_a.push(subscriber(a_addr, broker, topic).await);
            clients_b.push(subscriber(b_addr, broker, topic).await);
        }
        on_a.push(clients_a);
        on_b.push(clients_b);
    }
    let live = (topics.len() * CLIENTS_PER_HUB) as f64;
    for addr in [a_addr, b_addr] {
        let reached = wait_for(PATIENCE, || async move { metric_at(addr, "subhub_subscriptions").await == live }).await;
        assert!(reached, "subscriptions on {addr}: {}", metric_at(addr, "subhub_subscriptions").await);
    }

    // Events 0..30 per topic: through hub A (POST and mutation) and straight into the broker.
    let http = reqwest::Client::new();
    for ((broker, topic), direct) in topics.iter().zip(direct.iter_mut()) {
        for n in 0..20 {
            through_hub(&http, a_addr, broker, topic, n).await;
        }
        for n in 20..30 {
            direct.publish(topic, &json!({"n": n}).to_string()).await;
        }
    }
    for (i, (broker, _)) in topics.iter().enumerate() {
        expect_all(&mut on_a[i], 0..30, &format!("{broker} on hub A")).await;
        expect_all(&mut on_b[i], 0..30, &format!("{broker} on hub B")).await;
    }

    // Hub A dies without a word; hub B's clients lose nothing of what follows.
    a.0.kill().expect("kill hub A");
    a.0.wait().expect("reap hub A");
    drop(on_a);
    for ((broker, topic), direct) in topics.iter().zip(direct.iter_mut()) {
        for n in 30..40 {
            if n % 2 == 0 {
                direct.publish(topic, &json!({"n": n}).to_string()).await;
            } else {
                through_hub(&http, b_addr, broker, topic, n).await;
            }
        }
    }
    for (i, (broker, _)) in topics.iter().enumerate() {
        expect_all(&mut on_b[i], 30..40, &format!("{broker} on hub B after A died")).await;
    }
    let _ = std::fs::remove_file(&path);
}
