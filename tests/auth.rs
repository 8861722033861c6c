//! `[auth]`: tokens on connection_init (4403 when refused) and on HTTP (401), and the subject as
//! the auth scope that separates executions.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use subhub::auth::sign_hs256;

const SECRET: &str = "test-secret-0123456789";
const CONFIG: &str = "[auth]\nhs256_secret = \"test-secret-0123456789\"\n";

fn token(subject: &str, expires_in: i64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64;
    sign_hs256(SECRET.as_bytes(), &json!({"sub": subject, "exp": now + expires_in}))
}

async fn init_with(hub: &TestHub, protocol: &str, payload: Value) -> Client {
    let mut client = Client::connect(hub, protocol).await;
    client.send(json!({"type": "connection_init", "payload": payload})).await;
    client
}

#[tokio::test]
async fn connection_init_without_a_valid_token_closes_4403() {
    let hub = TestHub::with_config(CONFIG).await;
    let forged = sign_hs256(b"not-the-secret-at-all", &json!({"sub": "eve"}));
    for payload in [
        json!({}),
        json!({"authorization": "Bearer nonsense"}),
        json!({"authorization": format!("Bearer {forged}")}),
        json!({"token": token("ada", -60)}),
    ] {
        let mut client = init_with(&hub, TRANSPORT_WS, payload.clone()).await;
        assert_eq!(client.recv_close().await, (4403, "Forbidden".to_owned()), "{payload}");
    }
    let mut legacy = init_with(&hub, LEGACY_WS, json!({})).await;
    let reply = legacy.recv_json().await;
    assert_eq!(reply["type"], "connection_error");
    assert_eq!(reply["payload"]["message"], "a token is required");
    assert_eq!(legacy.recv_close().await.0, 4403);

    let mut client =
        init_with(&hub, TRANSPORT_WS, json!({"authorization": format!("Bearer {}", token("ada", 60))})).await;
    assert_eq!(client.recv_json().await["type"], "connection_ack");
}

#[tokio::test]
async fn http_requires_a_bearer_token() {
    let hub = TestHub::with_config(CONFIG).await;
    let query = json!({"query": "{ brokers { name } }"});
    let response = hub.http().post(hub.url("/graphql")).json(&query).send().await.expect("post");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    let response =
        hub.http().post(hub.url("/graphql")).bearer_auth(token("ada", 60)).json(&query).send().await.expect("post");
    assert_eq!(response.status(), StatusCode::OK);
    let response = hub.http().post(hub.url("/publish/t")).body("1").send().await.expect("publish");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response =
        hub.http().post(hub.url("/publish/t")).bearer_auth(token("ada", 60)).body("1").send().await.expect("publish");
    assert_eq!(response.status(), StatusCode::OK);
    // Operations endpoints stay open.
    assert_eq!(hub.http().get(hub.url("/healthz")).send().await.expect("healthz").status(), StatusCode::OK);
}

#[tokio::test]
async fn executions_are_shared_per_subject_only() {
    let hub = TestHub::with_config(CONFIG).await;
    let mut clients = Vec::new();
    for subject in ["ada", "ada", "bob"] {
        let mut client = init_with(&hub, TRANSPORT_WS, json!({"token": token(subject, 60)})).await;
        assert_eq!(client.recv_json().await["type"], "connection_ack");
        client.subscribe("1", EVENTS_QUERY, json!({"topic": "t"})).await;
        clients.push(client);
    }
    hub.wait_metric("subhub_subscriptions", 3.0).await;
    assert_eq!(hub.metric("subhub_executions").await, 2.0);
    assert_eq!(hub.metric("subhub_sources_open").await, 1.0);
}

#[tokio::test]
async fn optional_auth_serves_anonymous_clients_but_checks_presented_tokens() {
    let hub = TestHub::with_config(&format!("{CONFIG}required = false\n")).await;
    let mut anonymous = init_with(&hub, TRANSPORT_WS, json!({})).await;
    assert_eq!(anonymous.recv_json().await["type"], "connection_ack");
    let mut bad = init_with(&hub, TRANSPORT_WS, json!({"token": "x.y.z"})).await;
    assert_eq!(bad.recv_close().await.0, 4403);
}
