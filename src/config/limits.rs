//! `[limits]` (DESIGN §14): every queue, buffer, per-connection and per-address structure is
//! bounded by one of these.

use std::time::Duration;

use serde::Deserialize;

/// The most connections any limit may allow (far beyond what one process can hold open).
const MAX_CONNECTIONS: usize = 100_000_000;

/// Below this, ordinary results could not be queued at all.
const MIN_CONNECTION_BUFFER_BYTES: usize = 64 * 1024;

/// `[limits]`: every queue, buffer and per-connection structure is bounded by one of these.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Client sessions (WebSocket, SSE, multipart, the dashboard's status stream) open at most,
    /// counted before the upgrade; more are refused with HTTP 503.
    pub max_connections: usize,
    /// Plain HTTP connections (requests, and connections not yet upgraded) open at once besides
    /// the sessions; while this many are open, a new connection is answered 503 and closed.
    pub max_http_connections: usize,
    /// Connections one client address (an IPv6 client by its /64) may hold open at once, HTTP
    /// connections and sessions alike; more are answered 429 and closed. Behind a proxy of
    /// `[http] trusted_proxies`, the client's address is the one the proxy forwards.
    pub connections_per_ip: usize,
    /// Sources open at once across every broker and upstream; a subscription that needs one more gets an
    /// `error`.
    pub max_sources: usize,
    /// Shared executions alive at once; a subscription that needs one more gets an `error`.
    pub max_executions: usize,
    /// Subscribe messages one connection may send per second (a burst of as many is allowed);
    /// more get an `error` for that id.
    pub subscribe_rate: u32,
    /// Connections one client address (an IPv6 client by its /64) may open per second (a burst
    /// of as many); more are answered 429 and closed before anything is read. Behind a proxy of
    /// `[http] trusted_proxies`, each request it forwards counts as a connect of its client.
    pub connect_rate_per_ip: u32,
    /// Messages of any kind one connection may send per second (a burst of as many); a client
    /// that sends faster is read more slowly, and TCP slows it down.
    pub message_rate: u32,
    /// Nesting of fields in one operation (fragments expanded).
    pub max_query_depth: usize,
    /// Fields in one operation once its fragments are expanded.
    pub max_query_complexity: usize,
    /// Aliased fields in one operation once its fragments are expanded.
    pub max_aliases: usize,
    /// Broker wildcards in one subscribed topic (`*` and `#` of AMQP, the glob characters of a
    /// Redis pattern).
    pub max_topic_wildcards: usize,
    /// Distinct documents kept parsed and checked.
    pub document_cache: usize,
    /// Bytes of document text kept parsed and checked.
    pub document_cache_bytes: usize,
    /// Operations one connection may run at once.
    pub max_subscriptions_per_connection: usize,
    /// Largest WebSocket message or frame a client may send (close 1009), and largest body
    /// published through the hub (HTTP 413).
    pub max_message_bytes: usize,
    /// Messages queued for one connection at most.
    pub connection_queue: usize,
    /// Bytes one connection may hold at most: of the results in its queue, and of frames its
    /// socket has not taken yet, each. Over it, the oldest queued `next` is dropped.
    pub connection_buffer_bytes: usize,
    /// A connection whose socket takes no byte for this long while bytes wait for it is
    /// dropped (a client that stopped reading, or advertises a zero window).
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// What happens when a connection's queue overflows.
    pub slow_consumer: SlowConsumer,
    /// How long a connection may stay behind (its queue overflowing) before it is closed with 1013.
    #[serde(with = "humantime_serde")]
    pub slow_consumer_timeout: Duration,
    /// Events a shared execution may fall behind its source before it loses the oldest.
    pub source_buffer: usize,
    /// Events one resumed subscription may replay at most; a client further behind gets
    /// `recovered = false` and reloads.
    pub max_replay: usize,
    /// Replays running at once over the hub; more wait their turn (their clients' live results
    /// held meanwhile), so resumes cannot take the hub's CPU from live delivery.
    pub max_replays: usize,
    #[serde(with = "humantime_serde")]
    pub connection_init_timeout: Duration,
    /// Interval of server pings (and graphql-ws `ka`); a client silent for two intervals is
    /// dropped. Also the interval of the keep-alive comment on SSE streams.
    #[serde(with = "humantime_serde")]
    pub keepalive: Duration,
    /// Interval of the heartbeat part `{}` on multipart subscriptions.
    #[serde(with = "humantime_serde")]
    pub multipart_heartbeat: Duration,
    /// How long a source stays open after its last subscriber leaves.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// How long shutdown waits for connections to drain.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// A connection must send a request's head within this, and an idle keep-alive connection
    /// is closed after it.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A request must arrive whole, body included, and be answered within this (408
    /// otherwise). Streams and WebSocket sessions are answered at once and run on.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SlowConsumer {
    /// Drop the oldest queued message and count it; close after `slow_consumer_timeout` behind.
    #[default]
    DropOldest,
    /// Close with 1013 at the first overflow.
    Close,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 20_000,
            max_http_connections: 1024,
            connections_per_ip: 256,
            max_sources: 10_000,
            max_executions: 10_000,
            subscribe_rate: 50,
            message_rate: 200,
            connect_rate_per_ip: 200,
            max_query_depth: 16,
            max_query_complexity: 1000,
            max_aliases: 30,
            max_topic_wildcards: 8,
            document_cache: 1000,
            document_cache_bytes: 16 * 1024 * 1024,
            max_subscriptions_per_connection: 100,
            max_message_bytes: 1024 * 1024,
            connection_queue: 1024,
            connection_buffer_bytes: 4 * 1024 * 1024,
            write_timeout: Duration::from_secs(30),
            slow_consumer: SlowConsumer::DropOldest,
            slow_consumer_timeout: Duration::from_secs(10),
            source_buffer: 1024,
            max_replay: 10_000,
            max_replays: 64,
            connection_init_timeout: Duration::from_secs(3),
            keepalive: Duration::from_secs(12),
            multipart_heartbeat: Duration::from_secs(5),
            linger: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// Every limit in its range, each mistake named by its key.
    pub(super) fn validate(&self) -> Result<(), String> {
        let limits = self;
        for (key, value) in [
            ("limits.max_connections", limits.max_connections),
            ("limits.max_http_connections", limits.max_http_connections),
            ("limits.connections_per_ip", limits.connections_per_ip),
            ("limits.max_sources", limits.max_sources),
            ("limits.max_executions", limits.max_executions),
            ("limits.subscribe_rate", limits.subscribe_rate as usize),
            ("limits.message_rate", limits.message_rate as usize),
            ("limits.connect_rate_per_ip", limits.connect_rate_per_ip as usize),
            ("limits.max_query_depth", limits.max_query_depth),
            ("limits.max_query_complexity", limits.max_query_complexity),
            ("limits.document_cache", limits.document_cache),
            ("limits.max_subscriptions_per_connection", limits.max_subscriptions_per_connection),
            ("limits.max_message_bytes", limits.max_message_bytes),
            ("limits.connection_queue", limits.connection_queue),
            ("limits.source_buffer", limits.source_buffer),
            ("limits.max_replays", limits.max_replays),
        ] {
            if value == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        if limits.connection_buffer_bytes < MIN_CONNECTION_BUFFER_BYTES {
            return Err(format!("limits.connection_buffer_bytes must be at least {MIN_CONNECTION_BUFFER_BYTES}"));
        }
        if limits.write_timeout.is_zero() {
            return Err("limits.write_timeout must be longer than 0s".to_owned());
        }
        // The places of sessions and HTTP connections are semaphore permits.
        for (key, value) in [
            ("limits.max_connections", limits.max_connections),
            ("limits.max_http_connections", limits.max_http_connections),
            ("limits.max_replays", limits.max_replays),
        ] {
            if value > MAX_CONNECTIONS {
                return Err(format!("{key} must be at most {MAX_CONNECTIONS}"));
            }
        }
        for (key, value) in [
            ("limits.keepalive", limits.keepalive),
            ("limits.multipart_heartbeat", limits.multipart_heartbeat),
            ("limits.connection_init_timeout", limits.connection_init_timeout),
            ("limits.header_timeout", limits.header_timeout),
            ("limits.request_timeout", limits.request_timeout),
        ] {
            if value.is_zero() {
                return Err(format!("{key} must be longer than 0s"));
            }
        }
        Ok(())
    }
}
