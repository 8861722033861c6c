//! Plain broker subscribers: clients of the broker itself, run beside the WebSocket clients on
//! the same events and the same clock, so one run shows what the hub adds over reading the
//! broker directly. Each one reads the topic the way the hub does (Redis SUBSCRIBE or XREAD,
//! a RabbitMQ queue bound to the topic exchange, a Kafka consumer assigned at the end of every
//! partition) and hands each event's body to the run.

use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::{Message as _, Offset, TopicPartitionList};
use redis::streams::StreamReadReply;
use tokio::sync::mpsc;

use crate::options::{PublishVia, RunOptions};

/// Bodies a plain subscriber has read but the run has not yet taken.
const BACKLOG: usize = 4096;

/// Subscribes to `topic` on the run's broker; bodies arrive on the returned channel, which
/// closes when the subscription ends.
pub async fn subscribe(options: &RunOptions, topic: &str, index: usize) -> anyhow::Result<mpsc::Receiver<String>> {
    let url = options.broker_url.clone().ok_or_else(|| anyhow!("--plain needs --broker-url"))?;
    let (bodies, receiver) = mpsc::channel(BACKLOG);
    match options.publish {
        PublishVia::Redis => redis_pubsub(&url, topic, bodies).await?,
        PublishVia::RedisStreams => redis_streams(&url, topic, bodies).await?,
        PublishVia::Amqp => amqp(&url, &options.exchange, topic, index, bodies).await?,
        PublishVia::Kafka => kafka(options.kafka_config(&url), topic, bodies).await?,
        PublishVia::Http | PublishVia::WsMutation => {
            bail!("--plain needs a broker to read: --publish redis, redis-streams, amqp or kafka")
        }
    }
    Ok(receiver)
}

async fn redis_pubsub(url: &str, topic: &str, bodies: mpsc::Sender<String>) -> anyhow::Result<()> {
    let client = redis::Client::open(url).context("--broker-url")?;
    let mut pubsub = client.get_async_pubsub().await.context("Redis")?;
    pubsub.subscribe(topic).await.context("Redis SUBSCRIBE")?;
    tokio::task::spawn_local(async move {
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let body = String::from_utf8_lossy(message.get_payload_bytes()).into_owned();
            if bodies.send(body).await.is_err() {
                return;
            }
        }
    });
    Ok(())
}

async fn redis_streams(url: &str, topic: &str, bodies: mpsc::Sender<String>) -> anyhow::Result<()> {
    let client = redis::Client::open(url).context("--broker-url")?;
    // A blocking read must not time out on the client side.
    let blocking = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut connection = client.get_multiplexed_async_connection_with_config(&blocking).await.context("Redis")?;
    let topic = topic.to_owned();
    tokio::task::spawn_local(async move {
        let mut last = "$".to_owned();
        loop {
            let read = redis::cmd("XREAD")
                .arg("BLOCK")
                .arg(0)
                .arg("STREAMS")
                .arg(&topic)
                .arg(&last)
                .query_async::<Option<StreamReadReply>>(&mut connection)
                .await;
            let Ok(reply) = read else { return };
            for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                last = entry.id;
                let Some(payload) = entry.map.get("payload") else { continue };
                let Ok(body) = redis::from_redis_value::<String>(payload.clone()) else { continue };
                if bodies.send(body).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(())
}

async fn amqp(
    url: &str,
    exchange: &str,
    topic: &str,
    index: usize,
    bodies: mpsc::Sender<String>,
) -> anyhow::Result<()> {
    let connection =
        lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await.context("RabbitMQ")?;
    let channel = connection.create_channel().await?;
    // Declared as the hub declares it, so whichever comes first, both agree.
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    channel.exchange_declare(exchange.into(), lapin::ExchangeKind::Topic, durable, FieldTable::default()).await?;
    let queue = format!("subhub-load-{}-{index}", std::process::id());
    let private = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
    channel.queue_declare(queue.as_str().into(), private, FieldTable::default()).await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.into(),
            topic.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let no_ack = BasicConsumeOptions { no_ack: true, ..Default::default() };
    let mut consumer = channel.basic_consume(queue.as_str().into(), "".into(), no_ack, FieldTable::default()).await?;
    tokio::task::spawn_local(async move {
        let _connection = connection;
        while let Some(Ok(delivery)) = consumer.next().await {
            if bodies.send(String::from_utf8_lossy(&delivery.data).into_owned()).await.is_err() {
                return;
            }
        }
    });
    Ok(())
}

async fn kafka(mut config: rdkafka::ClientConfig, topic: &str, bodies: mpsc::Sender<String>) -> anyhow::Result<()> {
    // The hub's own consumer settings: a group of its own, no commits, starting at the end.
    let consumer: StreamConsumer = config
        .set("group.id", format!("subhub-load-{}-{:08x}", std::process::id(), fastrand::u32(..)))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "latest")
        .create()
        .context("Kafka consumer")?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).context("Kafka metadata")?;
    let partitions = metadata.topics().iter().find(|t| t.name() == topic).map_or(0, |t| t.partitions().len());
    if partitions == 0 {
        bail!("Kafka topic {topic} has no partitions (does it exist?)");
    }
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions as i32 {
        assignment.add_partition_offset(topic, partition, Offset::End)?;
    }
    consumer.assign(&assignment).context("Kafka assign")?;
    tokio::task::spawn_local(async move {
        let mut messages = consumer.stream();
        while let Some(Ok(message)) = messages.next().await {
            let body = message.payload_view::<str>().and_then(Result::ok).unwrap_or_default().to_owned();
            if bodies.send(body).await.is_err() {
                return;
            }
        }
    });
    Ok(())
}
