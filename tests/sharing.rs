//! The hub's promise, observed from outside: one source per topic, one execution per distinct
//! operation, everything closed when the last subscriber leaves.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_clients_share_one_source_and_one_execution_and_get_every_event_once_in_order() {
    let hub = TestHub::start().await;
    let mut clients = Vec::new();
    for i in 0..100 {
        let mut client = Client::ready(&hub, TRANSPORT_WS).await;
        client.subscribe(&format!("s{i}"), EVENTS_QUERY, json!({"topic": "prices"})).await;
        clients.push(client);
    }
    hub.wait_metric("subhub_subscriptions", 100.0).await;
    hub.wait_metric("subhub_sources_open", 1.0).await;
    assert_eq!(hub.metric("subhub_executions").await, 1.0);

    for n in 0..20 {
        hub.publish("prices", json!({"n": n}).to_string()).await;
    }
    // A last marker: had anything arrived twice, it would stand before the marker.
    hub.publish("prices", json!({"n": "end"}).to_string()).await;
    for (i, client) in clients.iter_mut().enumerate() {
        for n in 0..20 {
            let message = client.recv_json().await;
            assert_eq!(message["type"], "next", "client {i}: {message}");
            assert_eq!(message["id"], format!("s{i}"));
            assert_eq!(message["payload"]["data"]["events"]["payload"]["n"], n, "client {i} out of order: {message}");
            assert_eq!(message["payload"]["data"]["events"]["topic"], "prices");
        }
        let end = client.recv_json().await;
        assert_eq!(end["payload"]["data"]["events"]["payload"]["n"], "end", "client {i}: {end}");
    }
    assert_eq!(hub.metric("subhub_executions").await, 1.0);
    assert_eq!(hub.metric("subhub_events_received_total").await, 21.0);
    hub.wait_metric("subhub_deliveries_total", 2100.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_operations_on_one_topic_share_one_source_with_three_executions() {
    let hub = TestHub::start().await;
    let documents = [
        "subscription { events(topic: \"t\") { id } }",
        "subscription { events(topic: \"t\") { payload } }",
        "subscription Named { events(topic: \"t\") { id payload topic broker timestamp } }",
    ];
    let mut clients = Vec::new();
    for (i, document) in documents.iter().enumerate() {
        for j in 0..3 {
            let mut client = Client::ready(&hub, TRANSPORT_WS).await;
            client.subscribe(&format!("{i}-{j}"), document, json!({})).await;
            clients.push((i, client));
        }
    }
    hub.wait_metric("subhub_subscriptions", 9.0).await;
    hub.wait_metric("subhub_sources_open", 1.0).await;
    assert_eq!(hub.metric("subhub_executions").await, 3.0);
    hub.publish("t", r#"{"v":1}"#).await;
    for (i, client) in &mut clients {
        let events = &client.recv_json().await["payload"]["data"]["events"];
        match i {
            0 => assert_eq!(events["id"], "1"),
            1 => assert_eq!(events["payload"]["v"], 1),
            _ => assert_eq!(events["broker"], "local"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_in_another_order_share_the_execution() {
    let hub = TestHub::start().await;
    let query = "subscription($topic: String!, $broker: String) { events(topic: $topic, broker: $broker) { id } }";
    let mut a = Client::ready(&hub, TRANSPORT_WS).await;
    let mut b = Client::ready(&hub, TRANSPORT_WS).await;
    a.send_text(format!(
        r#"{{"type":"subscribe","id":"1","payload":{{"query":{},"variables":{{"topic":"x","broker":"local"}}}}}}"#,
        json!(query)
    ))
    .await;
    b.send_text(format!(
        r#"{{"type":"subscribe","id":"1","payload":{{"query":{},"variables":{{"broker":"local","topic":"x"}}}}}}"#,
        json!(query)
    ))
    .await;
    hub.wait_metric("subhub_subscriptions", 2.0).await;
    assert_eq!(hub.metric("subhub_executions").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everyone_leaving_closes_everything_without_another_event() {
    let hub = TestHub::start().await;
    let mut polite = Vec::new();
    let mut rude = Vec::new();
    for i in 0..20 {
        for protocol in [TRANSPORT_WS, LEGACY_WS] {
            let mut client = Client::ready(&hub, protocol).await;
            // Two topics and two operations, so several sources and executions close.
            let topic = if i % 2 == 0 { "even" } else { "odd" };
            client.subscribe("a", EVENTS_QUERY, json!({"topic": topic})).await;
            client.subscribe("b", "subscription { events(topic: \"other\") { id } }", json!({})).await;
            if i < 10 {
                polite.push(client)
            } else {
                rude.push(client)
            }
        }
    }
    hub.wait_metric("subhub_subscriptions", 80.0).await;
    assert_eq!(hub.metric("subhub_sources_open").await, 3.0);
    assert_eq!(hub.metric("subhub_executions").await, 3.0);
    assert_eq!(hub.metric("subhub_connections").await, 40.0);

    let started = std::time::Instant::now();
    // Half leave politely: `complete` every subscription, then close the socket properly.
    for client in &mut polite {
        client.complete("a").await;
        client.complete("b").await;
        client.ws.close(None).await.expect("close");
    }
    // The other half just drop their sockets.
    drop(rude);
    let all_closed = wait_for(std::time::Duration::from_secs(1), || async {
        let m = hub.metrics().await;
        let sum = |name: &str| m.iter().filter(|(k, _)| k.starts_with(name)).map(|(_, v)| v).sum::<f64>();
        [
            "subhub_sources_open",
            "subhub_executions",
            "subhub_subscriptions",
            "subhub_connections",
            "subhub_queued_messages",
        ]
        .iter()
        .all(|name| sum(name) == 0.0)
    })
    .await;
    assert!(all_closed, "not all closed within one second: {:?}", hub.metrics().await);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert!(hub.hub.sources.is_empty());
    assert!(hub.hub.executions.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_lingers_when_configured_then_closes() {
    let hub = TestHub::with_config("[limits]\nlinger = \"300ms\"\n").await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", EVENTS_QUERY, json!({"topic": "t"})).await;
    hub.wait_metric("subhub_sources_open", 1.0).await;
    client.complete("1").await;
    hub.wait_metric("subhub_executions", 0.0).await;
    // Resubscribing inside the linger window reuses the open source.
    client.subscribe("2", EVENTS_QUERY, json!({"topic": "t"})).await;
    hub.wait_metric("subhub_executions", 1.0).await;
    assert_eq!(hub.metric("subhub_sources_open").await, 1.0);
    hub.publish("t", "1").await;
    assert_eq!(client.recv_json().await["payload"]["data"]["events"]["payload"], 1);
    client.complete("2").await;
    hub.wait_metric("subhub_sources_open", 0.0).await;
}
