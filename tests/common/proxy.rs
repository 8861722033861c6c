//! A TCP proxy of a test's own in front of a real broker or server: it counts the connections
//! it accepts, can stop forwarding without closing anything (a silent partition: no FIN, no
//! RST, nothing flows either way until it forwards again), and can cut every connection a while
//! after accepting it (a server that accepts and drops).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

struct State {
    target: SocketAddr,
    forwarding: watch::Sender<bool>,
    accepted: AtomicUsize,
    /// Each connection is closed this long after it was accepted.
    cut_after: Option<Duration>,
}

impl Proxy {
    /// Forwards every connection to `target` until told otherwise.
    pub async fn start(target: &str) -> Self {
        Self::with(target, None).await
    }

    /// Forwards each connection for `after`, then closes both of its sides.
    pub async fn cutting(target: &str, after: Duration) -> Self {
        Self::with(target, Some(after)).await
    }

    async fn with(target: &str, cut_after: Option<Duration>) -> Self {
        let target: SocketAddr = target.parse().expect("a socket address");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state =
            Arc::new(State { target, forwarding: watch::Sender::new(true), accepted: AtomicUsize::new(0), cut_after });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                shared.accepted.fetch_add(1, Relaxed);
                tokio::spawn(connection(shared.clone(), client));
            }
        });
        Proxy { addr, state, task }
    }

    /// `host:port` of the proxy, for a URL.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Relaxed)
    }

    /// Stops forwarding: connections stay open and bytes wait where they are.
    pub fn stall(&self) {
        self.state.forwarding.send_replace(false);
    }

    /// Forwards again whatever waited, and everything after.
    pub fn resume(&self) {
        self.state.forwarding.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn connection(state: Arc<State>, client: TcpStream) {
    let Ok(server) = TcpStream::connect(state.target).await else { return };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let both = async {
        tokio::join!(
            pipe(client_read, server_write, state.forwarding.subscribe()),
            pipe(server_read, client_write, state.forwarding.subscribe()),
        )
    };
    match state.cut_after {
        // Dropping the halves closes both sockets.
        Some(after) => drop(tokio::time::timeout(after, both).await),
        None => drop(both.await),
    }
}

/// Copies one direction, holding at most one read's bytes while stalled; ends when either side
/// closes.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut forwarding: watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if forwarding.wait_for(|on| *on).await.is_err() {
            return;
        }
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        if forwarding.wait_for(|on| *on).await.is_err() || to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
