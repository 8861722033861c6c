//! `[authz]` (DESIGN §11): topic rules for every API — the built-in `events` and `publish`,
//! typed fields, `POST /publish` — against a real hub, Redis and RabbitMQ.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use subhub::auth::sign_hs256;

const SECRET: &str = "authz-test-secret-0123456789";

/// Public topics for everyone, a user's own topics by the token's `sub`, everything (with the
/// brokers' wildcards) for admins.
fn config(brokers: &str) -> String {
    format!(
        r#"schema = "tests/fixtures/typed/orders.graphql"
default_broker = "local"
[brokers.local]
kind = "memory"
{brokers}
[auth]
hs256_secret = "{SECRET}"
required = false

[[authz.rules]]
topics = "public.**"
subscribe = true

[[authz.rules]]
topics = "user.{{{{ claims.sub }}}}.**"
subscribe = true
publish = true

[[authz.rules]]
topics = "**"
claims = {{ role = "admin" }}
subscribe = true
publish = true
wildcards = true
"#
    )
}

const REDIS_AND_RABBIT: &str = "[brokers.cache]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n\
    [brokers.rabbit]\nkind = \"amqp\"\nurl = \"amqp://guest:guest@127.0.0.1:5672/%2f\"\nexchange = \"subhub.authz\"\n";

fn token(claims: Value) -> String {
    signed_token(SECRET, claims)
}

async fn client(hub: &TestHub, token: Option<&str>) -> Client {
    let mut client = Client::connect(hub, TRANSPORT_WS).await;
    let payload = token.map_or(json!({}), |token| json!({"authorization": format!("Bearer {token}")}));
    client.send(json!({"type": "connection_init", "payload": payload})).await;
    assert_eq!(client.recv_json().await["type"], "connection_ack");
    client
}

/// Subscribes and returns the hub's answer: the `error` when it refused the subscription, or
/// `subscribed` once the subscription runs. Which of the two is told by the hub's counters, not
/// by timing: the rules are checked where the subscription starts, on its execution's task, so
/// a refusal can come after anything the connection answers at once (a pong).
async fn answer(hub: &TestHub, client: &mut Client, query: &str, variables: Value) -> Value {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let counts = || async { (hub.metric("subhub_subscriptions").await, hub.metric("subhub_refused_total").await) };
    let (running, refused) = counts().await;
    client.subscribe(&format!("q{id}"), query, variables).await;
    let settled = wait_for(PATIENCE, || async {
        let (now_running, now_refused) = counts().await;
        now_running > running || now_refused > refused
    })
    .await;
    assert!(settled, "the subscription neither ran nor was refused");
    if hub.metric("subhub_refused_total").await > refused {
        client.recv_json().await
    } else {
        json!({"type": "subscribed"})
    }
}

fn assert_forbidden(answer: &Value) {
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["payload"][0]["extensions"]["code"], "FORBIDDEN", "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_allow_public_and_own_topics_and_refuse_the_rest_with_forbidden() {
    let hub = TestHub::with_config(&config("")).await;
    let mut anonymous = client(&hub, None).await;
    let ada_token = token(json!({"sub": "ada"}));
    let mut ada = client(&hub, Some(&ada_token)).await;

    let public = answer(&hub, &mut anonymous, EVENTS_QUERY, json!({"topic": "public.news"})).await;
    assert_eq!(public["type"], "subscribed", "{public}");
    assert_forbidden(&answer(&hub, &mut anonymous, EVENTS_QUERY, json!({"topic": "private.news"})).await);
    assert_forbidden(&answer(&hub, &mut anonymous, EVENTS_QUERY, json!({"topic": "user.ada.orders"})).await);
    let own = answer(&hub, &mut ada, EVENTS_QUERY, json!({"topic": "user.ada.orders"})).await;
    assert_eq!(own["type"], "subscribed", "{own}");
    assert_forbidden(&answer(&hub, &mut ada, EVENTS_QUERY, json!({"topic": "user.bob.orders"})).await);
    // A typed field's rendered topic is checked too: `orders.7` is nobody's.
    let typed = "subscription { orderUpdated(id: \"7\") { id } }";
    assert_forbidden(&answer(&hub, &mut ada, typed, json!({})).await);

    let metrics = hub.metrics().await;
    assert_eq!(metrics["subhub_refused_total{reason=\"forbidden\"}"], 4.0);
    assert_eq!(hub.metric("subhub_subscriptions").await, 2.0);

    // What was allowed is delivered.
    hub.publish_as(&ada_token, "user.ada.orders", "{\"n\":1}").await;
    let next = ada.recv_json().await;
    assert_eq!(next["payload"]["data"]["events"]["payload"], json!({"n": 1}), "{next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_is_checked_on_every_path_with_403() {
    let hub = TestHub::with_config(&config("")).await;
    let ada = token(json!({"sub": "ada"}));
    let post = |topic: &str, token: Option<&str>| {
        let mut request = hub.http().post(hub.url(&format!("/publish/{topic}"))).body("{}");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(
        post("public.news", None).await.expect("post").status(),
        StatusCode::FORBIDDEN,
        "publish is not a subscribe"
    );
    assert_eq!(post("user.bob.x", Some(&ada)).await.expect("post").status(), StatusCode::FORBIDDEN);
    assert_eq!(post("user.ada.x", Some(&ada)).await.expect("post").status(), StatusCode::OK);

    let graphql = |query: &str, token: &str| {
        hub.http().post(hub.url("/graphql")).bearer_auth(token).json(&json!({"query": query})).send()
    };
    for query in [
        "mutation { publish(topic: \"user.bob.x\", payload: {}) { id } }",
        "mutation { updateOrder(id: \"7\", status: PAID) { id } }",
    ] {
        let response = graphql(query, &ada).await.expect("post");
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, StatusCode::FORBIDDEN, "{query}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
        assert!(body["data"].as_object().is_none_or(|data| data.values().all(Value::is_null)), "{body}");
    }
    let response =
        graphql("mutation { publish(topic: \"user.ada.x\", payload: {}) { id } }", &ada).await.expect("post");
    assert_eq!(response.status(), StatusCode::OK);
    let admin = token(json!({"sub": "root", "role": "admin"}));
    let response = graphql("mutation { updateOrder(id: \"7\", status: PAID) { id } }", &admin).await.expect("post");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(hub.metric("subhub_refused_total").await, 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_wildcards_need_a_rule_that_allows_them() {
    if !broker_available("Redis", "127.0.0.1:6379") || !broker_available("RabbitMQ", "127.0.0.1:5672") {
        return;
    }
    let hub = TestHub::with_config(&config(REDIS_AND_RABBIT)).await;
    let query = "subscription($topic: String!, $broker: String) { events(topic: $topic, broker: $broker) { topic } }";
    let ada = token(json!({"sub": "ada"}));
    let mut user = client(&hub, Some(&ada)).await;
    // The globs match these topics as text, but they read more than one topic.
    for (broker, topic) in
        [("cache", "public.*"), ("cache", "user.ada.*"), ("rabbit", "public.#"), ("rabbit", "user.ada.*")]
    {
        let refused = answer(&hub, &mut user, query, json!({"topic": topic, "broker": broker})).await;
        assert_forbidden(&refused);
        assert!(refused["payload"][0]["message"].as_str().unwrap_or("").contains(topic), "{refused}");
    }
    // Without wildcards, the same topics are fine.
    for (broker, topic) in [("cache", "public.news"), ("rabbit", "user.ada.news")] {
        let allowed = answer(&hub, &mut user, query, json!({"topic": topic, "broker": broker})).await;
        assert_eq!(allowed["type"], "subscribed", "{allowed}");
    }
    assert_eq!(hub.metric("subhub_sources_open").await, 2.0);

    let root = token(json!({"sub": "root", "role": "admin"}));
    let mut admin = client(&hub, Some(&root)).await;
    for (broker, topic) in [("cache", "*"), ("rabbit", "#")] {
        let allowed = answer(&hub, &mut admin, query, json!({"topic": topic, "broker": broker})).await;
        assert_eq!(allowed["type"], "subscribed", "{allowed}");
    }
    hub.wait_metric("subhub_sources_open", 4.0).await;
    assert_eq!(hub.metric("subhub_refused_total").await, 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_that_cannot_work_stop_the_hub_at_start() {
    for (rules, says) in [
        ("[[authz.rules]]\ntopics = \"a.**\"\n", "allows nothing"),
        ("[[authz.rules]]\ntopics = \"a.{{ args.id }}\"\nsubscribe = true\n", "not arguments"),
        ("[[authz.rules]]\ntopics = \"a\"\nsubscribe = true\nbroker = \"nope\"\n", "names no configured broker"),
        ("[[authz.rules]]\ntopics = \"a\"\nsubscribe = true\nwildcard = true\n", "wildcard"),
    ] {
        let path = std::env::temp_dir().join(format!("subhub-authz-{}.toml", std::process::id()));
        std::fs::write(&path, rules).expect("write");
        let error = subhub::config::Config::load(Some(&path), Vec::new()).expect_err(rules).to_string();
        assert!(error.contains(says), "{rules}: {error}");
        let _ = std::fs::remove_file(&path);
    }
}

/// Two tokens of one `sub`, one with the admin role: the other must not join the admin's
/// execution (it would skip the rules and read the admin's topic).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_the_same_subject_with_other_claims_does_not_join_an_execution() {
    let hub = TestHub::with_config(&config("")).await;
    let mut admin = client(&hub, Some(&token(json!({"sub": "ada", "role": "admin"})))).await;
    let subscribed = answer(&hub, &mut admin, EVENTS_QUERY, json!({"topic": "audit.log"})).await;
    assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
    let mut user = client(&hub, Some(&token(json!({"sub": "ada", "role": "user"})))).await;
    assert_forbidden(&answer(&hub, &mut user, EVENTS_QUERY, json!({"topic": "audit.log"})).await);
    assert_eq!(hub.metric("subhub_executions").await, 1.0);

    // The admin's refreshed token (other times, same claims) shares the execution.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let refreshed =
        sign_hs256(SECRET.as_bytes(), &json!({"role": "admin", "sub": "ada", "iat": now, "exp": now + 900}));
    let mut again = client(&hub, Some(&refreshed)).await;
    let subscribed = answer(&hub, &mut again, EVENTS_QUERY, json!({"topic": "audit.log"})).await;
    assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
    assert_eq!(hub.metric("subhub_subscriptions").await, 2.0);
    assert_eq!(hub.metric("subhub_executions").await, 1.0);
}
