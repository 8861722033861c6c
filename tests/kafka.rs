//! Kafka through the hub, against librdkafka's mock cluster: a real Kafka protocol endpoint on a
//! loopback port, started per test. The hub uses ordinary client configuration only.

mod common;

use std::time::Duration;

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use reqwest::StatusCode;
use serde_json::json;

const QUERY: &str = "subscription($topic: String!) { events(topic: $topic) { id key payload headers } }";

fn config(bootstrap: &str, extra: &str) -> String {
    format!(
        "default_broker = \"events\"\n[brokers.events]\nkind = \"kafka\"\nbootstrap_servers = \"{bootstrap}\"\n{extra}"
    )
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("producer")
}

async fn produce(producer: &FutureProducer, topic: &str, partition: i32, body: &[u8]) {
    let record = FutureRecord::<(), [u8]>::to(topic).partition(partition).payload(body);
    producer.send(record, Duration::from_secs(10)).await.expect("produce");
}

fn events(message: &serde_json::Value) -> &serde_json::Value {
    &message["payload"]["data"]["events"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_share_one_assignment_that_is_dropped_after_the_last() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("prices", 2, 1).expect("topic");
    let hub = TestHub::with_config(&config(&cluster.bootstrap_servers(), "")).await;
    let producer = producer(&cluster.bootstrap_servers());
    let mut clients = Vec::new();
    for i in 0..50 {
        let mut client = Client::ready(&hub, TRANSPORT_WS).await;
        client.subscribe(&format!("c{i}"), QUERY, json!({"topic": "prices"})).await;
        clients.push(client);
    }
    hub.wait_metric("subhub_subscriptions", 50.0).await;
    assert_eq!(
        hub.metric("subhub_broker_subscriptions{broker=\"events\"}").await,
        1.0,
        "one assignment for fifty clients"
    );
    for n in 0..10 {
        produce(&producer, "prices", 1, json!({"n": n}).to_string().as_bytes()).await;
    }
    for client in &mut clients {
        for n in 0..10 {
            let message = client.recv_json().await;
            assert_eq!(events(&message)["payload"]["n"], n);
            assert_eq!(events(&message)["id"], format!("1:{n}"));
        }
    }
    drop(clients);
    hub.wait_metric("subhub_broker_subscriptions{broker=\"events\"}", 0.0).await;
    hub.wait_metric("subhub_sources_open", 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_published_while_the_broker_is_down_is_lost() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("ticks", 1, 1).expect("topic");
    let hub = TestHub::with_config(&config(&cluster.bootstrap_servers(), "")).await;
    let producer = producer(&cluster.bootstrap_servers());
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", QUERY, json!({"topic": "ticks"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    produce(&producer, "ticks", 0, b"0").await;
    assert_eq!(events(&client.recv_json().await)["payload"], 0);

    cluster.broker_down(1).expect("broker down");
    hub.wait_metric("subhub_broker_connected", 0.0).await;
    // Produced during the outage: the producer holds them until the broker is back.
    let sends: Vec<_> = (1..=5)
        .map(|n| {
            let producer = producer.clone();
            tokio::spawn(async move { produce(&producer, "ticks", 0, n.to_string().as_bytes()).await })
        })
        .collect();
    cluster.broker_up(1).expect("broker up");
    for send in sends {
        send.await.expect("produced");
    }
    hub.wait_metric("subhub_broker_connected", 1.0).await;
    let mut seen = Vec::new();
    while seen.len() < 5 {
        seen.push(events(&client.recv_json().await)["payload"].as_i64().expect("number"));
    }
    seen.sort_unstable();
    assert_eq!(seen, [1, 2, 3, 4, 5]);
    assert_eq!(hub.metric("subhub_connections").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_through_the_hub_reaches_hub_clients_and_plain_consumers() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("orders", 1, 1).expect("topic");
    let hub = TestHub::with_config(&config(&cluster.bootstrap_servers(), "")).await;
    let plain: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("group.id", "plain")
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    list.add_partition_offset("orders", 0, Offset::Beginning).expect("partition");
    plain.assign(&list).expect("assign");

    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", QUERY, json!({"topic": "orders"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    let response =
        hub.http().post(hub.url("/publish/orders?key=o-1")).body(r#"{"via":"http"}"#).send().await.expect("publish");
    assert_eq!(response.status(), StatusCode::OK);
    let reply: serde_json::Value = response.json().await.expect("json");
    assert_eq!(reply["id"], "0:0");
    let mutation = "mutation { publish(topic: \"orders\", payload: {via: \"mutation\"}, key: \"o-2\") { ok id } }";
    let reply = hub.http().post(hub.url("/graphql")).json(&json!({"query": mutation})).send().await.expect("post");
    let reply: serde_json::Value = reply.json().await.expect("json");
    assert_eq!(reply["data"]["publish"]["id"], "0:1");
    for (via, key) in [("http", "o-1"), ("mutation", "o-2")] {
        let message = client.recv_json().await;
        assert_eq!(
            (events(&message)["payload"]["via"].as_str(), events(&message)["key"].as_str()),
            (Some(via), Some(key))
        );
    }
    let plain_messages = tokio::task::spawn_blocking(move || {
        let mut bodies = Vec::new();
        let deadline = std::time::Instant::now() + PATIENCE;
        while bodies.len() < 2 && std::time::Instant::now() < deadline {
            if let Some(Ok(message)) = plain.poll(Duration::from_millis(100)) {
                bodies.push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned());
            }
        }
        bodies
    })
    .await
    .expect("plain consumer");
    assert_eq!(plain_messages, [r#"{"via":"http"}"#, r#"{"via":"mutation"}"#]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_topics_bodies_and_sizes() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("feed", 1, 1).expect("topic");
    let hub = TestHub::with_config(&config(&cluster.bootstrap_servers(), "[limits]\nmax_message_bytes = 512\n")).await;
    let producer = producer(&cluster.bootstrap_servers());
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    for (id, topic, expected) in
        [("a", "bad topic!", "ASCII letters"), ("b", "missing", "topic `missing` does not exist")]
    {
        client.subscribe(id, QUERY, json!({"topic": topic})).await;
        let error = client.recv_json().await;
        assert_eq!(error["type"], "error", "{error}");
        assert!(error["payload"][0]["message"].as_str().unwrap_or_default().contains(expected), "{error}");
    }
    let response = hub.http().post(hub.url("/publish/missing")).body("1").send().await.expect("publish");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    client.subscribe("c", QUERY, json!({"topic": "feed"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    produce(&producer, "feed", 0, b"not json").await;
    produce(&producer, "feed", 0, &[0xff, 0x01]).await;
    produce(&producer, "feed", 0, &[b'x'; 600]).await;
    produce(&producer, "feed", 0, b"\"last\"").await;
    assert_eq!(events(&client.recv_json().await)["payload"], "not json");
    let binary = client.recv_json().await;
    assert_eq!(
        (events(&binary)["payload"].as_str(), events(&binary)["headers"]["encoding"].as_str()),
        (Some("/wE="), Some("base64"))
    );
    assert_eq!(events(&client.recv_json().await)["payload"], "last");
    assert_eq!(hub.metric("subhub_dropped_total{reason=\"too_large\"}").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_key_headers_and_the_message_timestamp() {
    use rdkafka::message::{Header, OwnedHeaders};
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("audit", 1, 1).expect("topic");
    let hub = TestHub::with_config(&config(&cluster.bootstrap_servers(), "")).await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    let query = "subscription { events(topic: \"audit\") { id key headers timestamp payload } }";
    client.subscribe("1", query, json!({})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    let headers = OwnedHeaders::new().insert(Header { key: "trace", value: Some("abc") });
    let record = FutureRecord::to("audit").key("user-7").payload("{}").headers(headers).timestamp(1_700_000_000_123);
    producer(&cluster.bootstrap_servers()).send(record, Duration::from_secs(10)).await.expect("produce");
    let message = client.recv_json().await;
    let event = events(&message);
    assert_eq!(event["id"], "0:0");
    assert_eq!(event["key"], "user-7");
    assert_eq!(event["headers"]["trace"], "abc");
    assert_eq!(event["timestamp"], "2023-11-14T22:13:20.123Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_created_topics_when_configured() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let hub = TestHub::with_config(&config(&cluster.bootstrap_servers(), "auto_create_topics = true\n")).await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", QUERY, json!({"topic": "fresh"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    hub.publish("fresh", "7").await;
    assert_eq!(events(&client.recv_json().await)["payload"], 7);
}

/// A subscribe whose lookup is slow (here a topic whose leader the cluster cannot name, which
/// the hub waits out for its request timeout) held up the consumer loop, and with it every other
/// Kafka topic. Now an event on another topic arrives while that lookup is still running: the
/// slow subscriber has received nothing yet when the other client has its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscribe_does_not_hold_up_other_topics() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("prices", 1, 1).expect("topic");
    cluster.create_topic("slow", 1, 1).expect("topic");
    cluster.topic_error("slow", rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE).expect("error");
    let hub = TestHub::with_config(&config(&cluster.bootstrap_servers(), "auto_create_topics = true\n")).await;
    let producer = producer(&cluster.bootstrap_servers());
    let mut steady = Client::ready(&hub, TRANSPORT_WS).await;
    steady.subscribe("1", QUERY, json!({"topic": "prices"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;

    let mut slow = Client::ready(&hub, TRANSPORT_WS).await;
    slow.subscribe("1", QUERY, json!({"topic": "slow"})).await;
    // The subscribe reaches the hub before the event is produced.
    assert!(slow.until_pong().await.is_empty());
    produce(&producer, "prices", 0, b"{\"n\":1}").await;
    assert_eq!(events(&steady.recv_json().await)["payload"]["n"], 1);
    assert!(slow.until_pong().await.is_empty(), "the slow lookup ended before the other topic's event arrived");
}

/// A source closed and opened again at once, many times: the old source's unassignment may
/// reach the consumer after the new one's request. The topic must stay assigned exactly once,
/// every reopened subscription must get its events, and none may fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_and_reopening_a_topic_at_once_keeps_it_assigned_and_delivering() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("flip", 1, 1).expect("topic");
    let hub = TestHub::with_config(&config(&cluster.bootstrap_servers(), "")).await;
    let producer = producer(&cluster.bootstrap_servers());
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    for round in 0..12 {
        let id = format!("r{round}");
        client.subscribe(&id, QUERY, json!({"topic": "flip"})).await;
        // The complete and the next subscribe go out back to back: close, then reopen at once.
        client.complete(&id).await;
        let id = format!("again{round}");
        client.subscribe(&id, QUERY, json!({"topic": "flip"})).await;
        hub.wait_metric("subhub_subscriptions", 1.0).await;
        produce(&producer, "flip", 0, json!({"round": round}).to_string().as_bytes()).await;
        let message = client.recv_json().await;
        assert_eq!(message["type"], "next", "round {round}: {message}");
        assert_eq!(message["id"], id);
        assert_eq!(events(&message)["payload"]["round"], round);
        assert_eq!(hub.metric("subhub_broker_subscriptions{broker=\"events\"}").await, 1.0, "round {round}");
        client.complete(&id).await;
        hub.wait_metric("subhub_subscriptions", 0.0).await;
    }
    hub.wait_metric("subhub_broker_subscriptions{broker=\"events\"}", 0.0).await;
}

/// Whether a topic exists is looked up once and remembered: a second publish to a missing topic
/// is answered 404 from what the hub knows, even with the cluster unreachable by then, instead
/// of one more blocking metadata round trip per publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_is_looked_up_once_not_at_every_publish() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("present", 1, 1).expect("topic");
    let hub = TestHub::with_config(&config(&cluster.bootstrap_servers(), "")).await;
    let publish = |topic: &str| hub.http().post(hub.url(&format!("/publish/{topic}"))).body("1").send();
    assert_eq!(publish("absent").await.expect("publish").status(), StatusCode::NOT_FOUND);
    cluster.broker_down(1).expect("broker down");
    assert_eq!(publish("absent").await.expect("publish").status(), StatusCode::NOT_FOUND);
    cluster.broker_up(1).expect("broker up");
}

/// A body up to `limits.max_message_bytes` (1 MiB by default) is published, also above
/// librdkafka's own default cap of 1,000,000 bytes; one byte more is 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_up_to_the_message_limit_are_published() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("large", 1, 1).expect("topic");
    let hub = TestHub::with_config(&config(&cluster.bootstrap_servers(), "")).await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", QUERY, json!({"topic": "large"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    let limit = 1024 * 1024;
    let body = format!("\"{}\"", "x".repeat(limit - 2));
    let response = hub.http().post(hub.url("/publish/large")).body(body.clone()).send().await.expect("publish");
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap_or_default());
    assert_eq!(events(&client.recv_json().await)["payload"].as_str().map(str::len), Some(limit - 2));
    let response = hub.http().post(hub.url("/publish/large")).body(body + " ").send().await.expect("publish");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// A source that cannot be opened is counted, and logged only at debug: clients can make one
/// at their subscribe rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_cannot_be_opened_is_counted() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let hub = TestHub::with_config(&config(&cluster.bootstrap_servers(), "")).await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    for id in ["1", "2"] {
        client.subscribe(id, QUERY, json!({"topic": "nowhere"})).await;
        assert_eq!(client.recv_json().await["type"], "error");
    }
    assert_eq!(hub.metric("subhub_source_errors_total").await, 2.0);
}
