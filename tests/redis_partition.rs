//! Redis behind a silent partition: a proxy of the test's own between the hub and the real
//! Redis on 127.0.0.1:6379 stops forwarding without closing anything (no FIN, no RST). The hub
//! must notice by its own heartbeat, say so (`subhub_broker_connected` 0, `/readyz` 503), answer
//! publishes at once instead of in turn, and deliver again once the proxy forwards.

mod common;

use common::proxy::Proxy;
use common::*;
use reqwest::StatusCode;
use serde_json::json;

const REDIS: &str = "127.0.0.1:6379";
const URL: &str = "redis://127.0.0.1:6379";

fn config(proxy: &Proxy, mode: &str) -> String {
    format!(
        "default_broker = \"cache\"\n[brokers.cache]\nkind = \"redis\"\nmode = \"{mode}\"\n\
         url = \"redis://{}\"\nkeepalive = \"500ms\"\n",
        proxy.host_port()
    )
}

async fn plain() -> redis::aio::MultiplexedConnection {
    redis::Client::open(URL).expect("url").get_multiplexed_async_connection().await.expect("connect")
}

fn payload(message: &serde_json::Value) -> &serde_json::Value {
    &message["payload"]["data"]["events"]["payload"]
}

async fn ready_status(hub: &TestHub) -> StatusCode {
    hub.http().get(hub.url("/readyz")).send().await.expect("readyz").status()
}

/// Waits until the hub has noticed the partition: the broker reads as down and the hub as not
/// ready.
async fn noticed(hub: &TestHub) {
    hub.wait_metric("subhub_broker_connected", 0.0).await;
    assert_eq!(ready_status(hub).await, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_partition_is_noticed_and_pubsub_subscribers_get_events_again() {
    if !broker_available("Redis", REDIS) {
        return;
    }
    let proxy = Proxy::start(REDIS).await;
    let hub = TestHub::with_config(&config(&proxy, "pubsub")).await;
    let mut plain = plain().await;
    let topic = unique("partition");
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", EVENTS_QUERY, json!({"topic": topic})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    let _: i64 = redis::cmd("PUBLISH").arg(&topic).arg("1").query_async(&mut plain).await.expect("PUBLISH");
    assert_eq!(*payload(&client.recv_json().await), 1);
    assert_eq!(ready_status(&hub).await, StatusCode::OK);

    proxy.stall();
    noticed(&hub).await;

    proxy.resume();
    hub.wait_metric("subhub_broker_connected", 1.0).await;
    // Connected again means every channel is subscribed again.
    let _: i64 = redis::cmd("PUBLISH").arg(&topic).arg("2").query_async(&mut plain).await.expect("PUBLISH");
    assert_eq!(*payload(&client.recv_json().await), 2);
    assert_eq!(ready_status(&hub).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_partition_is_noticed_and_streams_lose_nothing() {
    if !broker_available("Redis", REDIS) {
        return;
    }
    let proxy = Proxy::start(REDIS).await;
    let hub = TestHub::with_config(&config(&proxy, "streams")).await;
    let mut plain = plain().await;
    let key = unique("partition");
    let xadd = |n: u32| redis::cmd("XADD").arg(&key).arg("*").arg("payload").arg(n).clone();
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", EVENTS_QUERY, json!({"topic": key})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    let _: String = xadd(1).query_async(&mut plain).await.expect("XADD");
    assert_eq!(*payload(&client.recv_json().await), 1);

    proxy.stall();
    noticed(&hub).await;
    // Appended while the hub cannot read: it reads them once it can.
    let _: String = xadd(2).query_async(&mut plain).await.expect("XADD");

    proxy.resume();
    hub.wait_metric("subhub_broker_connected", 1.0).await;
    let _: String = xadd(3).query_async(&mut plain).await.expect("XADD");
    assert_eq!(*payload(&client.recv_json().await), 2);
    assert_eq!(*payload(&client.recv_json().await), 3);
}

/// During a partition every publish is answered on its own: none waits for the one before it
/// to give up connecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_during_a_partition_are_answered_together_not_in_turn() {
    if !broker_available("Redis", REDIS) {
        return;
    }
    let proxy = Proxy::start(REDIS).await;
    let hub = TestHub::with_config(&config(&proxy, "pubsub")).await;
    let topic = unique("partition");
    hub.wait_metric("subhub_broker_connected", 1.0).await;
    hub.publish(&topic, "0").await;

    proxy.stall();
    // The first publish through the partition fails and loses the connection publishes used.
    let first = hub.http().post(hub.url(&format!("/publish/{topic}"))).body("0").send().await.expect("publish");
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    let publishes = (0..20).map(|n| {
        let request = hub.http().post(hub.url(&format!("/publish/{topic}"))).body(n.to_string());
        async move { request.send().await.expect("publish").status() }
    });
    // Each attempt to connect through the partition takes the client's connection timeout; in
    // turn, twenty of them would take far longer than this.
    let statuses = tokio::time::timeout(PATIENCE, futures_util::future::join_all(publishes))
        .await
        .expect("publishes during the partition waited for each other");
    assert!(statuses.iter().all(|status| *status == StatusCode::SERVICE_UNAVAILABLE), "{statuses:?}");

    proxy.resume();
    hub.wait_metric("subhub_broker_connected", 1.0).await;
    let answered = wait_for(PATIENCE, || async {
        let response = hub.http().post(hub.url(&format!("/publish/{topic}"))).body("1").send().await;
        response.is_ok_and(|response| response.status().is_success())
    })
    .await;
    assert!(answered, "publishing never worked again");
}
