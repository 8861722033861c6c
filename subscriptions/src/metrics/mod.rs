//! The hub's metrics (DESIGN §9, §18): one list of families, kept in a registry of the
//! `prometheus` crate. `/metrics` renders it, the dashboard samples it and an exporter can send
//! it as it is ([`Metrics::gather`]): there is no second copy of any number.
//!
//! Hot paths hold handles resolved once, when the metrics are made: a labelled family's series
//! (`subhub_refused_total{reason="rate"}`) is a [`Counter`] of its own, so counting is one
//! relaxed atomic add, with no lookup and no lock. The numbers each broker and upstream keeps
//! are read into their families when the list is gathered ([`stats`]).
//!
//! ## Layout
//! - this file: every family the hub exports, declared once in [`Metrics::new`], and the words
//!   of their labels ([`Transport`], [`Refusal`]).
//! - [`handle`]: [`Counter`], [`Gauge`], [`Histogram`], and the [`Registrar`] that declares a
//!   family and resolves its series.
//! - [`stats`]: the brokers' and upstreams' own numbers as families.
//! - [`reading`]: the families at one moment, read by name and label, and their text.
//! - [`delivery`]: the time from an event's arrival to its write to the last subscriber.
//!
//! ## Adding a family
//! One field of [`Metrics`] and one line in [`Metrics::new`], nothing else: it is rendered,
//! gathered and listed from then on.
//! ```ignore
//! pub reloads: [Counter; 2],
//! reloads: families.counters("subhub_reloads_total", "Reloads.", ["result"], [["applied"], ["refused"]]),
//! ```
//! Label values known in advance are resolved there (as above). A family labelled by names
//! known only when its owner starts (a subgraph, an upstream) is declared with
//! [`Registrar::counter_family`] or [`Registrar::histogram_family`] and kept as a
//! [`CounterFamily`] or [`HistogramFamily`]; its owner resolves one handle per name when it
//! builds (`subgraph_requests.series(&["accounts", "ok"])`), never per request.

mod delivery;
mod handle;
mod reading;
mod stats;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use subhub_brokers::Brokers;
use subhub_protocol::Protocol;

pub use delivery::{Arrival, Delivery, LATENCY_BUCKETS};
pub use handle::{Counter, CounterFamily, Declared, Gauge, Histogram, HistogramFamily, Kind, Registrar};
pub use reading::Reading;
pub use stats::UpstreamNumbers;

use delivery::Clocks;
use stats::{StatsCollector, StatsSources};

/// Every family the hub exports, as handles.
pub struct Metrics {
    registrar: Registrar,
    stats: StatsSources,
    connections: [Gauge; Transport::ALL.len()],
    /// Client subscriptions receiving from live sources.
    pub subscriptions: Gauge,
    /// Shared executions alive.
    pub executions: Gauge,
    /// `next` messages written to clients.
    pub deliveries: Counter,
    /// Messages a slow connection's queue dropped (oldest first).
    pub dropped_slow_consumer: Counter,
    /// Events an execution missed because it fell behind its source.
    pub dropped_lagged: Counter,
    /// Connections closed with 1013 for staying behind.
    pub slow_consumer_closes: Counter,
    /// Connections dropped after `write_timeout` without the socket taking a byte.
    pub stalled_closes: Counter,
    /// Messages waiting in connection queues right now.
    pub queued: Gauge,
    /// Events that passed an execution's filters, and those they dropped (once per event per
    /// execution, whatever its number of subscribers).
    pub filter_passed: Counter,
    pub filter_dropped: Counter,
    /// Events whose result did not fit the schema somewhere (a `null` and an error in its place).
    pub event_errors: Counter,
    /// Times a connection's reading was paused for sending faster than its message rate.
    pub throttled: Counter,
    /// Requests refused, by [`Refusal`].
    refused: [Counter; Refusal::ALL.len()],
    /// Resumed subscriptions that missed nothing, and those told to reload.
    resumes: [Counter; 2],
    /// Events sent to resumed subscriptions from their broker's history.
    pub replayed: Counter,
    /// Sources that could not be opened (an unknown topic, a broker or upstream down).
    pub source_errors: Counter,
    /// Lookups in the cache of parsed documents.
    pub document_cache: Lookups,
    /// The federation gateway's subgraph requests (DESIGN §18), by subgraph and result.
    pub subgraph_requests: CounterFamily,
    pub subgraph_request_seconds: HistogramFamily,
    pub subgraph_requests_shared: CounterFamily,
    /// Lookups in the gateway's cache of query plans.
    pub plan_cache: Lookups,
    clocks: Arc<Clocks>,
}

/// A cache's lookups: found, or not.
#[derive(Clone, Debug)]
pub struct Lookups {
    pub hits: Counter,
    pub misses: Counter,
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
    /// The content type of [`Metrics::render`].
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    pub fn new() -> Self {
        let mut families = Registrar::new();
        let stats = StatsSources::default();
        families.sampled(StatsCollector::new(&stats), &stats::OWNED);
        let [dropped_slow_consumer, dropped_lagged] =
            families.counters(stats::DROPPED.name, stats::DROPPED.help, ["reason"], [["slow_consumer"], ["lagged"]]);
        let [filter_passed, filter_dropped] = families.counters(
            "subhub_filter_evaluations_total",
            "Events tested by an execution's filters, once per event per execution.",
            ["result"],
            [["passed"], ["dropped"]],
        );
        let [hits, misses] = families.counters(
            "subhub_document_cache_total",
            "Documents looked up in the cache of parsed documents.",
            ["result"],
            [["hit"], ["miss"]],
        );
        let [plan_hits, plan_misses] =
            families.counters("subhub_plan_cache_total", "Query plan lookups.", ["result"], [["hit"], ["miss"]]);
        Metrics {
            subgraph_requests: families.counter_family(
                "subhub_subgraph_requests_total",
                "Requests to subgraphs, by how they ended.",
                &["subgraph", "result"],
            ),
            subgraph_request_seconds: families.histogram_family(
                "subhub_subgraph_request_seconds",
                "Seconds a subgraph request took.",
                &["subgraph"],
                &LATENCY_BUCKETS,
            ),
            subgraph_requests_shared: families.counter_family(
                "subhub_subgraph_requests_shared_total",
                "Subgraph requests answered by an identical one already in flight.",
                &["subgraph"],
            ),
            plan_cache: Lookups { hits: plan_hits, misses: plan_misses },
            connections: families.gauges(
                "subhub_connections",
                "Open client connections.",
                ["transport"],
                Transport::ALL.map(|transport| [transport.label()]),
            ),
            subscriptions: families
                .gauge("subhub_subscriptions", "Client subscriptions receiving from live sources."),
            executions: families.gauge("subhub_executions", "Shared executions (distinct operation keys) alive."),
            queued: families.gauge("subhub_queued_messages", "Messages waiting in connection queues."),
            deliveries: families.counter("subhub_deliveries_total", "Next messages written to clients."),
            dropped_slow_consumer,
            dropped_lagged,
            slow_consumer_closes: families.counter(
                "subhub_slow_consumer_closes_total",
                "Connections closed with 1013 for staying behind.",
            ),
            stalled_closes: families.counter(
                "subhub_stalled_closes_total",
                "Connections dropped after write_timeout without taking a byte.",
            ),
            throttled: families.counter(
                "subhub_throttled_total",
                "Times a connection's reading was paused for sending faster than limits.message_rate.",
            ),
            filter_passed,
            filter_dropped,
            event_errors: families.counter("subhub_event_errors_total", "Events that did not fit their typed field."),
            resumes: families.counters(
                "subhub_resumes_total",
                "Resumed subscriptions, by whether they missed nothing.",
                ["recovered"],
                [["true"], ["false"]],
            ),
            replayed: families.counter(
                "subhub_replayed_total",
                "Events sent to resumed subscriptions from their broker's history.",
            ),
            source_errors: families.counter("subhub_source_errors_total", "Sources that could not be opened."),
            refused: families.counters(
                "subhub_refused_total",
                "Requests refused, by reason.",
                ["reason"],
                Refusal::ALL.map(|reason| [reason.label()]),
            ),
            document_cache: Lookups { hits, misses },
            clocks: Arc::new(Clocks {
                delivery: families.histogram(
                    "subhub_delivery_seconds",
                    "Seconds from an event's arrival at the hub to the write of its result to the last subscriber, once per event per execution.",
                    &LATENCY_BUCKETS,
                ),
            }),
            stats,
            registrar: families,
        }
    }

    /// Where the brokers' and upstreams' own numbers are read from, from now on.
    pub fn read_stats_of(&self, brokers: Arc<Brokers>, upstreams: Vec<UpstreamNumbers>) {
        self.stats.set(brokers, upstreams);
    }

    /// Every family and its series, now.
    pub fn gather(&self) -> Reading {
        Reading::new(self.registrar.registry.gather())
    }

    /// The Prometheus text exposition of [`Metrics::gather`] (see [`Metrics::CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        self.gather().render(&self.registrar.declared)
    }

    /// Every family declared, whether it has series yet or not.
    pub fn declared(&self) -> &[Declared] {
        &self.registrar.declared
    }

    /// Starts the clock of one event's result (see [`delivery`]).
    pub fn delivery(&self, arrival: Arrival) -> Delivery {
        Delivery::new(arrival, self.clocks.clone())
    }

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
        self.resumes[usize::from(!recovered)].fetch_add(1, Relaxed);
    }

    /// Counts a refused request.
    pub fn refuse(&self, reason: Refusal) {
        self.refused[reason as usize].fetch_add(1, Relaxed);
    }

    pub fn refused(&self, reason: Refusal) -> u64 {
        self.refused[reason as usize].load(Relaxed)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("families", &self.registrar.declared.len()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_rendered_once_and_handles_count_into_it() {
        let metrics = Metrics::new();
        metrics.refuse(Refusal::Rate);
        metrics.deliveries.fetch_add(3, Relaxed);
        metrics.connection_opened(Transport::Sse);
        drop(metrics.delivery(Arrival::now()));
        let text = metrics.render();
        for family in metrics.declared() {
            let kind = format!("# TYPE {} {}\n", family.name, family.kind.name());
            assert_eq!(text.matches(&kind).count(), 1, "{}:\n{text}", family.name);
        }
        for line in [
            "subhub_refused_total{reason=\"rate\"} 1\n",
            "subhub_deliveries_total 3\n",
            "subhub_connections{transport=\"sse\"} 1\n",
            "subhub_delivery_seconds_count 1\n",
            "subhub_dropped_total{reason=\"too_large\"} 0\n",
        ] {
            assert!(text.contains(line), "{line}:\n{text}");
        }
        let reading = metrics.gather();
        assert_eq!(reading.sum("subhub_connections"), 1.0);
        assert_eq!(reading.by("subhub_refused_total", "reason").get("rate"), Some(&1.0));
    }
}
