//! NATS (DESIGN §7, §10), against real `nats-server` processes of the tests' own (with
//! monitoring, so the subscriptions the hub holds are read off the server), and the one CI
//! keeps on 4222: core subjects and JetStream, 50 clients sharing one broker subscription,
//! events from plain NATS clients, everything released on the server when the clients leave,
//! and the server restarted under the hub.

mod common;

use common::servers::{binary_available, NatsServer};
use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

const QUERY: &str = "subscription($topic: String!) { events(topic: $topic, broker: \"bus\") { topic id payload } }";

fn config(url: &str, jetstream: Option<&str>) -> String {
    let jetstream = jetstream.map_or(String::new(), |stream| format!("jetstream = \"{stream}\"\n"));
    format!("default_broker = \"bus\"\n[brokers.bus]\nkind = \"nats\"\nurl = \"{url}\"\n{jetstream}")
}

async fn clients(hub: &TestHub, n: usize, topic: &str) -> Vec<Client> {
    let mut clients = Vec::new();
    for i in 0..n {
        let mut client = Client::ready(hub, TRANSPORT_WS).await;
        client.subscribe(&format!("s{i}"), QUERY, json!({"topic": topic})).await;
        clients.push(client);
    }
    hub.wait_metric("subhub_subscriptions", n as f64).await;
    clients
}

async fn expect_in_order(clients: &mut [Client], from: i64, to: i64) -> Vec<Value> {
    let mut ids = Vec::new();
    for (i, client) in clients.iter_mut().enumerate() {
        for n in from..to {
            let message = client.recv_json().await;
            let event = &message["payload"]["data"]["events"];
            assert_eq!(event["payload"]["n"], n, "client {i}: {message}");
            if i == 0 {
                ids.push(event["id"].clone());
            }
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_share_one_core_subscription_and_release_it() {
    if !binary_available("nats-server") {
        return;
    }
    let server = NatsServer::start().await;
    let hub = TestHub::with_config(&config(&server.url(), None)).await;
    hub.wait_metric("subhub_broker_connected", 1.0).await;
    let mut clients = clients(&hub, 50, "prices.eu").await;
    server.wait_subscriptions("subhub", |subs| subs == ["prices.eu"]).await;

    let plain = async_nats::connect(server.url()).await.unwrap();
    for n in 0..20 {
        plain.publish("prices.eu", json!({"n": n}).to_string().into()).await.unwrap();
    }
    plain.flush().await.unwrap();
    expect_in_order(&mut clients, 0, 20).await;
    assert_eq!(hub.metric("subhub_executions").await, 1.0);
    assert_eq!(hub.metric("subhub_events_received_total").await, 20.0);

    drop(clients);
    hub.wait_metric("subhub_sources_open", 0.0).await;
    server.wait_subscriptions("subhub", <[String]>::is_empty).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_subjects_need_an_authz_rule_and_deliver_every_matching_subject() {
    if !binary_available("nats-server") {
        return;
    }
    let server = NatsServer::start().await;
    let secret = "nats-test-secret-0123456789";
    let hub = TestHub::with_config(&format!(
        "{}[auth]\nhs256_secret = \"{secret}\"\nrequire_exp = false\n\
         [[authz.rules]]\ntopics = \"orders.**\"\nsubscribe = true\n\
         [[authz.rules]]\ntopics = \"orders.**\"\nclaims = {{ role = \"ops\" }}\nsubscribe = true\npublish = true\nwildcards = true\n",
        config(&server.url(), None)
    ))
    .await;
    let mut user = Client::authorized(&hub, &signed_token(secret, json!({"sub": "u"}))).await;
    user.subscribe("1", QUERY, json!({"topic": "orders.>"})).await;
    let refused = user.recv_json().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "FORBIDDEN");

    let mut ops = Client::authorized(&hub, &signed_token(secret, json!({"sub": "o", "role": "ops"}))).await;
    ops.subscribe("1", QUERY, json!({"topic": "orders.*.created"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    let plain = async_nats::connect(server.url()).await.unwrap();
    for subject in ["orders.eu.created", "orders.eu.shipped", "orders.us.created"] {
        plain.publish(subject, json!({"n": subject}).to_string().into()).await.unwrap();
    }
    plain.flush().await.unwrap();
    for subject in ["orders.eu.created", "orders.us.created"] {
        let message = ops.recv_json().await;
        assert_eq!(message["payload"]["data"]["events"]["topic"], subject, "{message}");
    }
    // A wildcard names no subject to publish to.
    let token = signed_token(secret, json!({"sub": "o", "role": "ops"}));
    let response =
        hub.http().post(hub.url("/publish/orders.*.created")).bearer_auth(&token).body("{}").send().await.unwrap();
    assert_eq!(response.status(), 400, "{:?}", response.text().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_clients_share_one_consumer_and_ids_are_stream_sequences() {
    if !binary_available("nats-server") {
        return;
    }
    let server = NatsServer::start().await;
    let plain = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(plain.clone());
    let stream_config = async_nats::jetstream::stream::Config {
        name: "EVENTS".into(),
        subjects: vec!["js.>".into()],
        ..Default::default()
    };
    let mut stream = js.create_stream(stream_config).await.unwrap();
    // Events from before the hub subscribes are history, not live.
    js.publish("js.prices", json!({"n": -1}).to_string().into()).await.unwrap().await.unwrap();

    let hub = TestHub::with_config(&config(&server.url(), Some("EVENTS"))).await;
    hub.wait_metric("subhub_broker_connected", 1.0).await;
    let mut clients = clients(&hub, 50, "js.prices").await;
    assert_eq!(stream.info().await.unwrap().state.consumer_count, 1, "one consumer for fifty clients");
    let mut sequences = Vec::new();
    for n in 0..20 {
        let ack = js.publish("js.prices", json!({"n": n}).to_string().into()).await.unwrap().await.unwrap();
        sequences.push(json!(ack.sequence.to_string()));
    }
    let ids = expect_in_order(&mut clients, 0, 20).await;
    assert_eq!(ids, sequences, "an event's id is its stream sequence");

    // Publishing through the hub is acknowledged by the stream.
    let reply = hub
        .http()
        .post(hub.url("/publish/js.prices?broker=bus"))
        .body(json!({"n": 20}).to_string())
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(reply["id"], "22", "{reply}");
    expect_in_order(&mut clients, 20, 21).await;

    drop(clients);
    hub.wait_metric("subhub_sources_open", 0.0).await;
    let released = wait_for(PATIENCE, || {
        let mut stream = stream.clone();
        async move { stream.info().await.is_ok_and(|info| info.state.consumer_count == 0) }
    })
    .await;
    assert!(released, "the consumer is deleted when the last client leaves");
    // What stays is the client's one request inbox (`_INBOX.….*`), which every JetStream API
    // call shares: no source's.
    server
        .wait_subscriptions("subhub", |subs| subs.iter().all(|s| s.starts_with("_INBOX.") && s.ends_with(".*")))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_under_the_hub_gets_every_subscription_back_and_jetstream_loses_nothing() {
    if !binary_available("nats-server") {
        return;
    }
    let mut server = NatsServer::start().await;
    {
        let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
        let stream_config = async_nats::jetstream::stream::Config {
            name: "DURABLE".into(),
            subjects: vec!["durable.>".into()],
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        };
        js.create_stream(stream_config).await.unwrap();
    }
    let hub = TestHub::with_config(&format!(
        "{}[brokers.log]\nkind = \"nats\"\nurl = \"{}\"\njetstream = \"DURABLE\"\n",
        config(&server.url(), None),
        server.url()
    ))
    .await;
    hub.wait_metric("subhub_broker_connected", 2.0).await;
    let mut core = Client::ready(&hub, TRANSPORT_WS).await;
    core.subscribe("1", QUERY, json!({"topic": "live.ticks"})).await;
    let mut durable = Client::ready(&hub, TRANSPORT_WS).await;
    let durable_query = "subscription { events(topic: \"durable.ticks\", broker: \"log\") { id payload } }";
    durable.subscribe("1", durable_query, json!({})).await;
    hub.wait_metric("subhub_subscriptions", 2.0).await;

    let publish_durable = |url: String, from: i64, to: i64| async move {
        let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
        for n in from..to {
            js.publish("durable.ticks", json!({"n": n}).to_string().into()).await.unwrap().await.unwrap();
        }
    };
    publish_durable(server.url(), 0, 5).await;
    for n in 0..5 {
        let message = durable.recv_json().await;
        assert_eq!(message["payload"]["data"]["events"]["payload"]["n"], n, "{message}");
    }
    server.restart().await;
    // Published before the hub is back: the stream has them, and the hub reads them.
    publish_durable(server.url(), 5, 10).await;
    for n in 5..10 {
        let message = durable.recv_json().await;
        assert_eq!(message["payload"]["data"]["events"]["payload"]["n"], n, "{message}");
    }
    hub.wait_metric("subhub_broker_connected", 2.0).await;
    server.wait_subscriptions("subhub bus", |subs| subs == ["live.ticks"]).await;
    let plain = async_nats::connect(server.url()).await.unwrap();
    plain.publish("live.ticks", json!({"n": 1}).to_string().into()).await.unwrap();
    plain.flush().await.unwrap();
    let message = core.recv_json().await;
    assert_eq!(message["payload"]["data"]["events"]["payload"]["n"], 1, "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ci_nats_server_on_4222_serves_the_hub() {
    if !broker_available("NATS", "127.0.0.1:4222") {
        return;
    }
    let hub = TestHub::with_config(&config("nats://127.0.0.1:4222", None)).await;
    hub.wait_metric("subhub_broker_connected", 1.0).await;
    let topic = unique("subhub_test").replace('.', "_");
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", QUERY, json!({"topic": topic})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    let plain = async_nats::connect("nats://127.0.0.1:4222").await.unwrap();
    let mut echo = plain.subscribe(topic.clone()).await.unwrap();
    // The SUB is on the server before the hub publishes, not still in the client's buffer.
    plain.flush().await.unwrap();
    hub.publish(&format!("{topic}?broker=bus"), json!({"n": 7}).to_string()).await;
    assert_eq!(client.recv_json().await["payload"]["data"]["events"]["payload"]["n"], 7);
    let seen = tokio::time::timeout(PATIENCE, echo.next()).await.unwrap().unwrap();
    assert_eq!(seen.payload, json!({"n": 7}).to_string());
}
