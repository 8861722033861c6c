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

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys").join(name)
}

/// A token signed with a fixture's private key, naming `kid`.
fn signed(alg: jsonwebtoken::Algorithm, private: &str, kid: Option<&str>, claims: Value) -> String {
    let pem = std::fs::read(fixture(private)).expect("key file");
    let key = match alg {
        jsonwebtoken::Algorithm::RS256 => jsonwebtoken::EncodingKey::from_rsa_pem(&pem),
        _ => jsonwebtoken::EncodingKey::from_ec_pem(&pem),
    }
    .expect("private key");
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

fn now() -> u64 {
    subhub::auth::now()
}

async fn acknowledged(hub: &TestHub, token: &str) -> bool {
    let mut client = init_with(hub, TRANSPORT_WS, json!({"authorization": format!("Bearer {token}")})).await;
    match client.recv().await {
        Received::Json(message) => message["type"] == "connection_ack",
        _ => false,
    }
}

/// RS256 and ES256 tokens from a PEM public key, over WebSocket and HTTP.
#[tokio::test]
async fn public_keys_verify_rsa_and_ec_tokens() {
    for (public, private, alg) in [
        ("rsa.pub.pem", "rsa.key.pem", jsonwebtoken::Algorithm::RS256),
        ("ec.pub.pem", "ec.key.pem", jsonwebtoken::Algorithm::ES256),
    ] {
        let config = format!("[auth]\npublic_key_file = \"{}\"\n", fixture(public).display());
        let hub = TestHub::with_config(&config).await;
        let token = signed(alg, private, None, json!({"sub": "ada", "exp": now() + 60}));
        assert!(acknowledged(&hub, &token).await, "{alg:?}");
        let response = hub.http().post(hub.url("/publish/t")).bearer_auth(&token).body("1").send().await.expect("post");
        assert_eq!(response.status(), StatusCode::OK);
        // An HS256 token signed with the public key as its secret: the confusion attack.
        let confused = sign_hs256(&std::fs::read(fixture(public)).expect("pem"), &json!({"exp": now() + 60}));
        assert!(!acknowledged(&hub, &confused).await, "{alg:?}");
    }
}

/// A JWKS file picks keys by `kid` and is read again when it changes: a key rotated in is
/// accepted without a restart.
#[tokio::test]
async fn the_jwks_file_is_read_again_when_it_changes() {
    let path = std::env::temp_dir().join(format!("subhub-jwks-{}.json", std::process::id()));
    std::fs::copy(fixture("jwks-ec.json"), &path).expect("copy");
    let hub = TestHub::with_config(&format!("[auth]\njwks_file = \"{}\"\n", path.display())).await;
    let ec =
        signed(jsonwebtoken::Algorithm::ES256, "ec.key.pem", Some("ec-1"), json!({"sub": "ada", "exp": now() + 600}));
    let rsa =
        signed(jsonwebtoken::Algorithm::RS256, "rsa.key.pem", Some("rsa-1"), json!({"sub": "ada", "exp": now() + 600}));
    assert!(acknowledged(&hub, &ec).await);
    assert!(!acknowledged(&hub, &rsa).await, "a kid the file does not hold");
    // Rotate: the new file holds only the RSA key.
    let rotated = std::fs::read(fixture("jwks-rsa.json")).expect("read");
    let staging = path.with_extension("new");
    std::fs::write(&staging, rotated).expect("write");
    std::fs::rename(&staging, &path).expect("rename");
    assert!(wait_for(PATIENCE, || acknowledged(&hub, &rsa)).await, "the rotated key was never accepted");
    assert!(!acknowledged(&hub, &ec).await, "the key rotated out is still accepted");
    let _ = std::fs::remove_file(&path);
}

/// A session ends with 4403 `Token expired` when its token expires, as Apollo Router and Hasura
/// end it; the subscription it ran goes with it.
#[tokio::test]
async fn a_session_ends_when_its_token_expires() {
    let hub = TestHub::with_config(CONFIG).await;
    let mut client = init_with(&hub, TRANSPORT_WS, json!({"token": token("ada", 2)})).await;
    assert_eq!(client.recv_json().await["type"], "connection_ack");
    client.subscribe("1", EVENTS_QUERY, json!({"topic": "t"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    assert_eq!(client.recv_close().await, (4403, "Token expired".to_owned()));
    hub.wait_metric("subhub_subscriptions", 0.0).await;
    let mut legacy = init_with(&hub, LEGACY_WS, json!({"token": token("ada", 2)})).await;
    assert_eq!(legacy.recv_json().await["type"], "connection_ack");
    assert_eq!(legacy.recv_close().await, (4403, "Token expired".to_owned()));
}

/// DESIGN §11 holds for every stream, not only WebSocket: an SSE stream ends with a `next`
/// carrying `Token expired` and then `complete`, a multipart stream with an error part and the
/// closing boundary, the dashboard's status stream with the same SSE end; each session is
/// released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stream_ends_when_its_token_expires() {
    use common::streams::{MultipartStream, Part, Sse, SseStream, APOLLO_ACCEPT};
    let hub = TestHub::with_config(CONFIG).await;
    let expiring = token("ada", 2);
    let query = "subscription { events(topic: \"expiry\") { payload } }";
    let mut sse = SseStream::open(
        hub.http()
            .post(hub.url("/graphql"))
            .bearer_auth(&expiring)
            .header("accept", "text/event-stream")
            .json(&json!({"query": query})),
    )
    .await;
    let response = hub
        .http()
        .post(hub.url("/graphql"))
        .bearer_auth(&expiring)
        .header("accept", APOLLO_ACCEPT)
        .json(&json!({"query": query}))
        .send()
        .await
        .expect("multipart");
    let mut multipart = MultipartStream::from_response(response);
    let mut status = SseStream::open(hub.http().get(hub.url("/status")).bearer_auth(&expiring)).await;
    hub.wait_metric("subhub_subscriptions", 2.0).await;
    hub.wait_metric("subhub_connections", 3.0).await;

    let (event, _, data) = sse.event().await;
    assert_eq!((event.as_str(), data.as_str()), ("next", r#"{"errors":[{"message":"Token expired"}]}"#));
    assert_eq!(sse.event().await.0, "complete");
    assert_eq!(sse.next().await, None, "the stream ends");
    assert_eq!(
        multipart.payload().await,
        Part::Json(json!({"payload": null, "errors": [{"message": "Token expired"}]}))
    );
    assert_eq!(multipart.payload().await, Part::End);
    loop {
        match status.next().await.expect("the status stream ends after its expiry") {
            Sse::Event { event, data, .. } if event == "next" => {
                assert_eq!(data, r#"{"errors":[{"message":"Token expired"}]}"#);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(status.event().await.0, "complete");
    assert_eq!(status.next().await, None);
    hub.wait_metric("subhub_connections", 0.0).await;
    hub.wait_metric("subhub_subscriptions", 0.0).await;
}

/// Under `required = false`, an anonymous client never shares an execution with a token, not
/// even one without `sub` (which once ran in the anonymous scope).
#[tokio::test]
async fn anonymous_clients_never_share_with_tokens() {
    let hub = TestHub::with_config(&format!("{CONFIG}required = false\n")).await;
    let no_subject = sign_hs256(SECRET.as_bytes(), &json!({"role": "admin", "exp": now() + 60}));
    let mut anonymous = init_with(&hub, TRANSPORT_WS, json!({})).await;
    let mut holder = init_with(&hub, TRANSPORT_WS, json!({"token": no_subject})).await;
    for client in [&mut anonymous, &mut holder] {
        assert_eq!(client.recv_json().await["type"], "connection_ack");
        client.subscribe("1", EVENTS_QUERY, json!({"topic": "t"})).await;
    }
    hub.wait_metric("subhub_subscriptions", 2.0).await;
    assert_eq!(hub.metric("subhub_executions").await, 2.0);
}

/// Refusals by `[auth]` are counted.
#[tokio::test]
async fn auth_refusals_are_counted() {
    let hub = TestHub::with_config(CONFIG).await;
    let mut client = init_with(&hub, TRANSPORT_WS, json!({})).await;
    assert_eq!(client.recv_close().await.0, 4403);
    let response = hub.http().post(hub.url("/publish/t")).body("1").send().await.expect("publish");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(hub.metric("subhub_refused_total{reason=\"auth\"}").await, 2.0);
}
