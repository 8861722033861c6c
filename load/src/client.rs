//! The generator's WebSocket client of the server under test (graphql-transport-ws), with the
//! messages of `subhub_protocol::client`: where a connection comes from, the handshake, what a
//! subscription sends, and the numbers read back out of an event's text.
//!
//! Reading stays a string search on purpose: a run takes in millions of messages a second on
//! one thread, and parsing each into a tree would make the generator the bottleneck.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use futures_util::{SinkExt, StreamExt};
use nix::sys::socket::{setsockopt, sockopt::IpBindAddressNoPort};
use subhub_protocol::client::{self, ServerMessage};
use subhub_protocol::{OperationPayload, Protocol};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::options::RunOptions;

/// One connection to the server.
pub(crate) type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// How long the server has to acknowledge `connection_init`.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's address, resolved once.
#[derive(Clone)]
pub(crate) struct Target {
    addr: SocketAddr,
    loopback: bool,
}

impl Target {
    pub(crate) fn is_loopback(&self) -> bool {
        self.loopback
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

pub(crate) fn target(url: &str) -> anyhow::Result<Target> {
    let rest = url.split("://").nth(1).ok_or_else(|| anyhow!("--url {url}: not a URL"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .with_context(|| format!("--url {url}: cannot resolve {authority}"))?
        .next()
        .ok_or_else(|| anyhow!("--url {url}: no address for {authority}"))?;
    Ok(Target { loopback: addr.ip().is_loopback(), addr })
}

/// Opens one connection from its own loopback source address (127.0.0.2–127.0.0.251), with
/// `IP_BIND_ADDRESS_NO_PORT` so the port is picked per 4-tuple and ephemeral ports never run out.
pub(crate) async fn open(index: usize, url: &str, target: &Target) -> anyhow::Result<Socket> {
    let source = target.loopback.then(|| Ipv4Addr::new(127, 0, 0, 2 + (index % 250) as u8));
    open_from(source, url, target).await
}

/// Opens one connection from `source` (any address when `None`).
pub(crate) async fn open_from(source: Option<Ipv4Addr>, url: &str, target: &Target) -> anyhow::Result<Socket> {
    let socket = TcpSocket::new_v4()?;
    if let Some(source) = source {
        setsockopt(&socket, IpBindAddressNoPort, &true)?;
        socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    }
    let stream = socket.connect(target.addr).await?;
    stream.set_nodelay(true)?;
    let protocol = Protocol::TransportWs.name();
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", protocol.parse()?);
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (socket, response) = match tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await {
        Err(tokio_tungstenite::tungstenite::Error::Protocol(
            tokio_tungstenite::tungstenite::error::ProtocolError::SecWebSocketSubProtocolError(_),
        )) => bail!("the server does not speak {protocol} (it accepted no such sub-protocol)"),
        other => other?,
    };
    if response.headers().get("Sec-WebSocket-Protocol").and_then(|v| v.to_str().ok()) != Some(protocol) {
        bail!("the server did not accept the {protocol} sub-protocol");
    }
    Ok(socket)
}

/// `connection_init`, then the ack.
pub(crate) async fn handshake(socket: &mut Socket) -> anyhow::Result<()> {
    socket.send(Message::Text(client::connection_init(None).into())).await?;
    let ack = tokio::time::timeout(ACK_TIMEOUT, async {
        while let Some(message) = socket.next().await {
            if let Message::Text(text) = message? {
                return match ServerMessage::parse(Protocol::TransportWs, &text) {
                    Ok(ServerMessage::ConnectionAck) => Ok(()),
                    _ => Err(anyhow!("expected connection_ack, got {text}")),
                };
            }
        }
        bail!("closed before connection_ack")
    })
    .await;
    ack.unwrap_or_else(|_| Err(anyhow!("no connection_ack within {ACK_TIMEOUT:?}")))
}

/// The run's subscription on `topic`, resumed after `cursor` where there is one.
pub(crate) fn subscription(options: &RunOptions, topic: &str, resume: Option<&str>) -> OperationPayload {
    let variables = serde_json::json!({ options.topic_variable.as_str(): topic });
    let extensions = resume.map(|cursor| serde_json::json!({ "resume": cursor }));
    OperationPayload {
        query: options.query.clone(),
        variables: variables.as_object().cloned(),
        extensions: extensions.and_then(|e| e.as_object().cloned()),
        ..OperationPayload::default()
    }
}

/// Sends `subscribe` for `operation` under `id`.
pub(crate) async fn subscribe(socket: &mut Socket, id: &str, operation: &OperationPayload) -> anyhow::Result<()> {
    Ok(socket.send(Message::Text(client::subscribe(Protocol::TransportWs, id, operation).into())).await?)
}

/// Sends `complete` for `id`.
pub(crate) async fn complete(socket: &mut Socket, id: &str) -> anyhow::Result<()> {
    Ok(socket.send(Message::Text(client::stop(Protocol::TransportWs, id).into())).await?)
}

/// The number after `"key":` in `text`.
pub(crate) fn number_after(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let digits = text[start..].trim_start().split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_found_in_any_server_s_framing() {
        let text = r#"{"id":"s","type":"next","payload":{"data":{"events":{"payload":{"seq":42,"t":1700000000123456789,"pad":"x"}}}}}"#;
        assert_eq!(number_after(text, "\"seq\":"), Some(42));
        assert_eq!(number_after(text, "\"t\":"), Some(1_700_000_000_123_456_789));
        assert_eq!(number_after(text, "\"missing\":"), None);
    }
}
