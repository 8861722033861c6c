//! GraphQL over HTTP, publishing over HTTP, and the operations endpoints.

mod common;

use common::*;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

async fn post(hub: &TestHub, accept: Option<&str>, body: &str) -> (StatusCode, String, Value) {
    let mut request =
        hub.http().post(hub.url("/graphql")).header(CONTENT_TYPE, "application/json").body(body.to_owned());
    if let Some(accept) = accept {
        request = request.header(ACCEPT, accept);
    }
    let response = request.send().await.expect("post");
    let status = response.status();
    let content_type =
        response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (status, content_type, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn queries_negotiate_the_response_type() {
    let hub = TestHub::start().await;
    let query = r#"{"query":"{ brokers { name kind connected } }"}"#;
    let (status, content_type, body) = post(&hub, Some(GRAPHQL_RESPONSE), query).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with(GRAPHQL_RESPONSE), "{content_type}");
    assert_eq!(body["data"]["brokers"], json!([{"name": "local", "kind": "memory", "connected": true}]));
    for accept in [Some("application/json"), Some("*/*"), None] {
        let (status, content_type, _) = post(&hub, accept, query).await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("application/json"), "{accept:?}: {content_type}");
    }
    let (status, _, _) = post(&hub, Some("text/html"), query).await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
}

#[tokio::test]
async fn request_errors_are_4xx_without_data_under_graphql_response_json() {
    let hub = TestHub::start().await;
    // Not a well-formed request: 400 whatever the media type.
    for body in [
        r#"{ "not json"#,
        r#"{"qeury":"{ brokers { name } }"}"#,
        r#"{"query":"{ brokers { name } }","variables":"x"}"#,
        "[]",
    ] {
        for accept in [GRAPHQL_RESPONSE, "application/json"] {
            let (status, _, reply) = post(&hub, Some(accept), body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(reply.get("data").is_none() && reply["errors"][0]["message"].is_string(), "{body}: {reply}");
        }
    }
    // A document that does not parse or validate: 400 without data, or 200 for legacy clients.
    for body in [r#"{"query":"{"}"#, r#"{"query":"{ nope }"}"#] {
        let (status, _, reply) = post(&hub, Some(GRAPHQL_RESPONSE), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(reply.get("data").is_none() && reply["errors"][0]["message"].is_string(), "{body}: {reply}");
        let (status, _, reply) = post(&hub, Some("application/json"), body).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(reply["errors"].is_array(), "{body}: {reply}");
    }
    let response = hub.http().post(hub.url("/graphql")).body("{}").send().await.expect("post");
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn get_runs_queries_and_refuses_mutations_with_405() {
    let hub = TestHub::start().await;
    let response =
        hub.http().get(hub.url("/graphql")).query(&[("query", "{ brokers { name } }")]).send().await.expect("get");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.expect("json")["data"]["brokers"][0]["name"], "local");
    let response = hub
        .http()
        .get(hub.url("/graphql"))
        .query(&[("query", "mutation { publish(topic: \"t\", payload: 1) { ok } }")])
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers().get("allow").and_then(|v| v.to_str().ok()), Some("POST"));
    let response = hub
        .http()
        .get(hub.url("/graphql"))
        .query(&[("query", "subscription { events(topic: \"t\") { id } }")])
        .header(ACCEPT, GRAPHQL_RESPONSE)
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn publish_over_http_reaches_subscribers_whatever_the_body() {
    let hub = TestHub::start().await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", "subscription { events(topic: \"orders.1\") { id key payload headers } }", json!({})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;

    let reply = hub.publish("orders.1", r#"{"status":"paid"}"#).await;
    assert_eq!(reply["ok"], true);
    let events = &client.recv_json().await["payload"]["data"]["events"];
    assert_eq!(events["payload"], json!({"status": "paid"}));
    assert_eq!(events["id"], reply["id"]);

    // Not JSON: delivered as a string. Not UTF-8: delivered base64, marked in headers.
    hub.publish("orders.1", "plain words").await;
    assert_eq!(client.recv_json().await["payload"]["data"]["events"]["payload"], "plain words");
    hub.publish("orders.1", vec![0xffu8, 0xfe, 0x00]).await;
    let events = &client.recv_json().await["payload"]["data"]["events"];
    assert_eq!(events["payload"], "//4A");
    assert_eq!(events["headers"]["encoding"], "base64");

    let response = hub.http().post(hub.url("/publish/orders.1?key=k9")).body("1").send().await.expect("publish");
    assert!(response.status().is_success());
    assert_eq!(client.recv_json().await["payload"]["data"]["events"]["key"], "k9");
    assert_eq!(hub.metric("subhub_publish_total").await, 4.0);
}

#[tokio::test]
async fn publish_errors_have_statuses_and_json_bodies() {
    let hub = TestHub::with_config("[limits]\nmax_message_bytes = 100\n").await;
    let cases = [
        ("/publish/t?broker=nope", "1".to_owned(), StatusCode::NOT_FOUND, "unknown broker `nope`"),
        ("/publish/t", "x".repeat(101), StatusCode::PAYLOAD_TOO_LARGE, "exceeds the limit"),
        ("/publish/t?color=red", "1".to_owned(), StatusCode::BAD_REQUEST, "unknown query parameter"),
        (&format!("/publish/{}", "t".repeat(300)), "1".to_owned(), StatusCode::BAD_REQUEST, "at most 255 bytes"),
    ];
    for (path, body, status, message) in cases {
        let response = hub.http().post(hub.url(path)).body(body).send().await.expect("publish");
        assert_eq!(response.status(), status, "{path}");
        let reply: Value = response.json().await.expect("json error body");
        let text = reply["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{path}: {text}");
    }
    // The mutation says the same.
    let (_, _, reply) =
        post(&hub, None, r#"{"query":"mutation { publish(topic: \"t\", payload: 1, broker: \"nope\") { ok } }"}"#)
            .await;
    assert!(reply["errors"][0]["message"].as_str().unwrap_or_default().contains("unknown broker `nope`"), "{reply}");
}

#[tokio::test]
async fn health_readiness_metrics_and_graphiql() {
    let hub = TestHub::start().await;
    let get = |path: &'static str| hub.http().get(hub.url(path)).send();
    assert_eq!(get("/healthz").await.expect("healthz").status(), StatusCode::OK);
    let ready = get("/readyz").await.expect("readyz");
    assert_eq!(ready.status(), StatusCode::OK);
    let metrics = get("/metrics").await.expect("metrics").text().await.expect("text");
    for name in [
        "subhub_connections",
        "subhub_subscriptions",
        "subhub_executions",
        "subhub_sources_open",
        "subhub_upstream_connections",
        "subhub_broker_connected",
        "subhub_events_received_total",
        "subhub_deliveries_total",
        "subhub_dropped_total",
        "subhub_publish_total",
    ] {
        assert!(metrics.contains(&format!("# TYPE {name} ")), "{name} missing");
    }
    let graphiql = get("/graphiql").await.expect("graphiql").text().await.expect("html");
    assert!(graphiql.contains("graphiql") && graphiql.contains("/graphql"));
    assert!(get("/").await.expect("index").text().await.expect("html").contains("/graphiql"));
}
