//! The generator checked against a known stream: a small run against a real hub, and the
//! answers to bad input.

use std::time::Duration;

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
    let config = subhub::Config { listen: "127.0.0.1:0".parse().expect("addr"), ..Default::default() };
    let server = subhub::Server::bind(config).await.expect("hub");
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    (addr, stop)
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
