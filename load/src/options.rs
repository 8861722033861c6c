//! What a run does: the target, the scenario and its parameters.

use std::time::Duration;

use clap::{Args, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Hold N subscribed connections; publish nothing.
    Idle,
    /// Every connection on one topic; publish at the rate.
    Broadcast,
    /// N/10 topics of 10 subscribers each; the rate spread over them.
    Partitioned,
    /// One event to every subscriber, once a second; time to the first and the last.
    Burst,
    /// A broadcast at which 1% of the clients stop reading.
    SlowConsumers,
    /// A broadcast with connect-subscribe-leave cycles going on.
    Churn,
    /// A broadcast during which clients drop their sockets and resume from their last cursor
    /// (`--churn-rate` cycles a second); the server's broker must keep history.
    Reconnect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublishVia {
    /// `POST {base}/publish/{topic}` (subhub and the Node peer).
    Http,
    /// The `publish` mutation over a graphql-transport-ws connection.
    WsMutation,
    /// PUBLISH on Redis.
    Redis,
    /// XADD to a Redis stream (the body in the entry's `payload` field).
    RedisStreams,
    /// Produce to Kafka.
    Kafka,
    /// Publish on a RabbitMQ topic exchange.
    Amqp,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("{text}: expected KEY=VALUE"))?;
    Ok((key.trim().to_owned(), value.trim().to_owned()))
}

impl RunOptions {
    /// A Kafka client configuration for the broker, with the run's --kafka-option settings.
    pub fn kafka_config(&self, bootstrap: &str) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", bootstrap);
        for (key, value) in &self.kafka_options {
            config.set(key, value);
        }
        config
    }
}

impl PublishVia {
    /// Whether events go straight into a broker (which plain subscribers can then read).
    pub fn is_broker(self) -> bool {
        matches!(self, PublishVia::Redis | PublishVia::RedisStreams | PublishVia::Kafka | PublishVia::Amqp)
    }

    pub fn name(self) -> &'static str {
        match self {
            PublishVia::Http => "http",
            PublishVia::WsMutation => "ws-mutation",
            PublishVia::Redis => "redis",
            PublishVia::RedisStreams => "redis-streams",
            PublishVia::Kafka => "kafka",
            PublishVia::Amqp => "amqp",
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct RunOptions {
    /// The server's GraphQL WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:4000/graphql")]
    pub url: String,
    #[arg(long, value_enum, default_value = "broadcast")]
    pub scenario: Scenario,
    /// Connections (one subscription each).
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub connections: usize,
    /// Events published per second, all topics together.
    #[arg(long, short = 'r', default_value_t = 10.0)]
    pub rate: f64,
    /// Measurement window.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Connections opened per second.
    #[arg(long, default_value_t = 2000.0)]
    pub ramp: f64,
    /// Approximate size of each event's payload in bytes.
    #[arg(long, default_value_t = 100)]
    pub payload_bytes: usize,
    /// Nest the padding one level down (`"detail": {"pad": …}`), for typed selections of two
    /// levels.
    #[arg(long)]
    pub nested_payload: bool,
    /// The subscription document; `$topic` is set per connection.
    #[arg(long, default_value = "subscription($topic: String!) { events(topic: $topic) { payload } }")]
    pub query: String,
    /// The variable that carries the topic.
    #[arg(long, default_value = "topic")]
    pub topic_variable: String,
    /// Topic names are this prefix plus a number (or the prefix alone for one topic).
    #[arg(long, default_value = "bench")]
    pub topic_prefix: String,
    #[arg(long, value_enum, default_value = "http")]
    pub publish: PublishVia,
    /// Base URL for HTTP publishing and `/metrics` (default: derived from --url).
    #[arg(long)]
    pub http_url: Option<String>,
    /// Broker address for --publish redis/kafka/amqp.
    #[arg(long)]
    pub broker_url: Option<String>,
    /// A librdkafka setting (KEY=VALUE) for the generator's Kafka producer and plain consumers,
    /// e.g. the same `fetch.wait.max.ms` the server's consumer is given. Repeatable.
    #[arg(long = "kafka-option", value_parser = key_value)]
    pub kafka_options: Vec<(String, String)>,
    /// AMQP exchange for --publish amqp.
    #[arg(long, default_value = "subhub")]
    pub exchange: String,
    /// Plain broker subscribers to run beside the server's clients (topics as the first N
    /// connections'), reading the broker named by --publish: the report shows what the server adds.
    #[arg(long, default_value_t = 0)]
    pub plain: usize,
    /// The server's process id: its CPU and memory are sampled.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Churn and reconnect: cycles per second.
    #[arg(long, default_value_t = 500.0)]
    pub churn_rate: f64,
    /// Burst: number of bursts (one a second).
    #[arg(long, default_value_t = 100)]
    pub bursts: usize,
    /// Raise the rate step by step (doubling) until p99 passes this bound (ms) or loss appears.
    #[arg(long)]
    pub step: Option<f64>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the report as JSON to this file as well.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Write an SVG chart (latency over time and its distribution) to this file.
    #[arg(long)]
    pub svg: Option<std::path::PathBuf>,
    /// A label for the report (e.g. the server's name).
    #[arg(long, default_value = "")]
    pub label: String,
}

impl RunOptions {
    /// Checks what can be checked before connecting.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.url.starts_with("ws://") || self.url.starts_with("wss://")) {
            return Err(format!("--url {}: expected a ws:// URL", self.url));
        }
        if self.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1_000_000.0) {
            return Err(format!("--rate {}: expected more than 0 and at most 1,000,000 events per second", self.rate));
        }
        if !(self.ramp.is_finite() && self.ramp > 0.0) {
            return Err(format!("--ramp {}: expected a positive number of connections per second", self.ramp));
        }
        if self.connections > 60_000 {
            return Err(format!("--connections {}: more than one generator process can open", self.connections));
        }
        if self.publish.is_broker() && self.broker_url.is_none() {
            return Err("--broker-url is needed to publish straight into a broker".into());
        }
        if self.plain > 0 && !self.publish.is_broker() {
            return Err("--plain needs a broker to read: --publish redis, redis-streams, amqp or kafka".into());
        }
        if self.plain > 10_000 {
            return Err(format!("--plain {}: at most 10,000 plain subscribers", self.plain));
        }
        Ok(())
    }

    /// The HTTP base of the server, from --http-url or --url.
    pub fn http_base(&self) -> String {
        self.http_url.clone().unwrap_or_else(|| {
            let base = self.url.replacen("ws://", "http://", 1).replacen("wss://", "https://", 1);
            base.strip_suffix("/graphql").unwrap_or(&base).to_owned()
        })
    }

    /// The number of topics and the topic of connection `index`.
    pub fn topics(&self) -> usize {
        match self.scenario {
            Scenario::Partitioned => self.connections.div_ceil(10),
            _ => 1,
        }
    }

    pub fn topic(&self, index: usize) -> String {
        self.topic_name(self.topic_index(index))
    }

    /// Which topic connection `index` subscribes to.
    pub fn topic_index(&self, index: usize) -> usize {
        index % self.topics()
    }

    pub fn topic_name(&self, topic: usize) -> String {
        if self.topics() == 1 {
            self.topic_prefix.clone()
        } else {
            format!("{}.{topic}", self.topic_prefix)
        }
    }
}
