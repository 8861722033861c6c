//! Typed schemas (DESIGN §5): SDL types served as written, fields bound to topics, filters,
//! publishes and metadata, against a real hub and real clients.

mod common;

use std::process::Command;

use common::*;
use serde_json::{json, Value};

const ORDERS: &str = "schema = \"tests/fixtures/typed/orders.graphql\"\n";
const ORDER_UPDATED: &str = "subscription($id: ID!) { orderUpdated(id: $id) { id status total } }";

/// The orders schema with its broker `local` on Redis pub/sub instead of the memory broker.
fn orders_on_redis() -> String {
    format!("{ORDERS}[brokers.local]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n")
}

/// An id no other test run uses, and that a topic may carry (no separators).
fn order_id(prefix: &str) -> String {
    unique(prefix).replace('.', "-")
}

fn order(id: &str, total: f64) -> String {
    json!({"id": id, "status": "PAID", "total": total, "items": []}).to_string()
}

#[tokio::test]
async fn a_typed_subscription_serves_typed_events() {
    let hub = TestHub::with_config(ORDERS).await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    let query = "subscription($id: ID!) { orderUpdated(id: $id) { id status total items { sku qty } topic } }";
    client.subscribe("1", query, json!({"id": "7"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    hub.publish(
        "orders.7",
        r#"{"id": 7, "status": "PAID", "total": 12.5, "items": [{"sku": "a", "qty": 2}], "extra": true}"#,
    )
    .await;
    let text = client.recv_text().await;
    assert_eq!(
        text,
        r#"{"id":"1","type":"next","payload":{"data":{"orderUpdated":{"id":"7","status":"PAID","total":12.5,"items":[{"sku":"a","qty":2}],"topic":"orders.7"}},"extensions":{"cursor":"1"}}}"#
    );
}

/// 100 clients with the same arguments cost one source and one execution; clients with other
/// arguments get another topic; everyone gets exactly the events of its own order, in order.
async fn same_arguments_share_and_other_arguments_do_not(config: &str) {
    let hub = TestHub::with_config(config).await;
    let (mine, theirs) = (order_id("shared"), order_id("other"));
    let mut clients = Vec::new();
    for i in 0..100 {
        let mut client = Client::ready(&hub, TRANSPORT_WS).await;
        client.subscribe(&format!("s{i}"), ORDER_UPDATED, json!({"id": mine})).await;
        clients.push((mine.clone(), client));
    }
    hub.wait_metric("subhub_subscriptions", 100.0).await;
    hub.wait_metric("subhub_sources_open", 1.0).await;
    assert_eq!(hub.metric("subhub_executions").await, 1.0);
    for i in 0..10 {
        let mut client = Client::ready(&hub, TRANSPORT_WS).await;
        client.subscribe(&format!("o{i}"), ORDER_UPDATED, json!({"id": theirs})).await;
        clients.push((theirs.clone(), client));
    }
    hub.wait_metric("subhub_subscriptions", 110.0).await;
    hub.wait_metric("subhub_sources_open", 2.0).await;
    assert_eq!(hub.metric("subhub_executions").await, 2.0);

    for n in 0..20 {
        for id in [&mine, &theirs] {
            hub.publish(&format!("orders.{id}"), order(id, f64::from(n))).await;
        }
    }
    for (i, (id, client)) in clients.iter_mut().enumerate() {
        for n in 0..20 {
            let message = client.recv_json().await;
            assert_eq!(message["type"], "next", "client {i}: {message}");
            let order = &message["payload"]["data"]["orderUpdated"];
            assert_eq!(order, &json!({"id": id, "status": "PAID", "total": f64::from(n)}), "client {i}");
        }
        // Nothing else: the next frame is the pong.
        assert_eq!(client.until_pong().await, Vec::<Value>::new(), "client {i} got more");
    }
    assert_eq!(hub.metric("subhub_executions").await, 2.0);
    hub.wait_metric("subhub_deliveries_total", 2200.0).await;
    drop(clients);
    hub.wait_metric("subhub_sources_open", 0.0).await;
    hub.wait_metric("subhub_executions", 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_subscriptions_share_by_arguments_on_the_memory_broker() {
    same_arguments_share_and_other_arguments_do_not(ORDERS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_subscriptions_share_by_arguments_on_redis() {
    if !broker_available("Redis", "127.0.0.1:6379") {
        return;
    }
    same_arguments_share_and_other_arguments_do_not(&orders_on_redis()).await;
}

const SECRET: &str = "typed-test-secret-0123456789";

fn token(claims: Value) -> String {
    signed_token(SECRET, claims)
}

async fn client_with_token(hub: &TestHub, token: &str) -> Client {
    let mut client = Client::connect(hub, TRANSPORT_WS).await;
    client.send(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}})).await;
    assert_eq!(client.recv_json().await["type"], "connection_ack");
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_templated_topics_deliver_each_user_only_their_own_orders() {
    // Anonymous clients served (the test publishes without a token), tokens checked.
    let config = format!("{ORDERS}[auth]\nhs256_secret = \"{SECRET}\"\nrequired = false\n");
    let hub = TestHub::with_config(&config).await;
    let users: Vec<String> = (0..50).map(|i| format!("user-{i}")).collect();
    let mut clients = Vec::new();
    for user in &users {
        let mut client = client_with_token(&hub, &token(json!({"sub": user}))).await;
        client.subscribe("mine", "subscription { myOrders { id total } }", json!({})).await;
        clients.push(client);
    }
    hub.wait_metric("subhub_subscriptions", 50.0).await;
    hub.wait_metric("subhub_sources_open", 50.0).await;
    // Every user's orders, interleaved: each client must see its five and no other.
    for n in 0..5 {
        for user in &users {
            hub.publish(&format!("orders.by-user.{user}"), order(user, f64::from(n))).await;
        }
    }
    let mut wrong = 0;
    for (user, client) in users.iter().zip(clients.iter_mut()) {
        let mut totals = Vec::new();
        for _ in 0..5 {
            let message = client.recv_json().await;
            let order = &message["payload"]["data"]["myOrders"];
            if order["id"] != json!(user) {
                wrong += 1;
            }
            totals.push(order["total"].as_f64().unwrap_or(-1.0));
        }
        wrong += client.until_pong().await.len();
        assert_eq!(totals, [0.0, 1.0, 2.0, 3.0, 4.0], "{user}");
    }
    assert_eq!(wrong, 0, "deliveries to the wrong user");
    hub.wait_metric("subhub_deliveries_total", 250.0).await;

    // An anonymous client has no `sub` to render.
    let mut anonymous = Client::ready(&hub, TRANSPORT_WS).await;
    anonymous.subscribe("mine", "subscription { myOrders { id } }", json!({})).await;
    let refused = anonymous.recv_json().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert!(refused["payload"][0]["message"].as_str().unwrap_or("").contains("no claim `sub`"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_run_once_per_event_per_execution_not_per_subscriber() {
    let hub = TestHub::with_config(ORDERS).await;
    let query = "subscription($min: Float!) { bigOrders(min: $min) { total } }";
    let mut clients = Vec::new();
    for i in 0..25 {
        let min = if i < 20 { 10.0 } else { 25.0 };
        let mut client = Client::ready(&hub, TRANSPORT_WS).await;
        client.subscribe("big", query, json!({"min": min})).await;
        clients.push((min, client));
    }
    hub.wait_metric("subhub_subscriptions", 25.0).await;
    assert_eq!(hub.metric("subhub_executions").await, 2.0);
    let totals = [5.0, 15.0, 8.0, 25.0, 3.0, 30.0];
    for total in totals {
        hub.publish("orders", order("f", total)).await;
    }
    for (min, client) in &mut clients {
        let mut got = Vec::new();
        for _ in totals.iter().filter(|total| **total >= *min) {
            got.push(client.recv_json().await["payload"]["data"]["bigOrders"]["total"].as_f64().unwrap_or(-1.0));
        }
        let expected: Vec<f64> = totals.iter().copied().filter(|total| *total >= *min).collect();
        assert_eq!(got, expected);
        assert_eq!(client.until_pong().await, Vec::<Value>::new(), "an event under the bound arrived");
    }
    // Six events, two executions: twelve evaluations, not one per subscriber (150).
    let metrics = hub.metrics().await;
    assert_eq!(metrics["subhub_filter_evaluations_total{result=\"passed\"}"], 5.0); // 3 for ≥10, 2 for ≥25
    assert_eq!(metrics["subhub_filter_evaluations_total{result=\"dropped\"}"], 7.0);
}

async fn refused(hub: &TestHub, query: &str, variables: Value) -> Value {
    let mut client = Client::ready(hub, TRANSPORT_WS).await;
    client.subscribe("w", query, variables).await;
    let message = client.recv_json().await;
    assert_eq!(message["type"], "error", "{message}");
    message["payload"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_argument_cannot_widen_a_subscription_or_reach_another_topic() {
    let hub = TestHub::with_config(ORDERS).await;
    // On the memory broker, a separator would reach another field's topic.
    for id in ["by-user.ada", "a/b", "a:b"] {
        let error = refused(&hub, ORDER_UPDATED, json!({"id": id})).await;
        assert!(error["message"].as_str().unwrap_or("").contains("argument `id` must not contain"), "{error}");
    }
    assert_eq!(hub.metric("subhub_sources_open").await, 0.0);

    if broker_available("Redis", "127.0.0.1:6379") {
        let hub = TestHub::with_config(&orders_on_redis()).await;
        for id in ["*", "a?", "[ab]"] {
            let error = refused(&hub, ORDER_UPDATED, json!({"id": id})).await;
            assert!(error["message"].as_str().unwrap_or("").contains("must not contain"), "{error}");
        }
        assert_eq!(hub.metric("subhub_sources_open").await, 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_that_do_not_fit_give_that_event_an_error_and_the_subscription_goes_on() {
    let hub = TestHub::with_config(ORDERS).await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    let query = "subscription { orderUpdated(id: \"m\") { id status total items { sku qty } } }";
    client.subscribe("1", query, json!({})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    let misfits = [
        // A string where a nullable Float is declared: that field is null.
        (
            json!({"id": "m", "status": "OPEN", "total": "lots", "items": []}),
            json!({"id": "m", "status": "OPEN", "total": null, "items": []}),
            vec!["orderUpdated", "total"],
        ),
        // A string where an Int! is declared: null up to the nearest nullable place, the root.
        (
            json!({"id": "m", "status": "OPEN", "total": 1, "items": [{"sku": "a", "qty": "two"}]}),
            Value::Null,
            vec!["orderUpdated", "items", "0", "qty"],
        ),
        // A missing non-null field.
        (json!({"id": "m", "total": 1, "items": []}), Value::Null, vec!["orderUpdated", "status"]),
        // An unknown enum value.
        (json!({"id": "m", "status": "LOST", "total": 1, "items": []}), Value::Null, vec!["orderUpdated", "status"]),
    ];
    for (payload, _, _) in &misfits {
        hub.publish("orders.m", payload.to_string()).await;
    }
    hub.publish("orders.m", order("m", 2.0)).await;
    for (n, (_, data, path)) in misfits.iter().enumerate() {
        let message = client.recv_json().await;
        assert_eq!(message["type"], "next", "misfit {n}: {message}");
        let payload = &message["payload"];
        let expected_data = if data.is_null() { Value::Null } else { json!({ "orderUpdated": data }) };
        assert_eq!(payload["data"], expected_data, "misfit {n}: {message}");
        let error_path: Vec<String> = payload["errors"][0]["path"]
            .as_array()
            .map(|path| path.iter().map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned)).collect())
            .unwrap_or_default();
        assert_eq!(error_path, *path, "misfit {n}: {message}");
    }
    let good = client.recv_json().await;
    assert_eq!(
        good["payload"]["data"],
        json!({"orderUpdated": {"id": "m", "status": "PAID", "total": 2.0, "items": []}})
    );
    assert_eq!(hub.metric("subhub_event_errors_total").await, 4.0);
    assert_eq!(hub.metric("subhub_subscriptions").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_mutation_publishes_its_arguments_or_its_input() {
    let hub = TestHub::with_config(ORDERS).await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("u", "subscription { orderUpdated(id: \"9\") { id status } }", json!({})).await;
    client.subscribe("b", "subscription { bigOrders(min: 100) { id status total } }", json!({})).await;
    hub.wait_metric("subhub_subscriptions", 2.0).await;
    let mutation = |query: &str| hub.http().post(hub.url("/graphql")).json(&json!({"query": query})).send();
    let response = mutation("mutation { updateOrder(id: \"9\", status: SHIPPED) { id } }").await.expect("post");
    assert_eq!(response.status(), 200);
    let update = client.recv_json().await;
    assert_eq!(update["payload"]["data"]["orderUpdated"], json!({"id": "9", "status": "SHIPPED"}), "{update}");
    mutation("mutation { placeOrder(input: {id: \"10\", status: OPEN, total: 120}) { id } }").await.expect("post");
    let placed = client.recv_json().await;
    let big = &placed["payload"]["data"]["bigOrders"];
    assert_eq!(
        (&big["id"], &big["status"], big["total"].as_f64()),
        (&json!("10"), &json!("OPEN"), Some(120.0)),
        "{placed}"
    );
}

/// `subhub check` names every problem of each broken schema with its line and column, and the
/// hub refuses to start on the same words.
#[test]
fn check_reports_each_problem_of_a_broken_schema_with_line_and_column() {
    let cases: [(&str, &[&str]); 9] = [
        ("unknown-broker", &["6:36: unknown broker `kafka` (configured: local)"]),
        (
            "missing-argument",
            &["5:68: the template names argument `orderId`, which field `orderUpdated` does not have"],
        ),
        ("unknown-claim-root", &["5:55: `{{ token.sub }}` names neither `args` nor `claims`"]),
        ("filter-missing-field", &["7:5: @filter on field `amount`, which `Order` does not have"]),
        (
            "wrong-field",
            &[
                "3:11: @subscribe on a field of `Order`: it belongs on Subscription fields",
                "7:14: a typed schema serves no Query fields",
                "14:24: Mutation field `placeOrder` publishes: it returns PublishResult!",
            ],
        ),
        (
            "several",
            &[
                "5:32: unknown broker `nowhere`",
                "6:48: the template names argument `id`, which field `b` does not have",
                "7:3: Subscription field `c` needs @subscribe",
            ],
        ),
        ("event-and-types", &["4:20: @event(meta: …) reads", "5:13: unknown type `Customer`"]),
        ("syntax", &["4:9: the SDL does not parse"]),
        (
            "federation",
            &[
                "1:15: @link(url: \"https://specs.apollo.dev/federation/v1.0\"): the hub is a Federation v2 subgraph",
                "3:1: a definition of unknown directive @audited",
                "5:15: @key(fields: \"ref\"): `Purchase` has no field `ref`",
                "5:66: the hub answers no `_entities` requests: its keys are `resolvable: false`",
                "7:16: @requires: the hub resolves no entities for other subgraphs",
                "11:61: @external on a Subscription field: the hub serves it",
            ],
        ),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/typed/broken");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .filter_map(|entry| Some(entry.ok()?.path().file_stem()?.to_str()?.to_owned()))
        .collect();
    files.sort();
    let mut named: Vec<String> = cases.iter().map(|(name, _)| (*name).to_owned()).collect();
    named.sort();
    assert_eq!(files, named, "every broken fixture has its expected problems here");

    for (name, problems) in cases {
        let schema = dir.join(format!("{name}.graphql"));
        let config = std::env::temp_dir().join(format!("subhub-typed-{}-{name}.toml", std::process::id()));
        std::fs::write(&config, format!("schema = \"{}\"\n", schema.display())).expect("write config");
        for args in [&["check", "--config"][..], &["--config"][..]] {
            let output = Command::new(env!("CARGO_BIN_EXE_subhub"))
                .args(args)
                .arg(&config)
                .env_remove("SUBHUB_CONFIG")
                .output()
                .expect("run subhub");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{name}: {args:?} succeeded");
            let lines: Vec<&str> = stderr.lines().filter(|line| line.contains(&*schema.to_string_lossy())).collect();
            assert_eq!(lines.len(), problems.len(), "{name}: {stderr}");
            for (line, problem) in lines.iter().zip(problems) {
                let expected = format!("{}:{problem}", schema.display());
                assert!(
                    line.trim_start_matches("subhub: ").starts_with(&expected),
                    "{name}: expected {expected}\n got {line}"
                );
            }
        }
        let _ = std::fs::remove_file(&config);
    }
}

#[test]
fn check_describes_a_good_schema() {
    let config = std::env::temp_dir().join(format!("subhub-typed-{}-good.toml", std::process::id()));
    std::fs::write(&config, ORDERS).expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_subhub"))
        .args(["check", "--config"])
        .arg(&config)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run subhub");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("orders.graphql: 3 subscription fields, 2 mutation fields"), "{stdout}");
    assert!(stdout.contains("authz: none; every topic is open"), "{stdout}");
    let _ = std::fs::remove_file(&config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unions_and_interfaces_resolve_by_typename_and_json_passes_through() {
    let hub = TestHub::with_config("schema = \"tests/fixtures/typed/feed.graphql\"\n").await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    let entries = "subscription { entries { __typename ... on Post { title } ... on Comment { body } } }";
    client.subscribe("e", entries, json!({})).await;
    client.subscribe("n", "subscription { nodes { id ... on Post { title } } }", json!({})).await;
    client.subscribe("r", "subscription { raw { data kind } }", json!({})).await;
    hub.wait_metric("subhub_subscriptions", 3.0).await;
    hub.publish("feed", r#"{"__typename": "Post", "id": "1", "title": "Hello"}"#).await;
    hub.publish("feed", r#"{"__typename": "Comment", "id": "2", "body": "Hi"}"#).await;
    hub.publish("feed", r#"{"__typename": "Poll", "id": "3"}"#).await;
    hub.publish("raw", r#"{"data": {"z": 1, "a": [2, {"y": null, "b": 1.50}]}, "kind": "k"}"#).await;

    let mut by_id: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for _ in 0..7 {
        let text = without_cursor(&client.recv_text().await);
        let id = serde_json::from_str::<Value>(&text).expect("json")["id"].as_str().unwrap_or_default().to_owned();
        by_id.entry(id).or_default().push(text);
    }
    assert_eq!(
        by_id["e"][..2],
        [
            r#"{"id":"e","type":"next","payload":{"data":{"entries":{"__typename":"Post","title":"Hello"}}}}"#,
            r#"{"id":"e","type":"next","payload":{"data":{"entries":{"__typename":"Comment","body":"Hi"}}}}"#,
        ]
    );
    assert_eq!(
        by_id["n"][..2],
        [
            r#"{"id":"n","type":"next","payload":{"data":{"nodes":{"id":"1","title":"Hello"}}}}"#,
            r#"{"id":"n","type":"next","payload":{"data":{"nodes":{"id":"2"}}}}"#,
        ]
    );
    // A type the union does not have: an error in that event, as for any misfit.
    for id in ["e", "n"] {
        let misfit: Value = serde_json::from_str(&by_id[id][2]).expect("json");
        assert_eq!(misfit["payload"]["data"], Value::Null, "{misfit}");
        assert!(misfit["payload"]["errors"][0]["message"].is_string(), "{misfit}");
    }
    // The JSON field's bytes as published: key order, spacing inside numbers kept.
    assert_eq!(
        by_id["r"],
        [
            r#"{"id":"r","type":"next","payload":{"data":{"raw":{"data":{"z": 1, "a": [2, {"y": null, "b": 1.50}]},"kind":"k"}}}}"#
        ]
    );
    assert_eq!(hub.metric("subhub_event_errors_total").await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_of_several_topics_reads_them_all_through_one_execution() {
    let hub = TestHub::with_config("schema = \"tests/fixtures/typed/feed.graphql\"\n").await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = Client::ready(&hub, TRANSPORT_WS).await;
        client.subscribe("r", "subscription { rawOf(id: \"a\") { kind } }", json!({})).await;
        clients.push(client);
    }
    hub.wait_metric("subhub_subscriptions", 3.0).await;
    assert_eq!(hub.metric("subhub_sources_open").await, 2.0);
    assert_eq!(hub.metric("subhub_executions").await, 1.0);
    hub.publish("raw-a", r#"{"kind": "mine"}"#).await;
    hub.publish("raw-b", r#"{"kind": "another id's"}"#).await;
    hub.publish("raw", r#"{"kind": "everyone's"}"#).await;
    for client in &mut clients {
        for kind in ["mine", "everyone's"] {
            assert_eq!(client.recv_json().await["payload"]["data"]["rawOf"]["kind"], kind);
        }
        assert_eq!(client.until_pong().await, Vec::<Value>::new());
    }
    drop(clients);
    hub.wait_metric("subhub_sources_open", 0.0).await;
}

/// The message without its `extensions.cursor` (the memory broker's sequence, which depends on
/// the order of publishes across topics).
fn without_cursor(text: &str) -> String {
    let Some(start) = text.find(r#","extensions":{"cursor":""#) else { return text.to_owned() };
    let end = start + text[start..].find("\"}").expect("the cursor's end") + 2;
    format!("{}{}", &text[..start], &text[end..])
}
