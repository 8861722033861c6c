//! GraphQL over HTTP, publishing over HTTP, and the operations endpoints.

mod common;

use common::*;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

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

/// With no `[http] cors_origins`, a page on another site cannot publish through a visitor's
/// browser: a POST or a WebSocket upgrade naming a foreign `Origin` is refused; the hub's own
/// pages and clients that are not browsers (no `Origin`, as curl) go on working.
#[tokio::test]
async fn pages_on_other_sites_cannot_publish_or_open_sessions() {
    let hub = TestHub::start().await;
    let own = format!("http://{}", hub.addr);
    let evil = "https://evil.example";
    let post = |path: &str, origin: Option<&str>, content_type: &str, body: &str| {
        let mut request = hub.http().post(hub.url(path)).header("content-type", content_type).body(body.to_owned());
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    // The form and `text/plain` fetch a browser sends cross-site without asking first.
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let response = post("/publish/demo", Some(evil), content_type, "1").await.expect("post");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body: serde_json::Value = response.json().await.expect("json");
        assert!(body["errors"][0]["message"].as_str().unwrap_or_default().contains("cors_origins"), "{body}");
    }
    let mutation = json!({"query": "mutation { publish(topic: \"demo\", payload: 1) { ok } }"}).to_string();
    let response = post("/graphql", Some(evil), "application/json", &mutation).await.expect("post");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get("access-control-allow-origin").is_none());
    let mut request = hub.ws_url().into_client_request().expect("request");
    request.headers_mut().insert("origin", evil.parse().expect("header"));
    request.headers_mut().insert("sec-websocket-protocol", TRANSPORT_WS.parse().expect("header"));
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|_| "a session")),
    }
    assert_eq!(hub.metric("subhub_refused_total{reason=\"forbidden\"}").await, 4.0);

    // curl, and the hub's own pages.
    assert_eq!(post("/publish/demo", None, "text/plain", "1").await.expect("post").status(), StatusCode::OK);
    assert_eq!(post("/publish/demo", Some(&own), "text/plain", "1").await.expect("post").status(), StatusCode::OK);
    let response = post("/graphql", Some(&own), "application/json", &mutation).await.expect("post");
    assert_eq!(response.status(), StatusCode::OK);
    let mut request = hub.ws_url().into_client_request().expect("request");
    request.headers_mut().insert("origin", own.parse().expect("header"));
    request.headers_mut().insert("sec-websocket-protocol", TRANSPORT_WS.parse().expect("header"));
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());
}

/// DNS rebinding: a page on `http://evil.example:PORT` whose name the attacker makes resolve
/// to 127.0.0.1 sends its own origin and `Host: evil.example:PORT`, equal as on the hub's own
/// pages. It is refused over every way in (a WebSocket upgrade, an SSE POST, `POST /publish`,
/// and its own GETs, which browsers mark same-origin and send without `Origin`), unless
/// `[http] hosts` names it; the hub's own pages by address or `localhost` go on working.
#[tokio::test]
async fn a_page_whose_name_was_rebound_to_the_hub_is_not_its_own() {
    let hub = TestHub::start().await;
    let port = hub.addr.port();
    let forged = |host: &str| (format!("{host}:{port}"), format!("http://{host}:{port}"));
    let (evil_host, evil_origin) = forged("evil.example");
    let sse_post = |host: &str, origin: &str| {
        hub.http()
            .post(hub.url("/graphql"))
            .header("host", host)
            .header("origin", origin)
            .header("accept", "text/event-stream")
            .json(&json!({"query": "subscription { events(topic: \"rebind\") { payload } }"}))
            .send()
    };
    let publish = |host: &str, origin: &str| {
        hub.http()
            .post(hub.url("/publish/rebind"))
            .header("host", host)
            .header("origin", origin)
            .header("content-type", "text/plain")
            .body("1")
            .send()
    };
    let same_origin_get = |host: &str| {
        hub.http()
            .get(hub.url("/graphql"))
            .query(&[("query", "subscription { events(topic: \"rebind\") { payload } }")])
            .header("host", host)
            .header("sec-fetch-site", "same-origin")
            .header("accept", "text/event-stream")
            .send()
    };
    let upgrade = |host: &str, origin: &str| {
        let mut request = hub.ws_url().into_client_request().expect("request");
        request.headers_mut().insert("host", host.parse().expect("header"));
        request.headers_mut().insert("origin", origin.parse().expect("header"));
        request.headers_mut().insert("sec-websocket-protocol", TRANSPORT_WS.parse().expect("header"));
        tokio_tungstenite::connect_async(request)
    };
    assert_eq!(sse_post(&evil_host, &evil_origin).await.expect("post").status(), StatusCode::FORBIDDEN);
    assert_eq!(publish(&evil_host, &evil_origin).await.expect("post").status(), StatusCode::FORBIDDEN);
    let response = same_origin_get(&evil_host).await.expect("get");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(body["errors"][0]["message"].as_str().unwrap_or_default().contains("[http] hosts"), "{body}");
    match upgrade(&evil_host, &evil_origin).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|_| "a session")),
    }
    assert_eq!(hub.metric("subhub_refused_total{reason=\"forbidden\"}").await, 4.0);
    assert_eq!(hub.metric("subhub_connections").await, 0.0);

    // The hub's own pages, by name or address.
    for host in ["localhost", "127.0.0.1"] {
        let (host, origin) = forged(host);
        assert_eq!(publish(&host, &origin).await.expect("post").status(), StatusCode::OK, "{host}");
        assert_eq!(same_origin_get(&host).await.expect("get").status(), StatusCode::OK, "{host}");
        assert!(upgrade(&host, &origin).await.is_ok(), "{host}");
    }
    // A name the hub is configured to be known by.
    let named = TestHub::with_config("[http]\nhosts = [\"hub.example\"]\n").await;
    let response = named
        .http()
        .post(named.url("/publish/rebind"))
        .header("host", format!("hub.example:{}", named.addr.port()))
        .header("origin", format!("http://hub.example:{}", named.addr.port()))
        .body("1")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::OK);
}

/// `[http] cors_origins` lets the pages it names in: preflights are answered for them, and
/// their requests carry the CORS headers; other origins still get nothing.
#[tokio::test]
async fn configured_origins_get_cors() {
    let hub = TestHub::with_config("[http]\ncors_origins = [\"https://app.example\"]\n").await;
    let preflight = hub
        .http()
        .request(reqwest::Method::OPTIONS, hub.url("/graphql"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "https://app.example");
    let query = json!({"query": "mutation { publish(topic: \"demo\", payload: 1) { ok } }"});
    let response = hub
        .http()
        .post(hub.url("/graphql"))
        .header("origin", "https://app.example")
        .json(&query)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["access-control-allow-origin"], "https://app.example");
    let response = hub
        .http()
        .post(hub.url("/graphql"))
        .header("origin", "https://other.example")
        .json(&query)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

/// Request bodies are read up to `max_message_bytes`, whatever it is: a body over it gets 413
/// with a JSON reason naming the limit, for a publish as for a GraphQL request, including
/// bodies far beyond it (which are not read whole).
#[tokio::test]
async fn bodies_are_bounded_by_max_message_bytes() {
    let hub = TestHub::with_config("[limits]\nmax_message_bytes = 4194304\n").await;
    // Beyond axum's own default limit of 2 MB, within the configured 4 MiB.
    let response = hub.http().post(hub.url("/publish/t")).body("x".repeat(3 << 20)).send().await.expect("publish");
    assert_eq!(response.status(), StatusCode::OK);
    for path in ["/publish/t", "/graphql"] {
        for size in [(4 << 20) + 1, 64 << 20] {
            let response = hub
                .http()
                .post(hub.url(path))
                .header("content-type", "application/json")
                .body("x".repeat(size))
                .send()
                .await
                .expect("post");
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path} {size}");
            let reply: Value = response.json().await.expect("json error body");
            let text = reply["errors"][0]["message"].as_str().unwrap_or_default();
            assert!(text.contains("limits.max_message_bytes"), "{path} {size}: {text}");
        }
    }
    assert_eq!(hub.metric("subhub_refused_total{reason=\"limit\"}").await, 4.0);
}
