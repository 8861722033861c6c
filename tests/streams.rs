//! GraphQL over SSE and multipart subscriptions, from real HTTP clients: framing, keep-alive
//! and heartbeat, errors inside the stream, release when the client closes, shutdown, auth by
//! cookie and query parameter, and sharing with WebSocket clients.

mod common;

use common::streams::{MultipartStream, Part, Sse, SseStream, APOLLO_ACCEPT, SOON};
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_subscription_gets_every_event_in_order_and_is_released_when_closed() {
    let hub = TestHub::start().await;
    let mut stream = SseStream::get(&hub, EVENTS_QUERY, json!({"topic": "sse.prices"})).await;
    assert_eq!(stream.next().await, Some(Sse::Comment), "the stream opens with a keep-alive comment");
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    assert_eq!(hub.metrics().await["subhub_connections{transport=\"sse\"}"], 1.0);
    for n in 0..100 {
        hub.publish("sse.prices", json!({"n": n}).to_string()).await;
    }
    for n in 0..100 {
        let (result, id) = stream.next_result().await;
        assert_eq!(result["data"]["events"]["payload"]["n"], n, "{result}");
        // The memory broker numbers its events: that number is the event's id.
        assert_eq!(id.as_deref(), result["data"]["events"]["id"].as_str(), "the SSE id is the event's cursor");
    }
    drop(stream);
    let released = wait_for(SOON, || async { hub.metric("subhub_subscriptions").await == 0.0 }).await;
    assert!(released, "closing the stream releases its subscription at once");
    hub.wait_metric("subhub_sources_open", 0.0).await;
    assert_eq!(hub.metrics().await["subhub_connections{transport=\"sse\"}"], 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_over_post_and_queries_end_with_complete() {
    let hub = TestHub::start().await;
    let request = hub
        .http()
        .post(hub.url("/graphql"))
        .header("accept", "text/event-stream")
        .json(&json!({"query": "{ brokers { name } }"}));
    let mut stream = SseStream::open(request).await;
    let (result, id) = stream.next_result().await;
    assert_eq!(result, json!({"data": {"brokers": [{"name": "local"}]}}));
    assert_eq!(id, None, "a query result has no cursor");
    let (event, _, data) = stream.event().await;
    assert_eq!((event.as_str(), data.as_str()), ("complete", ""));
    assert_eq!(stream.next().await, None, "the stream ends after complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_are_reported_inside_the_stream() {
    let hub = TestHub::start().await;
    let mut sse = SseStream::get(&hub, "subscription { nope }", json!({})).await;
    let (result, _) = sse.next_result().await;
    assert!(result["errors"][0]["message"].as_str().unwrap().contains("nope"), "{result}");
    assert_eq!(result.get("data"), None);
    assert_eq!(sse.event().await.0, "complete");

    let mut multipart = MultipartStream::post(&hub, "subscription { nope }", json!({})).await;
    let Part::Json(part) = multipart.payload().await else { panic!("expected the error part") };
    assert!(part["payload"]["errors"][0]["message"].as_str().unwrap().contains("nope"), "{part}");
    assert_eq!(multipart.next().await, Some(Part::End));
    assert_eq!(hub.metric("subhub_subscriptions").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_comments_and_heartbeat_parts_come_at_the_configured_interval() {
    let hub = TestHub::with_config("[limits]\nkeepalive = \"150ms\"\nmultipart_heartbeat = \"150ms\"\n").await;
    let mut sse = SseStream::get(&hub, EVENTS_QUERY, json!({"topic": "quiet"})).await;
    let started = std::time::Instant::now();
    for _ in 0..4 {
        assert_eq!(sse.next().await, Some(Sse::Comment));
    }
    // The opening comment and three more, one per interval.
    assert!(started.elapsed() >= std::time::Duration::from_millis(400), "comments came too fast");

    let mut multipart = MultipartStream::post(&hub, EVENTS_QUERY, json!({"topic": "quiet"})).await;
    let started = std::time::Instant::now();
    for _ in 0..3 {
        assert_eq!(multipart.next().await, Some(Part::Json(json!({}))));
    }
    assert!(started.elapsed() >= std::time::Duration::from_millis(400), "heartbeats came too fast");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_subscription_gets_payload_parts_and_is_released_when_closed() {
    let hub = TestHub::start().await;
    let mut stream = MultipartStream::post(&hub, EVENTS_QUERY, json!({"topic": "mp.prices"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    assert_eq!(hub.metrics().await["subhub_connections{transport=\"multipart\"}"], 1.0);
    for n in 0..50 {
        hub.publish("mp.prices", json!({"n": n}).to_string()).await;
    }
    for n in 0..50 {
        let Part::Json(part) = stream.payload().await else { panic!("the stream ended") };
        assert_eq!(part["payload"]["data"]["events"]["payload"]["n"], n, "{part}");
    }
    drop(stream);
    let released = wait_for(SOON, || async { hub.metric("subhub_subscriptions").await == 0.0 }).await;
    assert!(released, "closing the stream releases its subscription at once");
    assert_eq!(hub.metrics().await["subhub_connections{transport=\"multipart\"}"], 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_accept_values_with_extra_parameters_are_tolerated_and_queries_get_json() {
    let hub = TestHub::start().await;
    for accept in
        [APOLLO_ACCEPT, "multipart/mixed; boundary=\"-\"; deferSpec=20220824, application/json", "multipart/mixed"]
    {
        let response = hub
            .http()
            .post(hub.url("/graphql"))
            .header("accept", accept)
            .json(&json!({"query": EVENTS_QUERY, "variables": {"topic": "t"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{accept}");
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("multipart/mixed"), "{accept} answered {content_type}");
    }
    // A query from the same client is plain JSON.
    let response = hub
        .http()
        .post(hub.url("/graphql"))
        .header("accept", APOLLO_ACCEPT)
        .json(&json!({"query": "{ brokers { name } }"}))
        .send()
        .await
        .unwrap();
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/graphql-response+json"));
    assert_eq!(response.json::<serde_json::Value>().await.unwrap()["data"]["brokers"][0]["name"], "local");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_completes_sse_streams_and_closes_multipart_streams() {
    let hub = TestHub::start().await;
    let mut sse = SseStream::get(&hub, EVENTS_QUERY, json!({"topic": "bye"})).await;
    let mut multipart = MultipartStream::post(&hub, EVENTS_QUERY, json!({"topic": "bye"})).await;
    hub.wait_metric("subhub_subscriptions", 2.0).await;
    let (sse_end, multipart_end, ()) = tokio::join!(
        async {
            loop {
                match sse.next().await {
                    Some(Sse::Comment) => {}
                    other => return other,
                }
            }
        },
        async { multipart.payload().await },
        hub.shutdown(),
    );
    assert_eq!(sse_end, Some(Sse::Event { event: "complete".into(), id: None, data: String::new() }));
    assert_eq!(multipart_end, Part::End);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_clients_authenticate_by_cookie_or_query_parameter() {
    const SECRET: &str = "a-secret-of-enough-bytes-for-sse";
    let hub = TestHub::with_config(&format!(
        "[auth]\nhs256_secret = \"{SECRET}\"\nrequire_exp = false\ntoken_cookie = \"subhub_token\"\ntoken_query = \"token\"\n"
    ))
    .await;
    let token = signed_token(SECRET, json!({"sub": "ada"}));
    let sse = |request: reqwest::RequestBuilder| {
        request
            .query(&[("query", EVENTS_QUERY), ("variables", r#"{"topic":"t"}"#)])
            .header("accept", "text/event-stream")
    };
    let anonymous = sse(hub.http().get(hub.url("/graphql"))).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let forged = sse(hub.http().get(hub.url("/graphql"))).header("cookie", "subhub_token=abc").send().await.unwrap();
    assert_eq!(forged.status(), 401);

    let by_cookie = sse(hub.http().get(hub.url("/graphql"))).header("cookie", format!("a=b; subhub_token={token}"));
    let mut by_cookie = SseStream::open(by_cookie).await;
    let by_query = SseStream::open(sse(hub.http().get(hub.url("/graphql")).query(&[("token", &token)]))).await;
    let by_header = SseStream::open(sse(hub.http().get(hub.url("/graphql"))).bearer_auth(&token)).await;
    hub.wait_metric("subhub_subscriptions", 3.0).await;
    hub.publish_as(&token, "t", "1").await;
    assert_eq!(by_cookie.next_result().await.0["data"]["events"]["payload"], 1);
    drop((by_query, by_header));

    // Plain GraphQL over HTTP takes only the header: a cookie is no credential there.
    let query = hub.http().get(hub.url("/graphql")).query(&[("query", "{ brokers { name } }")]);
    let response = query.header("cookie", format!("subhub_token={token}")).send().await.unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_sse_and_a_hundred_websocket_clients_share_one_source_and_one_execution() {
    let hub = TestHub::start().await;
    let mut sockets = Vec::new();
    for i in 0..100 {
        let mut client = Client::ready(&hub, TRANSPORT_WS).await;
        client.subscribe(&format!("s{i}"), EVENTS_QUERY, json!({"topic": "mixed"})).await;
        sockets.push(client);
    }
    let mut streams = Vec::new();
    for _ in 0..100 {
        streams.push(SseStream::get(&hub, EVENTS_QUERY, json!({"topic": "mixed"})).await);
    }
    hub.wait_metric("subhub_subscriptions", 200.0).await;
    assert_eq!(hub.metric("subhub_sources_open").await, 1.0);
    assert_eq!(hub.metric("subhub_executions").await, 1.0);
    for n in 0..10 {
        hub.publish("mixed", json!({"n": n}).to_string()).await;
    }
    for (i, stream) in streams.iter_mut().enumerate() {
        for n in 0..10 {
            let (result, _) = stream.next_result().await;
            assert_eq!(result["data"]["events"]["payload"]["n"], n, "SSE client {i}: {result}");
        }
    }
    for (i, socket) in sockets.iter_mut().enumerate() {
        for n in 0..10 {
            let message = socket.recv_json().await;
            assert_eq!(message["payload"]["data"]["events"]["payload"]["n"], n, "WebSocket client {i}: {message}");
        }
    }
    assert_eq!(hub.metric("subhub_events_received_total").await, 10.0);
    drop(streams);
    let back = wait_for(SOON, || async { hub.metric("subhub_subscriptions").await == 100.0 }).await;
    assert!(back, "closing the SSE streams brings subscriptions back to 100 within a second");
    assert_eq!(hub.metric("subhub_executions").await, 1.0);
    assert_eq!(hub.metric("subhub_sources_open").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_responses_are_compressed_and_streams_never_are() {
    let hub = TestHub::start().await;
    let introspection = json!({"query": "{ __schema { types { name fields { name } } } }"});
    let response = hub
        .http()
        .post(hub.url("/graphql"))
        .header("accept-encoding", "gzip")
        .json(&introspection)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers().get("content-encoding").map(|v| v.to_str().unwrap()), Some("gzip"));
    let body = response.bytes().await.unwrap();
    assert_eq!(&body[..2], &[0x1f, 0x8b], "a gzip stream");

    let sse = hub
        .http()
        .get(hub.url("/graphql"))
        .query(&[("query", EVENTS_QUERY), ("variables", r#"{"topic":"z"}"#)])
        .header("accept", "text/event-stream")
        .header("accept-encoding", "gzip, br");
    let mut sse = SseStream::open(sse).await;
    assert_eq!(sse.response.headers().get("content-encoding"), None);
    assert_eq!(sse.next().await, Some(Sse::Comment), "readable as it is written");

    let multipart = hub
        .http()
        .post(hub.url("/graphql"))
        .header("accept", APOLLO_ACCEPT)
        .header("accept-encoding", "gzip, br")
        .json(&json!({"query": EVENTS_QUERY, "variables": {"topic": "z"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(multipart.headers().get("content-encoding"), None);
}

/// Opens an SSE subscription on a raw socket whose receive buffer is tiny, and never reads.
async fn stalled_sse(hub: &TestHub, topic: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(hub.addr).await.unwrap();
    let variables = json!({"topic": topic}).to_string();
    let query: String = url_escape(EVENTS_QUERY);
    let request = format!(
        "GET /graphql?query={query}&variables={} HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n",
        url_escape(&variables)
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_client_that_stops_reading_is_dropped_and_never_holds_up_the_others() {
    // Queues large enough that only `write_timeout` can end the stalled client, and the reader
    // never drops an event however the test's threads are scheduled.
    let hub = TestHub::with_config(
        "[limits]\nwrite_timeout = \"1s\"\nslow_consumer_timeout = \"1h\"\nconnection_queue = 4096\nconnection_buffer_bytes = 67108864\n",
    )
    .await;
    let stalled = stalled_sse(&hub, "firehose").await;
    let mut reader = SseStream::get(&hub, EVENTS_QUERY, json!({"topic": "firehose"})).await;
    hub.wait_metric("subhub_subscriptions", 2.0).await;
    let publisher = {
        let (url, http) = (hub.url("/publish/firehose"), hub.http().clone());
        tokio::spawn(async move {
            for n in 0..300 {
                let body = json!({"n": n, "pad": "x".repeat(60_000)}).to_string();
                let response = http.post(&url).body(body).send().await.unwrap();
                assert!(response.status().is_success());
            }
        })
    };
    for n in 0..300 {
        let (result, _) = reader.next_result().await;
        assert_eq!(result["data"]["events"]["payload"]["n"], n);
    }
    publisher.await.unwrap();
    hub.wait_metric("subhub_stalled_closes_total", 1.0).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    assert_eq!(hub.metrics().await["subhub_connections{transport=\"sse\"}"], 1.0);
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_count_against_max_connections() {
    let hub = TestHub::with_config("[limits]\nmax_connections = 2\n").await;
    let _one = SseStream::get(&hub, EVENTS_QUERY, json!({"topic": "t"})).await;
    let _two = MultipartStream::post(&hub, EVENTS_QUERY, json!({"topic": "t"})).await;
    let third = hub
        .http()
        .get(hub.url("/graphql"))
        .query(&[("query", EVENTS_QUERY), ("variables", r#"{"topic":"t"}"#)])
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 503);
    let body: serde_json::Value = third.json().await.unwrap();
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("limits.max_connections"), "{body}");
    let socket = Client::try_connect_url(&hub.ws_url(), Some(TRANSPORT_WS)).await;
    assert!(socket.is_err(), "a WebSocket is refused too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_streams_give_their_place_among_http_connections_back() {
    // Two plain HTTP connections at once, at most: streams count as sessions instead, so five
    // of them leave room for a query.
    let hub = TestHub::with_config("[limits]\nmax_http_connections = 2\n").await;
    let mut streams = Vec::new();
    for n in 0..5 {
        // A client of its own per stream: each holds its connection for good.
        let client = reqwest::Client::new();
        let request = client
            .get(hub.url("/graphql"))
            .query(&[("query", EVENTS_QUERY), ("variables", &json!({"topic": format!("t{n}")}).to_string())])
            .header("accept", "text/event-stream");
        streams.push(SseStream::open(request).await);
    }
    hub.wait_metric("subhub_subscriptions", 5.0).await;
    let query = hub.http().get(hub.url("/graphql")).query(&[("query", "{ brokers { name } }")]).send();
    let response = tokio::time::timeout(PATIENCE, query).await.expect("the query is served").unwrap();
    assert_eq!(response.status(), 200);
}
