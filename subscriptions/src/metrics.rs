//! The hub's metrics (DESIGN §9). Plain atomics: the hot paths add once per batch, and
//! `/metrics` reads them all.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use subhub_brokers::Brokers;
use subhub_protocol::Protocol;

#[derive(Debug, Default)]
pub struct Metrics {
    connections: [AtomicI64; Transport::ALL.len()],
    pub subscriptions: AtomicI64,
    pub executions: AtomicI64,
    pub deliveries: AtomicU64,
    /// Messages a slow connection's queue dropped (oldest first).
    pub dropped_slow_consumer: AtomicU64,
    /// Events an execution missed because it fell behind its source.
    pub dropped_lagged: AtomicU64,
    /// Connections closed with 1013 for staying behind.
    pub slow_consumer_closes: AtomicU64,
    /// Connections dropped after `write_timeout` without the socket taking a byte.
    pub stalled_closes: AtomicU64,
    /// Messages waiting in connection queues right now.
    pub queued: AtomicI64,
    /// Events that passed an execution's filters, and those they dropped (once per event per
    /// execution, whatever its number of subscribers).
    pub filter_passed: AtomicU64,
    pub filter_dropped: AtomicU64,
    /// Events whose result did not fit the schema somewhere (a `null` and an error in its place).
    pub event_errors: AtomicU64,
    /// Times a connection's reading was paused for sending faster than its message rate.
    pub throttled: AtomicU64,
    /// Requests refused, by [`Refusal`].
    refused: [AtomicU64; Refusal::ALL.len()],
    /// Resumed subscriptions that missed nothing, and those told to reload.
    resumes_recovered: AtomicU64,
    resumes_lost: AtomicU64,
    /// Events sent to resumed subscriptions from their broker's history.
    pub replayed: AtomicU64,
}

/// Why a request was refused (`subhub_refused_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `[authz]` allows no such topic.
    Forbidden,
    /// A configured limit.
    Limit,
    /// A rate limit.
    Rate,
    /// `[auth]` refused the credentials.
    Auth,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [Refusal::Forbidden, Refusal::Limit, Refusal::Rate, Refusal::Auth];

    pub const fn label(self) -> &'static str {
        match self {
            Refusal::Forbidden => "forbidden",
            Refusal::Limit => "limit",
            Refusal::Rate => "rate",
            Refusal::Auth => "auth",
        }
    }
}

/// One upstream server's numbers, as `/metrics` shows them.
#[derive(Clone, Debug)]
pub struct UpstreamSample {
    pub name: String,
    pub connections: i64,
    pub sources_open: i64,
}

/// How a client is connected (`subhub_connections{transport}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Ws(Protocol),
    /// GraphQL over SSE (graphql-sse, distinct connections).
    Sse,
    /// Multipart HTTP subscriptions (`subscriptionSpec=1.0`).
    Multipart,
}

impl Transport {
    pub const ALL: [Transport; 4] =
        [Transport::Ws(Protocol::TransportWs), Transport::Ws(Protocol::LegacyWs), Transport::Sse, Transport::Multipart];

    pub const fn label(self) -> &'static str {
        match self {
            Transport::Ws(protocol) => protocol.name(),
            Transport::Sse => "sse",
            Transport::Multipart => "multipart",
        }
    }

    const fn index(self) -> usize {
        match self {
            Transport::Ws(Protocol::TransportWs) => 0,
            Transport::Ws(Protocol::LegacyWs) => 1,
            Transport::Sse => 2,
            Transport::Multipart => 3,
        }
    }
}

impl Metrics {
    pub fn connection_opened(&self, transport: Transport) {
        self.connections[transport.index()].fetch_add(1, Relaxed);
    }

    pub fn connection_closed(&self, transport: Transport) {
        self.connections[transport.index()].fetch_sub(1, Relaxed);
    }

    /// Open connections over one transport.
    pub fn connections_over(&self, transport: Transport) -> i64 {
        self.connections[transport.index()].load(Relaxed)
    }

    pub fn connections(&self) -> i64 {
        self.connections.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Counts a resumed subscription by whether it missed nothing.
    pub fn resumed(&self, recovered: bool) {
        let counter = if recovered { &self.resumes_recovered } else { &self.resumes_lost };
        counter.fetch_add(1, Relaxed);
    }

    /// Counts a refused request.
    pub fn refuse(&self, reason: Refusal) {
        self.refused[reason as usize].fetch_add(1, Relaxed);
    }

    pub fn refused(&self, reason: Refusal) -> u64 {
        self.refused[reason as usize].load(Relaxed)
    }

    /// Prometheus text exposition of every metric; `upstreams` are the upstream servers' numbers.
    pub fn render(&self, brokers: &Brokers, upstreams: &[UpstreamSample]) -> String {
        let mut out = String::with_capacity(2048);
        let _ = writeln!(out, "# HELP subhub_connections Open client connections.\n# TYPE subhub_connections gauge");
        for transport in Transport::ALL {
            let value = self.connections_over(transport);
            let _ = writeln!(out, "subhub_connections{{transport=\"{}\"}} {value}", transport.label());
        }
        let gauge = |out: &mut String, name: &str, help: &str, value: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        };
        gauge(
            &mut out,
            "subhub_subscriptions",
            "Client subscriptions receiving from live sources.",
            self.subscriptions.load(Relaxed),
        );
        gauge(
            &mut out,
            "subhub_executions",
            "Shared executions (distinct operation keys) alive.",
            self.executions.load(Relaxed),
        );
        gauge(&mut out, "subhub_queued_messages", "Messages waiting in connection queues.", self.queued.load(Relaxed));

        let _ = writeln!(out, "# HELP subhub_sources_open Open sources.\n# TYPE subhub_sources_open gauge");
        for broker in brokers.iter() {
            let stats = broker.stats();
            let _ = writeln!(
                out,
                "subhub_sources_open{{kind=\"{}\",broker=\"{}\"}} {}",
                broker.kind(),
                broker.name(),
                stats.sources_open.load(Relaxed)
            );
        }
        for upstream in upstreams {
            let _ = writeln!(
                out,
                "subhub_sources_open{{kind=\"upstream\",upstream=\"{}\"}} {}",
                upstream.name, upstream.sources_open
            );
        }
        let _ = writeln!(
            out,
            "# HELP subhub_upstream_connections Open WebSocket connections to upstreams.\n# TYPE subhub_upstream_connections gauge"
        );
        for upstream in upstreams {
            let _ =
                writeln!(out, "subhub_upstream_connections{{upstream=\"{}\"}} {}", upstream.name, upstream.connections);
        }
        let _ = writeln!(out, "# HELP subhub_broker_connected 1 while the broker's connection is up.\n# TYPE subhub_broker_connected gauge");
        for broker in brokers.iter() {
            let up = i64::from(broker.stats().connected.load(Relaxed));
            let _ = writeln!(out, "subhub_broker_connected{{broker=\"{}\"}} {up}", broker.name());
        }
        let _ = writeln!(
            out,
            "# HELP subhub_broker_subscriptions Subscriptions held on the broker itself (channels, bindings, assigned topics).\n# TYPE subhub_broker_subscriptions gauge"
        );
        for broker in brokers.iter() {
            let n = broker.stats().broker_subscriptions.load(Relaxed);
            let _ = writeln!(out, "subhub_broker_subscriptions{{broker=\"{}\"}} {n}", broker.name());
        }
        let _ = writeln!(out, "# HELP subhub_events_received_total Events read from sources.\n# TYPE subhub_events_received_total counter");
        for broker in brokers.iter() {
            let n = broker.stats().events_received.load(Relaxed);
            let _ = writeln!(out, "subhub_events_received_total{{broker=\"{}\"}} {n}", broker.name());
        }
        let _ = writeln!(
            out,
            "# HELP subhub_deliveries_total Next messages written to clients.\n# TYPE subhub_deliveries_total counter\nsubhub_deliveries_total {}",
            self.deliveries.load(Relaxed)
        );
        let too_large: u64 = brokers.iter().map(|b| b.stats().dropped_too_large.load(Relaxed)).sum();
        let _ = writeln!(out, "# HELP subhub_dropped_total Messages dropped.\n# TYPE subhub_dropped_total counter");
        for (reason, n) in [
            ("slow_consumer", self.dropped_slow_consumer.load(Relaxed)),
            ("lagged", self.dropped_lagged.load(Relaxed)),
            ("too_large", too_large),
        ] {
            let _ = writeln!(out, "subhub_dropped_total{{reason=\"{reason}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP subhub_slow_consumer_closes_total Connections closed with 1013 for staying behind.\n# TYPE subhub_slow_consumer_closes_total counter\nsubhub_slow_consumer_closes_total {}",
            self.slow_consumer_closes.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP subhub_stalled_closes_total Connections dropped after write_timeout without taking a byte.\n# TYPE subhub_stalled_closes_total counter\nsubhub_stalled_closes_total {}",
            self.stalled_closes.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP subhub_publish_total Events published through the hub.\n# TYPE subhub_publish_total counter"
        );
        for broker in brokers.iter() {
            let n = broker.stats().published.load(Relaxed);
            let _ = writeln!(out, "subhub_publish_total{{broker=\"{}\"}} {n}", broker.name());
        }
        let _ = writeln!(
            out,
            "# HELP subhub_throttled_total Times a connection's reading was paused for sending faster than limits.message_rate.\n# TYPE subhub_throttled_total counter\nsubhub_throttled_total {}",
            self.throttled.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP subhub_filter_evaluations_total Events tested by an execution's filters, once per event per execution.\n# TYPE subhub_filter_evaluations_total counter\nsubhub_filter_evaluations_total{{result=\"passed\"}} {}\nsubhub_filter_evaluations_total{{result=\"dropped\"}} {}",
            self.filter_passed.load(Relaxed),
            self.filter_dropped.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP subhub_event_errors_total Events that did not fit their typed field.\n# TYPE subhub_event_errors_total counter\nsubhub_event_errors_total {}",
            self.event_errors.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP subhub_resumes_total Resumed subscriptions, by whether they missed nothing.\n# TYPE subhub_resumes_total counter\nsubhub_resumes_total{{recovered=\"true\"}} {}\nsubhub_resumes_total{{recovered=\"false\"}} {}",
            self.resumes_recovered.load(Relaxed),
            self.resumes_lost.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP subhub_replayed_total Events sent to resumed subscriptions from their broker's history.\n# TYPE subhub_replayed_total counter\nsubhub_replayed_total {}",
            self.replayed.load(Relaxed)
        );
        let _ = writeln!(out, "# HELP subhub_refused_total Requests refused.\n# TYPE subhub_refused_total counter");
        for reason in Refusal::ALL {
            let _ = writeln!(out, "subhub_refused_total{{reason=\"{}\"}} {}", reason.label(), self.refused(reason));
        }
        out
    }
}
