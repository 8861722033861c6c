//! Every row of DESIGN §8, for graphql-transport-ws and, where that protocol defines an answer,
//! the legacy graphql-ws. Bad input gets a precise answer and harms no other client.

mod common;

use common::*;
use serde_json::json;

const BAD_REQUEST: u16 = 4400;

#[tokio::test]
async fn invalid_json_and_unknown_messages_close_4400() {
    let hub = TestHub::start().await;
    for text in ["{not json", r#"{"type":"bogus"}"#, r#"{"id":"1"}"#, r#"{"type":"next","id":"1","payload":{}}"#] {
        let mut client = Client::ready(&hub, TRANSPORT_WS).await;
        client.send_text(text.to_owned()).await;
        let (code, reason) = client.recv_close().await;
        assert_eq!(code, BAD_REQUEST, "{text}");
        assert!(reason.len() <= 123 && !reason.is_empty(), "{reason}");
    }
    // Before connection_init too.
    let mut client = Client::connect(&hub, TRANSPORT_WS).await;
    client.send_text(r#"{"type":"subscribe","id":"1","payload":{"query":7}}"#.to_owned()).await;
    assert_eq!(client.recv_close().await.0, BAD_REQUEST);
}

#[tokio::test]
async fn legacy_answers_bad_messages_without_closing() {
    let hub = TestHub::start().await;
    let mut client = Client::ready(&hub, LEGACY_WS).await;
    client.send_text("{not json".to_owned()).await;
    let reply = client.recv_json().await;
    assert_eq!(reply["type"], "connection_error");
    client.send_text(r#"{"type":"bogus","id":"7"}"#.to_owned()).await;
    let reply = client.recv_json().await;
    assert_eq!((reply["type"].as_str(), reply["id"].as_str()), (Some("error"), Some("7")));
    // Still serving.
    client.subscribe("1", EVENTS_QUERY, json!({"topic": "t"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    hub.publish("t", "\"hi\"").await;
    let data = client.recv_json().await;
    assert_eq!(data["type"], "data");
    assert_eq!(data["payload"]["data"]["events"]["payload"], "hi");
}

#[tokio::test]
async fn frames_over_the_limit_close_1009_on_both_protocols() {
    let hub = TestHub::with_config("[limits]\nmax_message_bytes = 1024\n").await;
    for protocol in [TRANSPORT_WS, LEGACY_WS] {
        let mut client = Client::ready(&hub, protocol).await;
        let big = json!({"type": "connection_init", "payload": {"x": "y".repeat(2000)}}).to_string();
        client.send_text(big).await;
        assert_eq!(client.recv_close().await.0, 1009, "{protocol}");
    }
    assert_eq!(hub.metric("subhub_refused_total{reason=\"limit\"}").await, 2.0);
}

#[tokio::test]
async fn subscribe_before_ack_closes_4401_and_legacy_gets_an_error() {
    let hub = TestHub::start().await;
    let mut client = Client::connect(&hub, TRANSPORT_WS).await;
    client.subscribe("1", EVENTS_QUERY, json!({"topic": "t"})).await;
    assert_eq!(client.recv_close().await, (4401, "Unauthorized".to_owned()));

    let mut legacy = Client::connect(&hub, LEGACY_WS).await;
    legacy.subscribe("1", EVENTS_QUERY, json!({"topic": "t"})).await;
    let reply = legacy.recv_json().await;
    assert_eq!((reply["type"].as_str(), reply["id"].as_str()), (Some("error"), Some("1")));
}

#[tokio::test]
async fn no_connection_init_in_time_closes_4408() {
    let hub = TestHub::with_config("[limits]\nconnection_init_timeout = \"200ms\"\n").await;
    // Acknowledged before the others connect, so it has lived longer than their timeout when
    // they are closed.
    let mut acknowledged = Client::ready(&hub, TRANSPORT_WS).await;
    for protocol in [TRANSPORT_WS, LEGACY_WS] {
        let mut client = Client::connect(&hub, protocol).await;
        let started = std::time::Instant::now();
        assert_eq!(client.recv_close().await.0, 4408, "{protocol}");
        assert!(started.elapsed() >= std::time::Duration::from_millis(150));
    }
    // The acknowledged client is not timed out.
    assert!(acknowledged.until_pong().await.is_empty());
}

#[tokio::test]
async fn a_duplicate_active_id_closes_4409_and_legacy_replaces_it() {
    let hub = TestHub::start().await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("dup", EVENTS_QUERY, json!({"topic": "t"})).await;
    client.subscribe("dup", EVENTS_QUERY, json!({"topic": "t"})).await;
    assert_eq!(client.recv_close().await, (4409, "Subscriber for dup already exists".to_owned()));

    // An id may be reused once completed.
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", EVENTS_QUERY, json!({"topic": "t"})).await;
    client.complete("1").await;
    client.subscribe("1", EVENTS_QUERY, json!({"topic": "u"})).await;
    // Messages are handled in order: once the pong is back, the new subscription is attached.
    assert!(client.until_pong().await.is_empty());
    assert_eq!(hub.metric("subhub_subscriptions").await, 1.0);
    hub.publish("u", "1").await;
    assert_eq!(client.recv_json().await["payload"]["data"]["events"]["topic"], "u");
    drop(client);
    hub.wait_metric("subhub_connections", 0.0).await;
    hub.wait_metric("subhub_sources_open", 0.0).await;

    let mut legacy = Client::ready(&hub, LEGACY_WS).await;
    legacy.subscribe("1", EVENTS_QUERY, json!({"topic": "a"})).await;
    legacy.subscribe("1", EVENTS_QUERY, json!({"topic": "b"})).await;
    // graphql-ws has no ping: a query is the barrier that shows both starts were handled.
    legacy.subscribe("q", "{ brokers { name } }", json!({})).await;
    assert_eq!(legacy.recv_json().await["type"], "data");
    assert_eq!(legacy.recv_json().await, json!({"id": "q", "type": "complete"}));
    // The replaced subscription's source closed; only topic b is open.
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    hub.wait_metric("subhub_sources_open", 1.0).await;
    hub.publish("a", "1").await;
    hub.publish("b", "2").await;
    assert_eq!(legacy.recv_json().await["payload"]["data"]["events"]["topic"], "b");
}

#[tokio::test]
async fn a_second_connection_init_closes_4429() {
    let hub = TestHub::start().await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.send(json!({"type": "connection_init"})).await;
    assert_eq!(client.recv_close().await.0, 4429);

    let mut legacy = Client::ready(&hub, LEGACY_WS).await;
    legacy.send(json!({"type": "connection_init"})).await;
    assert_eq!(legacy.recv_json().await["type"], "connection_error");
}

#[tokio::test]
async fn validation_errors_and_unknown_brokers_get_error_without_complete() {
    let hub = TestHub::start().await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    let cases = [
        ("1", "subscription { nope }", json!({})),
        ("2", "subscription {", json!({})),
        ("3", "subscription { events(topic: \"t\", broker: \"missing\") { id } }", json!({})),
        ("4", "subscription { events(topic: \"\") { id } }", json!({})),
        ("5", EVENTS_QUERY, json!({})),
    ];
    for (id, query, variables) in &cases {
        client.subscribe(id, query, variables.clone()).await;
        let reply = client.recv_json().await;
        assert_eq!(reply["type"], "error", "{query}: {reply}");
        assert_eq!(reply["id"], *id);
        let message = reply["payload"][0]["message"].as_str().unwrap_or_default().to_owned();
        assert!(!message.is_empty(), "{reply}");
        if *id == "3" {
            assert!(message.contains("unknown broker `missing`"), "{message}");
        }
    }
    // No `complete` follows an `error`, and the connection still serves.
    assert!(client.until_pong().await.is_empty());
    client.subscribe("1", EVENTS_QUERY, json!({"topic": "t"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    hub.wait_metric("subhub_executions", 1.0).await;
    hub.publish("t", "{}").await;
    assert_eq!(client.recv_json().await["type"], "next");

    let mut legacy = Client::ready(&hub, LEGACY_WS).await;
    legacy.subscribe("9", "subscription { nope }", json!({})).await;
    let reply = legacy.recv_json().await;
    assert_eq!((reply["type"].as_str(), reply["id"].as_str()), (Some("error"), Some("9")));
}

#[tokio::test]
async fn a_missing_subprotocol_closes_4406_and_an_unknown_one_is_not_selected() {
    let hub = TestHub::start().await;
    let mut client = Client::connect_url(&hub.ws_url(), None).await;
    assert_eq!(client.recv_close().await, (4406, "Subprotocol not acceptable".to_owned()));
    // The hub selects no sub-protocol it does not speak, so a client that offered only others
    // refuses the handshake itself (as browsers do); a lenient client gets 4406 as above.
    assert!(Client::try_connect_url(&hub.ws_url(), Some("mqtt")).await.is_err());
    let both = Client::connect_url(&hub.ws_url(), Some("mqtt, graphql-ws")).await;
    assert_eq!(both.protocol.as_deref(), Some(LEGACY_WS));
}

#[tokio::test]
async fn pings_queries_and_mutations_work_over_the_socket() {
    let hub = TestHub::start().await;
    let mut client = Client::connect(&hub, TRANSPORT_WS).await;
    // Ping is answered even before the ack, with its payload.
    client.send(json!({"type": "ping", "payload": {"k": 1}})).await;
    assert_eq!(client.recv_json().await, json!({"type": "pong", "payload": {"k": 1}}));
    client.init().await;

    let mut watcher = Client::ready(&hub, TRANSPORT_WS).await;
    watcher.subscribe("w", EVENTS_QUERY, json!({"topic": "orders"})).await;
    hub.wait_metric("subhub_sources_open", 1.0).await;

    client.subscribe("q", "{ brokers { name kind connected } }", json!({})).await;
    let next = client.recv_json().await;
    assert_eq!(next["type"], "next");
    assert_eq!(next["payload"]["data"]["brokers"][0]["name"], "local");
    assert_eq!(client.recv_json().await, json!({"id": "q", "type": "complete"}));

    let mutation = "mutation { publish(topic: \"orders\", payload: {total: 3}, key: \"k1\") { ok id } }";
    client.subscribe("m", mutation, json!({})).await;
    let next = client.recv_json().await;
    assert_eq!(next["payload"]["data"]["publish"]["ok"], true);
    assert_eq!(client.recv_json().await["type"], "complete");
    let event = watcher.recv_json().await;
    assert_eq!(event["payload"]["data"]["events"]["payload"], json!({"total": 3}));
    assert_eq!(hub.metric("subhub_publish_total").await, 1.0);
}

#[tokio::test]
async fn shutdown_completes_every_subscription_and_closes_1001() {
    let hub = TestHub::start().await;
    let mut modern = Client::ready(&hub, TRANSPORT_WS).await;
    modern.subscribe("a", EVENTS_QUERY, json!({"topic": "t"})).await;
    modern.subscribe("b", EVENTS_QUERY, json!({"topic": "u"})).await;
    let mut legacy = Client::ready(&hub, LEGACY_WS).await;
    legacy.subscribe("c", EVENTS_QUERY, json!({"topic": "t"})).await;
    hub.wait_metric("subhub_subscriptions", 3.0).await;

    hub.shutdown().await;
    for (client, ids) in [(&mut modern, vec!["a", "b"]), (&mut legacy, vec!["c"])] {
        let mut completed = Vec::new();
        let close = loop {
            match client.recv().await {
                Received::Json(m) if m["type"] == "complete" => {
                    completed.push(m["id"].as_str().unwrap_or_default().to_owned())
                }
                Received::Json(m) if m["type"] == "ka" => {}
                Received::Closed(code, _) => break code,
                other => panic!("unexpected {other:?}"),
            }
        };
        completed.sort();
        assert_eq!(completed, ids);
        assert_eq!(close, 1001);
    }
}

#[tokio::test]
async fn bad_clients_leave_good_ones_untouched() {
    let hub = TestHub::with_config("[limits]\nmax_message_bytes = 4096\n").await;
    let mut good = Client::ready(&hub, TRANSPORT_WS).await;
    good.subscribe("g", EVENTS_QUERY, json!({"topic": "t"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    for text in ["{bad".to_owned(), "x".repeat(10_000), r#"{"type":"connection_init"}"#.repeat(2)] {
        let mut bad = Client::ready(&hub, TRANSPORT_WS).await;
        bad.send_text(text).await;
        let _ = bad.recv_close().await;
    }
    hub.publish("t", "1").await;
    assert_eq!(good.recv_json().await["payload"]["data"]["events"]["payload"], 1);
}

#[tokio::test]
async fn keepalive_pings_and_legacy_ka() {
    let hub = TestHub::with_config("[limits]\nkeepalive = \"250ms\"\n").await;
    let mut legacy = Client::ready(&hub, LEGACY_WS).await;
    let mut modern = Client::ready(&hub, TRANSPORT_WS).await;
    // A client that never reads never answers the hub's pings, and is dropped.
    let _silent = Client::ready(&hub, TRANSPORT_WS).await;
    hub.wait_metric("subhub_connections", 3.0).await;
    // A client that keeps reading answers pings (tungstenite does as it reads) and stays.
    let reading = tokio::spawn(async move { modern.recv().await });
    // graphql-ws clients get `ka` on every interval, and stay too.
    for _ in 0..5 {
        assert_eq!(legacy.recv_json().await["type"], "ka");
    }
    hub.wait_metric("subhub_connections", 2.0).await;
    assert!(!reading.is_finished(), "the reading client was dropped: {:?}", reading.await);
    reading.abort();
}

#[tokio::test]
async fn a_client_close_gets_the_close_reply() {
    use futures_util::StreamExt;
    let hub = TestHub::start().await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.ws.close(None).await.expect("send close");
    // A completed handshake ends the stream cleanly; a dropped socket would be an error.
    match tokio::time::timeout(PATIENCE, client.ws.next()).await.expect("reply in time") {
        None | Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => {}
        other => panic!("expected the close reply, got {other:?}"),
    }
    hub.wait_metric("subhub_connections", 0.0).await;
}

#[tokio::test]
async fn connection_and_operation_limits_answer_clearly() {
    let hub = TestHub::with_config("[limits]\nmax_connections = 2\nmax_subscriptions_per_connection = 2\n").await;
    let mut first = Client::ready(&hub, TRANSPORT_WS).await;
    let _second = Client::ready(&hub, TRANSPORT_WS).await;
    hub.wait_metric("subhub_connections", 2.0).await;
    // A third connection is refused before the upgrade, with a JSON reason.
    match Client::try_connect_url(&hub.ws_url(), Some(TRANSPORT_WS)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!("expected HTTP 503, got {:?}", other.map(|_| "a connection")),
    }
    // A third operation on one connection gets an `error` for its id; the others go on.
    first.subscribe("1", EVENTS_QUERY, json!({"topic": "a"})).await;
    first.subscribe("2", EVENTS_QUERY, json!({"topic": "b"})).await;
    first.subscribe("3", EVENTS_QUERY, json!({"topic": "c"})).await;
    let reply = first.recv_json().await;
    assert_eq!((reply["type"].as_str(), reply["id"].as_str()), (Some("error"), Some("3")));
    assert!(
        reply["payload"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("runs 2 operations, its limit (limits.max_subscriptions_per_connection)"),
        "{reply}"
    );
    hub.wait_metric("subhub_subscriptions", 2.0).await;
    hub.publish("b", "1").await;
    assert_eq!(first.recv_json().await["id"], "2");
}
