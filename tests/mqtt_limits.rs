//! MQTT and the hub's own limits, against `mosquitto` processes of the tests' own: messages
//! are as large as `limits.max_message_bytes` allows both ways (not the MQTT client's 10 KiB
//! default), an incoming message over the limit is counted `too_large` and dropped without
//! touching the session, and a publish the client cannot take right now is refused on its own
//! without ending the session for every subscription.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use common::proxy::Proxy;
use common::servers::{binary_available, Mosquitto};
use common::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use subhub_brokers::{BrokerConfig, BrokerError, Publish};

const QUERY: &str = "subscription($topic: String!) { events(topic: $topic) { topic payload } }";

fn config(url: &str, extra: &str) -> String {
    format!("default_broker = \"devices\"\n[brokers.devices]\nkind = \"mqtt\"\nurl = \"{url}\"\nqos = 1\n{extra}")
}

fn payload(message: &Value) -> &Value {
    &message["payload"]["data"]["events"]["payload"]
}

/// A body of `size` bytes: a JSON object with one padding string.
fn body(size: usize) -> String {
    format!(r#"{{"pad":"{}"}}"#, "x".repeat(size - 10))
}

/// Publishes retained messages of any size with a plain MQTT client and waits for each PUBACK.
async fn retain(port: u16, messages: &[(&str, String)]) {
    let mut options = MqttOptions::new(unique("plain").replace('.', "-"), "127.0.0.1", port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    for (topic, body) in messages {
        client.publish(*topic, QoS::AtLeastOnce, true, body.clone()).await.expect("publish");
    }
    let mut acked = 0;
    while acked < messages.len() {
        let event = tokio::time::timeout(PATIENCE, eventloop.poll()).await.expect("PUBACK in time");
        if let Ok(Event::Incoming(Packet::PubAck(_))) = event {
            acked += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_over_ten_kib_reaches_subscribers_and_the_session_stays() {
    if !binary_available("mosquitto") {
        return;
    }
    let server = Mosquitto::start().await;
    let hub = TestHub::with_config(&config(&server.url(), "")).await;
    hub.wait_metric("subhub_broker_connected", 1.0).await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", QUERY, json!({"topic": "plant/big"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;

    let big = body(11 * 1024);
    let response = hub.http().post(hub.url("/publish/plant%2Fbig")).body(big.clone()).send().await.expect("publish");
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    let message = client.recv_json().await;
    assert_eq!(payload(&message)["pad"].as_str().map(str::len), Some(big.len() - 10));
    hub.publish("plant%2Fbig", "2").await;
    assert_eq!(*payload(&client.recv_json().await), 2);
}

/// A retained message over 10 KiB arrives (the MQTT client refusing it would end the session
/// and get it again at each reconnect, for ever); one over `max_message_bytes` is counted
/// `too_large` and dropped, and the subscription goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_over_ten_kib_arrive_and_over_the_limit_are_counted() {
    if !binary_available("mosquitto") {
        return;
    }
    let server = Mosquitto::start().await;
    retain(server.port, &[("plant/retained", body(11 * 1024)), ("plant/huge", body(100 * 1024))]).await;
    let hub = TestHub::with_config(&config(&server.url(), "[limits]\nmax_message_bytes = 65536\n")).await;
    hub.wait_metric("subhub_broker_connected", 1.0).await;

    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", QUERY, json!({"topic": "plant/retained"})).await;
    let message = client.recv_json().await;
    assert_eq!(payload(&message)["pad"].as_str().map(str::len), Some(11 * 1024 - 10));

    client.subscribe("2", QUERY, json!({"topic": "plant/huge"})).await;
    hub.wait_metric("subhub_dropped_total{reason=\"too_large\"}", 1.0).await;
    hub.publish("plant%2Fhuge", "3").await;
    let message = client.recv_json().await;
    assert_eq!((message["id"].as_str(), payload(&message)), (Some("2"), &json!(3)), "{message}");
}

/// Publishes the MQTT client has no room for (its in-flight window full, its request queue
/// behind it full: here because a proxy stopped forwarding, so no PUBACK comes) are refused one
/// by one; the session stays, and the publishes it took are confirmed once the broker answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_the_client_cannot_take_is_refused_alone_and_the_session_stays() {
    if !binary_available("mosquitto") {
        return;
    }
    let server = Mosquitto::start().await;
    let proxy = Proxy::start(&format!("127.0.0.1:{}", server.port)).await;
    let config: BrokerConfig =
        toml::from_str(&format!("kind = \"mqtt\"\nurl = \"mqtt://{}\"\nqos = 1\n", proxy.host_port())).expect("config");
    let broker = config.build("devices", &subhub_brokers::BuildContext::default()).await.expect("broker");
    let connected = wait_for(PATIENCE, || async { broker.stats().connected.load(Relaxed) }).await;
    assert!(connected, "the broker never connected");

    proxy.stall();
    let refused = Arc::new(AtomicUsize::new(0));
    let publishes: Vec<_> = (0..1500)
        .map(|n| {
            let (broker, refused) = (broker.clone(), refused.clone());
            tokio::spawn(async move {
                let message = Publish { topic: "plant/flood".into(), key: None, body: n.to_string().into() };
                let result = broker.publish(message).await;
                if result.is_err() {
                    refused.fetch_add(1, Relaxed);
                }
                result
            })
        })
        .collect();
    assert!(wait_for(PATIENCE, || async { refused.load(Relaxed) > 0 }).await, "nothing was refused");
    proxy.resume();
    let mut confirmed = 0;
    for publish in publishes {
        match publish.await.expect("publish task") {
            Ok(_) => confirmed += 1,
            Err(error) => assert_eq!(error, BrokerError::Unavailable("devices".into())),
        }
    }
    assert!(confirmed >= 1000, "only {confirmed} publishes were confirmed");
    assert_eq!(proxy.accepted(), 1, "the session ended and connected again");
}
