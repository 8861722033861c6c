//! A client that stops reading never slows the others, never grows the hub's memory past its
//! queue, and is handled by the written policy.

mod common;

use common::*;
use serde_json::json;

const EVENTS: usize = 5000;

fn event(n: usize) -> String {
    // ~2 KB per event, so the slow socket's kernel buffers fill well before the 5,000th.
    json!({"n": n, "pad": "x".repeat(2000)}).to_string()
}

/// Reads `count` events and checks they are 0..count in order, each once.
async fn read_all(mut client: Client, count: usize) -> Client {
    for n in 0..count {
        let message = client.recv_json().await;
        assert_eq!(
            message["payload"]["data"]["events"]["payload"]["n"], n,
            "out of order or lost: {}",
            message["payload"]["data"]["events"]["payload"]["n"]
        );
    }
    client
}

async fn subscribe(client: &mut Client, id: &str) {
    client.subscribe(id, "subscription { events(topic: \"feed\") { payload } }", json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_loses_its_oldest_messages_and_nobody_else_notices() {
    let hub = TestHub::with_config("[limits]\nconnection_queue = 1024\nslow_consumer_timeout = \"1h\"\n").await;
    let mut slow = Client::connect_small_buffer(&hub, TRANSPORT_WS).await;
    slow.init().await;
    subscribe(&mut slow, "slow").await;
    let mut readers = Vec::new();
    for i in 0..4 {
        let mut client = Client::ready(&hub, TRANSPORT_WS).await;
        subscribe(&mut client, &format!("h{i}")).await;
        readers.push(client);
    }
    hub.wait_metric("subhub_subscriptions", 5.0).await;
    let readers: Vec<_> = readers.into_iter().map(|c| tokio::spawn(read_all(c, EVENTS))).collect();

    let mut most_queued = 0.0f64;
    for n in 0..EVENTS {
        hub.publish("feed", event(n)).await;
        if n % 250 == 0 {
            most_queued = most_queued.max(hub.metric("subhub_queued_messages").await);
        }
    }
    let mut healthy = Vec::new();
    for reader in readers {
        healthy.push(
            tokio::time::timeout(PATIENCE, reader).await.expect("healthy clients got every event").expect("reader"),
        );
    }
    // Bounded: never more queued than five connections' queues can hold.
    assert!(most_queued <= 5.0 * 1024.0, "queued {most_queued}");
    let dropped = hub.metric("subhub_dropped_total{reason=\"slow_consumer\"}").await;
    assert!(dropped > 0.0, "the stalled client's queue never overflowed");
    assert_eq!(hub.metric("subhub_connections").await, 5.0);

    // Drop-oldest keeps the newest: the stalled client, reading again, ends with the last event,
    // its events still in order.
    let mut last = -1i64;
    while last < EVENTS as i64 - 1 {
        let message = slow.recv_json().await;
        let n = message["payload"]["data"]["events"]["payload"]["n"].as_i64().expect("event number");
        assert!(n > last, "out of order: {n} after {last}");
        last = n;
    }
    println!("stalled client: {dropped} messages dropped; at most {most_queued} queued in the hub");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_behind_past_the_threshold_is_closed_1013() {
    // A queue deep enough that a reading client never fills it, shallow enough that a stalled
    // one does long before the last event.
    let hub = TestHub::with_config("[limits]\nconnection_queue = 512\nslow_consumer_timeout = \"0s\"\n").await;
    let mut slow = Client::connect_small_buffer(&hub, TRANSPORT_WS).await;
    slow.init().await;
    subscribe(&mut slow, "slow").await;
    let mut healthy = Client::ready(&hub, TRANSPORT_WS).await;
    subscribe(&mut healthy, "h").await;
    hub.wait_metric("subhub_subscriptions", 2.0).await;
    let reader = tokio::spawn(read_all(healthy, 3000));
    for n in 0..3000 {
        hub.publish("feed", event(n)).await;
    }
    let _healthy =
        tokio::time::timeout(PATIENCE, reader).await.expect("healthy client got every event").expect("reader");
    hub.wait_metric("subhub_slow_consumer_closes_total", 1.0).await;
    hub.wait_metric("subhub_connections", 1.0).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    drop(slow);
}

/// A client that stops reading while events still wait for it, then hears nothing more: no
/// overflow ever closes it and keepalive skips a busy socket, so only `write_timeout` ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_takes_no_bytes_is_dropped_after_the_write_timeout() {
    let hub = TestHub::with_config("[limits]\nwrite_timeout = \"1s\"\nslow_consumer_timeout = \"1h\"\n").await;
    let mut stalled = Client::connect_small_buffer(&hub, TRANSPORT_WS).await;
    stalled.init().await;
    subscribe(&mut stalled, "stalled").await;
    let mut reader = Client::ready(&hub, TRANSPORT_WS).await;
    subscribe(&mut reader, "reader").await;
    hub.wait_metric("subhub_subscriptions", 2.0).await;
    let reading = tokio::spawn(read_all(reader, 300));
    // Enough to fill the stalled client's buffers and the kernel's (16 MB); then a quiet period.
    let large = |n: usize| json!({"n": n, "pad": "x".repeat(60_000)}).to_string();
    for n in 0..300 {
        hub.publish("feed", large(n)).await;
    }
    let mut reader = tokio::time::timeout(PATIENCE, reading).await.expect("the reader got every event").expect("join");
    hub.wait_metric("subhub_stalled_closes_total", 1.0).await;
    hub.wait_metric("subhub_connections", 1.0).await;
    assert_eq!(hub.metric("subhub_subscriptions").await, 1.0);
    // The reader is untouched.
    hub.publish("feed", event(300)).await;
    assert_eq!(reader.recv_json().await["payload"]["data"]["events"]["payload"]["n"], 300);
    drop(stalled);
}

/// Large events: the queue of a client that stopped reading holds `connection_buffer_bytes`
/// of them, not `connection_queue` messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_holds_at_most_its_buffer_bytes_of_results() {
    let hub = TestHub::with_config(
        "[limits]\nconnection_buffer_bytes = 65536\nconnection_queue = 1024\nslow_consumer_timeout = \"1h\"\n",
    )
    .await;
    let mut slow = Client::connect_small_buffer(&hub, TRANSPORT_WS).await;
    slow.init().await;
    subscribe(&mut slow, "slow").await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    let big = |n: usize| json!({"n": n, "pad": "x".repeat(8000)}).to_string();
    let mut most_queued = 0.0f64;
    for n in 0..400 {
        hub.publish("feed", big(n)).await;
        if n % 20 == 0 {
            most_queued = most_queued.max(hub.metric("subhub_queued_messages").await);
        }
    }
    // 65,536 bytes hold eight results of ~8 KB.
    assert!(most_queued <= 8.0, "queued {most_queued} results of 8 KB");
    assert!(hub.metric("subhub_dropped_total{reason=\"slow_consumer\"}").await > 0.0);
    // Reading again, the client gets the newest, in order.
    let mut last = -1i64;
    while last < 399 {
        let n = slow.recv_json().await["payload"]["data"]["events"]["payload"]["n"].as_i64().expect("n");
        assert!(n > last, "out of order: {n} after {last}");
        last = n;
    }
}
