//! The hub as a federation gateway (DESIGN §15): queries and mutations across four real
//! subgraphs over HTTP (async-graphql servers on port 0), introspection of the composed schema,
//! and the same through the WebSocket endpoint. Faults, limits and headers are in
//! `federation_faults.rs`.

mod common;
mod subgraphs;

use std::sync::Arc;

use common::{Client, TestHub, TRANSPORT_WS};
use serde_json::{json, Value};
use subgraphs::{Faults, Subgraphs};

pub async fn post(hub: &TestHub, query: &str, variables: Value) -> Value {
    let response = hub
        .http()
        .post(hub.url("/graphql"))
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("POST /graphql");
    response.json().await.expect("a JSON response")
}

const TOP_PRODUCTS: &str =
    "{ topProducts { upc name price inStock shippingEstimate reviews { body author { name username } } } }";

#[tokio::test]
async fn a_query_joins_the_fields_of_four_subgraphs() {
    let subgraphs = Subgraphs::start().await;
    let hub = TestHub::with_config(&subgraphs.config(&[], "")).await;
    let response = post(&hub, TOP_PRODUCTS, json!({})).await;
    assert_eq!(response.get("errors"), None, "{response}");
    let products = response["data"]["topProducts"].as_array().expect("a list");
    assert_eq!(products.len(), 3);
    // `shippingEstimate` @requires `price weight` of products: free over 20, else half the weight.
    assert_eq!(
        products[0],
        json!({
            "upc": "top-1", "name": "Trilby", "price": 11, "inStock": true, "shippingEstimate": 50,
            "reviews": [
                {"body": "Love it!", "author": {"name": "Ada Lovelace", "username": "@ada"}},
                {"body": "Prefer something else.", "author": {"name": "Alan Turing", "username": "@complete"}},
            ],
        })
    );
    assert_eq!(products[1]["shippingEstimate"], 0);
    assert_eq!(products[1]["inStock"], false);
    // The selection's order, not the subgraphs'.
    let keys: Vec<&String> = products[0].as_object().expect("an object").keys().collect();
    assert_eq!(keys, ["upc", "name", "price", "inStock", "shippingEstimate", "reviews"]);
    hub.shutdown().await;
}

#[tokio::test]
async fn a_list_of_entities_is_one_batched_request_per_subgraph() {
    let subgraphs = Subgraphs::start().await;
    let hub = TestHub::with_config(&subgraphs.config(&[], "")).await;
    let response = post(&hub, TOP_PRODUCTS, json!({})).await;
    assert_eq!(response["data"]["topProducts"].as_array().map(Vec::len), Some(3), "{response}");
    // Three products: one `_entities` request to reviews and one to inventory; the four reviews'
    // two distinct authors: one request to accounts with two representations.
    assert_eq!(subgraphs.products.requests(), 1);
    assert_eq!(subgraphs.reviews.entity_requests(), 1);
    assert_eq!(subgraphs.inventory.entity_requests(), 1);
    assert_eq!(subgraphs.accounts.entity_requests(), 1);
    let reviews = &subgraphs.reviews.seen()[0].body;
    assert_eq!(reviews["variables"]["representations"].as_array().map(Vec::len), Some(3), "{reviews}");
    let accounts = &subgraphs.accounts.seen()[0].body;
    assert_eq!(accounts["variables"]["representations"].as_array().map(Vec::len), Some(2), "{accounts}");
    hub.shutdown().await;
}

#[tokio::test]
async fn a_subgraphs_errors_keep_their_place_in_the_clients_response() {
    let subgraphs = Subgraphs::start().await;
    // async-graphql leaves the entity's index out of `_entities` error paths; a subgraph that
    // gives it answers `_entities.1.warehouse` for the second representation.
    let with_index = |_: &Value, mut response: Value| {
        let failed = response["data"]["_entities"].as_array().and_then(|e| e.iter().position(Value::is_null));
        if let (Some(index), Some(errors)) = (failed, response["errors"].as_array_mut()) {
            errors[0]["path"] = json!(["_entities", index, "warehouse"]);
            response["data"]["_entities"][index] = json!({ "warehouse": null });
        }
        response
    };
    subgraphs.inventory.set_faults(Faults { answer: Some(Arc::new(with_index)), ..Faults::default() });
    let hub = TestHub::with_config(&subgraphs.config(&[], "")).await;
    let response = post(&hub, "{ hats: topProducts { name warehouse } }", json!({})).await;
    let products = &response["data"]["hats"];
    assert_eq!(products[1], json!({"name": "Fedora", "warehouse": null}), "{response}");
    assert_eq!(products[2]["warehouse"], "north");
    let errors = response["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{response}");
    assert_eq!(errors[0]["message"], "no warehouse holds the Fedora");
    assert_eq!(errors[0]["path"], json!(["hats", 1, "warehouse"]), "{response}");
    assert_eq!(errors[0].get("locations"), None, "locations in the subgraph's query mean nothing to the client");
    hub.shutdown().await;
}

#[tokio::test]
async fn mutations_run_one_after_another_in_the_operations_order() {
    let subgraphs = Subgraphs::start().await;
    let hub = TestHub::with_config(&subgraphs.config(&[], "")).await;
    let mutation = r#"mutation {
        first: createUser(name: "Grace") { id name }
        review: addReview(upc: "top-3", body: "Fits well") { body author { name } product { name } }
        second: createUser(name: "Edsger") { id username }
    }"#;
    let response = post(&hub, mutation, json!({})).await;
    assert_eq!(response.get("errors"), None, "{response}");
    assert_eq!(
        response["data"],
        json!({
            "first": {"id": "new-1", "name": "Grace"},
            "review": {"body": "Fits well", "author": {"name": "Alan Turing"}, "product": {"name": "Boater"}},
            "second": {"id": "new-2", "username": "@edsger"},
        })
    );
    // Each mutation reached its subgraph after the one before it had answered.
    let mutations = |subgraph: &subgraphs::Subgraph| -> Vec<subgraphs::Seen> {
        let is_mutation =
            |seen: &subgraphs::Seen| seen.body["query"].as_str().is_some_and(|q| q.starts_with("mutation"));
        subgraph.seen().into_iter().filter(is_mutation).collect()
    };
    let (accounts, reviews) = (mutations(&subgraphs.accounts), mutations(&subgraphs.reviews));
    assert_eq!((accounts.len(), reviews.len()), (2, 1));
    assert!(reviews[0].arrived > accounts[0].answered.expect("answered"));
    assert!(accounts[1].arrived > reviews[0].answered.expect("answered"));
    hub.shutdown().await;
}

#[tokio::test]
async fn variables_aliases_fragments_and_conditions_reach_the_answer() {
    let subgraphs = Subgraphs::start().await;
    let hub = TestHub::with_config(&subgraphs.config(&[], "")).await;
    let query = r#"query Q($first: Int!, $withReviews: Boolean!) {
        hats: topProducts(first: $first) { ...Names reviews @include(if: $withReviews) { id } }
        kind: __typename
    }
    fragment Names on Product { title: name upc }"#;
    let response = post(&hub, query, json!({"first": 2, "withReviews": false})).await;
    assert_eq!(
        response,
        json!({"data": {"hats": [{"title": "Trilby", "upc": "top-1"}, {"title": "Fedora", "upc": "top-2"}], "kind": "Query"}})
    );
    assert_eq!(subgraphs.reviews.requests(), 0, "a skipped field is not fetched");
    let response = post(&hub, query, json!({"first": 1, "withReviews": true})).await;
    assert_eq!(
        response["data"]["hats"],
        json!([{"title": "Trilby", "upc": "top-1", "reviews": [{"id": "1"}, {"id": "4"}]}])
    );
    // A variable of the wrong type is the request's error; no subgraph hears of it.
    let before = subgraphs.products.requests();
    let response = post(&hub, query, json!({"first": "two", "withReviews": true})).await;
    assert!(response["errors"][0]["message"].as_str().unwrap_or_default().contains("$first"), "{response}");
    assert_eq!(response.get("data"), None);
    assert_eq!(subgraphs.products.requests(), before);
    hub.shutdown().await;
}

#[tokio::test]
async fn invalid_operations_are_refused_before_any_subgraph_is_asked() {
    let subgraphs = Subgraphs::start().await;
    let hub = TestHub::with_config(&subgraphs.config(&[], "")).await;
    let response = post(&hub, "{ topProducts { name weightInGrams } }", json!({})).await;
    let message = response["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("weightInGrams"), "{response}");
    assert_eq!(response.get("data"), None);
    assert_eq!(subgraphs.products.requests(), 0);
    hub.shutdown().await;
}

#[tokio::test]
async fn the_hubs_own_fields_run_beside_the_supergraphs() {
    let subgraphs = Subgraphs::start().await;
    let hub = TestHub::with_config(&subgraphs.config(&[], "")).await;
    let response = post(&hub, "{ me { name } brokers { name kind } topProducts(first: 1) { name } }", json!({})).await;
    assert_eq!(
        response,
        json!({"data": {"me": {"name": "Ada Lovelace"}, "brokers": [{"name": "local", "kind": "memory"}], "topProducts": [{"name": "Trilby"}]}})
    );
    // A mutation runs one or the other.
    let response =
        post(&hub, r#"mutation { createUser(name: "x") { id } publish(topic: "t", payload: 1) { ok } }"#, json!({}))
            .await;
    assert!(response["errors"][0]["message"].as_str().unwrap_or_default().contains("two operations"), "{response}");
    hub.shutdown().await;
}

#[tokio::test]
async fn introspection_shows_the_composed_schema_without_the_supergraphs_machinery() {
    let subgraphs = Subgraphs::start().await;
    let hub = TestHub::with_config(&subgraphs.config(&[], "")).await;
    let response = post(
        &hub,
        r#"{ __schema { queryType { fields { name } } mutationType { fields { name } } types { name } }
             product: __type(name: "Product") { kind fields { name type { kind ofType { name } } } } }"#,
        json!({}),
    )
    .await;
    let schema = &response["data"]["__schema"];
    let names = |value: &Value| -> Vec<String> {
        value.as_array().into_iter().flatten().filter_map(|v| v["name"].as_str().map(str::to_owned)).collect()
    };
    let types = names(&schema["types"]);
    for expected in ["Product", "Review", "User", "BrokerInfo", "Event", "JSON", "__Schema"] {
        assert!(types.iter().any(|t| t == expected), "{expected} in {types:?}");
    }
    for hidden in ["join__Graph", "join__FieldSet", "link__Purpose", "_Service", "_Any", "_Entity"] {
        assert!(!types.iter().any(|t| t == hidden), "{hidden} in {types:?}");
    }
    let queries = names(&schema["queryType"]["fields"]);
    assert_eq!(queries, ["me", "users", "topProducts", "brokers"]);
    assert_eq!(names(&schema["mutationType"]["fields"]), ["createUser", "addReview", "publish"]);
    let product = &response["data"]["product"];
    assert_eq!(product["kind"], "OBJECT");
    assert_eq!(
        names(&product["fields"]),
        ["upc", "price", "weight", "inStock", "warehouse", "shippingEstimate", "name", "reviews"]
    );
    assert_eq!(subgraphs.products.requests(), 0, "introspection asks no subgraph");
    hub.shutdown().await;
}

#[tokio::test]
async fn graphiqls_introspection_query_gets_the_composed_schema() {
    let subgraphs = Subgraphs::start().await;
    let hub = TestHub::with_config(&subgraphs.config(&[], "")).await;
    let response = post(&hub, include_str!("fixtures/introspection.graphql"), json!({})).await;
    assert_eq!(response.get("errors"), None, "{response}");
    let types = response["data"]["__schema"]["types"].as_array().expect("types");
    let product = types.iter().find(|t| t["name"] == "Product").expect("Product");
    let estimate = product["fields"].as_array().into_iter().flatten().find(|f| f["name"] == "shippingEstimate");
    assert_eq!(
        estimate.map(|f| (&f["description"], &f["type"]["kind"], &f["type"]["ofType"]["name"])),
        Some((&json!("Free over 20, else half the weight."), &json!("NON_NULL"), &json!("Int")))
    );
    let first = types
        .iter()
        .find(|t| t["name"] == "Query")
        .and_then(|q| q["fields"].as_array())
        .and_then(|f| f.iter().find(|f| f["name"] == "topProducts").map(|f| f["args"][0].clone()));
    assert_eq!(first.as_ref().map(|a| (&a["name"], &a["defaultValue"])), Some((&json!("first"), &json!("5"))));
    assert!(response["data"]["__schema"]["directives"]
        .as_array()
        .is_some_and(|d| d.iter().any(|d| d["name"] == "include")));
    hub.shutdown().await;
}

#[tokio::test]
async fn a_federated_query_runs_over_the_websocket_too() {
    let subgraphs = Subgraphs::start().await;
    let hub = TestHub::with_config(&subgraphs.config(&[], "")).await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client
        .subscribe(
            "1",
            "query($n: Int!) { topProducts(first: $n) { name reviews { author { name } } } }",
            json!({"n": 1}),
        )
        .await;
    let next = client.recv_json().await;
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(
        next["payload"]["data"],
        json!({"topProducts": [{"name": "Trilby", "reviews": [{"author": {"name": "Ada Lovelace"}}, {"author": {"name": "Alan Turing"}}]}]})
    );
    assert_eq!(client.recv_json().await["type"], "complete");
    hub.shutdown().await;
}

#[tokio::test]
async fn the_supergraph_fixture_composes_these_subgraphs() {
    // The supergraph the tests serve was composed from these SDLs; a subgraph whose schema
    // changes needs the supergraph composed again (tests/fixtures/federation/README.md).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/federation");
    for (name, sdl) in Subgraphs::sdl() {
        let path = dir.join(format!("{name}.graphql"));
        if std::env::var_os("UPDATE_FIXTURES").is_some() {
            std::fs::write(&path, &sdl).expect("write a subgraph's SDL");
        }
        let stored = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(stored, sdl, "{name}'s SDL changed: compose the supergraph again");
    }
}
