//! Memory per connection, measured on the real binary: idle subscribed WebSocket connections must
//! stay small (tungstenite's default 128 KiB read buffer per connection is the trap this guards).

mod common;

use common::*;
use serde_json::json;

const CONNECTIONS: usize = 2000;
/// Generous against the few KiB measured; far below the 128 KiB+ of default buffers.
const MAX_BYTES_PER_CONNECTION: u64 = 24 * 1024;

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_subscribed_connections_cost_a_few_kib_each() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("SKIPPED: memory per connection is read from /proc, which this system lacks");
        return;
    }
    // Two thousand connections from one address in a moment: more than its connect rate and its
    // open connections allow.
    let env = [("SUBHUB_LIMITS__CONNECT_RATE_PER_IP", "1000000"), ("SUBHUB_LIMITS__CONNECTIONS_PER_IP", "1000000")];
    let (mut child, addr) = start_binary_with(&[], &env);
    let url = format!("ws://{addr}/graphql");

    // Warm up: the first connection and subscription allocate what every later one shares.
    let mut clients = Vec::with_capacity(CONNECTIONS + 1);
    let mut first = Client::connect_url(&url, Some(TRANSPORT_WS)).await;
    first.init().await;
    first.subscribe("s", EVENTS_QUERY, json!({"topic": "idle"})).await;
    clients.push(first);
    assert!(wait_for(PATIENCE, || async { metric_at(addr, "subhub_subscriptions").await == 1.0 }).await);
    let before = rss_bytes(child.id());

    for _ in 0..CONNECTIONS {
        let mut client = Client::connect_url(&url, Some(TRANSPORT_WS)).await;
        client.init().await;
        client.subscribe("s", EVENTS_QUERY, json!({"topic": "idle"})).await;
        clients.push(client);
    }
    let all = (CONNECTIONS + 1) as f64;
    assert!(wait_for(PATIENCE, || async { metric_at(addr, "subhub_subscriptions").await == all }).await);
    let after = rss_bytes(child.id());
    let per_connection = after.saturating_sub(before) / CONNECTIONS as u64;
    println!(
        "{CONNECTIONS} idle subscribed connections: hub RSS {} KiB -> {} KiB, {per_connection} bytes per connection",
        before / 1024,
        after / 1024
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(per_connection <= MAX_BYTES_PER_CONNECTION, "{per_connection} bytes per connection");
}
