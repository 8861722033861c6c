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

/// A burst of connects at the limit: each session's place is taken before the upgrade is
/// answered, so exactly `max_connections` open (a burst of 200 at a limit of 50 left 51 open).
/// Against the binary, whose runtime is not the clients'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_connects_opens_exactly_max_connections() {
    let path = std::env::temp_dir().join(format!("subhub-burst-{}.toml", std::process::id()));
    // Five bursts of 200 from one address within a second or two.
    std::fs::write(&path, "[limits]\nmax_connections = 50\nconnect_rate_per_ip = 2000\n").expect("write config");
    let (mut child, addr) = start_binary_with(&["--config", path.to_str().expect("path")], &[]);
    let url = format!("ws://{addr}/graphql");
    for round in 0..5 {
        let attempts: Vec<_> = (0..200)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { Client::try_connect_url(&url, Some(TRANSPORT_WS)).await })
            })
            .collect();
        let mut open = Vec::new();
        let mut refused = 0;
        for attempt in attempts {
            match attempt.await.expect("join") {
                Ok(client) => open.push(client),
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
                    refused += 1;
                }
                Err(error) => panic!("connect failed: {error}"),
            }
        }
        assert_eq!((open.len(), refused), (50, 150), "round {round}");
        assert!(wait_for(PATIENCE, || async { metric_at(addr, "subhub_connections").await == 50.0 }).await);
        assert_eq!(metric_at(addr, "subhub_refused_total{reason=\"limit\"}").await, 150.0 * f64::from(round + 1));
        // Places given back are places taken again.
        drop(open);
        assert!(wait_for(PATIENCE, || async { metric_at(addr, "subhub_connections").await == 0.0 }).await);
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&path);
}

/// The hub-wide caps: `max_executions` refuses a subscription that needs one more execution
/// (joining one alive is fine), `max_sources` one that needs one more source.
#[tokio::test]
async fn executions_and_sources_are_capped_hub_wide() {
    let hub = TestHub::with_config("[limits]\nmax_executions = 2\n").await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("a", EVENTS_QUERY, json!({"topic": "a"})).await;
    client.subscribe("b", EVENTS_QUERY, json!({"topic": "b"})).await;
    client.subscribe("c", EVENTS_QUERY, json!({"topic": "c"})).await;
    let error = client.recv_json().await;
    assert_eq!(error["id"], "c");
    assert!(message(&error).contains("limits.max_executions"), "{error}");
    let mut other = Client::ready(&hub, TRANSPORT_WS).await;
    other.subscribe("a", EVENTS_QUERY, json!({"topic": "a"})).await;
    assert!(other.until_pong().await.is_empty(), "joining an execution alive is not refused");
    hub.wait_metric("subhub_subscriptions", 3.0).await;
    assert_eq!(hub.metric("subhub_refused_total{reason=\"limit\"}").await, 1.0);

    let hub = TestHub::with_config("[limits]\nmax_sources = 2\n").await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    // Two executions on one topic need one source.
    client.subscribe("a", EVENTS_QUERY, json!({"topic": "a"})).await;
    client.subscribe("a2", "subscription { events(topic: \"a\") { id } }", json!({})).await;
    client.subscribe("b", EVENTS_QUERY, json!({"topic": "b"})).await;
    client.subscribe("c", EVENTS_QUERY, json!({"topic": "c"})).await;
    let error = client.recv_json().await;
    assert_eq!(error["id"], "c");
    assert!(message(&error).contains("limits.max_sources"), "{error}");
    hub.wait_metric("subhub_subscriptions", 3.0).await;
    assert_eq!(hub.metric("subhub_sources_open").await, 2.0);
    assert_eq!(hub.metric("subhub_refused_total{reason=\"limit\"}").await, 1.0);
}

/// `subscribe_rate` and `max_subscriptions_per_connection`: an error for each id over the
/// limit, counted, and the connection stays up.
#[tokio::test]
async fn subscribes_are_rate_limited_and_counted_per_connection() {
    let hub = TestHub::with_config("[limits]\nsubscribe_rate = 5\nmax_subscriptions_per_connection = 3\n").await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    for n in 0..4 {
        client.subscribe(&format!("s{n}"), EVENTS_QUERY, json!({"topic": format!("t{n}")})).await;
    }
    let error = client.recv_json().await;
    assert_eq!(error["id"], "s3");
    assert!(message(&error).contains("limits.max_subscriptions_per_connection"), "{error}");
    assert_eq!(hub.metric("subhub_refused_total{reason=\"limit\"}").await, 1.0);
    // A subscribe and complete loop: the fifth subscribe used the burst up.
    let mut refused = 0;
    for _ in 0..20 {
        client.complete("s0").await;
        client.subscribe("s0", EVENTS_QUERY, json!({"topic": "t0"})).await;
    }
    for message in client.until_pong().await {
        assert_eq!(message["type"], "error", "{message}");
        assert!(self::message(&message).contains("limits.subscribe_rate"), "{message}");
        refused += 1;
    }
    assert!(refused >= 19, "only {refused} of 20 refused");
    assert_eq!(hub.metric("subhub_refused_total{reason=\"rate\"}").await, f64::from(refused));
}

/// A client sending faster than `message_rate` is read more slowly: nothing it sent is lost,
/// it just takes as long as the rate says, and the hub spends on it no more than that.
#[tokio::test]
async fn a_client_sending_faster_than_message_rate_is_read_more_slowly() {
    let hub = TestHub::with_config("[limits]\nmessage_rate = 50\n").await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    let started = std::time::Instant::now();
    for _ in 0..150 {
        client.send(json!({"type": "ping"})).await;
    }
    for _ in 0..150 {
        assert_eq!(client.recv_json().await["type"], "pong");
    }
    // A burst of 50, then 100 more at 50 a second (the connection_init took one token).
    assert!(started.elapsed() >= std::time::Duration::from_millis(1900), "read in {:?}", started.elapsed());
    assert!(hub.metric("subhub_throttled_total").await > 0.0);
}

/// `connect_rate_per_ip`: a client address opening connections faster than the rate gets 429
/// for the rest, before anything it sent is read; other addresses are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_from_one_address_are_rate_limited() {
    let hub = TestHub::with_config("[limits]\nconnect_rate_per_ip = 5\n").await;
    let url = hub.ws_url();
    let attempts: Vec<_> = (0..30)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Client::try_connect_url(&url, Some(TRANSPORT_WS)).await })
        })
        .collect();
    let (mut open, mut refused) = (Vec::new(), 0);
    for attempt in attempts {
        match attempt.await.expect("join") {
            Ok(client) => open.push(client),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
                refused += 1;
            }
            Err(error) => panic!("expected 429, got {error}"),
        }
    }
    assert!((5..=6).contains(&open.len()), "{} opened", open.len());
    assert_eq!(open.len() + refused, 30);
    // Read in the process: a request to /metrics from this address would be refused too.
    assert_eq!(hub.hub.metrics.refused(subhub_subscriptions::Refusal::Rate), refused as u64);
    // Another address (the hub also listens on 127.0.0.1; connect from 127.0.0.2).
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.2:0".parse().expect("addr")).expect("bind");
    let stream = socket.connect(hub.addr).await.expect("connect");
    let request = {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert("Sec-WebSocket-Protocol", TRANSPORT_WS.parse().expect("header"));
        request
    };
    assert!(tokio_tungstenite::client_async(request, stream).await.is_ok(), "another address was refused");
}
