//! A broker session serves each topic from its newest source. The registry opens a topic's
//! sources one after another (a newer one only once the older has closed), but each opening
//! runs on a task of its own, so the older source's subscribe request can reach the session
//! after the newer one's. Such a stale request must not take the topic over: when its source's
//! unsubscribe followed, the newer source was left reading nothing.
//!
//! Against every broker that keeps one subscription per topic: the embedded memory broker,
//! Redis pub/sub and streams, RabbitMQ, Mosquitto, and Kafka (mock cluster).

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use common::*;
use serde_json::json;
use subhub_brokers::{Broker, BrokerConfig, Event, EventSink, Publish};
use tokio::sync::broadcast;

async fn broker(config: serde_json::Value) -> Arc<dyn Broker> {
    let config: BrokerConfig = serde_json::from_value(config).expect("broker config");
    config.build("under_test", &subhub_brokers::BuildContext::default()).await.expect("broker")
}

fn sink(broker: &Arc<dyn Broker>) -> (EventSink, broadcast::Receiver<Arc<Event>>) {
    let (sender, receiver) = broadcast::channel(16);
    (EventSink::new(sender, broker.stats().clone(), 1 << 20), receiver)
}

/// Source A is opened before source B, but B's subscribe reaches the session first; A's comes
/// late and its source closes at once. B must keep receiving, and closing B must leave the
/// broker with no subscription of the hub's.
async fn a_late_subscribe_of_a_closed_source_leaves_the_newer_one_reading(broker: Arc<dyn Broker>, topic: &str) {
    let (older, _) = sink(&broker);
    let (newer, mut events) = sink(&broker);
    let newer_guard = broker.subscribe(topic, newer).await.expect("the newer source");
    let older_guard = broker.subscribe(topic, older).await.expect("the stale request is confirmed");
    drop(older_guard);

    let publish = Publish { topic: topic.to_owned(), key: None, body: json!({"n": 1}).to_string().into() };
    broker.publish(publish).await.expect("publish");
    let event = tokio::time::timeout(PATIENCE, events.recv()).await.expect("the newer source reads on").expect("event");
    assert_eq!(event.payload_json(), r#"{"n":1}"#);

    drop(newer_guard);
    let released = wait_for(PATIENCE, || async { broker.stats().broker_subscriptions.load(Relaxed) == 0 }).await;
    assert!(released, "the broker still holds {}", broker.stats().broker_subscriptions.load(Relaxed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    let broker = broker(json!({"kind": "memory"})).await;
    a_late_subscribe_of_a_closed_source_leaves_the_newer_one_reading(broker, "stale").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pubsub() {
    if !broker_available("Redis", "127.0.0.1:6379") {
        return;
    }
    let broker = broker(json!({"kind": "redis", "url": "redis://127.0.0.1:6379"})).await;
    a_late_subscribe_of_a_closed_source_leaves_the_newer_one_reading(broker, &unique("stale")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_streams() {
    if !broker_available("Redis", "127.0.0.1:6379") {
        return;
    }
    let broker = broker(json!({"kind": "redis", "url": "redis://127.0.0.1:6379", "mode": "streams"})).await;
    a_late_subscribe_of_a_closed_source_leaves_the_newer_one_reading(broker, &unique("stale")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq() {
    if !broker_available("RabbitMQ", "127.0.0.1:5672") {
        return;
    }
    let broker = broker(json!({"kind": "amqp", "url": "amqp://guest:guest@127.0.0.1:5672/%2f"})).await;
    a_late_subscribe_of_a_closed_source_leaves_the_newer_one_reading(broker, &unique("stale")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto() {
    if !broker_available("Mosquitto", "127.0.0.1:1883") {
        return;
    }
    let broker = broker(json!({"kind": "mqtt", "url": "mqtt://127.0.0.1:1883", "qos": 1})).await;
    wait_for(PATIENCE, || async { broker.stats().connected.load(Relaxed) }).await;
    a_late_subscribe_of_a_closed_source_leaves_the_newer_one_reading(broker, &unique("stale").replace('.', "/")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka() {
    let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("stale", 1, 1).expect("topic");
    let broker = broker(json!({"kind": "kafka", "bootstrap_servers": cluster.bootstrap_servers()})).await;
    a_late_subscribe_of_a_closed_source_leaves_the_newer_one_reading(broker, "stale").await;
}
