//! The generator checked against a known stream: a small run against a real hub, and the
//! answers to bad input.

#[path = "../../tests/common/brokers.rs"]
mod brokers;

use std::time::Duration;

use brokers::{broker_available, unique};
use clap::Parser;
use subhub_load::options::RunOptions;
use subhub_load::run::{self, Report};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    options: RunOptions,
}

fn options(args: &[&str]) -> RunOptions {
    Args::parse_from(std::iter::once("subhub-load").chain(args.iter().copied())).options
}

async fn start_hub() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    serve(subhub::Config { listen: "127.0.0.1:0".parse().expect("addr"), ..Default::default() }).await
}

/// A hub configured by this TOML text, on 127.0.0.1:0.
async fn start_hub_with(toml_text: &str) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("subhub-load-test-{}-{n}.toml", std::process::id()));
    std::fs::write(&path, format!("listen = \"127.0.0.1:0\"\n{toml_text}")).expect("write config");
    let config = subhub::Config::load(Some(&path), Vec::new()).expect("config");
    let _ = std::fs::remove_file(&path);
    serve(config).await
}

/// Serves the hub until the returned sender is dropped.
async fn serve(config: subhub::Config) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let server = subhub::Server::bind(config).await.expect("hub");
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// A broadcast published straight into a broker, read by the hub's clients and by plain
/// subscribers of the broker: both are counted exactly, and the report says what the hub adds.
/// `broker` is the body of the hub's one broker table.
async fn plain_beside_hub(broker: &str, publish: &str, broker_url: &str, topic: &str) {
    let (addr, _stop) = start_hub_with(&format!("default_broker = \"b\"\n[brokers.b]\n{broker}\n")).await;
    let url = format!("ws://{addr}/graphql");
    let report = generate(options(&[
        "--url",
        &url,
        "-n",
        "6",
        "--plain",
        "3",
        "--rate",
        "30",
        "--duration",
        "1s",
        "--publish",
        publish,
        "--broker-url",
        broker_url,
        "--topic-prefix",
        topic,
    ]))
    .await
    .expect("run");
    let window = &report.windows[0];
    assert_eq!((window.tally.expected, window.tally.received, window.tally.lost), (30 * 6, 30 * 6, 0));
    let plain = window.plain.as_ref().expect("plain results");
    assert_eq!(plain.subscribers, 3);
    assert_eq!((plain.tally.expected, plain.tally.received, plain.tally.lost), (30 * 3, 30 * 3, 0));
    assert_eq!((plain.tally.duplicates, plain.tally.reordered), (0, 0));
    assert_eq!(plain.latency.count, 30 * 3, "one latency per plain delivery");
    assert_eq!(plain.hub_added_p50_us, window.latency.p50_us as i64 - plain.latency.p50_us as i64);
    assert!(subhub_load::report::table(&report).contains("the server adds"));
}

const REDIS: &str = "redis://127.0.0.1:6379";
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

#[tokio::test]
async fn plain_redis_pubsub_subscribers_beside_the_hub() {
    if broker_available("Redis", "127.0.0.1:6379") {
        let broker = format!("kind = \"redis\"\nurl = \"{REDIS}\"");
        plain_beside_hub(&broker, "redis", REDIS, &unique("load-pubsub")).await;
    }
}

#[tokio::test]
async fn plain_redis_stream_readers_beside_the_hub() {
    if broker_available("Redis", "127.0.0.1:6379") {
        let broker = format!("kind = \"redis\"\nmode = \"streams\"\nurl = \"{REDIS}\"");
        plain_beside_hub(&broker, "redis-streams", REDIS, &unique("load-stream")).await;
    }
}

#[tokio::test]
async fn plain_rabbitmq_consumers_beside_the_hub() {
    if broker_available("RabbitMQ", "127.0.0.1:5672") {
        let broker = format!("kind = \"amqp\"\nurl = \"{AMQP}\"\nexchange = \"subhub\"");
        plain_beside_hub(&broker, "amqp", AMQP, &unique("load-amqp")).await;
    }
}

#[tokio::test]
async fn plain_kafka_consumers_beside_the_hub() {
    let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("load-kafka", 1, 1).expect("topic");
    let bootstrap = cluster.bootstrap_servers();
    let broker = format!("kind = \"kafka\"\nbootstrap_servers = \"{bootstrap}\"");
    plain_beside_hub(&broker, "kafka", &bootstrap, "load-kafka").await;
}

#[tokio::test]
async fn plain_subscribers_need_a_broker() {
    let error = generate(options(&["--plain", "1"])).await.expect_err("no broker to read");
    assert!(format!("{error:#}").contains("--plain needs a broker"), "{error:#}");
}

async fn generate(options: RunOptions) -> anyhow::Result<Report> {
    tokio::task::LocalSet::new().run_until(run::run(options, false)).await
}

#[tokio::test]
async fn a_small_broadcast_is_counted_exactly() {
    let (addr, _stop) = start_hub().await;
    let url = format!("ws://{addr}/graphql");
    let report =
        generate(options(&["--url", &url, "-n", "50", "--rate", "40", "--duration", "1s"])).await.expect("run");
    let window = &report.windows[0];
    assert_eq!(report.connect_errors, 0);
    assert_eq!(window.published, 40);
    assert_eq!(window.tally.expected, 40 * 50);
    assert_eq!(window.tally.received, 40 * 50);
    assert_eq!((window.tally.lost, window.tally.duplicates, window.tally.reordered), (0, 0, 0));
    assert_eq!(window.latency.count, 40 * 50, "one latency per delivery");
    assert!(window.latency.p50_us > 0 && window.latency.p50_us <= window.latency.max_us);
    let deliveries: u64 = window.timeline.iter().map(|s| s.deliveries).sum();
    assert_eq!(deliveries, 40 * 50);
    // The chart and the table render.
    assert!(subhub_load::report::svg(&report).contains("<polyline"));
    assert!(subhub_load::report::table(&report).contains("deliveries/s"));
}

#[tokio::test]
async fn partitioned_topics_and_bursts() {
    let (addr, _stop) = start_hub().await;
    let url = format!("ws://{addr}/graphql");
    let report = generate(options(&[
        "--url",
        &url,
        "--scenario",
        "partitioned",
        "-n",
        "40",
        "--rate",
        "40",
        "--duration",
        "1s",
    ]))
    .await
    .expect("run");
    assert_eq!(report.topics, 4);
    let tally = report.windows[0].tally;
    // 40 events over 4 topics of 10 subscribers: 400 deliveries.
    assert_eq!((tally.expected, tally.received, tally.lost), (400, 400, 0));

    let report =
        generate(options(&["--url", &url, "--scenario", "burst", "-n", "20", "--bursts", "2"])).await.expect("run");
    let burst = report.windows[0].burst.clone().expect("burst results");
    assert_eq!((burst.bursts, burst.complete), (2, 2));
    assert!(burst.median_first_us <= burst.median_last_us);
}

#[tokio::test]
async fn publishing_by_mutation_is_answered_and_counted() {
    let (addr, _stop) = start_hub().await;
    let url = format!("ws://{addr}/graphql");
    let args = ["--url", &url, "--scenario", "partitioned", "-n", "30", "--rate", "60", "--duration", "1s"];
    let report = generate(options(&[&args[..], &["--publish", "ws-mutation"]].concat())).await.expect("run");
    let window = &report.windows[0];
    assert_eq!(window.publish_errors, 0);
    // 60 events over 3 topics of 10 subscribers: 600 deliveries.
    assert_eq!((window.tally.expected, window.tally.received, window.tally.lost), (600, 600, 0));
}

#[tokio::test]
async fn churn_cycles_are_timed_and_leave_nothing_open() {
    let (addr, _stop) = start_hub().await;
    let url = format!("ws://{addr}/graphql");
    let report = generate(options(&[
        "--url",
        &url,
        "--scenario",
        "churn",
        "-n",
        "20",
        "--rate",
        "20",
        "--churn-rate",
        "40",
        "--duration",
        "1s",
    ]))
    .await
    .expect("run");
    let window = &report.windows[0];
    assert_eq!(report.connect_errors, 0);
    assert_eq!((window.tally.received, window.tally.lost), (20 * 20, 0));
    let churn = window.churn.clone().expect("churn results");
    // 40 cycles a second for a second: the first tick is immediate.
    assert!((30..=41).contains(&churn.cycles), "{} cycles", churn.cycles);
    assert_eq!(churn.connect.count, churn.cycles, "one connect time per cycle");
    assert_eq!(report.left_open, Some((0.0, 0.0)), "every source and execution closed");
}

#[tokio::test]
async fn reconnect_cycles_resume_without_gap_and_count_what_was_replayed() {
    let (addr, _stop) = start_hub_with("[brokers.local]\nkind = \"memory\"\nhistory = 10000\n").await;
    let url = format!("ws://{addr}/graphql");
    let report = generate(options(&[
        "--url",
        &url,
        "--scenario",
        "reconnect",
        "-n",
        "20",
        "--rate",
        "50",
        "--churn-rate",
        "5",
        "--duration",
        "3s",
    ]))
    .await
    .expect("run");
    let window = &report.windows[0];
    assert_eq!((window.tally.received, window.tally.lost), (150 * 20, 0), "the clients that stayed missed nothing");
    let reconnect = window.reconnect.clone().expect("reconnect results");
    let tally = &reconnect.tally;
    assert!(tally.cycles >= 10, "{} cycles", tally.cycles);
    assert_eq!((tally.gap, tally.duplicated, tally.not_recovered, tally.errors), (0, 0, 0, 0), "{tally:?}");
    // A second away at 50 events a second: about 50 replayed per cycle.
    let replayed = reconnect.replayed.expect("subhub_replayed_total");
    assert!(replayed >= 30.0 * tally.cycles as f64, "{replayed} replayed over {} cycles", tally.cycles);
    assert!(subhub_load::report::table(&report).contains("reconnect:"));
}

#[tokio::test]
async fn bad_input_gets_a_clear_error() {
    let error = generate(options(&["--url", "ws://127.0.0.1:1/graphql", "-n", "1", "--duration", "1s"]))
        .await
        .expect_err("unreachable");
    assert!(format!("{error:#}").contains("no connection succeeded"), "{error:#}");
    let error = generate(options(&["--rate", "0"])).await.expect_err("impossible rate");
    assert!(format!("{error:#}").contains("--rate"), "{error:#}");
    let error = generate(options(&["--url", "http://127.0.0.1:1"])).await.expect_err("not ws");
    assert!(format!("{error:#}").contains("ws://"), "{error:#}");
    // A WebSocket server that speaks another protocol: refused at the handshake.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/graphql",
        axum::routing::get(|ws: axum::extract::ws::WebSocketUpgrade| async move { ws.on_upgrade(|_| async {}) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let url = format!("ws://{addr}/graphql");
    let error = tokio::time::timeout(Duration::from_secs(30), generate(options(&["--url", &url, "-n", "1"])))
        .await
        .expect("in time")
        .expect_err("wrong protocol");
    assert!(format!("{error:#}").contains("graphql-transport-ws"), "{error:#}");
}
