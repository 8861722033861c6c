//! Redis pub/sub through the hub, against the real Redis on 127.0.0.1:6379.

mod common;

use common::*;
use futures_util::StreamExt;
use serde_json::json;

const REDIS: &str = "127.0.0.1:6379";
const URL: &str = "redis://127.0.0.1:6379";

fn config(extra: &str) -> String {
    format!("default_broker = \"cache\"\n[brokers.cache]\nkind = \"redis\"\nurl = \"{URL}\"\n{extra}")
}

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(URL).expect("url").get_multiplexed_async_connection().await.expect("connect to Redis")
}

async fn numsub(redis: &mut redis::aio::MultiplexedConnection, channel: &str) -> i64 {
    let reply: (String, i64) =
        redis::cmd("PUBSUB").arg("NUMSUB").arg(channel).query_async(redis).await.expect("NUMSUB");
    reply.1
}

async fn wait_numsub(redis: &mut redis::aio::MultiplexedConnection, channel: &str, expected: i64) {
    let mut last = -1;
    let reached = wait_for(PATIENCE, || {
        let mut redis = redis.clone();
        async move { numsub(&mut redis, channel).await == expected }
    })
    .await;
    if !reached {
        last = numsub(redis, channel).await;
    }
    assert!(reached, "PUBSUB NUMSUB {channel} stayed at {last}, expected {expected}");
}

async fn publish(redis: &mut redis::aio::MultiplexedConnection, channel: &str, body: &[u8]) {
    let _: i64 = redis::cmd("PUBLISH").arg(channel).arg(body).query_async(redis).await.expect("PUBLISH");
}

fn payload(message: &serde_json::Value) -> &serde_json::Value {
    &message["payload"]["data"]["events"]["payload"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_share_one_subscribe_and_it_goes_away_after_the_last() {
    if !broker_available("Redis", REDIS) {
        return;
    }
    let hub = TestHub::with_config(&config("")).await;
    let mut plain = redis().await;
    let topic = unique("prices");
    let mut clients = Vec::new();
    for i in 0..50 {
        let mut client = Client::ready(&hub, TRANSPORT_WS).await;
        client.subscribe(&format!("c{i}"), EVENTS_QUERY, json!({"topic": topic})).await;
        clients.push(client);
    }
    hub.wait_metric("subhub_subscriptions", 50.0).await;
    assert_eq!(numsub(&mut plain, &topic).await, 1, "one SUBSCRIBE for fifty clients");
    assert_eq!(hub.metric("subhub_sources_open").await, 1.0);
    for n in 0..10 {
        publish(&mut plain, &topic, json!({"n": n}).to_string().as_bytes()).await;
    }
    for client in &mut clients {
        for n in 0..10 {
            let message = client.recv_json().await;
            assert_eq!(payload(&message)["n"], n, "{message}");
            assert_eq!(message["payload"]["data"]["events"]["topic"], topic.as_str());
        }
    }
    for (i, client) in clients.iter_mut().enumerate() {
        if i % 2 == 0 {
            client.complete(&format!("c{i}")).await;
        }
    }
    drop(clients);
    wait_numsub(&mut plain, &topic, 0).await;
    hub.wait_metric("subhub_sources_open", 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_through_the_hub_reaches_hub_clients_and_plain_subscribers() {
    if !broker_available("Redis", REDIS) {
        return;
    }
    let hub = TestHub::with_config(&config("")).await;
    let topic = unique("orders");
    let mut plain = redis::Client::open(URL).expect("url").get_async_pubsub().await.expect("pubsub");
    plain.subscribe(&topic).await.expect("subscribe");
    let mut plain = plain.into_on_message();
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", EVENTS_QUERY, json!({"topic": topic})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;

    hub.publish(&topic, r#"{"via":"http"}"#).await;
    let mutation = format!("mutation {{ publish(topic: \"{topic}\", payload: {{via: \"mutation\"}}) {{ ok }} }}");
    let reply = hub.http().post(hub.url("/graphql")).json(&json!({"query": mutation})).send().await.expect("post");
    assert!(reply.status().is_success());
    for via in ["http", "mutation"] {
        assert_eq!(payload(&client.recv_json().await)["via"], via);
        let message = tokio::time::timeout(PATIENCE, plain.next()).await.expect("plain subscriber").expect("message");
        let body: serde_json::Value = serde_json::from_slice(message.get_payload_bytes()).expect("json");
        assert_eq!(body["via"], via);
    }
    assert_eq!(hub.metric("subhub_publish_total").await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_bodies_and_size_limits() {
    if !broker_available("Redis", REDIS) {
        return;
    }
    let hub = TestHub::with_config(&config("[limits]\nmax_message_bytes = 512\n")).await;
    let mut plain = redis().await;
    let prefix = unique("pat");
    let pattern = format!("{prefix}.*");
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", EVENTS_QUERY, json!({"topic": pattern})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    let numpat: i64 = redis::cmd("PUBSUB").arg("NUMPAT").query_async(&mut plain).await.expect("NUMPAT");
    assert!(numpat >= 1);

    let channel = format!("{prefix}.a");
    publish(&mut plain, &channel, b"not json").await;
    publish(&mut plain, &channel, &[0xff, 0x00]).await;
    publish(&mut plain, &channel, &[b'x'; 513]).await;
    publish(&mut plain, &channel, b"\"last\"").await;
    let text = client.recv_json().await;
    assert_eq!(*payload(&text), "not json");
    assert_eq!(text["payload"]["data"]["events"]["topic"], channel.as_str());
    let binary = client.recv_json().await;
    assert_eq!(*payload(&binary), "/wA=");
    // The 513-byte body is dropped and counted; the next one arrives.
    assert_eq!(*payload(&client.recv_json().await), "last");
    assert_eq!(hub.metric("subhub_dropped_total{reason=\"too_large\"}").await, 1.0);

    client.subscribe("2", "subscription { events(topic: \"x\", broker: \"nope\") { id } }", json!({})).await;
    let error = client.recv_json().await;
    assert_eq!(error["type"], "error");
    assert!(error["payload"][0]["message"].as_str().unwrap_or_default().contains("unknown broker `nope`"));
}
