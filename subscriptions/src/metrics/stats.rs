//! The numbers each broker and upstream keeps itself ([`BrokerStats`](subhub_brokers::BrokerStats),
//! [`UpstreamStats`]), read into families at every gather. What is read can be replaced while
//! the hub runs (brokers and upstreams of a new config), so one collector is registered once.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};
use subhub_brokers::Brokers;
use subhub_upstream_ws::UpstreamStats;

use super::handle::{Declared, Kind};
use crate::lock;

/// One upstream server's numbers, by its name.
#[derive(Clone, Debug)]
pub struct UpstreamNumbers {
    pub name: Arc<str>,
    pub stats: Arc<UpstreamStats>,
}

/// What the collector reads.
#[derive(Default)]
struct Sources {
    brokers: Option<Arc<Brokers>>,
    upstreams: Vec<UpstreamNumbers>,
}

/// The families it produces. `subhub_dropped_total` is shared with the hub's own counters
/// (the `too_large` series is the brokers'); the registry merges the two by name.
const SOURCES_OPEN: Declared =
    Declared { name: "subhub_sources_open", help: "Open sources, by broker or upstream.", kind: Kind::Gauge };
const UPSTREAM_CONNECTIONS: Declared = Declared {
    name: "subhub_upstream_connections",
    help: "Open WebSocket connections to upstreams.",
    kind: Kind::Gauge,
};
const UPSTREAM_REACHABLE: Declared = Declared {
    name: "subhub_upstream_reachable",
    help: "1 unless the last connection attempt to the upstream failed.",
    kind: Kind::Gauge,
};
const BROKER_CONNECTED: Declared =
    Declared { name: "subhub_broker_connected", help: "1 while the broker's connection is up.", kind: Kind::Gauge };
const BROKER_SUBSCRIPTIONS: Declared = Declared {
    name: "subhub_broker_subscriptions",
    help: "Subscriptions held on the broker itself (channels, bindings, assigned topics).",
    kind: Kind::Gauge,
};
const EVENTS_RECEIVED: Declared =
    Declared { name: "subhub_events_received_total", help: "Events read from sources.", kind: Kind::Counter };
const PUBLISHED: Declared =
    Declared { name: "subhub_publish_total", help: "Events published through the hub.", kind: Kind::Counter };
pub(super) const DROPPED: Declared =
    Declared { name: "subhub_dropped_total", help: "Messages dropped, by reason.", kind: Kind::Counter };

/// The families that are the collector's alone (declared to the registry, so no other
/// collector can take their names).
pub(super) const OWNED: [Declared; 7] = [
    SOURCES_OPEN,
    UPSTREAM_CONNECTIONS,
    UPSTREAM_REACHABLE,
    BROKER_CONNECTED,
    BROKER_SUBSCRIPTIONS,
    EVENTS_RECEIVED,
    PUBLISHED,
];

/// Reads brokers' and upstreams' stats at gather time.
pub(super) struct StatsCollector {
    sources: Arc<Mutex<Sources>>,
    descs: Vec<Desc>,
}

/// Where the hub says what the collector reads.
#[derive(Clone, Default)]
pub(super) struct StatsSources(Arc<Mutex<Sources>>);

impl StatsSources {
    pub(super) fn set(&self, brokers: Arc<Brokers>, upstreams: Vec<UpstreamNumbers>) {
        *lock(&self.0) = Sources { brokers: Some(brokers), upstreams };
    }
}

impl StatsCollector {
    pub(super) fn new(sources: &StatsSources) -> Self {
        let descs = OWNED
            .iter()
            .map(|family| Desc::new(family.name.into(), family.help.into(), Vec::new(), Default::default()))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|error| panic!("a sampled family is malformed: {error}"));
        StatsCollector { sources: sources.0.clone(), descs }
    }
}

impl Collector for StatsCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let sources = lock(&self.sources);
        let mut families = Families::default();
        let mut too_large = 0;
        for broker in sources.brokers.iter().flat_map(|brokers| brokers.iter()) {
            let (name, stats) = (broker.name(), broker.stats());
            let by_broker = [("broker", name)];
            families.gauge(
                SOURCES_OPEN,
                &[("kind", broker.kind()), ("broker", name)],
                stats.sources_open.load(Relaxed),
            );
            families.gauge(BROKER_CONNECTED, &by_broker, i64::from(stats.connected.load(Relaxed)));
            families.gauge(BROKER_SUBSCRIPTIONS, &by_broker, stats.broker_subscriptions.load(Relaxed));
            families.counter(EVENTS_RECEIVED, &by_broker, stats.events_received.load(Relaxed));
            families.counter(PUBLISHED, &by_broker, stats.published.load(Relaxed));
            too_large += stats.dropped_too_large.load(Relaxed);
        }
        families.counter(DROPPED, &[("reason", "too_large")], too_large);
        for upstream in &sources.upstreams {
            let (name, stats) = (&*upstream.name, &upstream.stats);
            let by_upstream = [("upstream", name)];
            families.gauge(SOURCES_OPEN, &[("kind", "upstream"), ("upstream", name)], stats.sources_open.load(Relaxed));
            families.gauge(UPSTREAM_CONNECTIONS, &by_upstream, stats.connections.load(Relaxed));
            families.gauge(UPSTREAM_REACHABLE, &by_upstream, i64::from(!stats.failing.load(Relaxed)));
        }
        families.0
    }
}

/// Families built series by series, in the order they are first named.
#[derive(Default)]
struct Families(Vec<MetricFamily>);

impl Families {
    fn family(&mut self, declared: Declared) -> &mut MetricFamily {
        let at = match self.0.iter().position(|family| family.name() == declared.name) {
            Some(at) => at,
            None => {
                let mut family = MetricFamily::default();
                family.set_name(declared.name.into());
                family.set_help(declared.help.into());
                family.set_field_type(match declared.kind {
                    Kind::Counter => MetricType::COUNTER,
                    Kind::Gauge => MetricType::GAUGE,
                    Kind::Histogram => MetricType::HISTOGRAM,
                });
                self.0.push(family);
                self.0.len() - 1
            }
        };
        &mut self.0[at]
    }

    fn gauge(&mut self, declared: Declared, labels: &[(&str, &str)], value: i64) {
        let mut gauge = proto::Gauge::default();
        gauge.set_value(value as f64);
        let mut metric = proto::Metric::from_gauge(gauge);
        metric.set_label(label_pairs(labels));
        self.family(declared).mut_metric().push(metric);
    }

    fn counter(&mut self, declared: Declared, labels: &[(&str, &str)], value: u64) {
        let mut counter = proto::Counter::default();
        counter.set_value(value as f64);
        let mut metric = proto::Metric::from_label(label_pairs(labels));
        metric.set_counter(counter);
        self.family(declared).mut_metric().push(metric);
    }
}

fn label_pairs(labels: &[(&str, &str)]) -> Vec<LabelPair> {
    labels
        .iter()
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name((*name).into());
            pair.set_value((*value).into());
            pair
        })
        .collect()
}
