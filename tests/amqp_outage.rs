//! A RabbitMQ outage: `rabbitmqctl close_all_connections` closes every connection on the broker,
//! so this test has its own binary (cargo runs test binaries one after another).

mod common;

use common::*;
use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use serde_json::json;

const RABBIT: &str = "127.0.0.1:5672";
const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_connections_are_restored_and_clients_stay() {
    if !broker_available("RabbitMQ", RABBIT) {
        return;
    }
    let exchange = unique("x");
    let config = format!(
        "default_broker = \"rabbit\"\n[brokers.rabbit]\nkind = \"amqp\"\nurl = \"{URL}\"\nexchange = \"{exchange}\"\n"
    );
    let hub = TestHub::with_config(&config).await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", EVENTS_QUERY, json!({"topic": "ticks"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    hub.publish("ticks", "1").await;
    assert_eq!(client.recv_json().await["payload"]["data"]["events"]["payload"], 1);

    let closed = std::process::Command::new("rabbitmqctl")
        .args(["close_all_connections", "subhub outage test"])
        .status()
        .expect("rabbitmqctl");
    assert!(closed.success());
    // The hub reconnects, declares its queue again and restores the binding.
    hub.wait_metric("subhub_broker_connected", 1.0).await;
    let connection = Connection::connect(URL, ConnectionProperties::default()).await.expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    channel
        .exchange_declare(exchange.as_str().into(), ExchangeKind::Topic, durable, FieldTable::default())
        .await
        .expect("exchange");
    // Publish until one arrives: whether the restored binding is in place yet is the hub's
    // business, and the client must eventually receive without resubscribing.
    let mut received = None;
    for n in 2..2000 {
        channel
            .basic_publish(
                exchange.as_str().into(),
                "ticks".into(),
                BasicPublishOptions::default(),
                n.to_string().as_bytes(),
                BasicProperties::default(),
            )
            .await
            .expect("publish");
        if let Ok(Received::Json(message)) =
            tokio::time::timeout(std::time::Duration::from_millis(20), client.recv()).await
        {
            received = Some(message);
            break;
        }
    }
    let message = received.expect("events after the outage reach the client");
    assert_eq!(message["type"], "next");
    assert_eq!(hub.metric("subhub_connections").await, 1.0);
}
