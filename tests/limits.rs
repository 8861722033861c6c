//! `[limits]` (DESIGN §14): each limit hit by a real client, with the exact answer it gets and
//! the metric that counts it; the connection that hit it stays up.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn message(error: &Value) -> &str {
    error["payload"][0]["message"].as_str().unwrap_or_default()
}

/// Subscribes and expects an `error` for that id whose message names `limit`.
async fn refused(client: &mut Client, id: &str, query: &str, limit: &str) {
    client.subscribe(id, query, json!({})).await;
    let error = client.recv_json().await;
    assert_eq!((error["type"].as_str(), error["id"].as_str()), (Some("error"), Some(id)), "{error}");
    assert!(message(&error).contains(limit), "{error}");
}

#[tokio::test]
async fn query_cost_limits_answer_an_error_naming_the_limit() {
    let hub = TestHub::with_config("[limits]\nmax_query_depth = 4\nmax_query_complexity = 20\nmax_aliases = 3\n").await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    // A thousand aliases of `payload` made every event a thousand copies of itself.
    let aliases: String = (0..1000).map(|n| format!("p{n}: payload ")).collect();
    refused(
        &mut client,
        "aliases",
        &format!("subscription {{ events(topic: \"t\") {{ {aliases} }} }}"),
        "has 1000 aliases; the limit is 3 (limits.max_aliases)",
    )
    .await;
    let spread = "subscription { events(topic: \"t\") { ...A ...A ...A ...A ...A } } fragment A on Event { id topic key payload }";
    refused(&mut client, "complexity", spread, "selects 21 fields; the limit is 20 (limits.max_query_complexity)")
        .await;
    refused(
        &mut client,
        "depth",
        "{ __schema { types { fields { type { ofType { name } } } } } }",
        "limits.max_query_depth",
    )
    .await;
    assert_eq!(hub.metric("subhub_refused_total{reason=\"limit\"}").await, 3.0);
    // Within the limits, on the same connection.
    client.subscribe("ok", "subscription { events(topic: \"t\") { a: id b: topic c: payload } }", json!({})).await;
    assert!(client.until_pong().await.is_empty());
    hub.publish("t", "1").await;
    assert_eq!(client.recv_json().await["payload"]["data"]["events"]["c"], 1);

    // Over HTTP: 400 naming the limit, whatever the media type.
    let query = format!("{{ brokers {{ {} }} }}", (0..4).map(|n| format!("n{n}: name ")).collect::<String>());
    let response = hub.http().post(hub.url("/graphql")).json(&json!({"query": query})).send().await.expect("post");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("json");
    assert!(body["errors"][0]["message"].as_str().unwrap_or_default().contains("limits.max_aliases"), "{body}");
    assert_eq!(hub.metric("subhub_refused_total{reason=\"limit\"}").await, 4.0);
}

/// GraphiQL and codegen send graphql-js's full introspection query: the defaults let it through.
#[tokio::test]
async fn the_default_limits_admit_the_full_introspection_query() {
    let hub = TestHub::start().await;
    let query = include_str!("fixtures/introspection.graphql");
    let response = hub.http().post(hub.url("/graphql")).json(&json!({"query": query})).send().await.expect("post");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert!(body["data"]["__schema"]["types"].as_array().is_some_and(|types| !types.is_empty()), "{body}");
}

/// A client that subscribes with the same large document again and again costs one parse: the
/// document cache counts one miss and a hit for every later use.
#[tokio::test]
async fn a_document_is_parsed_once_however_often_it_is_sent() {
    let hub = TestHub::start().await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    // Nearly 1 MiB, mostly a comment: large to parse, cheap to run.
    let padding = format!("# {}\n", "x".repeat(1000 * 1000));
    let query = format!("{padding}subscription {{ events(topic: \"t\") {{ id }} }}");
    for round in 0..20 {
        client.send(json!({"type": "subscribe", "id": "1", "payload": {"query": query}})).await;
        client.complete("1").await;
        assert!(client.until_pong().await.is_empty(), "round {round}");
    }
    assert_eq!(hub.metric("subhub_document_cache_total{result=\"miss\"}").await, 1.0);
    assert_eq!(hub.metric("subhub_document_cache_total{result=\"hit\"}").await, 19.0);
}
