//! The purchases example (examples/purchases/, README "A typed schema: purchases and a classroom
//! dashboard") run as its README says, on librdkafka's mock cluster: a purchases service
//! publishes through the hub's mutation and straight into Kafka, classroom dashboards see only
//! their classroom's purchases and enrollments.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};
use subhub::Config;

const SECRET: &str = "change-me-to-32-random-bytes";

fn token(claims: Value) -> String {
    signed_token(SECRET, claims)
}

/// The example's own config, with Kafka at the mock cluster and the secret it tells readers to
/// export.
async fn example_hub(bootstrap: &str) -> TestHub {
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).expect("cd");
    let path = Path::new("examples/purchases/subhub.toml");
    let env = vec![
        ("SUBHUB_JWT_SECRET".to_owned(), SECRET.to_owned()),
        ("SUBHUB_BROKERS__KAFKA__BOOTSTRAP_SERVERS".to_owned(), bootstrap.to_owned()),
        ("SUBHUB_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
    ];
    TestHub::with_loaded(Config::load(Some(path), env).expect("examples/purchases/subhub.toml")).await
}

async fn board(hub: &TestHub, classroom: &str) -> Client {
    let mut client = Client::connect(hub, TRANSPORT_WS).await;
    let token = token(json!({"sub": format!("{classroom}-board"), "role": "classroom", "classroom": classroom}));
    client.send(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}})).await;
    assert_eq!(client.recv_json().await["type"], "connection_ack");
    client
}

const PURCHASES: &str =
    "subscription { purchaseCreated { id studentId course { title } amount currency placedAt position } }";

fn purchase(id: &str, student: &str, classroom: &str, amount: f64) -> Value {
    json!({
        "id": id, "studentId": student, "classroomId": classroom,
        "course": {"id": "rust-1", "title": "Rust"}, "amount": amount, "currency": "EUR"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classroom_boards_see_their_classrooms_purchases_from_the_mutation_and_a_plain_producer() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("purchases", 3, 1).expect("topic");
    cluster.create_topic("enrollments", 1, 1).expect("topic");
    let hub = example_hub(&cluster.bootstrap_servers()).await;

    // Ten viewers of classroom c7's board, five of c8's, one following student s1's enrollments.
    let mut c7 = Vec::new();
    for i in 0..10 {
        let mut viewer = board(&hub, "c7").await;
        viewer.subscribe(&format!("p{i}"), PURCHASES, json!({})).await;
        c7.push(viewer);
    }
    let mut c8 = Vec::new();
    for i in 0..5 {
        let mut viewer = board(&hub, "c8").await;
        viewer.subscribe(&format!("p{i}"), PURCHASES, json!({})).await;
        c8.push(viewer);
    }
    let mut follower = board(&hub, "c7").await;
    let enrollments = "subscription($s: ID!) { enrollmentCreated(studentId: $s) { studentId courseId } }";
    follower.subscribe("e", enrollments, json!({"s": "s1"})).await;
    hub.wait_metric("subhub_subscriptions", 16.0).await;
    hub.wait_metric("subhub_sources_open", 2.0).await;
    assert_eq!(hub.metric("subhub_executions").await, 3.0, "c7's board, c8's board, s1's enrollments");

    // The purchases service: through the hub's mutation...
    let service = token(json!({"sub": "purchases", "role": "purchases"}));
    let mutate = |query: String, token: String| {
        hub.http().post(hub.url("/graphql")).bearer_auth(token).json(&json!({"query": query})).send()
    };
    let create = |p: &Value| {
        format!(
            "mutation {{ createPurchase(id: \"{}\", studentId: \"{}\", classroomId: \"{}\", course: {{id: \"rust-1\", title: \"Rust\"}}, amount: {}, currency: EUR) {{ id }} }}",
            p["id"].as_str().unwrap_or_default(), p["studentId"].as_str().unwrap_or_default(),
            p["classroomId"].as_str().unwrap_or_default(), p["amount"]
        )
    };
    let through_hub =
        [purchase("h1", "s1", "c7", 30.0), purchase("h2", "s9", "c8", 12.0), purchase("h3", "s1", "c7", 45.5)];
    for p in &through_hub {
        let response = mutate(create(p), service.clone()).await.expect("mutation");
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap_or_default());
    }
    let enroll = "mutation { enrollStudent(studentId: \"s1\", classroomId: \"c7\", courseId: \"rust-1\") { id } }";
    assert_eq!(mutate(enroll.to_owned(), service.clone()).await.expect("mutation").status(), StatusCode::OK);
    // ...and straight into Kafka with a plain producer, keyed by student as the mutation is.
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", cluster.bootstrap_servers()).create().expect("producer");
    let straight = [purchase("k1", "s1", "c7", 7.0), purchase("k2", "s9", "c8", 99.0)];
    for p in &straight {
        let body = p.to_string();
        let key = p["studentId"].as_str().unwrap_or_default().to_owned();
        let record = FutureRecord::to("purchases").key(&key).payload(&body);
        producer.send(record, Duration::from_secs(10)).await.expect("produce");
    }
    for (student, classroom) in [("s2", "c7"), ("s1", "c8")] {
        let body = json!({"studentId": student, "classroomId": classroom, "courseId": "go-1"}).to_string();
        let record = FutureRecord::to("enrollments").key(student).payload(&body);
        producer.send(record, Duration::from_secs(10)).await.expect("produce");
    }

    // Each board: exactly its classroom's purchases, each student's in order.
    for (classroom, viewers, expected) in [("c7", &mut c7, vec!["h1", "h3", "k1"]), ("c8", &mut c8, vec!["h2", "k2"])] {
        for viewer in viewers.iter_mut() {
            let mut got = Vec::new();
            for _ in 0..expected.len() {
                let message = viewer.recv_json().await;
                let purchase = &message["payload"]["data"]["purchaseCreated"];
                assert_eq!(purchase["course"], json!({"title": "Rust"}), "{message}");
                assert_eq!(purchase["currency"], "EUR", "{message}");
                assert!(purchase["placedAt"].is_string() && purchase["position"].is_string(), "{message}");
                got.push(purchase["id"].as_str().unwrap_or_default().to_owned());
            }
            assert_eq!(viewer.until_pong().await, Vec::<Value>::new(), "{classroom}: another classroom's purchase");
            let mut sorted = got.clone();
            sorted.sort();
            assert_eq!(sorted, expected, "{classroom}");
            // One student's purchases keep their order (one key, one partition).
            let s1: Vec<&String> = got.iter().filter(|id| ["h1", "h3", "k1"].contains(&id.as_str())).collect();
            assert_eq!(s1, ["h1", "h3", "k1"].iter().filter(|id| expected.contains(id)).collect::<Vec<_>>());
        }
    }
    let enrolled = follower.recv_json().await;
    assert_eq!(enrolled["payload"]["data"]["enrollmentCreated"], json!({"studentId": "s1", "courseId": "rust-1"}));
    assert_eq!(follower.until_pong().await, Vec::<Value>::new(), "another student's or classroom's enrollment");

    // A board may read, not publish; nothing but the typed schema is served.
    let board_token = token(json!({"sub": "c7-board", "role": "classroom", "classroom": "c7"}));
    let response = mutate(create(&purchase("x", "s1", "c7", 1.0)), board_token).await.expect("mutation");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = hub.http().post(hub.url("/publish/purchases")).bearer_auth(&service).body("{}").send().await;
    assert_eq!(response.expect("post").status(), StatusCode::OK, "POST /publish serves the purchases service too");
    assert_eq!(hub.metric("subhub_refused_total{reason=\"forbidden\"}").await, 1.0);
}
