//! Test harness: a real hub on port 0 and real WebSocket clients.
#![allow(dead_code)]

mod brokers;
pub mod proxy;
pub mod servers;
pub mod streams;
// Not every test binary uses them.
#[allow(unused_imports)]
pub use brokers::{broker_available, unique};

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use subhub::{Config, Hub, Server};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const TRANSPORT_WS: &str = "graphql-transport-ws";
pub const LEGACY_WS: &str = "graphql-ws";
/// Long enough for anything that should happen on a loaded two-core machine.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct TestHub {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    http: reqwest::Client,
}

impl TestHub {
    /// A hub with the default config on 127.0.0.1:0.
    pub async fn start() -> Self {
        Self::with_config("").await
    }

    /// A hub configured by this TOML text (on 127.0.0.1:0 unless it says otherwise).
    pub async fn with_config(toml_text: &str) -> Self {
        let dir = std::env::temp_dir();
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("subhub-test-{}-{n}.toml", std::process::id()));
        let text = if toml_text.contains("listen") {
            toml_text.to_owned()
        } else {
            format!("listen = \"127.0.0.1:0\"\n{toml_text}")
        };
        std::fs::write(&path, text).expect("write config");
        let config = Config::load(Some(&path), Vec::new()).expect("config");
        let _ = std::fs::remove_file(&path);
        Self::with_loaded(config).await
    }

    /// A hub of a config already loaded.
    pub async fn with_loaded(config: Config) -> Self {
        log_when_asked();
        let server = Server::bind(config).await.expect("bind");
        let addr = server.local_addr();
        let hub = server.hub().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        TestHub { addr, hub, stop: Some(stop), task: Some(task), http: reqwest::Client::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/graphql", self.addr)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Begins graceful shutdown and waits until the server has finished.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(PATIENCE, task).await.expect("shutdown in time").expect("server task");
        }
    }

    /// `/metrics` as a map from sample (name with labels) to value.
    pub async fn metrics(&self) -> HashMap<String, f64> {
        metrics_at(self.addr).await
    }

    /// The sum of every sample of a metric, whatever its labels.
    pub async fn metric(&self, name: &str) -> f64 {
        metric_at(self.addr, name).await
    }

    /// Waits until `name` reads `value`.
    pub async fn wait_metric(&self, name: &str, value: f64) {
        let reached = wait_for(PATIENCE, || async { self.metric(name).await == value }).await;
        assert!(reached, "{name} stayed at {}, expected {value}", self.metric(name).await);
    }

    /// Publishes with a bearer token, as a client with those claims.
    pub async fn publish_as(&self, token: &str, topic: &str, body: impl Into<reqwest::Body>) -> Value {
        let request = self.http.post(self.url(&format!("/publish/{topic}"))).bearer_auth(token).body(body);
        let response = request.send().await.expect("publish");
        assert!(response.status().is_success(), "publish failed: {}", response.status());
        response.json().await.expect("publish reply")
    }

    pub async fn publish(&self, topic: &str, body: impl Into<reqwest::Body>) -> Value {
        let response = self.http.post(self.url(&format!("/publish/{topic}"))).body(body).send().await.expect("publish");
        assert!(response.status().is_success(), "publish failed: {}", response.status());
        response.json().await.expect("publish reply")
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// `/metrics` of the hub at `addr`, as a map from sample (name with labels) to value.
pub async fn metrics_at(addr: SocketAddr) -> HashMap<String, f64> {
    let text =
        reqwest::get(format!("http://{addr}/metrics")).await.expect("metrics").text().await.expect("metrics body");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The sum of every sample of a metric at `addr`, whatever its labels.
pub async fn metric_at(addr: SocketAddr, name: &str) -> f64 {
    metrics_at(addr)
        .await
        .iter()
        .filter(|(sample, _)| *sample == name || sample.starts_with(&format!("{name}{{")))
        .map(|(_, v)| v)
        .sum()
}

/// With `SUBHUB_TEST_LOG` set (a `RUST_LOG` filter), the in-process hubs log to the test's
/// output, for finding out why a test failed.
fn log_when_asked() {
    if let Ok(filter) = std::env::var("SUBHUB_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Starts the `subhub` binary on 127.0.0.1:0 and reads the address it logs. Its log keeps being
/// drained so it never blocks on a full pipe.
pub fn start_binary() -> (std::process::Child, SocketAddr) {
    start_binary_with(&[], &[])
}

/// [`start_binary`] with extra arguments and environment variables.
pub fn start_binary_with(args: &[&str], env: &[(&str, &str)]) -> (std::process::Child, SocketAddr) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_subhub"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("SUBHUB_CONFIG")
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn subhub");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("subhub exited before serving").expect("read log");
        if let Some(rest) = line.split("local_addr=").nth(1) {
            break rest.split_whitespace().next().expect("address").parse().expect("socket address");
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

/// Polls `condition` every 10 ms until it holds or `limit` passes.
pub async fn wait_for<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if condition().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A WebSocket client speaking raw protocol messages.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub protocol: Option<String>,
}

/// The outcome of reading from a client.
#[derive(Debug, PartialEq)]
pub enum Received {
    Json(Value),
    Closed(u16, String),
    /// The socket ended without a close frame.
    Ended,
}

impl Client {
    pub async fn connect(hub: &TestHub, protocol: &str) -> Self {
        Self::connect_url(&hub.ws_url(), Some(protocol)).await
    }

    pub async fn connect_url(url: &str, protocol: Option<&str>) -> Self {
        Self::try_connect_url(url, protocol).await.expect("connect")
    }

    pub async fn try_connect_url(
        url: &str,
        protocol: Option<&str>,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let mut request = url.into_client_request().expect("request");
        if let Some(protocol) = protocol {
            request.headers_mut().insert("Sec-WebSocket-Protocol", protocol.parse().expect("header"));
        }
        let (ws, response) = tokio_tungstenite::connect_async(request).await?;
        let protocol =
            response.headers().get("Sec-WebSocket-Protocol").and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok(Client { ws, protocol })
    }

    /// Connects through a socket whose receive buffer is tiny, so the hub's writes back up fast
    /// once this client stops reading.
    pub async fn connect_small_buffer(hub: &TestHub, protocol: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        let stream = socket.connect(hub.addr).await.expect("tcp connect");
        let mut request = hub.ws_url().into_client_request().expect("request");
        request.headers_mut().insert("Sec-WebSocket-Protocol", protocol.parse().expect("header"));
        let (ws, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await.expect("handshake");
        Client { ws, protocol: Some(protocol.to_owned()) }
    }

    /// Connects with a bearer token in `connection_init` and waits for the ack.
    pub async fn authorized(hub: &TestHub, token: &str) -> Self {
        let mut client = Self::connect(hub, TRANSPORT_WS).await;
        client.send(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}})).await;
        assert_eq!(client.recv_json().await["type"], "connection_ack");
        client
    }

    /// Connects and completes `connection_init` / `connection_ack`.
    pub async fn ready(hub: &TestHub, protocol: &str) -> Self {
        let mut client = Self::connect(hub, protocol).await;
        client.init().await;
        client
    }

    pub async fn init(&mut self) {
        self.send(json!({"type": "connection_init"})).await;
        assert_eq!(self.recv_json().await["type"], "connection_ack");
        if self.protocol.as_deref() == Some(LEGACY_WS) {
            assert_eq!(self.recv_json().await["type"], "ka");
        }
    }

    pub async fn send(&mut self, message: Value) {
        self.send_text(message.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::Text(text.into())).await.expect("send");
    }

    /// Subscribes with id `id` (`subscribe` or, on graphql-ws, `start`).
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = if self.protocol.as_deref() == Some(LEGACY_WS) { "start" } else { "subscribe" };
        self.send(json!({"type": kind, "id": id, "payload": {"query": query, "variables": variables}})).await;
    }

    pub async fn complete(&mut self, id: &str) {
        let kind = if self.protocol.as_deref() == Some(LEGACY_WS) { "stop" } else { "complete" };
        self.send(json!({"type": kind, "id": id})).await;
    }

    /// The next protocol message, close, or end, skipping WebSocket pings and pongs.
    pub async fn recv(&mut self) -> Received {
        loop {
            let next = tokio::time::timeout(PATIENCE, self.ws.next()).await.expect("nothing arrived in time");
            match next {
                Some(Ok(Message::Text(text))) => {
                    return Received::Json(serde_json::from_str(&text).expect("json message"))
                }
                Some(Ok(Message::Close(frame))) => {
                    // Sends the close frame tungstenite queued in answer, as browsers do at once.
                    let _ = self.ws.flush().await;
                    return match frame {
                        Some(frame) => Received::Closed(u16::from(frame.code), frame.reason.to_string()),
                        None => Received::Closed(u16::from(CloseCode::Status), String::new()),
                    };
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Binary(_))) => panic!("unexpected binary message"),
                Some(Err(_)) | None => return Received::Ended,
            }
        }
    }

    /// The next text message as it was sent, skipping pings and pongs.
    pub async fn recv_text(&mut self) -> String {
        loop {
            let next = tokio::time::timeout(PATIENCE, self.ws.next()).await.expect("nothing arrived in time");
            match next {
                Some(Ok(Message::Text(text))) => return text.to_string(),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    pub async fn recv_json(&mut self) -> Value {
        match self.recv().await {
            Received::Json(value) => value,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// Expects the hub to close the connection; returns code and reason.
    pub async fn recv_close(&mut self) -> (u16, String) {
        loop {
            match self.recv().await {
                Received::Closed(code, reason) => return (code, reason),
                Received::Json(value) if value["type"] == "ka" => {}
                other => panic!("expected a close, got {other:?}"),
            }
        }
    }

    /// Sends a protocol `ping` and reads up to its `pong`: everything the hub sent before the
    /// pong is returned. A barrier that proves what did not arrive, without waiting and hoping.
    pub async fn until_pong(&mut self) -> Vec<Value> {
        self.send(json!({"type": "ping"})).await;
        let mut before = Vec::new();
        loop {
            let message = self.recv_json().await;
            if message["type"] == "pong" {
                return before;
            }
            before.push(message);
        }
    }
}

pub const EVENTS_QUERY: &str = "subscription($topic: String!) { events(topic: $topic) { topic id payload } }";

/// A token with `claims`, valid for ten minutes, signed with the HS256 `secret`.
pub fn signed_token(secret: &str, claims: Value) -> String {
    let mut claims = claims;
    claims["exp"] = json!(subhub::auth::now() + 600);
    subhub::auth::sign_hs256(secret.as_bytes(), &claims)
}
