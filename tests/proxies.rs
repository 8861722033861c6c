//! Hubs behind a load balancer (`[http] trusted_proxies`): every client arrives from the
//! balancer's address, and the per-address limits apply to the client the balancer names in
//! `X-Forwarded-For` or `Forwarded`, never to the balancer as one client; a peer that is not
//! trusted cannot escape its limits by writing those headers itself. The balancer here is the
//! test, connecting from 127.0.0.1 with the header nginx would add.

mod common;

use std::net::SocketAddr;

use common::*;
use reqwest::StatusCode;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error;
use tokio_tungstenite::MaybeTlsStream;

/// A WebSocket connect from `source` carrying `header: value`: its status, 101 when upgraded;
/// the session is held in `open`.
async fn connect(hub: SocketAddr, source: &str, header: &str, value: &str, open: &mut Vec<Client>) -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(source.parse().expect("address"), 0)).expect("bind");
    let stream = socket.connect(hub).await.expect("connect");
    let mut request = format!("ws://{hub}/graphql").into_client_request().expect("request");
    request.headers_mut().insert("sec-websocket-protocol", TRANSPORT_WS.parse().expect("header"));
    request.headers_mut().insert(
        reqwest::header::HeaderName::from_bytes(header.as_bytes()).expect("name"),
        value.parse().expect("value"),
    );
    match tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await {
        Ok((ws, _)) => {
            open.push(Client { ws, protocol: Some(TRANSPORT_WS.to_owned()) });
            101
        }
        Err(Error::Http(response)) => response.status().as_u16(),
        // Refused at accept, the answer can come before the handshake is written.
        Err(Error::Io(_) | Error::Protocol(_)) => 0,
        Err(error) => panic!("connect failed: {error}"),
    }
}

/// `n` connects at once from `source`, the i-th naming the client `client(i)`: their statuses.
async fn burst(
    hub: SocketAddr,
    source: &'static str,
    n: usize,
    client: fn(usize) -> String,
) -> (Vec<u16>, Vec<Client>) {
    let attempts: Vec<_> = (0..n)
        .map(|i| {
            tokio::spawn(async move {
                let mut open = Vec::new();
                let status = connect(hub, source, "x-forwarded-for", &client(i), &mut open).await;
                (status, open)
            })
        })
        .collect();
    let (mut statuses, mut open) = (Vec::new(), Vec::new());
    for attempt in attempts {
        let (status, mut client) = attempt.await.expect("join");
        statuses.push(status);
        open.append(&mut client);
    }
    (statuses, open)
}

fn client_address(i: usize) -> String {
    format!("10.{}.{}.1", i / 250, i % 250)
}

/// 1,000 clients connecting at once through one balancer: without `trusted_proxies` the
/// balancer is one client over `connect_rate_per_ip` and `connections_per_ip`, and most are
/// refused 429; with it, each is its own client, and all are admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_through_one_trusted_proxy_are_admitted() {
    let untrusted = TestHub::start().await;
    let (statuses, open) = burst(untrusted.addr, "127.0.0.1", 1000, client_address).await;
    let admitted = statuses.iter().filter(|s| **s == 101).count();
    assert!(admitted <= 256, "{admitted} admitted from one address");
    drop(open);

    let hub = TestHub::with_config("[http]\ntrusted_proxies = [\"127.0.0.0/8\"]\n").await;
    let (statuses, open) = burst(hub.addr, "127.0.0.1", 1000, client_address).await;
    let refused: Vec<&u16> = statuses.iter().filter(|s| **s != 101).collect();
    assert!(refused.is_empty(), "{} of 1,000 refused: {:?}", refused.len(), &refused[..refused.len().min(10)]);
    assert_eq!(open.len(), 1000);
    let metrics = hub.hub.metrics.clone();
    assert!(wait_for(PATIENCE, || async { metrics.connections() == 1000 }).await);
    assert_eq!(metrics.refused(subhub_subscriptions::Refusal::Rate), 0);
}

/// A client behind the balancer is held to its own limits, answered 429 by the request
/// (`connections_per_ip`, with an IPv6 client known by its /64); another client is not
/// affected, and places given back are taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_clients_are_held_to_their_own_limits() {
    let hub =
        TestHub::with_config("[http]\ntrusted_proxies = [\"127.0.0.1\"]\n[limits]\nconnections_per_ip = 3\n").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        assert_eq!(connect(hub.addr, "127.0.0.1", "x-forwarded-for", "6.6.6.6, 203.0.113.7", &mut open).await, 101);
    }
    assert_eq!(connect(hub.addr, "127.0.0.1", "x-forwarded-for", "203.0.113.7", &mut open).await, 429);
    assert_eq!(connect(hub.addr, "127.0.0.1", "forwarded", "for=203.0.113.8;proto=http", &mut open).await, 101);
    for v6 in ["\"[2001:db8:0:1::1]:4711\"", "\"[2001:db8:0:1::2]\"", "\"[2001:db8:0:1:ffff::9]\""] {
        assert_eq!(connect(hub.addr, "127.0.0.1", "forwarded", &format!("for={v6}"), &mut open).await, 101, "{v6}");
    }
    let over = connect(hub.addr, "127.0.0.1", "forwarded", "for=\"[2001:db8:0:1::4]\"", &mut open).await;
    assert_eq!(over, 429, "another address of the same /64 is the same client");
    assert_eq!(connect(hub.addr, "127.0.0.1", "forwarded", "for=\"[2001:db8:0:2::4]\"", &mut open).await, 101);
    // A plain request of the full client is refused too, with its reason.
    let response =
        hub.http().get(hub.url("/healthz")).header("x-forwarded-for", "203.0.113.7").send().await.expect("get");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(body["errors"][0]["message"].as_str().unwrap_or_default().contains("limits.connections_per_ip"), "{body}");
    assert_eq!(hub.hub.metrics.refused(subhub_subscriptions::Refusal::Limit), 3);
    // The first client's sessions end; its places are its own again.
    drop(open.drain(..3));
    let reopened = wait_for(PATIENCE, || async {
        let mut again = Vec::new();
        connect(hub.addr, "127.0.0.1", "x-forwarded-for", "203.0.113.7", &mut again).await == 101
    })
    .await;
    assert!(reopened);
}

/// A peer that is not a trusted proxy writes `X-Forwarded-For` itself, a new address on every
/// connect: the header is ignored, and its own address is over `connect_rate_per_ip` as
/// before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_cannot_escape_its_limits_by_forwarding() {
    let hub =
        TestHub::with_config("[http]\ntrusted_proxies = [\"127.0.0.1\"]\n[limits]\nconnect_rate_per_ip = 5\n").await;
    let (statuses, _open) = burst(hub.addr, "127.0.0.2", 30, client_address).await;
    let admitted = statuses.iter().filter(|s| **s == 101).count();
    assert!((5..=6).contains(&admitted), "{admitted} of 30 admitted");
    assert!(statuses.iter().all(|s| [101, 429, 0].contains(s)), "{statuses:?}");
    assert!(hub.hub.metrics.refused(subhub_subscriptions::Refusal::Rate) >= 24);
}
