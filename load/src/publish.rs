//! Publishing events by the method the run names.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use futures_util::{SinkExt, StreamExt};
use lapin::options::BasicPublishOptions;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::options::{PublishVia, RunOptions};

/// Entries a Redis stream keeps (roughly) when the generator adds to it.
const STREAM_LENGTH: u64 = 100_000;

/// Where a publishing mutation's outcome goes: `Err` carries the server's message.
type Answer = oneshot::Sender<Result<(), String>>;

/// Settles the mutation a reply on the publisher's connection is about.
fn answered(text: &str, waiting: &mut HashMap<String, Answer>) {
    let Ok(reply) = serde_json::from_str::<serde_json::Value>(text) else { return };
    let Some(id) = reply["id"].as_str() else { return };
    let outcome = match reply["type"].as_str() {
        Some("next") if reply["payload"]["errors"].is_array() => Err(reply["payload"]["errors"].to_string()),
        Some("next") | Some("complete") => Ok(()),
        Some("error") => Err(reply["payload"].to_string()),
        _ => return,
    };
    if let Some(answer) = waiting.remove(id) {
        let _ = answer.send(outcome);
    }
}

pub enum Publisher {
    Http { client: reqwest::Client, base: String },
    WsMutation { outgoing: mpsc::UnboundedSender<(String, String, Answer)>, next_id: std::cell::Cell<u64> },
    Redis { connection: redis::aio::MultiplexedConnection, streams: bool },
    Kafka { producer: FutureProducer },
    Amqp { channel: Box<lapin::Channel>, exchange: String, _connection: Box<lapin::Connection> },
}

impl Publisher {
    pub async fn connect(options: &RunOptions) -> anyhow::Result<Self> {
        let broker = || options.broker_url.clone().ok_or_else(|| anyhow!("--broker-url is needed"));
        Ok(match options.publish {
            PublishVia::Http => Publisher::Http { client: reqwest::Client::new(), base: options.http_base() },
            PublishVia::WsMutation => {
                let mut request = options.url.as_str().into_client_request()?;
                request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
                let (mut socket, _) =
                    tokio_tungstenite::connect_async(request).await.context("publisher connection")?;
                socket.send(Message::Text(r#"{"type":"connection_init"}"#.into())).await?;
                let (outgoing, mut queue) = mpsc::unbounded_channel::<(String, String, Answer)>();
                tokio::task::spawn_local(async move {
                    // Each mutation is answered: a server that refuses one (an operation limit,
                    // say) is counted as a publish error, not as events it lost.
                    let mut waiting: HashMap<String, Answer> = HashMap::new();
                    loop {
                        tokio::select! {
                            request = queue.recv() => match request {
                                Some((id, text, answer)) => {
                                    waiting.insert(id, answer);
                                    if socket.send(Message::Text(text.into())).await.is_err() { return }
                                }
                                None => return,
                            },
                            message = socket.next() => match message {
                                Some(Ok(Message::Text(text))) => answered(&text, &mut waiting),
                                Some(Ok(_)) => {}
                                Some(Err(_)) | None => return,
                            },
                        }
                    }
                });
                Publisher::WsMutation { outgoing, next_id: std::cell::Cell::new(0) }
            }
            PublishVia::Redis | PublishVia::RedisStreams => {
                let client = redis::Client::open(broker()?.as_str()).context("--broker-url")?;
                let connection = client.get_multiplexed_async_connection().await.context("Redis")?;
                Publisher::Redis { connection, streams: options.publish == PublishVia::RedisStreams }
            }
            PublishVia::Kafka => {
                let producer = options.kafka_config(&broker()?).create().context("Kafka producer")?;
                Publisher::Kafka { producer }
            }
            PublishVia::Amqp => {
                let connection = lapin::Connection::connect(&broker()?, lapin::ConnectionProperties::default())
                    .await
                    .context("RabbitMQ")?;
                let channel = connection.create_channel().await?;
                Publisher::Amqp {
                    channel: Box::new(channel),
                    exchange: options.exchange.clone(),
                    _connection: Box::new(connection),
                }
            }
        })
    }

    /// Publishes one body; errors are returned, never retried (the run counts them).
    pub async fn publish(&self, topic: &str, body: String) -> anyhow::Result<()> {
        match self {
            Publisher::Http { client, base } => {
                let response = client.post(format!("{base}/publish/{topic}")).body(body).send().await?;
                if !response.status().is_success() {
                    return Err(anyhow!("publish answered {}", response.status()));
                }
            }
            Publisher::WsMutation { outgoing, next_id } => {
                let id = next_id.get();
                next_id.set(id + 1);
                let message = serde_json::json!({
                    "type": "subscribe",
                    "id": format!("p{id}"),
                    "payload": {
                        "query": "mutation($t: String!, $p: JSON!) { publish(topic: $t, payload: $p) { ok } }",
                        "variables": {"t": topic, "p": serde_json::from_str::<serde_json::Value>(&body)?},
                    }
                });
                let (answer, answered) = oneshot::channel();
                outgoing
                    .send((format!("p{id}"), message.to_string(), answer))
                    .map_err(|_| anyhow!("publisher connection closed"))?;
                answered.await.map_err(|_| anyhow!("publisher connection closed"))?.map_err(|error| anyhow!(error))?;
            }
            Publisher::Redis { connection, streams: false } => {
                let mut connection = connection.clone();
                let _: i64 = redis::cmd("PUBLISH").arg(topic).arg(body).query_async(&mut connection).await?;
            }
            Publisher::Redis { connection, streams: true } => {
                let mut connection = connection.clone();
                // Trimmed, so repeated runs do not grow the stream without end.
                let mut xadd = redis::cmd("XADD");
                xadd.arg(topic).arg("MAXLEN").arg("~").arg(STREAM_LENGTH).arg("*").arg("payload").arg(body);
                let _: String = xadd.query_async(&mut connection).await?;
            }
            Publisher::Kafka { producer } => {
                producer
                    .send(FutureRecord::<(), str>::to(topic).payload(&body), Duration::from_secs(5))
                    .await
                    .map_err(|(error, _)| anyhow!(error))?;
            }
            Publisher::Amqp { channel, exchange, .. } => {
                channel
                    .basic_publish(
                        exchange.as_str().into(),
                        topic.into(),
                        BasicPublishOptions::default(),
                        body.as_bytes(),
                        Default::default(),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}
