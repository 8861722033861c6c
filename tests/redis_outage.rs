//! Redis pub/sub outages, against the real Redis on 127.0.0.1:6379. Killing connections hits
//! every hub connected to that Redis, so these tests live in their own binary (cargo runs test
//! binaries one after another) and in one test.

mod common;

use common::*;
use serde_json::json;

const REDIS: &str = "127.0.0.1:6379";
const URL: &str = "redis://127.0.0.1:6379";

async fn numsub(redis: &mut redis::aio::MultiplexedConnection, channel: &str) -> i64 {
    let reply: (String, i64) =
        redis::cmd("PUBSUB").arg("NUMSUB").arg(channel).query_async(redis).await.expect("NUMSUB");
    reply.1
}

async fn publish(redis: &mut redis::aio::MultiplexedConnection, channel: &str, body: &[u8]) {
    let _: i64 = redis::cmd("PUBLISH").arg(channel).arg(body).query_async(redis).await.expect("PUBLISH");
}

fn payload(message: &serde_json::Value) -> &serde_json::Value {
    &message["payload"]["data"]["events"]["payload"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_connection_keeps_clients_and_later_events_arrive() {
    if !broker_available("Redis", REDIS) {
        return;
    }
    let hub = TestHub::with_config(&format!(
        "default_broker = \"cache\"\n[brokers.cache]\nkind = \"redis\"\nurl = \"{URL}\"\n"
    ))
    .await;
    let mut plain = redis::Client::open(URL).expect("url").get_multiplexed_async_connection().await.expect("connect");
    let topic = unique("kill");
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", EVENTS_QUERY, json!({"topic": topic})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    publish(&mut plain, &topic, b"1").await;
    assert_eq!(*payload(&client.recv_json().await), 1);

    let _: i64 =
        redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub").query_async(&mut plain).await.expect("kill");
    // The hub resubscribes on a new connection; the client never noticed.
    assert!(
        wait_for(PATIENCE, || {
            let mut plain = plain.clone();
            let topic = topic.clone();
            async move { numsub(&mut plain, &topic).await == 1 }
        })
        .await
    );
    hub.wait_metric("subhub_broker_connected", 1.0).await;
    publish(&mut plain, &topic, b"2").await;
    assert_eq!(*payload(&client.recv_json().await), 2);
    assert!(client.until_pong().await.is_empty());
}

async fn xadd(redis: &mut redis::aio::MultiplexedConnection, key: &str, n: usize) -> String {
    let body = json!({"n": n}).to_string();
    redis::cmd("XADD").arg(key).arg("*").arg("payload").arg(body).query_async(redis).await.expect("XADD")
}

/// Kills the hub's blocked stream readers (the only XREAD clients while this binary runs).
async fn kill_stream_readers(redis: &mut redis::aio::MultiplexedConnection) -> usize {
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(redis).await.expect("CLIENT LIST");
    let mut killed = 0;
    for line in list.lines().filter(|l| l.contains("cmd=xread")) {
        let Some(id) = line.split(' ').find_map(|f| f.strip_prefix("id=")) else { continue };
        let _: redis::RedisResult<i64> = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id).query_async(redis).await;
        killed += 1;
    }
    killed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_lose_nothing_published_during_an_outage() {
    if !broker_available("Redis", REDIS) {
        return;
    }
    let config =
        format!("default_broker = \"log\"\n[brokers.log]\nkind = \"redis\"\nmode = \"streams\"\nurl = \"{URL}\"\n");
    let hub = TestHub::with_config(&config).await;
    let mut plain = redis::Client::open(URL).expect("url").get_multiplexed_async_connection().await.expect("connect");
    let key = unique("outage");
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", EVENTS_QUERY, json!({"topic": key})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    xadd(&mut plain, &key, 0).await;
    assert_eq!(payload(&client.recv_json().await)["n"], 0);

    // Wait until the reader is blocked in XREAD, kill it, and append while it is down.
    assert!(
        wait_for(PATIENCE, || {
            let mut plain = plain.clone();
            async move { kill_stream_readers(&mut plain).await > 0 }
        })
        .await
    );
    for n in 1..=5 {
        xadd(&mut plain, &key, n).await;
    }
    for n in 1..=5 {
        assert_eq!(payload(&client.recv_json().await)["n"], n, "lost or reordered across the outage");
    }
    xadd(&mut plain, &key, 6).await;
    assert_eq!(payload(&client.recv_json().await)["n"], 6);
}
