//! The dashboard's status stream (`GET /status`): the last minutes of samples, then a snapshot
//! a second, and the open sources listed only to viewers `[authz]` lets subscribe to them.
//! The page itself is driven in a real browser by `tests/js/browser.mjs`.

mod common;

use common::streams::{Sse, SseStream};
use common::*;
use serde_json::{json, Value};

/// The next snapshot that satisfies `want`.
async fn snapshot_where(stream: &mut SseStream, want: impl Fn(&Value) -> bool) -> Value {
    loop {
        match stream.next().await.expect("the status stream ended") {
            Sse::Event { event, data, .. } if event == "status" => {
                let snapshot: Value = serde_json::from_str(&data).expect("status is JSON");
                if want(&snapshot) {
                    return snapshot;
                }
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_stream_sends_history_then_snapshots_that_follow_the_hub() {
    let hub = TestHub::start().await;
    let mut status = SseStream::open(hub.http().get(hub.url("/status"))).await;
    let Some(Sse::Event { event, data, .. }) = status.next().await else { panic!("no history") };
    assert_eq!(event, "history");
    assert!(serde_json::from_str::<Value>(&data).unwrap().is_array(), "{data}");

    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", EVENTS_QUERY, json!({"topic": "dash.prices"})).await;
    let mut stream = SseStream::get(&hub, EVENTS_QUERY, json!({"topic": "dash.prices"})).await;
    let snapshot = snapshot_where(&mut status, |s| s["sample"]["subscriptions"] == 2).await;
    assert_eq!(snapshot["connections"]["graphql-transport-ws"], 1);
    // The SSE subscriber, and this status stream itself: a session like every stream.
    assert_eq!(snapshot["connections"]["sse"], 2);
    assert_eq!(snapshot["sample"]["executions"], 1);
    assert_eq!(snapshot["sample"]["sources"], 1);
    assert_eq!(
        snapshot["sources"],
        json!([{"kind": "broker", "origin": "local", "topic": "dash.prices", "executions": 1, "subscribers": 2}])
    );
    assert_eq!(snapshot["brokers"][0]["connected"], true);

    for n in 0..5 {
        hub.publish("dash.prices", json!({"n": n}).to_string()).await;
    }
    for _ in 0..5 {
        client.recv_json().await;
        stream.next_result().await;
    }
    let snapshot = snapshot_where(&mut status, |s| s["totals"]["deliveries"] == 10).await;
    assert_eq!(snapshot["totals"]["events"], 5);
    drop((client, stream));
    snapshot_where(&mut status, |s| s["sample"]["subscriptions"] == 0 && s["sources"] == json!([])).await;
}

const SECRET: &str = "dashboard-test-secret-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_are_listed_only_to_viewers_who_may_subscribe_to_them() {
    let hub = TestHub::with_config(&format!(
        r#"[auth]
hs256_secret = "{SECRET}"
require_exp = false
token_query = "token"

[[authz.rules]]
topics = "public.**"
subscribe = true
publish = true

[[authz.rules]]
topics = "user.{{{{ claims.sub }}}}.**"
subscribe = true
"#
    ))
    .await;
    let ada = signed_token(SECRET, json!({"sub": "ada"}));
    let bob = signed_token(SECRET, json!({"sub": "bob"}));
    let mut clients = Vec::new();
    for (token, topic) in [(&ada, "public.news"), (&ada, "user.ada.orders"), (&bob, "user.bob.orders")] {
        let mut client = Client::connect(&hub, TRANSPORT_WS).await;
        client.send(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}})).await;
        assert_eq!(client.recv_json().await["type"], "connection_ack");
        client.subscribe("1", EVENTS_QUERY, json!({"topic": topic})).await;
        clients.push(client);
    }
    hub.wait_metric("subhub_subscriptions", 3.0).await;
    let topics = |snapshot: &Value| -> Vec<String> {
        let mut topics: Vec<String> =
            snapshot["sources"].as_array().unwrap().iter().map(|s| s["topic"].as_str().unwrap().to_owned()).collect();
        topics.sort();
        topics
    };

    // An anonymous viewer sees the numbers, not one topic.
    let mut anonymous = SseStream::open(hub.http().get(hub.url("/status"))).await;
    let seen = snapshot_where(&mut anonymous, |s| s["sample"]["subscriptions"] == 3).await;
    assert_eq!(topics(&seen), Vec::<String>::new());
    assert_eq!(seen["sources_unlisted"], 3);

    // Ada sees the public topic and her own, not Bob's.
    let mut as_ada = SseStream::open(hub.http().get(hub.url("/status")).query(&[("token", &ada)])).await;
    let seen = snapshot_where(&mut as_ada, |s| s["sample"]["subscriptions"] == 3).await;
    assert_eq!(topics(&seen), ["public.news", "user.ada.orders"]);
    assert_eq!(seen["sources_unlisted"], 1);

    // A forged token is anonymous.
    let forged = format!("{}x", &bob);
    let mut as_forger = SseStream::open(hub.http().get(hub.url("/status")).query(&[("token", &forged)])).await;
    let seen = snapshot_where(&mut as_forger, |s| s["sample"]["subscriptions"] == 3).await;
    assert_eq!(topics(&seen), Vec::<String>::new());
    // Looking is not refusing: nothing was counted.
    assert_eq!(hub.metrics().await["subhub_refused_total{reason=\"forbidden\"}"], 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_and_their_assets_are_served_by_the_hub() {
    let hub = TestHub::start().await;
    for (path, kind) in [("/", "text/html"), ("/graphiql", "text/html"), ("/assets/dashboard.js", "text/javascript")] {
        let response = hub.http().get(hub.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with(kind), "{path}");
    }
    let graphiql = hub.http().get(hub.url("/graphiql")).send().await.unwrap().text().await.unwrap();
    for script in graphiql.split("src=\"").skip(1).map(|rest| rest.split('"').next().unwrap()) {
        assert!(script.starts_with("/assets/"), "GraphiQL loads {script} from elsewhere");
        let response = hub.http().get(hub.url(script)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{script}");
    }
    let missing = hub.http().get(hub.url("/assets/nope.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let escape = hub.http().get(hub.url("/assets/../Cargo.toml")).send().await.unwrap();
    assert_eq!(escape.status(), 404);
}
