//! Redis streams through the hub, against the real Redis on 127.0.0.1:6379.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

const REDIS: &str = "127.0.0.1:6379";
const URL: &str = "redis://127.0.0.1:6379";
const STREAMS: &str = "default_broker = \"log\"\n[brokers.log]\nkind = \"redis\"\nmode = \"streams\"\nurl = \"redis://127.0.0.1:6379\"\nstream_maxlen = 1000\n";
const QUERY: &str = "subscription($topic: String!) { events(topic: $topic) { id key payload headers } }";

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(URL).expect("url").get_multiplexed_async_connection().await.expect("connect to Redis")
}

async fn xadd(redis: &mut redis::aio::MultiplexedConnection, key: &str, fields: &[(&str, &[u8])]) -> String {
    let mut command = redis::cmd("XADD");
    command.arg(key).arg("*");
    for (field, value) in fields {
        command.arg(*field).arg(*value);
    }
    command.query_async(redis).await.expect("XADD")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_read_one_stream_in_order_with_stream_ids() {
    if !broker_available("Redis", REDIS) {
        return;
    }
    let hub = TestHub::with_config(STREAMS).await;
    let mut plain = redis().await;
    let key = unique("stream");
    // Entries before the subscription are not replayed.
    xadd(&mut plain, &key, &[("payload", b"\"old\"")]).await;
    let mut clients = Vec::new();
    for i in 0..50 {
        let mut client = Client::ready(&hub, TRANSPORT_WS).await;
        client.subscribe(&format!("c{i}"), QUERY, json!({"topic": key})).await;
        clients.push(client);
    }
    hub.wait_metric("subhub_subscriptions", 50.0).await;
    assert_eq!(hub.metric("subhub_sources_open").await, 1.0);
    let mut ids = Vec::new();
    for n in 0..10 {
        let body = json!({"n": n}).to_string();
        ids.push(xadd(&mut plain, &key, &[("payload", body.as_bytes()), ("key", b"k"), ("origin", b"test")]).await);
    }
    for client in &mut clients {
        for (n, id) in ids.iter().enumerate() {
            let events = client.recv_json().await["payload"]["data"]["events"].clone();
            assert_eq!(events["payload"]["n"], n);
            assert_eq!(events["id"], id.as_str());
            assert_eq!(events["key"], "k");
            assert_eq!(events["headers"]["origin"], "test");
        }
    }
    assert_eq!(hub.metric("subhub_broker_subscriptions{broker=\"log\"}").await, 1.0, "one key read for fifty clients");
    drop(clients);
    hub.wait_metric("subhub_sources_open", 0.0).await;
    hub.wait_metric("subhub_executions", 0.0).await;
    hub.wait_metric("subhub_broker_subscriptions{broker=\"log\"}", 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_appends_to_the_stream_for_hub_clients_and_plain_readers() {
    if !broker_available("Redis", REDIS) {
        return;
    }
    let hub = TestHub::with_config(STREAMS).await;
    let mut plain = redis().await;
    let key = unique("orders");
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", QUERY, json!({"topic": key})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;

    let response = hub
        .http()
        .post(hub.url(&format!("/publish/{key}?key=o-1")))
        .body(r#"{"total":5}"#)
        .send()
        .await
        .expect("publish");
    assert_eq!(response.status(), StatusCode::OK);
    let reply: serde_json::Value = response.json().await.expect("json");
    let id = reply["id"].as_str().expect("stream id").to_owned();
    let events = client.recv_json().await["payload"]["data"]["events"].clone();
    assert_eq!((events["id"].as_str(), events["key"].as_str()), (Some(id.as_str()), Some("o-1")));
    assert_eq!(events["payload"]["total"], 5);

    let mutation = format!("mutation {{ publish(topic: \"{key}\", payload: {{total: 6}}, key: \"o-2\") {{ id }} }}");
    let reply = hub.http().post(hub.url("/graphql")).json(&json!({"query": mutation})).send().await.expect("post");
    let reply: serde_json::Value = reply.json().await.expect("json");
    let second = reply["data"]["publish"]["id"].as_str().expect("stream id").to_owned();
    let events = client.recv_json().await["payload"]["data"]["events"].clone();
    assert_eq!((events["id"].as_str(), events["key"].as_str()), (Some(second.as_str()), Some("o-2")));

    let entries: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(&key).arg("-").arg("+").query_async(&mut plain).await.expect("XRANGE");
    assert_eq!(entries.ids.len(), 2);
    assert_eq!(entries.ids[1].id, second);
    assert_eq!(entries.ids[0].id, id);
    let body: Vec<u8> = redis::from_redis_value(entries.ids[0].map["payload"].clone()).expect("payload field");
    assert_eq!(body, br#"{"total":5}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_does_not_stop_the_hub_and_shows_in_readiness() {
    let hub = TestHub::with_config(
        "[brokers.local]\nkind = \"memory\"\n[brokers.down]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:1\"\n",
    )
    .await;
    hub.wait_metric("subhub_broker_connected{broker=\"local\"}", 1.0).await;
    assert_eq!(hub.metric("subhub_broker_connected{broker=\"down\"}").await, 0.0);
    let ready = hub.http().get(hub.url("/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.text().await.expect("body").contains("down"));
    // The other broker keeps serving.
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", EVENTS_QUERY, json!({"topic": "t"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    hub.publish("t", "1").await;
    assert_eq!(client.recv_json().await["payload"]["data"]["events"]["payload"], 1);
    // Publishing into the broker that is down says so.
    let response = hub.http().post(hub.url("/publish/t?broker=down")).body("1").send().await.expect("publish");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}
