//! Handles the hot paths count with, and the registrar that declares each family once and
//! resolves its series into handles.
//!
//! A handle is an atomic behind a pointer shared with the registry: counting is one relaxed
//! add, with no lookup and no lock. Handles speak the atomics' vocabulary (`fetch_add`,
//! `fetch_sub`, `load`, `store`) because that is what they are; the ordering is accepted and
//! not used, as the registry reads them relaxed.

use std::sync::atomic::Ordering;

use prometheus::core::Collector;
use prometheus::{HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// A counter (or one series of a labelled counter family).
#[derive(Clone, Debug)]
pub struct Counter(IntCounter);

impl Counter {
    pub fn fetch_add(&self, n: u64, _: Ordering) {
        self.0.inc_by(n);
    }

    pub fn load(&self, _: Ordering) -> u64 {
        self.0.get()
    }
}

/// A gauge (or one series of a labelled gauge family).
#[derive(Clone, Debug)]
pub struct Gauge(IntGauge);

impl Gauge {
    pub fn fetch_add(&self, n: i64, _: Ordering) {
        self.0.add(n);
    }

    pub fn fetch_sub(&self, n: i64, _: Ordering) {
        self.0.sub(n);
    }

    pub fn store(&self, n: i64, _: Ordering) {
        self.0.set(n);
    }

    pub fn load(&self, _: Ordering) -> i64 {
        self.0.get()
    }
}

/// A histogram of seconds (or one series of a labelled histogram family). Lock-free: an
/// observation is a few relaxed atomic adds.
#[derive(Clone, Debug)]
pub struct Histogram(prometheus::Histogram);

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        self.0.observe(seconds);
    }
}

/// A counter family labelled by values known only when its owner starts (a subgraph's name,
/// an upstream's): the owner resolves each series once, when it builds, never per request.
#[derive(Clone, Debug)]
pub struct CounterFamily(IntCounterVec);

impl CounterFamily {
    /// The series of these label values, in the order the family names its labels.
    pub fn series(&self, values: &[&str]) -> Counter {
        Counter(self.0.with_label_values(values))
    }
}

/// A histogram family labelled by values known only when its owner starts.
#[derive(Clone, Debug)]
pub struct HistogramFamily(prometheus::HistogramVec);

impl HistogramFamily {
    pub fn series(&self, values: &[&str]) -> Histogram {
        Histogram(self.0.with_label_values(values))
    }
}

/// The kind of a family, as the text exposition names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A family as declared: listed in the exposition even while it has no series (an upstream
/// family on a hub without upstreams), so every name the hub exports can be found.
#[derive(Clone, Copy, Debug)]
pub struct Declared {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
}

/// Declares families into a registry and hands out their handles. Names and labels are the
/// hub's own constants: a registration can fail only by a mistake in this crate, which every
/// test that makes a [`crate::Metrics`] would find at once.
pub struct Registrar {
    pub(super) registry: Registry,
    pub(super) declared: Vec<Declared>,
}

impl Registrar {
    pub fn new() -> Self {
        Registrar { registry: Registry::new(), declared: Vec::new() }
    }

    fn register(&mut self, collector: impl Collector + 'static, declared: Declared) {
        if let Err(error) = self.registry.register(Box::new(collector)) {
            panic!("metric family {} cannot be registered: {error}", declared.name);
        }
        self.declared.push(declared);
    }

    pub fn counter(&mut self, name: &'static str, help: &'static str) -> Counter {
        let [counter] = self.counters(name, help, [], [[]]);
        counter
    }

    pub fn gauge(&mut self, name: &'static str, help: &'static str) -> Gauge {
        let [gauge] = self.gauges(name, help, [], [[]]);
        gauge
    }

    /// A counter family and its series for each of `series` (label values in `labels` order),
    /// resolved now.
    pub fn counters<const L: usize, const N: usize>(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: [&str; L],
        series: [[&str; L]; N],
    ) -> [Counter; N] {
        let family = self.counter_family(name, help, &labels);
        series.map(|values| family.series(&values))
    }

    /// A gauge family and its series for each of `series`, resolved now.
    pub fn gauges<const L: usize, const N: usize>(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: [&str; L],
        series: [[&str; L]; N],
    ) -> [Gauge; N] {
        let family = IntGaugeVec::new(Opts::new(name, help), &labels).unwrap_or_else(|e| bad(name, e));
        self.register(family.clone(), Declared { name, help, kind: Kind::Gauge });
        series.map(|values| Gauge(family.with_label_values(&values)))
    }

    /// A counter family whose series are resolved later, by whoever owns its labels.
    pub fn counter_family(&mut self, name: &'static str, help: &'static str, labels: &[&str]) -> CounterFamily {
        let family = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| bad(name, e));
        self.register(family.clone(), Declared { name, help, kind: Kind::Counter });
        CounterFamily(family)
    }

    /// A histogram of seconds with `buckets` as upper bounds.
    pub fn histogram(&mut self, name: &'static str, help: &'static str, buckets: &[f64]) -> Histogram {
        self.histogram_family(name, help, &[], buckets).series(&[])
    }

    pub fn histogram_family(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[&str],
        buckets: &[f64],
    ) -> HistogramFamily {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        let family = prometheus::HistogramVec::new(opts, labels).unwrap_or_else(|e| bad(name, e));
        self.register(family.clone(), Declared { name, help, kind: Kind::Histogram });
        HistogramFamily(family)
    }

    /// A collector of numbers kept elsewhere, read at every gather, with the families it
    /// produces.
    pub fn sampled(&mut self, collector: impl Collector + 'static, families: &[Declared]) {
        if let Err(error) = self.registry.register(Box::new(collector)) {
            panic!("sampled metric families cannot be registered: {error}");
        }
        self.declared.extend_from_slice(families);
    }
}

impl Default for Registrar {
    fn default() -> Self {
        Self::new()
    }
}

fn bad<T>(name: &str, error: prometheus::Error) -> T {
    panic!("metric family {name} is malformed: {error}")
}
