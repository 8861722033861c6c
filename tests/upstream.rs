//! Upstream GraphQL servers, forwarded over shared, multiplexed WebSocket connections. The
//! upstream here is a second, real subhub: it counts its own connections and subscriptions.

mod common;

use common::*;
use serde_json::json;

fn hub_config(upstream: &TestHub, extra: &str) -> String {
    format!("[upstreams.up]\nurl = \"ws://{}/graphql\"\n{extra}", upstream.addr)
}

const UP_QUERY: &str = "subscription($topic: String!) { up_events(topic: $topic) { topic payload __typename } }";

fn events(message: &serde_json::Value) -> &serde_json::Value {
    &message["payload"]["data"]["up_events"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_clients_share_one_upstream_connection_and_subscription() {
    let upstream = TestHub::start().await;
    let hub = TestHub::with_config(&hub_config(&upstream, "")).await;
    let mut clients = Vec::new();
    for i in 0..100 {
        let mut client = Client::ready(&hub, TRANSPORT_WS).await;
        client.subscribe(&format!("c{i}"), UP_QUERY, json!({"topic": "prices"})).await;
        clients.push(client);
    }
    hub.wait_metric("subhub_subscriptions", 100.0).await;
    upstream.wait_metric("subhub_subscriptions", 1.0).await;
    assert_eq!(upstream.metric("subhub_connections").await, 1.0, "one upstream connection for 100 clients");
    assert_eq!(hub.metric("subhub_upstream_connections{upstream=\"up\"}").await, 1.0);
    assert_eq!(hub.metric("subhub_sources_open{kind=\"upstream\",upstream=\"up\"}").await, 1.0);
    for n in 0..5 {
        upstream.publish("prices", json!({"n": n}).to_string()).await;
    }
    for client in &mut clients {
        for n in 0..5 {
            let message = client.recv_json().await;
            assert_eq!(events(&message)["payload"]["n"], n, "{message}");
            assert_eq!(events(&message)["__typename"], "up_Event");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operations_share_one_connection_and_leaving_closes_everything() {
    let upstream = TestHub::start().await;
    let hub = TestHub::with_config(&hub_config(&upstream, "")).await;
    let mut polite = Client::ready(&hub, TRANSPORT_WS).await;
    polite.subscribe("a", UP_QUERY, json!({"topic": "one"})).await;
    let mut rude = Client::ready(&hub, TRANSPORT_WS).await;
    rude.subscribe("b", "subscription { up_events(topic: \"two\") { id } }", json!({})).await;
    hub.wait_metric("subhub_subscriptions", 2.0).await;
    upstream.wait_metric("subhub_subscriptions", 2.0).await;
    assert_eq!(upstream.metric("subhub_connections").await, 1.0);

    polite.complete("a").await;
    drop(rude);
    // The upstream sees its subscriptions completed and the connection closed, with no event.
    let closed = wait_for(std::time::Duration::from_secs(1), || async {
        upstream.metric("subhub_subscriptions").await == 0.0 && upstream.metric("subhub_connections").await == 0.0
    })
    .await;
    assert!(closed, "upstream still holds {:?}", upstream.metrics().await);
    hub.wait_metric("subhub_upstream_connections", 0.0).await;
    hub.wait_metric("subhub_sources_open", 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_restart_keeps_clients_subscribed() {
    let upstream = TestHub::start().await;
    let addr = upstream.addr;
    let hub = TestHub::with_config(&hub_config(&upstream, "")).await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", UP_QUERY, json!({"topic": "t"})).await;
    upstream.wait_metric("subhub_subscriptions", 1.0).await;
    upstream.publish("t", "1").await;
    assert_eq!(events(&client.recv_json().await)["payload"], 1);

    upstream.shutdown().await;
    let upstream = TestHub::with_config(&format!("listen = \"{addr}\"\n")).await;
    // The hub reconnects and re-subscribes by itself; the client never noticed.
    upstream.wait_metric("subhub_subscriptions", 1.0).await;
    upstream.publish("t", "2").await;
    let message = client.recv_json().await;
    assert_eq!(message["type"], "next", "{message}");
    assert_eq!(events(&message)["payload"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_credentials_separate_connections_and_refusals_reach_only_their_client() {
    use std::time::{SystemTime, UNIX_EPOCH};
    const SECRET: &str = "upstream-secret-0123";
    let upstream = TestHub::with_config(&format!("[auth]\nhs256_secret = \"{SECRET}\"\n")).await;
    let hub = TestHub::with_config(&hub_config(
        &upstream,
        "forward_init = [\"authorization\"]\nsdl = \"tests/fixtures/builtin.graphql\"\n",
    ))
    .await;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let token = |sub: &str| subhub::auth::sign_hs256(SECRET.as_bytes(), &json!({"sub": sub, "exp": now + 600}));
    let mut clients = Vec::new();
    for credentials in
        [format!("Bearer {}", token("ada")), format!("Bearer {}", token("bob")), "Bearer forged".to_owned()]
    {
        let mut client = Client::connect(&hub, TRANSPORT_WS).await;
        client.send(json!({"type": "connection_init", "payload": {"authorization": credentials}})).await;
        assert_eq!(client.recv_json().await["type"], "connection_ack");
        client.subscribe("1", UP_QUERY, json!({"topic": "t"})).await;
        clients.push(client);
    }
    // The forged token's connection is refused with 4403: its client gets an `error`…
    let refused = clients[2].recv_json().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert!(refused["payload"][0]["message"].as_str().unwrap_or_default().contains("rejected"), "{refused}");
    // …while the other two have one connection each, with their own subjects upstream.
    upstream.wait_metric("subhub_subscriptions", 2.0).await;
    assert_eq!(upstream.metric("subhub_connections").await, 2.0);
    assert_eq!(upstream.metric("subhub_executions").await, 2.0, "one execution per forwarded subject");
    upstream.http().post(upstream.url("/publish/t")).bearer_auth(token("ada")).body("7").send().await.expect("publish");
    for client in &mut clients[..2] {
        assert_eq!(events(&client.recv_json().await)["payload"], 7);
    }
}
