//! An upstream that speaks only the legacy graphql-ws protocol, written with async-graphql (an
//! independent implementation): interfaces, an enum, an input type, so namespacing is tested
//! through fragments, inline fragments, aliases and variables. It counts its own connections
//! and subscriptions.

mod common;

use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Arc;

use async_graphql::{Context, Enum, InputObject, Interface, Object, Schema, SimpleObject, Subscription};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::*;
use futures_util::{Stream, StreamExt};
use serde_json::json;
use tokio::sync::broadcast;

#[derive(Enum, Copy, Clone, PartialEq, Eq, Debug)]
enum Venue {
    Nyse,
    Lse,
}

#[derive(SimpleObject, Clone, Debug)]
struct Stock {
    symbol: String,
    price: f64,
    venue: Venue,
}

#[derive(SimpleObject, Clone, Debug)]
struct Bond {
    symbol: String,
    coupon: f64,
}

#[derive(Interface, Clone, Debug)]
#[graphql(field(name = "symbol", ty = "&String"))]
enum Instrument {
    Stock(Stock),
    Bond(Bond),
}

#[derive(InputObject)]
struct Filter {
    prefix: String,
}

struct Query;

#[Object]
impl Query {
    async fn ping(&self) -> bool {
        true
    }
}

#[derive(Default)]
struct Counters {
    connections: AtomicI64,
    subscriptions: AtomicI64,
}

/// Counts a subscription while its stream lives.
struct Counted(Arc<Counters>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.subscriptions.fetch_sub(1, Relaxed);
    }
}

struct Root;

#[Subscription]
impl Root {
    async fn ticks(&self, ctx: &Context<'_>, filter: Filter) -> impl Stream<Item = Instrument> {
        let counters = ctx.data_unchecked::<Arc<Counters>>().clone();
        counters.subscriptions.fetch_add(1, Relaxed);
        let guard = Counted(counters);
        let receiver = ctx.data_unchecked::<broadcast::Sender<Instrument>>().subscribe();
        futures_util::stream::unfold((receiver, guard), |(mut receiver, guard)| async move {
            let item = receiver.recv().await.ok()?;
            Some((item, (receiver, guard)))
        })
        .filter(move |item: &Instrument| {
            let symbol = match item {
                Instrument::Stock(s) => &s.symbol,
                Instrument::Bond(b) => &b.symbol,
            };
            std::future::ready(symbol.starts_with(&filter.prefix))
        })
    }
}

type Upstream = Schema<Query, async_graphql::EmptyMutation, Root>;

struct LegacyUpstream {
    addr: std::net::SocketAddr,
    counters: Arc<Counters>,
    feed: broadcast::Sender<Instrument>,
}

/// Accepts only `graphql-ws`: the offered sub-protocols are cut down to it before the
/// extractor picks one.
async fn legacy_only(State((schema, counters)): State<(Upstream, Arc<Counters>)>, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    let offered =
        parts.headers.get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    if !offered.split(',').any(|p| p.trim() == "graphql-ws") {
        return (StatusCode::BAD_REQUEST, "graphql-ws only").into_response();
    }
    parts.headers.insert("sec-websocket-protocol", "graphql-ws".parse().expect("header"));
    let (Ok(protocol), Ok(upgrade)) = (
        GraphQLProtocol::from_request_parts(&mut parts, &()).await,
        WebSocketUpgrade::from_request_parts(&mut parts, &()).await,
    ) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    upgrade.protocols(["graphql-ws"]).on_upgrade(move |socket| async move {
        counters.connections.fetch_add(1, Relaxed);
        GraphQLWebSocket::new(socket, schema, protocol).serve().await;
        counters.connections.fetch_sub(1, Relaxed);
    })
}

async fn start_upstream() -> LegacyUpstream {
    let counters = Arc::new(Counters::default());
    let (feed, _) = broadcast::channel(64);
    let schema =
        Schema::build(Query, async_graphql::EmptyMutation, Root).data(counters.clone()).data(feed.clone()).finish();
    let app =
        axum::Router::new().route("/graphql", axum::routing::get(legacy_only)).with_state((schema, counters.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    LegacyUpstream { addr, counters, feed }
}

fn stock(symbol: &str, price: f64) -> Instrument {
    Instrument::Stock(Stock { symbol: symbol.into(), price, venue: Venue::Lse })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_only_upstream_is_shared_the_same_way() {
    let upstream = start_upstream().await;
    let hub = TestHub::with_config(&format!("[upstreams.mkt]\nurl = \"ws://{}/graphql\"\n", upstream.addr)).await;
    let query = "subscription { mkt_ticks(filter: {prefix: \"A\"}) { symbol } }";
    let mut clients = Vec::new();
    for i in 0..20 {
        let mut client = Client::ready(&hub, TRANSPORT_WS).await;
        client.subscribe(&format!("c{i}"), query, json!({})).await;
        clients.push(client);
    }
    hub.wait_metric("subhub_subscriptions", 20.0).await;
    assert!(wait_for(PATIENCE, || async { upstream.counters.subscriptions.load(Relaxed) == 1 }).await);
    assert_eq!(upstream.counters.connections.load(Relaxed), 1);
    upstream.feed.send(stock("ACME", 1.0)).expect("feed");
    for client in &mut clients {
        assert_eq!(client.recv_json().await["payload"]["data"]["mkt_ticks"]["symbol"], "ACME");
    }
    drop(clients);
    assert!(
        wait_for(std::time::Duration::from_secs(1), || async {
            upstream.counters.subscriptions.load(Relaxed) == 0 && upstream.counters.connections.load(Relaxed) == 0
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_operations_get_what_the_upstream_gives_directly() {
    let upstream = start_upstream().await;
    let hub = TestHub::with_config(&format!("[upstreams.mkt]\nurl = \"ws://{}/graphql\"\n", upstream.addr)).await;
    let through_hub = "subscription Watch($f: mkt_Filter!) {\n  feed: mkt_ticks(filter: $f) {\n    ...Common\n    ... on mkt_Stock { price venue kind: __typename }\n    ... on mkt_Bond { coupon }\n  }\n}\nfragment Common on mkt_Instrument { symbol __typename }";
    let direct = "subscription Watch($f: Filter!) {\n  feed: ticks(filter: $f) {\n    ...Common\n    ... on Stock { price venue kind: __typename }\n    ... on Bond { coupon }\n  }\n}\nfragment Common on Instrument { symbol __typename }";
    let variables = json!({"f": {"prefix": "A"}});

    let mut via_hub = Client::ready(&hub, TRANSPORT_WS).await;
    via_hub.subscribe("1", through_hub, variables.clone()).await;
    let mut plain = Client::connect_url(&format!("ws://{}/graphql", upstream.addr), Some(LEGACY_WS)).await;
    plain.send(json!({"type": "connection_init"})).await;
    assert_eq!(plain.recv_json().await["type"], "connection_ack");
    plain.subscribe("1", direct, variables).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    assert!(wait_for(PATIENCE, || async { upstream.counters.subscriptions.load(Relaxed) == 2 }).await);

    upstream.feed.send(stock("AAPL", 190.5)).expect("feed");
    upstream.feed.send(Instrument::Bond(Bond { symbol: "AT1".into(), coupon: 4.25 })).expect("feed");
    upstream.feed.send(stock("ZZZ", 1.0)).expect("feed");
    for _ in 0..2 {
        let hub_data = via_hub.recv_json().await["payload"]["data"].clone();
        let mut expected = plain.recv_json().await["payload"]["data"].clone();
        // The same result, with the upstream's type names in the hub's namespace.
        for key in ["__typename", "kind"] {
            if let Some(name) = expected["feed"][key].as_str().map(|n| format!("mkt_{n}")) {
                expected["feed"][key] = json!(name);
            }
        }
        assert_eq!(hub_data, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_invalid_for_the_hub_never_reach_the_upstream() {
    let upstream = start_upstream().await;
    let hub = TestHub::with_config(&format!("[upstreams.mkt]\nurl = \"ws://{}/graphql\"\n", upstream.addr)).await;
    let mut good = Client::ready(&hub, TRANSPORT_WS).await;
    good.subscribe("g", "subscription { mkt_ticks(filter: {prefix: \"\"}) { symbol } }", json!({})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    // Invalid for the hub's schema: refused before anything goes upstream.
    let mut bad = Client::ready(&hub, TRANSPORT_WS).await;
    bad.subscribe("b", "subscription { mkt_ticks { symbol } }", json!({})).await;
    let error = bad.recv_json().await;
    assert_eq!(error["type"], "error", "{error}");
    assert!(error["payload"][0]["message"].as_str().unwrap_or_default().contains("filter"), "{error}");
    upstream.feed.send(stock("OK", 2.0)).expect("feed");
    assert_eq!(good.recv_json().await["payload"]["data"]["mkt_ticks"]["symbol"], "OK");
}
