//! The federation gateway when subgraphs fail (down, slow, oversized answers), when identical
//! queries meet in flight, and as `[auth]`, `[limits]`, `forward_headers` and the claims header
//! make it: with real subgraph servers over HTTP on port 0.

mod common;
mod subgraphs;

use std::time::{Duration, Instant};

use common::{signed_token, wait_for, TestHub, PATIENCE};
use serde_json::{json, Value};
use subgraphs::{Faults, Subgraphs};

async fn post(hub: &TestHub, query: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = hub.http().post(hub.url("/graphql")).json(&json!({ "query": query }));
    if let Some(token) = token {
        request = request.bearer_auth(token).header("x-subhub-claims", r#"{"sub":"forged"}"#);
    }
    let response = request.send().await.expect("POST /graphql");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON response"))
}

/// `me` is accounts' and nullable; `topProducts` is products'.
const ME_AND_PRODUCTS: &str = "{ me { name } topProducts { name } }";

fn assert_products_intact(response: &Value) {
    let names: Vec<&str> =
        response["data"]["topProducts"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["Trilby", "Fedora", "Boater"], "{response}");
}

fn the_error(response: &Value) -> &Value {
    let errors = response["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{response}");
    &errors[0]
}

#[tokio::test]
async fn a_subgraph_that_is_down_nulls_its_fields_and_names_itself_only() {
    let subgraphs = Subgraphs::start().await;
    let closed = format!("http://127.0.0.1:{}/graphql", common::servers::free_port());
    let url = format!("url = {closed:?}");
    let config = subgraphs.config(&[], "").replace(&format!("url = {:?}", subgraphs.accounts.url()), &url);
    let hub = TestHub::with_config(&config).await;
    let (status, response) = post(&hub, ME_AND_PRODUCTS, None).await;
    assert_eq!(status, 200);
    assert_eq!(response["data"]["me"], Value::Null);
    assert_products_intact(&response);
    let error = the_error(&response);
    assert_eq!(error["extensions"]["code"], "SUBREQUEST_HTTP_ERROR");
    assert_eq!(error["extensions"]["service"], "accounts");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("'accounts'") && !message.contains("127.0.0.1"), "{message}");
    assert_eq!(hub.metric("subhub_subgraph_requests_total{result=\"error\",subgraph=\"accounts\"}").await, 1.0);
    hub.shutdown().await;
}

#[tokio::test]
async fn a_slow_subgraph_is_given_up_on_after_its_timeout() {
    let subgraphs = Subgraphs::start().await;
    subgraphs.accounts.set_faults(Faults { delay: Some(Duration::from_secs(60)), ..Faults::default() });
    let hub = TestHub::with_config(&subgraphs.config(&[("accounts", "timeout = \"300ms\"")], "")).await;
    let started = Instant::now();
    let (_, response) = post(&hub, ME_AND_PRODUCTS, None).await;
    // Long before the subgraph would have answered.
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert_eq!(response["data"]["me"], Value::Null);
    assert_products_intact(&response);
    let error = the_error(&response);
    assert_eq!(error["extensions"]["code"], "SUBREQUEST_TIMEOUT");
    assert_eq!(error["extensions"]["service"], "accounts");
    assert_eq!(hub.metric("subhub_subgraph_requests_total{result=\"timeout\",subgraph=\"accounts\"}").await, 1.0);
    hub.shutdown().await;
}

#[tokio::test]
async fn a_response_larger_than_max_response_bytes_is_refused() {
    let subgraphs = Subgraphs::start().await;
    subgraphs.accounts.set_faults(Faults { pad: 64 * 1024, ..Faults::default() });
    let hub = TestHub::with_config(&subgraphs.config(&[("accounts", "max_response_bytes = 4096")], "")).await;
    let (_, response) = post(&hub, ME_AND_PRODUCTS, None).await;
    assert_eq!(response["data"]["me"], Value::Null);
    assert_products_intact(&response);
    let error = the_error(&response);
    assert_eq!(error["extensions"]["code"], "SUBREQUEST_HTTP_ERROR");
    assert!(error["message"].as_str().unwrap_or_default().contains("larger than 4096 bytes"), "{error}");
    hub.shutdown().await;
}

#[tokio::test]
async fn identical_queries_in_flight_reach_the_subgraph_once() {
    let subgraphs = Subgraphs::start().await;
    let (open, gate) = tokio::sync::watch::channel(false);
    subgraphs.products.set_faults(Faults { gate: Some(gate), ..Faults::default() });
    let hub = TestHub::with_config(&subgraphs.config(&[], "")).await;
    let query = "{ topProducts { name } }";
    let first = tokio::spawn({
        let (client, url) = (hub.http().clone(), hub.url("/graphql"));
        async move { client.post(url).json(&json!({ "query": query })).send().await.expect("first").json::<Value>().await }
    });
    assert!(wait_for(PATIENCE, || async { subgraphs.products.requests() == 1 }).await, "the first request arrives");
    let second = tokio::spawn({
        let (client, url) = (hub.http().clone(), hub.url("/graphql"));
        async move { client.post(url).json(&json!({ "query": query })).send().await.expect("second").json::<Value>().await }
    });
    let shared = "subhub_subgraph_requests_shared_total{subgraph=\"products\"}";
    assert!(wait_for(PATIENCE, || async { hub.metric(shared).await == 1.0 }).await, "the second joins the first");
    open.send(true).expect("open the gate");
    let (first, second) = (first.await.expect("first").expect("json"), second.await.expect("second").expect("json"));
    assert_products_intact(&first);
    assert_eq!(first, second);
    assert_eq!(subgraphs.products.requests(), 1);
    // Once answered, the next identical query is sent again.
    let (_, third) = post(&hub, query, None).await;
    assert_products_intact(&third);
    assert_eq!(subgraphs.products.requests(), 2);
    hub.shutdown().await;
}

#[tokio::test]
async fn each_distinct_operation_is_planned_once() {
    let subgraphs = Subgraphs::start().await;
    let hub = TestHub::with_config(&subgraphs.config(&[], "")).await;
    for _ in 0..3 {
        let (_, response) = post(&hub, "{ topProducts { name inStock } }", None).await;
        assert_eq!(response["data"]["topProducts"][1], json!({"name": "Fedora", "inStock": false}), "{response}");
    }
    assert_eq!(hub.metric("subhub_plan_cache_total{result=\"miss\"}").await, 1.0);
    assert_eq!(hub.metric("subhub_plan_cache_total{result=\"hit\"}").await, 2.0);
    hub.shutdown().await;
}

#[tokio::test]
async fn headers_reach_only_the_subgraphs_that_forward_them_and_claims_come_from_the_hub() {
    let subgraphs = Subgraphs::start().await;
    let auth = "[auth]\nhs256_secret = \"test-secret-0123456789\"\nrequired = false\n";
    let config = subgraphs
        .config(&[("accounts", "forward_headers = [\"Authorization\", \"x-subhub-claims\"]")], auth)
        .replace("[federation]\n", "[federation]\nclaims_header = \"x-subhub-claims\"\n");
    let hub = TestHub::with_config(&config).await;
    let token = signed_token("test-secret-0123456789", json!({"sub": "ada", "role": "reader"}));
    let (_, response) = post(&hub, ME_AND_PRODUCTS, Some(&token)).await;
    assert_eq!(response["data"]["me"]["name"], "Ada Lovelace", "{response}");
    let accounts = &subgraphs.accounts.seen()[0].headers;
    assert_eq!(accounts.get("authorization").and_then(|v| v.to_str().ok()), Some(format!("Bearer {token}").as_str()));
    let products = &subgraphs.products.seen()[0].headers;
    assert_eq!(products.get("authorization"), None);
    for headers in [accounts, products] {
        // The hub's verified claims, never the client's header of that name.
        let claims: Vec<&str> = headers.get_all("x-subhub-claims").iter().filter_map(|v| v.to_str().ok()).collect();
        assert_eq!(claims.len(), 1, "{claims:?}");
        let claims: Value = serde_json::from_str(claims[0]).expect("claims as JSON");
        assert_eq!((&claims["sub"], &claims["role"]), (&json!("ada"), &json!("reader")));
    }
    // An anonymous client gets no claims header at all.
    let before = subgraphs.products.seen().len();
    let _ = post(&hub, "{ topProducts { name } }", None).await;
    assert_eq!(subgraphs.products.seen()[before].headers.get("x-subhub-claims"), None);
    hub.shutdown().await;
}

#[tokio::test]
async fn auth_and_limits_apply_before_any_subgraph_is_asked() {
    let subgraphs = Subgraphs::start().await;
    let extra = "[auth]\nhs256_secret = \"test-secret-0123456789\"\n[limits]\nmax_query_depth = 3\nmax_aliases = 1\n";
    let hub = TestHub::with_config(&subgraphs.config(&[], extra)).await;
    let (status, _) = post(&hub, "{ topProducts { name } }", None).await;
    assert_eq!(status, 401, "[auth] requires a token");
    let token = signed_token("test-secret-0123456789", json!({"sub": "ada"}));
    let (status, response) = post(&hub, "{ topProducts { reviews { author { name } } } }", Some(&token)).await;
    assert_eq!(status, 400, "{response}");
    assert!(response["errors"][0]["message"].as_str().unwrap_or_default().contains("max_query_depth"), "{response}");
    let (_, response) = post(&hub, "{ a: topProducts { name } b: topProducts { upc } }", Some(&token)).await;
    assert!(response["errors"][0]["message"].as_str().unwrap_or_default().contains("max_aliases"), "{response}");
    assert_eq!(subgraphs.products.requests(), 0);
    let (_, response) = post(&hub, "{ topProducts { reviews { body } } }", Some(&token)).await;
    assert_eq!(response["data"]["topProducts"][0]["reviews"][0]["body"], "Love it!", "{response}");
    hub.shutdown().await;
}
