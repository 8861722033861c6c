//! `subhub-load raw-server`: a bare fan-out server, the floor of this machine.
//!
//! It speaks just enough HTTP/1.1 and graphql-transport-ws (upgrade, ack, subscribe, pong,
//! close) by hand, and serves `POST /publish/{topic}` by building the `next` frame once and
//! writing it straight to every subscriber's socket from the publishing task: one write per
//! subscriber per event, no GraphQL, no queue, no task wake-up. Bytes a full socket does not
//! take wait in that subscriber's buffer, which its own task flushes; nothing is dropped.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use subhub_protocol::server::{push_ws_frame_header, WS_TEXT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Bytes of a request head or client frame at most.
const MAX_REQUEST: usize = 64 * 1024;

/// One subscription: its socket, the bytes before the payload in its frames, and what the
/// socket has not taken yet.
struct Subscriber {
    stream: Rc<TcpStream>,
    prefix: Vec<u8>,
    pending: Rc<RefCell<Vec<u8>>>,
    flush: Rc<Notify>,
}

#[derive(Default)]
struct Topics {
    /// topic -> (socket number -> subscriber)
    subscribers: HashMap<String, HashMap<u64, Subscriber>>,
    next_socket: u64,
}

type Shared = Rc<RefCell<Topics>>;

/// Serves until the process is stopped. Everything runs on the calling thread.
pub async fn serve(listen: SocketAddr, topic_variable: String) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    eprintln!("raw fan-out server on {}", listener.local_addr()?);
    let shared = Shared::default();
    let variable = Arc::new(topic_variable);
    tokio::task::LocalSet::new()
        .run_until(async move {
            loop {
                let (stream, _) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        eprintln!("raw server: accept failed: {error}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (shared, variable) = (shared.clone(), variable.clone());
                tokio::task::spawn_local(async move {
                    let _ = connection(stream, shared, &variable).await;
                });
            }
        })
        .await
}

/// Reads HTTP requests until the connection closes or becomes a WebSocket.
async fn connection(mut stream: TcpStream, shared: Shared, variable: &str) -> io::Result<()> {
    let mut buffer = Vec::with_capacity(1024);
    loop {
        let head_end = loop {
            if let Some(end) = find(&buffer, b"\r\n\r\n") {
                break end + 4;
            }
            if buffer.len() > MAX_REQUEST || read_more(&mut stream, &mut buffer).await? == 0 {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let request_line = head.lines().next().unwrap_or_default().to_owned();
        let header = |name: &str| {
            head.lines().skip(1).find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
            })
        };
        if request_line.starts_with("GET /graphql") {
            let Some(key) = header("sec-websocket-key") else {
                stream.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await?;
                return Ok(());
            };
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
                 sec-websocket-accept: {}\r\nsec-websocket-protocol: graphql-transport-ws\r\n\r\n",
                derive_accept_key(key.as_bytes())
            );
            stream.write_all(response.as_bytes()).await?;
            buffer.drain(..head_end);
            return session(stream, buffer, shared, variable).await;
        }
        let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while buffer.len() < head_end + length {
            if length > MAX_REQUEST || read_more(&mut stream, &mut buffer).await? == 0 {
                return Ok(());
            }
        }
        let body = buffer[head_end..head_end + length].to_vec();
        buffer.drain(..head_end + length);
        let topic = request_line.strip_prefix("POST /publish/").and_then(|rest| rest.split(' ').next());
        match topic {
            Some(topic) => {
                publish(&shared, topic, &body);
                stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}",
                    )
                    .await?;
            }
            None => stream.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").await?,
        }
    }
}

/// Writes one event to every subscriber of `topic`.
fn publish(shared: &Shared, topic: &str, body: &[u8]) {
    let topics = shared.borrow();
    let Some(subscribers) = topics.subscribers.get(topic) else { return };
    let mut payload = br#"{"data":{"events":{"payload":"#.to_vec();
    payload.extend_from_slice(body);
    payload.extend_from_slice(b"}}}}");
    // Frames differ only by subscription id: build each distinct one once.
    let mut frames: HashMap<&[u8], Vec<u8>> = HashMap::new();
    for subscriber in subscribers.values() {
        let frame = frames.entry(&subscriber.prefix).or_insert_with(|| {
            let mut frame = Vec::new();
            push_ws_frame_header(&mut frame, WS_TEXT, subscriber.prefix.len() + payload.len() + 1);
            frame.extend_from_slice(&subscriber.prefix);
            frame.extend_from_slice(&payload);
            frame.push(b'}');
            frame
        });
        let mut pending = subscriber.pending.borrow_mut();
        if !pending.is_empty() {
            pending.extend_from_slice(frame);
            continue;
        }
        match subscriber.stream.try_write(frame) {
            Ok(n) if n == frame.len() => {}
            Ok(n) => {
                pending.extend_from_slice(&frame[n..]);
                subscriber.flush.notify_one();
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                pending.extend_from_slice(frame);
                subscriber.flush.notify_one();
            }
            Err(_) => {}
        }
    }
}

/// One WebSocket session: answers the client and flushes what its socket did not take.
async fn session(stream: TcpStream, mut buffer: Vec<u8>, shared: Shared, variable: &str) -> io::Result<()> {
    let stream = Rc::new(stream);
    let pending = Rc::new(RefCell::new(Vec::new()));
    let flush = Rc::new(Notify::new());
    let number = {
        let mut topics = shared.borrow_mut();
        topics.next_socket += 1;
        topics.next_socket
    };
    let mut subscribed: Vec<String> = Vec::new();
    let result = async {
        loop {
            while let Some((opcode, text, used)) = client_frame(&buffer) {
                buffer.drain(..used);
                let reply = match opcode {
                    0x8 => return Ok(()),
                    0x9 => Some(frame(0xA, &text)),
                    WS_TEXT => {
                        let message: serde_json::Value = serde_json::from_slice(&text).unwrap_or_default();
                        match message["type"].as_str() {
                            Some("connection_init") => Some(frame(WS_TEXT, br#"{"type":"connection_ack"}"#)),
                            Some("ping") => Some(frame(WS_TEXT, br#"{"type":"pong"}"#)),
                            Some("subscribe") => {
                                let topic = message["payload"]["variables"][variable].as_str().unwrap_or_default();
                                let prefix = format!(r#"{{"id":{},"type":"next","payload":"#, message["id"]);
                                let subscriber = Subscriber {
                                    stream: stream.clone(),
                                    prefix: prefix.into_bytes(),
                                    pending: pending.clone(),
                                    flush: flush.clone(),
                                };
                                let mut topics = shared.borrow_mut();
                                topics.subscribers.entry(topic.to_owned()).or_default().insert(number, subscriber);
                                subscribed.push(topic.to_owned());
                                None
                            }
                            _ => None,
                        }
                    }
                    _ => None,
                };
                if let Some(reply) = reply {
                    pending.borrow_mut().extend_from_slice(&reply);
                }
            }
            drain(&stream, &pending).await?;
            tokio::select! {
                ready = stream.readable() => {
                    ready?;
                    let mut chunk = [0u8; 1024];
                    match stream.try_read(&mut chunk) {
                        Ok(0) => return Ok(()),
                        Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                        Err(error) => return Err(error),
                    }
                    if buffer.len() > MAX_REQUEST {
                        return Ok(());
                    }
                }
                () = flush.notified() => {}
            }
        }
    }
    .await;
    let mut topics = shared.borrow_mut();
    for topic in subscribed {
        if let Some(subscribers) = topics.subscribers.get_mut(&topic) {
            subscribers.remove(&number);
        }
    }
    result
}

/// Writes everything pending, waiting for the socket as needed.
async fn drain(stream: &TcpStream, pending: &RefCell<Vec<u8>>) -> io::Result<()> {
    loop {
        let written = {
            let mut pending = pending.borrow_mut();
            if pending.is_empty() {
                return Ok(());
            }
            match stream.try_write(&pending) {
                Ok(n) => {
                    pending.drain(..n);
                    continue;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => false,
                Err(error) => return Err(error),
            }
        };
        if !written {
            stream.writable().await?;
        }
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 1024];
    let n = stream.read(&mut chunk).await?;
    buffer.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// A whole masked client frame at the start of `bytes`: (opcode, unmasked payload, bytes used).
fn client_frame(bytes: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let (&first, &second) = (bytes.first()?, bytes.get(1)?);
    let (len, mut at) = match second & 0x7f {
        126 => (u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?) as usize, 4),
        127 => (u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?) as usize, 10),
        len => (len as usize, 2),
    };
    let mask: [u8; 4] = if second & 0x80 != 0 {
        let mask = bytes.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        mask
    } else {
        [0; 4]
    };
    let payload = bytes.get(at..at.checked_add(len)?)?;
    let text = payload.iter().enumerate().map(|(i, byte)| byte ^ mask[i % 4]).collect();
    Some((first & 0x0f, text, at + len))
}

/// A final, unmasked server frame.
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    push_ws_frame_header(&mut frame, opcode, payload.len());
    frame.extend_from_slice(payload);
    frame
}
