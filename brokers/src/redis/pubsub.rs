//! The pub/sub session: one subscriber connection for every channel and pattern the hub's
//! sources need, and the command connection beside it.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use subhub_core::{ConnectError, Heartbeat, Reconnect, SessionEnd};
use tokio::sync::mpsc;

use super::{answers, Common};
use crate::event::Event;
use crate::session::{Command, SessionTopics};

/// A topic with glob characters is a pattern (PSUBSCRIBE).
fn is_pattern(topic: &str) -> bool {
    wildcards(topic) > 0
}

/// The glob characters of a pattern (`*`, `?`, `[`).
pub fn wildcards(topic: &str) -> usize {
    topic.chars().filter(|c| matches!(c, '*' | '?' | '[')).count()
}

pub async fn run(common: Common, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut session = Pubsub(common);
    subhub_core::run(&mut session, &mut commands, Reconnect::default()).await;
}

struct Pubsub(Common);

/// A subscriber and a command connection.
type Connections = (PubSubSink, PubSubStream, MultiplexedConnection);

impl subhub_core::Session for Pubsub {
    type Request = Command;
    type Connection = Connections;
    type Error = redis::RedisError;
    const KIND: &'static str = "Redis";

    fn name(&self) -> &str {
        self.0.link.name()
    }

    async fn connect(&mut self) -> Result<Connections, ConnectError<redis::RedisError>> {
        let (sink, stream) = self.0.client.get_async_pubsub().await.map_err(|e| self.0.failed(e))?.split();
        let command = self.0.command_connection().await.map_err(|e| self.0.failed(e))?;
        Ok((sink, stream, command))
    }

    async fn serve(&mut self, connections: Connections, commands: &mut mpsc::UnboundedReceiver<Command>) -> SessionEnd {
        let end = self.session(connections, commands).await;
        self.0.down();
        end
    }

    fn offline(&mut self, command: Command) {
        self.0.topics.apply_offline(command);
    }
}

impl Pubsub {
    async fn session(
        &mut self,
        (mut sink, mut stream, mut command): Connections,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> SessionEnd {
        let mut heartbeat = Heartbeat::new(self.0.keepalive);
        for topic in self.0.topics.active.keys() {
            if !confirmed(&heartbeat, subscribe(&mut sink, topic)).await {
                return SessionEnd::Disconnected;
            }
        }
        self.0.up(&command);
        let Common { link, topics, .. } = &mut self.0;
        loop {
            tokio::select! {
                request = commands.recv() => match request {
                    None => return SessionEnd::Shutdown,
                    Some(Command::Subscribe { topic, sink: events, live }) => {
                        let Some(live) = topics.accept(&topic, events, live) else { continue };
                        if !confirmed(&heartbeat, subscribe(&mut sink, &topic)).await {
                            topics.waiting.push((topic, live));
                            return SessionEnd::Disconnected;
                        }
                        link.held(topics);
                        let _ = live.send(Ok(()));
                    }
                    Some(Command::Unsubscribe { topic, sink: events }) => {
                        if topics.remove(&topic, &events) {
                            if !confirmed(&heartbeat, unsubscribe(&mut sink, &topic)).await {
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
                () = heartbeat.due() => {
                    let subscriber = confirmed(&heartbeat, sink.ping::<redis::Value>()).await;
                    if !subscriber || !answers(&heartbeat, &mut command).await {
                        tracing::warn!(broker = %link.name(), deadline = ?heartbeat.every(), "Redis did not answer PING in time; reconnecting");
                        return SessionEnd::Disconnected;
                    }
                }
            }
        }
    }
}

/// Whether Redis answered `request` without error within the heartbeat's deadline.
async fn confirmed<T>(
    heartbeat: &Heartbeat,
    request: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> bool {
    matches!(heartbeat.within(request).await, Ok(Ok(_)))
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

fn deliver(name: &Arc<str>, topics: &SessionTopics, message: &redis::Msg) {
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
