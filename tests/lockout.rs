//! One client address cannot lock the others out: idle sockets, trickled request bodies and
//! dashboard status streams from one address each hold at most `limits.connections_per_ip`
//! places, a connection the hub cannot serve is answered at once instead of waiting in the
//! backlog, and meanwhile a client from another address connects, subscribes and receives.
//! The attacker connects from 127.0.0.1, the well-behaved client from 127.0.0.2.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::MaybeTlsStream;

/// Places few enough for a test to take them all from one address.
const LIMITS: &str = "[limits]\nmax_http_connections = 16\nconnections_per_ip = 8\nconnect_rate_per_ip = 1000\n";
const ATTACKER: &str = "127.0.0.1";
const GOOD: &str = "127.0.0.2";

async fn tcp_from(source: &str, hub: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(source.parse().expect("address"), 0)).expect("bind");
    socket.connect(hub).await.expect("connect")
}

/// The well-behaved client: from its own address it connects, subscribes and receives an
/// event published from that address, all within the test's patience.
async fn a_good_client_is_served(hub: &TestHub) {
    let served = async {
        let stream = tcp_from(GOOD, hub.addr).await;
        let mut request = hub.ws_url().into_client_request().expect("request");
        request.headers_mut().insert("sec-websocket-protocol", TRANSPORT_WS.parse().expect("header"));
        let (ws, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await.expect("handshake");
        let mut client = Client { ws, protocol: Some(TRANSPORT_WS.to_owned()) };
        client.init().await;
        client.subscribe("1", EVENTS_QUERY, json!({"topic": "lockout"})).await;
        assert!(client.until_pong().await.is_empty());
        let publisher = reqwest::Client::builder().local_address(GOOD.parse::<IpAddr>().ok()).build().expect("client");
        let response = publisher.post(hub.url("/publish/lockout")).body("42").send().await.expect("publish");
        assert!(response.status().is_success(), "publish answered {}", response.status());
        let event = client.recv_json().await;
        assert_eq!(event["payload"]["data"]["events"]["payload"], 42, "{event}");
    };
    tokio::time::timeout(PATIENCE, served).await.expect("the good client was not served during the attack");
}

/// The status line of what the hub answered on `stream`, if it answered within a moment.
async fn answer(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let read = async {
        while !head.ends_with(b"\r\n") {
            if stream.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            head.push(byte[0]);
        }
        Some(String::from_utf8_lossy(&head).trim_end().to_owned())
    };
    tokio::time::timeout(Duration::from_secs(2), read).await.ok().flatten()
}

/// Opens `n` connections from the attacker's address, each starting with `opening`.
async fn attack(hub: &TestHub, n: usize, opening: &[u8]) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        let mut stream = tcp_from(ATTACKER, hub.addr).await;
        if !opening.is_empty() {
            stream.write_all(opening).await.expect("write");
        }
        held.push(stream);
    }
    held
}

/// Of the attacker's connections, those answered 429 (over `connections_per_ip`).
async fn refused(held: &mut [TcpStream]) -> usize {
    let mut refused = 0;
    for stream in held.iter_mut().skip(8) {
        if answer(stream).await.is_some_and(|line| line.starts_with("HTTP/1.1 429")) {
            refused += 1;
        }
    }
    refused
}

/// Idle sockets (nothing sent) held open from one address: hyper would close each after its
/// header timeout, and the attacker opens them again; before, 16 of them stopped the hub
/// accepting anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_from_one_address_lock_no_one_out() {
    let hub = TestHub::with_config(LIMITS).await;
    let mut held = attack(&hub, 32, b"").await;
    a_good_client_is_served(&hub).await;
    assert_eq!(refused(&mut held).await, 24, "every connection past connections_per_ip is answered 429");
    assert!(hub.hub.metrics.refused(subhub_subscriptions::Refusal::Limit) >= 24);
}

/// Request bodies trickled a byte at a time: each request is cut by `request_timeout` (408),
/// and one address holds no more than its places meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_bodies_from_one_address_lock_no_one_out() {
    let hub = TestHub::with_config(&format!("{LIMITS}request_timeout = \"2s\"\n")).await;
    let head = b"POST /publish/lockout HTTP/1.1\r\nhost: hub\r\ncontent-length: 1000\r\n\r\n";
    let mut held = attack(&hub, 32, head).await;
    let trickle = {
        let mut admitted: Vec<TcpStream> = held.drain(..8).collect();
        tokio::spawn(async move {
            let mut answers: Vec<Option<String>> = vec![None; admitted.len()];
            // A byte every 200 ms on each, until the hub has answered them all.
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            for _ in 0..100 {
                tick.tick().await;
                let mut buffer = [0u8; 64];
                for (stream, answer) in admitted.iter_mut().zip(answers.iter_mut()) {
                    if answer.is_some() {
                        continue;
                    }
                    let _ = stream.write_all(b" ").await;
                    if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buffer)).await {
                        *answer = Some(String::from_utf8_lossy(&buffer[..n]).into_owned());
                    }
                }
                if answers.iter().all(Option::is_some) {
                    break;
                }
            }
            answers
        })
    };
    a_good_client_is_served(&hub).await;
    let mut rest = held;
    let mut refused = 0;
    for stream in &mut rest {
        if answer(stream).await.is_some_and(|line| line.starts_with("HTTP/1.1 429")) {
            refused += 1;
        }
    }
    assert_eq!(refused, 24);
    let answers = trickle.await.expect("join");
    let timed_out = answers.iter().flatten().filter(|answer| answer.starts_with("HTTP/1.1 408")).count();
    assert_eq!(timed_out, 8, "every trickled request is cut by request_timeout: {answers:?}");
}

/// `GET /status` streams (the dashboard's feed) from one address: each is a session, so it
/// gives its HTTP place back, counts among the connections, and one address holds no more than
/// its places; before, 16 of them held every HTTP place for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_streams_from_one_address_lock_no_one_out() {
    let hub = TestHub::with_config(LIMITS).await;
    let mut held = attack(&hub, 32, b"GET /status HTTP/1.1\r\nhost: hub\r\n\r\n").await;
    for stream in held.iter_mut().take(8) {
        assert_eq!(answer(stream).await.as_deref(), Some("HTTP/1.1 200 OK"));
    }
    a_good_client_is_served(&hub).await;
    assert_eq!(refused(&mut held).await, 24);
    // Read in the process: the attacker's address, which /metrics would be asked from, is full.
    let metrics = hub.hub.metrics.clone();
    assert_eq!(metrics.connections_over(subhub_subscriptions::Transport::Sse), 8);
    drop(held);
    assert!(
        wait_for(PATIENCE, || async { metrics.connections() == 0 }).await,
        "the status sessions were never released"
    );
}

/// Past `max_http_connections` (from any number of addresses), a new connection is answered
/// 503 at once rather than left waiting in the listen backlog; a place given back is taken
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_http_connections_a_connection_is_answered_503() {
    let hub = TestHub::with_config("[limits]\nmax_http_connections = 4\n").await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(hub.addr).await.expect("connect");
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n").await.expect("write");
        assert_eq!(answer(&mut stream).await.as_deref(), Some("HTTP/1.1 200 OK"));
        held.push(stream);
    }
    let mut stream = TcpStream::connect(hub.addr).await.expect("connect");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n").await.expect("write");
    assert_eq!(answer(&mut stream).await.as_deref(), Some("HTTP/1.1 503 Service Unavailable"));
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body).await;
    assert!(body.contains("limits.max_http_connections"), "{body}");
    assert_eq!(hub.hub.metrics.refused(subhub_subscriptions::Refusal::Limit), 1);
    drop(held.pop());
    let answered = wait_for(PATIENCE, || async {
        let mut stream = TcpStream::connect(hub.addr).await.expect("connect");
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n").await.expect("write");
        answer(&mut stream).await.as_deref() == Some("HTTP/1.1 200 OK")
    })
    .await;
    assert!(answered, "the place given back was never taken again");
}
