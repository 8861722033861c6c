//! The example's subgraphs over real HTTP: each serves its SDL at `{ _service { sdl } }` (the
//! checked-in SDL files are exactly that) and resolves its entities with `_entities`.

use serde_json::{json, Value};
use subhub_example_services::{classroom, purchases, router, sdl, serve};

async fn start(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/graphql", listener.local_addr().expect("address"));
    tokio::spawn(serve(app, listener));
    url
}

async fn post(url: &str, body: Value, student: Option<&str>) -> Value {
    let mut request = reqwest::Client::new().post(url).json(&body);
    if let Some(student) = student {
        request = request.header("x-student-id", student);
    }
    let response = request.send().await.expect("the subgraph answers");
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.expect("JSON")
}

fn checked_in(name: &str) -> String {
    let path = format!("{}/../subgraphs/{name}.graphql", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).expect("the checked-in SDL")
}

#[tokio::test]
async fn each_service_serves_the_checked_in_sdl() {
    for (name, url, local) in [
        ("purchases", start(purchases::router(purchases::schema())).await, sdl(&purchases::schema()).await),
        ("classroom", start(router(classroom::schema())).await, sdl(&classroom::schema()).await),
    ] {
        let answer = post(&url, json!({"query": "{ _service { sdl } }"}), None).await;
        let served = answer["data"]["_service"]["sdl"].as_str().expect("an SDL").to_owned();
        assert_eq!(served, local.expect("the schema answers its own SDL"));
        assert_eq!(
            served,
            checked_in(name),
            "examples/purchases/subgraphs/{name}.graphql is stale: `cargo run -p subhub-example-services --bin {name} -- --sdl` prints it"
        );
        assert!(served.contains("@key(fields: \"id\")"), "{served}");
    }
}

#[tokio::test]
async fn purchases_resolves_purchases_and_products_by_key_and_me_by_header() {
    let url = start(purchases::router(purchases::schema())).await;
    let entities = post(
        &url,
        json!({
            "query": "query($r: [_Any!]!) { _entities(representations: $r) { ... on Purchase { id amount product { title } student { id } } ... on Product { title } } }",
            "variables": {"r": [{"__typename": "Purchase", "id": "pu2"}, {"__typename": "Product", "id": "p3"}, {"__typename": "Purchase", "id": "nope"}]}
        }),
        None,
    )
    .await;
    assert_eq!(
        entities["data"]["_entities"],
        json!([
            {"id": "pu2", "amount": 19.5, "product": {"title": "Kafka in Practice"}, "student": {"id": "s1"}},
            {"title": "Rust for Services"},
            null
        ]),
        "{entities}"
    );
    let me = post(&url, json!({"query": "{ me { id purchases { id } } }"}), Some("s2")).await;
    assert_eq!(me["data"]["me"], json!({"id": "s2", "purchases": [{"id": "pu3"}]}), "{me}");

    // A purchase recorded with the mutation is then resolvable by its key, as an event's is.
    let created = post(
        &url,
        json!({"query": "mutation { createPurchase(id: \"pu9\", studentId: \"s2\", productId: \"p1\", amount: 12.5) { id } }"}),
        None,
    )
    .await;
    assert_eq!(created["data"]["createPurchase"]["id"], "pu9", "{created}");
    let entity = post(
        &url,
        json!({
            "query": "query($r: [_Any!]!) { _entities(representations: $r) { ... on Purchase { amount product { title } } } }",
            "variables": {"r": [{"__typename": "Purchase", "id": "pu9"}]}
        }),
        None,
    )
    .await;
    assert_eq!(entity["data"]["_entities"], json!([{"amount": 12.5, "product": {"title": "Learning GraphQL"}}]));
}

#[tokio::test]
async fn classroom_resolves_students_with_their_enrollments() {
    let url = start(router(classroom::schema())).await;
    let entities = post(
        &url,
        json!({
            "query": "query($r: [_Any!]!) { _entities(representations: $r) { ... on Student { name enrollments { course { title } } } } }",
            "variables": {"r": [{"__typename": "Student", "id": "s2"}, {"__typename": "Student", "id": "s1"}]}
        }),
        None,
    )
    .await;
    assert_eq!(
        entities["data"]["_entities"],
        json!([
            {"name": "Grace Hopper", "enrollments": [{"course": {"title": "Event Streams"}}]},
            {"name": "Ada Lovelace", "enrollments": [{"course": {"title": "GraphQL 101"}}, {"course": {"title": "Event Streams"}}]}
        ]),
        "{entities}"
    );
}
