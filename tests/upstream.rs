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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_the_upstream_rejects_gets_its_error_and_others_go_on() {
    let upstream = TestHub::start().await;
    let hub = TestHub::with_config(&hub_config(&upstream, "sdl = \"tests/fixtures/stale.graphql\"\n")).await;
    let mut good = Client::ready(&hub, TRANSPORT_WS).await;
    good.subscribe("g", "subscription { up_events(topic: \"t\") { payload } }", json!({})).await;
    let mut bad = Client::ready(&hub, TRANSPORT_WS).await;
    bad.subscribe("b", "subscription { up_events(topic: \"t\") { extra } }", json!({})).await;
    let error = bad.recv_json().await;
    assert_eq!(error["type"], "error", "{error}");
    assert!(error["payload"][0]["message"].as_str().unwrap_or_default().contains("extra"), "{error}");
    upstream.wait_metric("subhub_subscriptions", 1.0).await;
    upstream.publish("t", "5").await;
    assert_eq!(good.recv_json().await["payload"]["data"]["up_events"]["payload"], 5);
}

/// A WebSocket server that speaks no GraphQL protocol: it echoes.
async fn echo_server() -> std::net::SocketAddr {
    use axum::extract::ws::WebSocketUpgrade;
    let app = axum::Router::new().route(
        "/graphql",
        axum::routing::get(|ws: WebSocketUpgrade| async move {
            ws.on_upgrade(|mut socket| async move {
                while let Some(Ok(message)) = socket.recv().await {
                    if socket.send(message).await.is_err() {
                        break;
                    }
                }
            })
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

async fn start_error(config: &str) -> String {
    let path = std::env::temp_dir().join(format!("subhub-upstream-{}-{}.toml", std::process::id(), unique("cfg")));
    std::fs::write(&path, format!("listen = \"127.0.0.1:0\"\n{config}")).expect("write");
    let loaded = subhub::Config::load(Some(&path), Vec::new());
    let _ = std::fs::remove_file(&path);
    match loaded {
        Err(error) => error.to_string(),
        Ok(config) => subhub::Server::bind(config).await.err().expect("start must fail").to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_upstreams_fail_clearly() {
    // Not a WebSocket URL.
    let error = start_error("[upstreams.up]\nurl = \"http://127.0.0.1:1/graphql\"\n").await;
    assert!(error.contains("upstreams.up.url") && error.contains("ws://"), "{error}");
    // Unreachable past startup_timeout: start fails naming the upstream and its URL.
    let error = start_error("[upstreams.up]\nurl = \"ws://127.0.0.1:1/graphql\"\nstartup_timeout = \"300ms\"\n").await;
    assert!(error.contains("upstream `up`") && error.contains("ws://127.0.0.1:1/graphql"), "{error}");
    // A WebSocket that speaks no GraphQL protocol.
    let echo = echo_server().await;
    let error = start_error(&format!("[upstreams.up]\nurl = \"ws://{echo}/graphql\"\n")).await;
    assert!(error.contains("not a GraphQL WebSocket server"), "{error}");
    // Merged without a namespace, a name the built-in schema has clashes, naming both.
    let upstream = TestHub::start().await;
    let error =
        start_error(&format!("[upstreams.up]\nurl = \"ws://{}/graphql\"\nnamespace = \"\"\n", upstream.addr)).await;
    assert!(error.contains("upstream `up`") && error.contains("built-in schema"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sdl_the_hub_starts_and_clients_hear_what_is_wrong() {
    let echo = echo_server().await;
    let hub = TestHub::with_config(&format!(
        "[upstreams.up]\nurl = \"ws://{echo}/graphql\"\nsdl = \"tests/fixtures/builtin.graphql\"\n"
    ))
    .await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", UP_QUERY, json!({"topic": "t"})).await;
    let error = client.recv_json().await;
    assert_eq!(error["type"], "error", "{error}");
    assert!(
        error["payload"][0]["message"].as_str().unwrap_or_default().contains("not a GraphQL WebSocket server"),
        "{error}"
    );
    // The built-in schema is untouched.
    let mut local = Client::ready(&hub, TRANSPORT_WS).await;
    local.subscribe("2", EVENTS_QUERY, json!({"topic": "t"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
}

/// The upstream's `linger` is its sources' linger in the registry: an operation left and taken
/// up again within it reuses the upstream subscription; after it, the subscription and then the
/// connection close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lingering_upstream_subscription_is_reused_then_closed() {
    let upstream = TestHub::start().await;
    let hub = TestHub::with_config(&hub_config(&upstream, "linger = \"400ms\"\n")).await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", UP_QUERY, json!({"topic": "a"})).await;
    upstream.wait_metric("subhub_subscriptions", 1.0).await;
    client.complete("1").await;
    hub.wait_metric("subhub_subscriptions", 0.0).await;
    // Within the linger the upstream subscription is still there, and the same operation
    // reads from it at once.
    client.subscribe("2", UP_QUERY, json!({"topic": "a"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    assert_eq!(upstream.metric("subhub_subscriptions").await, 1.0);
    upstream.publish("a", "1").await;
    assert_eq!(events(&client.recv_json().await)["payload"], 1);
    client.complete("2").await;
    upstream.wait_metric("subhub_subscriptions", 0.0).await;
    upstream.wait_metric("subhub_connections", 0.0).await;
    hub.wait_metric("subhub_sources_open", 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_is_reconnected_after_the_keepalive() {
    use axum::extract::ws::{Message, WebSocketUpgrade};
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    use std::sync::Arc;
    // Acknowledges connection_init, then stops reading: pings go unanswered.
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let app = axum::Router::new().route(
        "/graphql",
        axum::routing::get(move |ws: WebSocketUpgrade| {
            let counter = counter.clone();
            async move {
                ws.protocols(["graphql-transport-ws"]).on_upgrade(move |mut socket| async move {
                    counter.fetch_add(1, Relaxed);
                    if let Some(Ok(Message::Text(_))) = socket.recv().await {
                        let _ = socket.send(Message::Text(r#"{"type":"connection_ack"}"#.into())).await;
                    }
                    std::future::pending::<()>().await;
                })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });

    let config = format!("[upstreams.up]\nurl = \"ws://{addr}/graphql\"\nsdl = \"tests/fixtures/builtin.graphql\"\nkeepalive = \"100ms\"\n");
    let hub = TestHub::with_config(&config).await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", UP_QUERY, json!({"topic": "t"})).await;
    // The first connection goes silent; the hub gives up on it and connects again.
    assert!(wait_for(PATIENCE, || async { connections.load(Relaxed) >= 2 }).await, "the hub never reconnected");
    // The client is still subscribed, waiting for the upstream.
    assert!(client.until_pong().await.is_empty());
}

/// Two executions forward the same operation while the upstream is down; the first one's
/// client leaves while both wait. The second must get the upstream's events once it is up, not
/// an error (the first waiter took the pending confirmation with it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_leaves_during_an_outage_does_not_fail_the_others() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    // Clients of two auth scopes: two executions of one document, one forwarded operation.
    let hub = TestHub::with_config(&format!(
        "[upstreams.up]\nurl = \"ws://{addr}/graphql\"\nsdl = \"tests/fixtures/builtin.graphql\"\n\
         [auth]\nhs256_secret = \"{SECRET}\"\nrequired = false\n"
    ))
    .await;
    let query = "subscription { up_events(topic: \"t\") { payload } }";
    let token =
        subhub::auth::sign_hs256(SECRET.as_bytes(), &json!({"sub": "leaving", "exp": subhub::auth::now() + 600}));
    let mut leaving = Client::connect(&hub, TRANSPORT_WS).await;
    leaving.send(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}})).await;
    assert_eq!(leaving.recv_json().await["type"], "connection_ack");
    leaving.subscribe("1", query, json!({})).await;
    let mut staying = Client::ready(&hub, TRANSPORT_WS).await;
    staying.subscribe("1", query, json!({})).await;
    hub.wait_metric("subhub_executions", 2.0).await;
    drop(leaving);
    hub.wait_metric("subhub_executions", 1.0).await;

    let upstream = TestHub::with_config(&format!("listen = \"{addr}\"\n")).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    upstream.wait_metric("subhub_subscriptions", 1.0).await;
    upstream.publish("t", "1").await;
    let message = staying.recv_json().await;
    assert_eq!(message["type"], "next", "{message}");
    assert_eq!(events(&message)["payload"], 1);
}

const SECRET: &str = "upstream-test-secret-0123456789";

/// An upstream result over `max_message_bytes` is not read into the hub: the connection is
/// dropped and made again, and the subscription goes on with the next results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_result_over_the_limit_is_refused_and_the_subscription_goes_on() {
    let upstream = TestHub::with_config("[limits]\nmax_message_bytes = 4194304\n").await;
    let hub = TestHub::with_config(&hub_config(&upstream, "")).await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", "subscription { up_events(topic: \"big\") { payload } }", json!({})).await;
    upstream.wait_metric("subhub_subscriptions", 1.0).await;
    let big = json!({"pad": "x".repeat(2 << 20)}).to_string();
    upstream.publish("big", big).await;
    // Small events until one arrives: the hub reconnects and subscribes again meanwhile.
    let mut n = 0;
    let message = loop {
        upstream.publish("big", json!({"n": n}).to_string()).await;
        n += 1;
        let received = tokio::time::timeout(std::time::Duration::from_millis(200), client.recv_json()).await;
        if let Ok(message) = received {
            break message;
        }
        assert!(n < 100, "the subscription never came back");
    };
    assert_eq!(message["type"], "next", "{message}");
    assert!(
        events(&message)["payload"]["n"].is_number(),
        "the oversized result arrived: {}",
        &message.to_string()[..200]
    );
}

/// An upstream's results carry no position of the hub's: a client that resumes is told to
/// reload, and gets the live results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_on_an_upstream_field_says_not_recovered() {
    let upstream = TestHub::start().await;
    let hub = TestHub::with_config(&hub_config(&upstream, "")).await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    let payload = json!({"query": UP_QUERY, "variables": {"topic": "re"}, "extensions": {"resume": "42"}});
    client.send(json!({"type": "subscribe", "id": "1", "payload": payload})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    upstream.wait_metric("subhub_subscriptions", 1.0).await;
    for n in 0..2 {
        upstream.publish("re", json!({"n": n}).to_string()).await;
    }
    let first = client.recv_json().await;
    assert_eq!(events(&first)["payload"]["n"], 0, "{first}");
    assert_eq!(first["payload"]["extensions"]["recovered"], false, "{first}");
    let second = client.recv_json().await;
    assert_eq!(events(&second)["payload"]["n"], 1, "{second}");
    assert_eq!(second["payload"]["extensions"].get("recovered"), None, "{second}");
    assert_eq!(hub.metrics().await["subhub_resumes_total{recovered=\"false\"}"], 1.0);
}
