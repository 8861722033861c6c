//! The pub/sub session: one connection, every channel and pattern the hub's sources need.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::mpsc;

use crate::event::Event;
use crate::session::{Command, Link, SessionEnd, Topics};
use crate::sink::BrokerStats;

/// A topic with glob characters is a pattern (PSUBSCRIBE).
fn is_pattern(topic: &str) -> bool {
    wildcards(topic) > 0
}

/// The glob characters of a pattern (`*`, `?`, `[`).
pub fn wildcards(topic: &str) -> usize {
    topic.chars().filter(|c| matches!(c, '*' | '?' | '[')).count()
}

pub async fn run(
    client: redis::Client,
    name: Arc<str>,
    stats: Arc<BrokerStats>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut topics = Topics::default();
    let mut link = Link::new(name, stats, "Redis");
    loop {
        let end = match client.get_async_pubsub().await {
            Ok(pubsub) => {
                let (sink, stream) = pubsub.split();
                session(sink, stream, &mut link, &mut commands, &mut topics).await
            }
            Err(error) => {
                link.unreachable(&error);
                SessionEnd::Disconnected
            }
        };
        if !link.down(end, &mut commands, &mut topics).await {
            return;
        }
    }
}

async fn session(
    mut sink: PubSubSink,
    mut stream: PubSubStream,
    link: &mut Link,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    topics: &mut Topics,
) -> SessionEnd {
    for topic in topics.active.keys() {
        if subscribe(&mut sink, topic).await.is_err() {
            return SessionEnd::Disconnected;
        }
    }
    link.up(topics);
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None => return SessionEnd::Shutdown,
                Some(Command::Subscribe { topic, sink: events, live }) => {
                    if topics.superseded(&topic, &events) {
                        let _ = live.send(Ok(()));
                        continue;
                    }
                    topics.active.insert(topic.clone(), events);
                    if subscribe(&mut sink, &topic).await.is_err() {
                        topics.waiting.push((topic, live));
                        return SessionEnd::Disconnected;
                    }
                    link.held(topics);
                    let _ = live.send(Ok(()));
                }
                Some(Command::Unsubscribe { topic, sink: events }) => {
                    if topics.remove(&topic, &events) {
                        if unsubscribe(&mut sink, &topic).await.is_err() {
                            return SessionEnd::Disconnected;
                        }
                        link.held(topics);
                    }
                }
            },
            message = stream.next() => match message {
                None => {
                    tracing::warn!(broker = %link.name(), "Redis pub/sub connection lost; reconnecting");
                    return SessionEnd::Disconnected;
                }
                Some(message) => deliver(link.name(), topics, &message),
            },
        }
    }
}

/// Returns once Redis confirmed the subscription.
async fn subscribe(sink: &mut PubSubSink, topic: &str) -> redis::RedisResult<()> {
    if is_pattern(topic) {
        sink.psubscribe(topic).await
    } else {
        sink.subscribe(topic).await
    }
}

async fn unsubscribe(sink: &mut PubSubSink, topic: &str) -> redis::RedisResult<()> {
    if is_pattern(topic) {
        sink.punsubscribe(topic).await
    } else {
        sink.unsubscribe(topic).await
    }
}

fn deliver(name: &Arc<str>, topics: &Topics, message: &redis::Msg) {
    let channel = message.get_channel_name();
    let source = if message.from_pattern() { message.get_pattern::<String>().ok() } else { Some(channel.to_owned()) };
    let Some(events) = source.and_then(|topic| topics.active.get(&topic)) else {
        return;
    };
    let body = message.get_payload_bytes();
    if events.admits(body.len()) {
        events.send(Event::new(name.clone(), channel.into(), Bytes::copy_from_slice(body)));
    }
}
