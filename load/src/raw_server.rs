//! `subhub-load raw-server`: a bare fan-out server, the floor of this machine. It speaks just
//! enough graphql-transport-ws (ack, subscribe, pong) and serves `POST /publish/{topic}` by
//! writing a pre-built `next` frame to every subscriber of the topic, batching what is queued
//! for a socket into one write, as the hub does, with no GraphQL at all.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use futures_util::SinkExt;
use tokio::sync::mpsc;

/// Frames queued for one socket at most; more are dropped (the floor does not buffer).
const QUEUE: usize = 1024;

#[derive(Default)]
struct Topics {
    /// topic -> (socket number -> (subscription id as JSON, queue))
    subscribers: HashMap<String, HashMap<u64, (String, mpsc::Sender<String>)>>,
    next_socket: u64,
}

type Shared = Arc<Mutex<Topics>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Topics> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

pub async fn serve(listen: SocketAddr, topic_variable: String) -> anyhow::Result<()> {
    let shared = Shared::default();
    let app = axum::Router::new()
        .route("/graphql", get(upgrade))
        .route("/publish/{topic}", post(publish))
        .with_state((shared, Arc::new(topic_variable)));
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    eprintln!("raw fan-out server on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn publish(
    State((shared, _)): State<(Shared, Arc<String>)>,
    Path(topic): Path<String>,
    body: Bytes,
) -> &'static str {
    let payload = format!(r#"{{"data":{{"events":{{"payload":{}}}}}}}"#, String::from_utf8_lossy(&body));
    let topics = lock(&shared);
    if let Some(subscribers) = topics.subscribers.get(&topic) {
        for (id, queue) in subscribers.values() {
            let _ = queue.try_send(format!(r#"{{"id":{id},"type":"next","payload":{payload}}}"#));
        }
    }
    r#"{"ok":true}"#
}

async fn upgrade(
    State((shared, variable)): State<(Shared, Arc<String>)>,
    ws: WebSocketUpgrade,
) -> axum::response::Response {
    ws.protocols(["graphql-transport-ws"])
        .read_buffer_size(2048)
        .on_upgrade(move |socket| session(socket, shared, variable))
}

async fn session(mut socket: WebSocket, shared: Shared, variable: Arc<String>) {
    let (queue, mut frames) = mpsc::channel::<String>(QUEUE);
    let number = {
        let mut topics = lock(&shared);
        topics.next_socket += 1;
        topics.next_socket
    };
    let mut subscribed: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            message = socket.recv() => {
                let Some(Ok(Message::Text(text))) = message else {
                    if matches!(message, Some(Ok(_))) { continue }
                    break;
                };
                let Ok(parsed) = serde_json::from_str::<serde_json::Value>(&text) else { break };
                let reply = match parsed["type"].as_str() {
                    Some("connection_init") => Some(r#"{"type":"connection_ack"}"#),
                    Some("ping") => Some(r#"{"type":"pong"}"#),
                    Some("subscribe") => {
                        let topic = parsed["payload"]["variables"][variable.as_str()].as_str().unwrap_or_default().to_owned();
                        let id = parsed["id"].to_string();
                        lock(&shared).subscribers.entry(topic.clone()).or_default().insert(number, (id, queue.clone()));
                        subscribed.push(topic);
                        None
                    }
                    _ => None,
                };
                if let Some(reply) = reply {
                    if socket.send(Message::Text(reply.into())).await.is_err() {
                        break;
                    }
                }
            }
            frame = frames.recv() => {
                let Some(frame) = frame else { break };
                if socket.feed(Message::Text(frame.into())).await.is_err() {
                    break;
                }
                while let Ok(frame) = frames.try_recv() {
                    if socket.feed(Message::Text(frame.into())).await.is_err() {
                        break;
                    }
                }
                if socket.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    let mut topics = lock(&shared);
    for topic in subscribed {
        if let Some(subscribers) = topics.subscribers.get_mut(&topic) {
            subscribers.remove(&number);
        }
    }
}
