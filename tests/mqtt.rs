//! MQTT (DESIGN §7, §10), against real `mosquitto` processes of the tests' own (publishing
//! `$SYS` figures every second, so the subscriptions the broker holds can be read) and the one
//! CI keeps on 1883: QoS 0 and 1, 50 clients sharing one broker subscription, events from plain
//! MQTT clients, retained messages, wildcards under `[authz]`, and the broker restarted under the
//! hub.

mod common;

use std::time::Duration;

use common::servers::{binary_available, Mosquitto, BROKER_FIGURES};
use common::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use tokio::sync::watch;

const QUERY: &str =
    "subscription($topic: String!, $broker: String) { events(topic: $topic, broker: $broker) { topic payload } }";

fn config(url: &str) -> String {
    format!(
        "default_broker = \"devices\"\n[brokers.devices]\nkind = \"mqtt\"\nurl = \"{url}\"\nqos = 0\n\
         [brokers.reliable]\nkind = \"mqtt\"\nurl = \"{url}\"\nqos = 1\n"
    )
}

/// A plain MQTT client, its event loop driven in the background; `subscriptions` follows the
/// broker's `$SYS/broker/subscriptions/count`.
struct Plain {
    client: AsyncClient,
    subscriptions: watch::Receiver<i64>,
    acked: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Plain {
    async fn connect(port: u16) -> Self {
        let mut options = MqttOptions::new(unique("plain").replace('.', "-"), "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        client.subscribe("$SYS/broker/subscriptions/count", QoS::AtMostOnce).await.unwrap();
        let (count, subscriptions) = watch::channel(-1);
        let (acks, acked) = watch::channel(0);
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(message))) if message.topic.starts_with("$SYS") => {
                        let text = String::from_utf8_lossy(&message.payload).to_string();
                        let _ = count.send(text.trim().parse().unwrap_or(-1));
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => acks.send_modify(|n| *n += 1),
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Plain { client, subscriptions, acked, task }
    }

    /// Waits until the broker reports `n` subscriptions (this client's own `$SYS` one included).
    async fn wait_subscriptions(&mut self, n: i64) {
        let reached =
            tokio::time::timeout(BROKER_FIGURES, self.subscriptions.wait_for(|count| *count == n)).await.is_ok();
        assert!(reached, "the broker reports {} subscriptions, expected {n}", *self.subscriptions.borrow());
    }

    async fn publish(&mut self, topic: &str, qos: QoS, retain: bool, body: Value) {
        let before = *self.acked.borrow();
        self.client.publish(topic, qos, retain, body.to_string()).await.unwrap();
        if qos == QoS::AtLeastOnce {
            let acked = tokio::time::timeout(PATIENCE, self.acked.wait_for(|n| *n > before)).await;
            assert!(acked.is_ok(), "no PUBACK");
        }
    }
}

impl Drop for Plain {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn clients(hub: &TestHub, n: usize, topic: &str, broker: &str) -> Vec<Client> {
    let mut clients = Vec::new();
    for i in 0..n {
        let mut client = Client::ready(hub, TRANSPORT_WS).await;
        client.subscribe(&format!("s{i}"), QUERY, json!({"topic": topic, "broker": broker})).await;
        clients.push(client);
    }
    clients
}

/// A mosquitto of the test's own and a hub on it, both brokers connected; `None` (skipped)
/// without the binary.
async fn mosquitto_and_hub() -> Option<(Mosquitto, TestHub)> {
    if !binary_available("mosquitto") {
        return None;
    }
    let server = Mosquitto::start().await;
    let hub = TestHub::with_config(&config(&server.url())).await;
    hub.wait_metric("subhub_broker_connected", 2.0).await;
    Some((server, hub))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_share_one_broker_subscription_at_qos_0_and_1() {
    let Some((server, hub)) = mosquitto_and_hub().await else { return };
    let mut plain = Plain::connect(server.port).await;
    plain.wait_subscriptions(1).await;

    for (broker, qos, topic) in
        [("devices", QoS::AtMostOnce, "plant/1/temp"), ("reliable", QoS::AtLeastOnce, "plant/2/temp")]
    {
        let mut clients = clients(&hub, 50, topic, broker).await;
        hub.wait_metric("subhub_subscriptions", 50.0).await;
        plain.wait_subscriptions(2).await;
        for n in 0..20 {
            plain.publish(topic, qos, false, json!({"n": n})).await;
        }
        for (i, client) in clients.iter_mut().enumerate() {
            for n in 0..20 {
                let message = client.recv_json().await;
                assert_eq!(message["payload"]["data"]["events"]["payload"]["n"], n, "{broker} client {i}: {message}");
            }
        }
        assert_eq!(hub.metric("subhub_executions").await, 1.0);
        drop(clients);
        hub.wait_metric("subhub_sources_open", 0.0).await;
        plain.wait_subscriptions(1).await;
    }
    // Publishing through the hub at QoS 1 waits for the broker's PUBACK.
    let mut listener = clients(&hub, 1, "plant/3/temp", "devices").await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    hub.publish("plant%2F3%2Ftemp?broker=reliable", json!({"n": 1}).to_string()).await;
    assert_eq!(listener[0].recv_json().await["payload"]["data"]["events"]["payload"]["n"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_message_reaches_the_first_subscriber() {
    let Some((server, hub)) = mosquitto_and_hub().await else { return };
    let mut plain = Plain::connect(server.port).await;
    plain.publish("plant/9/state", QoS::AtLeastOnce, true, json!({"state": "running"})).await;
    let mut first = clients(&hub, 1, "plant/9/state", "reliable").await;
    let message = first[0].recv_json().await;
    assert_eq!(message["payload"]["data"]["events"]["payload"]["state"], "running", "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_need_an_authz_rule_and_match_every_level() {
    if !binary_available("mosquitto") {
        return;
    }
    let server = Mosquitto::start().await;
    let secret = "mqtt-test-secret-0123456789";
    let hub = TestHub::with_config(&format!(
        "{}[auth]\nhs256_secret = \"{secret}\"\nrequire_exp = false\n\
         [[authz.rules]]\ntopics = \"plant/**\"\nsubscribe = true\n\
         [[authz.rules]]\ntopics = \"plant/**\"\nclaims = {{ role = \"ops\" }}\nsubscribe = true\nwildcards = true\n",
        config(&server.url())
    ))
    .await;
    let mut user = Client::authorized(&hub, &signed_token(secret, json!({"sub": "u"}))).await;
    user.subscribe("1", QUERY, json!({"topic": "plant/#"})).await;
    let refused = user.recv_json().await;
    assert_eq!(refused["payload"][0]["extensions"]["code"], "FORBIDDEN", "{refused}");

    let mut ops = Client::authorized(&hub, &signed_token(secret, json!({"sub": "o", "role": "ops"}))).await;
    ops.subscribe("1", QUERY, json!({"topic": "plant/+/alarm", "broker": "reliable"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    let mut plain = Plain::connect(server.port).await;
    for topic in ["plant/1/alarm", "plant/1/temp", "plant/2/alarm"] {
        plain.publish(topic, QoS::AtLeastOnce, false, json!({"at": topic})).await;
    }
    for topic in ["plant/1/alarm", "plant/2/alarm"] {
        let message = ops.recv_json().await;
        assert_eq!(message["payload"]["data"]["events"]["topic"], topic, "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restarted_under_the_hub_gets_every_subscription_back() {
    let Some((mut server, hub)) = mosquitto_and_hub().await else { return };
    let mut clients = clients(&hub, 2, "plant/5/temp", "reliable").await;
    hub.wait_metric("subhub_subscriptions", 2.0).await;
    server.restart().await;
    hub.wait_metric("subhub_broker_connected", 2.0).await;
    let mut plain = Plain::connect(server.port).await;
    // The hub's subscription and the plain client's own `$SYS` one.
    plain.wait_subscriptions(2).await;
    plain.publish("plant/5/temp", QoS::AtLeastOnce, false, json!({"n": 1})).await;
    for client in &mut clients {
        assert_eq!(client.recv_json().await["payload"]["data"]["events"]["payload"]["n"], 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ci_mosquitto_on_1883_serves_the_hub() {
    if !broker_available("Mosquitto", "127.0.0.1:1883") {
        return;
    }
    let hub = TestHub::with_config(&config("mqtt://127.0.0.1:1883")).await;
    hub.wait_metric("subhub_broker_connected", 2.0).await;
    let topic = unique("subhub-test").replace('.', "/");
    let mut client = clients(&hub, 1, &topic, "reliable").await.remove(0);
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    let escaped = topic.replace('/', "%2F");
    hub.publish(&format!("{escaped}?broker=reliable"), json!({"n": 7}).to_string()).await;
    assert_eq!(client.recv_json().await["payload"]["data"]["events"]["payload"]["n"], 7);
}
