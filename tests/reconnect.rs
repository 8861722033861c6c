//! Reconnecting with backoff (STYLE §4): a broker that accepts the hub's connection and drops it
//! soon after is redialled with a growing delay, not at once each time; the backoff starts again
//! only after a session that stayed up. A proxy of the test's own in front of the real broker
//! cuts every connection 100 ms after accepting it, and counts them.

mod common;

use std::time::Duration;

use common::proxy::Proxy;
use common::*;

/// How long attempts are counted, and how long each connection lives.
const WINDOW: Duration = Duration::from_secs(6);
const CUT_AFTER: Duration = Duration::from_millis(100);

/// Connection attempts in `WINDOW` at most, for a broker that makes `per_attempt` connections
/// each time. The backoff's delays, from the upper half of 100 ms, 200 ms, 400 ms…, fit at most
/// seven attempts in six seconds (one more for slack); redialled 50 to 100 ms after each cut
/// there are thirty or more.
fn most(per_attempt: usize) -> usize {
    8 * per_attempt
}

async fn attempts(proxy: &Proxy, config: String, window: Duration) -> usize {
    let hub = TestHub::with_config(&config).await;
    let first = wait_for(PATIENCE, || async { proxy.accepted() > 0 }).await;
    assert!(first, "the hub never connected");
    tokio::time::sleep(window).await;
    let attempts = proxy.accepted();
    drop(hub);
    attempts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_that_drops_every_connection_is_redialled_with_a_growing_delay() {
    if !broker_available("Redis", "127.0.0.1:6379") {
        return;
    }
    let proxy = Proxy::cutting("127.0.0.1:6379", CUT_AFTER).await;
    let config = format!(
        "default_broker = \"cache\"\n[brokers.cache]\nkind = \"redis\"\nurl = \"redis://{}\"\n",
        proxy.host_port()
    );
    // A session holds two connections: the subscriber and the command connection.
    let attempts = attempts(&proxy, config, WINDOW).await;
    assert!(attempts <= most(2), "{attempts} connections in {WINDOW:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_that_drops_every_connection_is_redialled_with_a_growing_delay() {
    if !broker_available("Mosquitto", "127.0.0.1:1883") {
        return;
    }
    let proxy = Proxy::cutting("127.0.0.1:1883", CUT_AFTER).await;
    let config = format!(
        "default_broker = \"devices\"\n[brokers.devices]\nkind = \"mqtt\"\nurl = \"mqtt://{}\"\n",
        proxy.host_port()
    );
    let attempts = attempts(&proxy, config, WINDOW).await;
    assert!(attempts <= most(1), "{attempts} connections in {WINDOW:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_that_drops_every_connection_is_redialled_with_a_growing_delay() {
    if !broker_available("RabbitMQ", "127.0.0.1:5672") {
        return;
    }
    // RabbitMQ takes a dozen round trips to set a session up: each connection lives 500 ms, and
    // attempts are counted over twelve seconds, which the backoff fits eight into (so nine at
    // most); redialled at once there are twenty.
    let proxy = Proxy::cutting("127.0.0.1:5672", Duration::from_millis(500)).await;
    let config = format!(
        "default_broker = \"rabbit\"\n[brokers.rabbit]\nkind = \"amqp\"\nurl = \"amqp://guest:guest@{}/%2f\"\nexchange = \"{}\"\n",
        proxy.host_port(),
        unique("reconnect")
    );
    let window = Duration::from_secs(12);
    let attempts = attempts(&proxy, config, window).await;
    assert!(attempts <= 9, "{attempts} connections in {window:?}");
}
