//! RabbitMQ through the hub, against the real RabbitMQ on 127.0.0.1:5672 (guest/guest).

mod common;

use common::*;
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use reqwest::StatusCode;
use serde_json::json;

const RABBIT: &str = "127.0.0.1:5672";
const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn config(exchange: &str, extra: &str) -> String {
    format!("default_broker = \"rabbit\"\n[brokers.rabbit]\nkind = \"amqp\"\nurl = \"{URL}\"\nexchange = \"{exchange}\"\n{extra}")
}

async fn channel(exchange: &str) -> (Connection, Channel) {
    let connection = Connection::connect(URL, ConnectionProperties::default()).await.expect("connect to RabbitMQ");
    let channel = connection.create_channel().await.expect("channel");
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    channel
        .exchange_declare(exchange.into(), ExchangeKind::Topic, durable, FieldTable::default())
        .await
        .expect("exchange");
    (connection, channel)
}

async fn publish(channel: &Channel, exchange: &str, routing_key: &str, body: &[u8]) {
    channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .expect("publish");
}

/// Routing keys bound from `exchange` to the hub's queues, as RabbitMQ lists them.
fn bindings(exchange: &str) -> Vec<String> {
    let output = std::process::Command::new("rabbitmqctl")
        .args(["list_bindings", "-q", "--no-table-headers", "source_name", "destination_name", "routing_key"])
        .output()
        .expect("rabbitmqctl");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            (fields.len() == 3 && fields[0] == exchange && fields[1].starts_with("subhub."))
                .then(|| fields[2].to_owned())
        })
        .collect()
}

fn payload(message: &serde_json::Value) -> &serde_json::Value {
    &message["payload"]["data"]["events"]["payload"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_share_one_binding_that_goes_away_after_the_last() {
    if !broker_available("RabbitMQ", RABBIT) {
        return;
    }
    let exchange = unique("x");
    let hub = TestHub::with_config(&config(&exchange, "")).await;
    let (_connection, channel) = channel(&exchange).await;
    let mut clients = Vec::new();
    for i in 0..50 {
        let mut client = Client::ready(&hub, TRANSPORT_WS).await;
        client.subscribe(&format!("c{i}"), EVENTS_QUERY, json!({"topic": "orders.created"})).await;
        clients.push(client);
    }
    hub.wait_metric("subhub_subscriptions", 50.0).await;
    assert_eq!(bindings(&exchange), ["orders.created"], "one binding for fifty clients");
    for n in 0..10 {
        publish(&channel, &exchange, "orders.created", json!({"n": n}).to_string().as_bytes()).await;
    }
    for client in &mut clients {
        for n in 0..10 {
            assert_eq!(payload(&client.recv_json().await)["n"], n);
        }
    }
    drop(clients);
    hub.wait_metric("subhub_sources_open", 0.0).await;
    assert!(bindings(&exchange).is_empty(), "the binding outlived its last subscriber");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_publishing_both_ways_and_bad_input() {
    if !broker_available("RabbitMQ", RABBIT) {
        return;
    }
    let exchange = unique("x");
    let hub = TestHub::with_config(&config(&exchange, "[limits]\nmax_message_bytes = 512\n")).await;
    let (_connection, channel) = channel(&exchange).await;
    // A plain consumer bound to the same exchange sees what the hub publishes.
    let queue = channel
        .queue_declare("".into(), QueueDeclareOptions { exclusive: true, ..Default::default() }, FieldTable::default())
        .await
        .expect("queue");
    channel
        .queue_bind(
            queue.name().clone(),
            exchange.as_str().into(),
            "orders.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    let no_ack = BasicConsumeOptions { no_ack: true, ..Default::default() };
    let mut plain = channel
        .basic_consume(queue.name().clone(), "plain".into(), no_ack, FieldTable::default())
        .await
        .expect("consume");

    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", EVENTS_QUERY, json!({"topic": "orders.*"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;

    hub.publish("orders.eu", r#"{"via":"http"}"#).await;
    let mutation = "mutation { publish(topic: \"orders.us\", payload: {via: \"mutation\"}) { ok } }";
    let reply = hub.http().post(hub.url("/graphql")).json(&json!({"query": mutation})).send().await.expect("post");
    assert!(reply.status().is_success());
    for (via, key) in [("http", "orders.eu"), ("mutation", "orders.us")] {
        let message = client.recv_json().await;
        assert_eq!(payload(&message)["via"], via);
        assert_eq!(message["payload"]["data"]["events"]["topic"], key);
        let delivery =
            tokio::time::timeout(PATIENCE, plain.next()).await.expect("plain consumer").expect("delivery").expect("ok");
        assert_eq!(delivery.routing_key.as_str(), key);
    }
    // A plain publisher reaches the hub's client; non-JSON, binary and oversized bodies.
    publish(&channel, &exchange, "orders.eu", b"plain text").await;
    publish(&channel, &exchange, "orders.eu", &[0xff, 0xfe]).await;
    publish(&channel, &exchange, "orders.eu", &[b'x'; 600]).await;
    publish(&channel, &exchange, "payments.eu", b"\"not for us\"").await;
    publish(&channel, &exchange, "orders.eu", b"\"last\"").await;
    assert_eq!(*payload(&client.recv_json().await), "plain text");
    assert_eq!(*payload(&client.recv_json().await), "//4=");
    assert_eq!(*payload(&client.recv_json().await), "last");
    assert_eq!(hub.metric("subhub_dropped_total{reason=\"too_large\"}").await, 1.0);

    // A routing key over 255 bytes, a wildcard publish.
    let long = "k".repeat(256);
    client.subscribe("2", EVENTS_QUERY, json!({"topic": long})).await;
    let error = client.recv_json().await;
    assert_eq!(error["type"], "error");
    assert!(error["payload"][0]["message"].as_str().unwrap_or_default().contains("255 bytes"), "{error}");
    let response = hub.http().post(hub.url("/publish/orders.*")).body("1").send().await.expect("publish");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

/// A routing key of a dozen `#` words kept RabbitMQ at a full core for minutes matching one
/// long routing key, and every other binding and publish of the broker waited. Consecutive `#`
/// mean one: the hub binds `#.z`. More than one `#` (exponential for RabbitMQ) and more
/// wildcards than `limits.max_topic_wildcards` are refused. Meanwhile a well-behaved client
/// on the same hub keeps receiving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_routing_keys_cannot_stall_the_broker() {
    if !broker_available("RabbitMQ", RABBIT) {
        return;
    }
    let exchange = unique("x");
    let hub = TestHub::with_config(&config(&exchange, "")).await;
    let mut attacker = Client::ready(&hub, TRANSPORT_WS).await;
    attacker.subscribe("hash", EVENTS_QUERY, json!({"topic": "#.#.#.#.#.#.#.#.#.#.#.#.z"})).await;
    attacker.subscribe("same", EVENTS_QUERY, json!({"topic": "#.z"})).await;
    hub.wait_metric("subhub_subscriptions", 2.0).await;
    assert_eq!(bindings(&exchange), ["#.z"], "consecutive `#` words bound as one");
    assert_eq!(hub.metric("subhub_sources_open").await, 1.0, "`#.#.z` and `#.z` share one source");

    for (id, topic, says) in
        [("two", "#.a.#.z", "one `#`"), ("many", "*.*.*.*.*.*.*.*.*.z", "limits.max_topic_wildcards")]
    {
        attacker.subscribe(id, EVENTS_QUERY, json!({"topic": topic})).await;
        let error = attacker.recv_json().await;
        assert_eq!((error["type"].as_str(), error["id"].as_str()), (Some("error"), Some(id)), "{error}");
        assert!(error["payload"][0]["message"].as_str().unwrap_or_default().contains(says), "{error}");
    }
    assert_eq!(hub.metric("subhub_refused_total{reason=\"limit\"}").await, 1.0);

    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", EVENTS_QUERY, json!({"topic": "orders.created"})).await;
    hub.wait_metric("subhub_subscriptions", 3.0).await;
    // The long key the crafted pattern was waiting for, then an ordinary event.
    let long_key = ["a"; 126].join(".") + ".z";
    hub.publish(&long_key, "1").await;
    hub.publish("orders.created", r#"{"n":1}"#).await;
    assert_eq!(payload(&client.recv_json().await)["n"], 1);
    for _ in 0..2 {
        assert_eq!(attacker.recv_json().await["payload"]["data"]["events"]["topic"], long_key.as_str());
    }
}

#[test]
fn malformed_urls_fail_at_start_naming_the_key() {
    let path = std::env::temp_dir().join(format!("subhub-amqp-{}.toml", std::process::id()));
    let text = "[brokers.local]\nkind = \"memory\"\n[brokers.rabbit]\nkind = \"amqp\"\nurl = \"http://nope\"\n";
    std::fs::write(&path, text).expect("write");
    let error = subhub::Config::load(Some(&path), Vec::new()).expect_err("a malformed URL must be refused").to_string();
    let _ = std::fs::remove_file(&path);
    assert!(error.contains("brokers.rabbit.url") && error.contains("invalid AMQP URL"), "{error}");
}

/// A publish RabbitMQ never confirms (here: a proxy of the test's own that stops forwarding
/// after the handshake, as a `connection.blocked` alarm or a partition would) is answered 503
/// within the publish deadline, not held for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_publish_is_answered_503_within_its_deadline() {
    if !broker_available("RabbitMQ", RABBIT) {
        return;
    }
    let proxy = common::proxy::Proxy::start(RABBIT).await;
    let exchange = unique("stall");
    let hub = TestHub::with_config(&format!(
        "default_broker = \"rabbit\"\n[brokers.rabbit]\nkind = \"amqp\"\n\
         url = \"amqp://guest:guest@{}/%2f\"\nexchange = \"{exchange}\"\n",
        proxy.host_port()
    ))
    .await;
    hub.wait_metric("subhub_broker_connected", 1.0).await;
    hub.publish("ticks", "1").await;

    proxy.stall();
    let publish = hub.http().post(hub.url("/publish/ticks")).body("2").send();
    // The deadline is ten seconds; RabbitMQ's heartbeat would give up on the connection only
    // after a minute or more.
    let response = tokio::time::timeout(std::time::Duration::from_secs(30), publish)
        .await
        .expect("the publish was held past its deadline")
        .expect("publish");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    proxy.resume();
}
