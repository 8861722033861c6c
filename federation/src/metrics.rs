//! The gateway's metrics (DESIGN §18), as `prometheus-client` families: one registration adds
//! them to any registry ([`FederationMetrics::register`]); [`FederationMetrics::render`]
//! writes them alone in the text format.
//!
//! - `subhub_subgraph_requests_total{subgraph,result}`: `result` is `ok`, `error` or `timeout`.
//! - `subhub_subgraph_request_seconds{subgraph}`: a histogram of request times.
//! - `subhub_subgraph_requests_shared_total{subgraph}`: requests not sent, answered by an
//!   identical one already in flight.
//! - `subhub_plan_cache_total{result}`: plan lookups, `hit` or `miss`.

use std::fmt::{self, Write as _};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// How a subgraph request ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum SubgraphResult {
    Ok,
    Error,
    Timeout,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum CacheResult {
    Hit,
    Miss,
}

impl EncodeLabelValue for SubgraphResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        encoder.write_str(match self {
            SubgraphResult::Ok => "ok",
            SubgraphResult::Error => "error",
            SubgraphResult::Timeout => "timeout",
        })
    }
}

impl EncodeLabelValue for CacheResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        encoder.write_str(match self {
            CacheResult::Hit => "hit",
            CacheResult::Miss => "miss",
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub subgraph: String,
    pub result: SubgraphResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubgraphLabels {
    pub subgraph: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub result: CacheResult,
}

/// Request time buckets, in seconds: 1 ms to 10 s.
const SECONDS_BUCKETS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

fn seconds_histogram() -> Histogram {
    Histogram::new(SECONDS_BUCKETS)
}

#[derive(Clone)]
pub struct FederationMetrics {
    pub subgraph_requests: Family<RequestLabels, Counter>,
    pub subgraph_request_seconds: Family<SubgraphLabels, Histogram, fn() -> Histogram>,
    pub subgraph_requests_shared: Family<SubgraphLabels, Counter>,
    pub plan_cache: Family<CacheLabels, Counter>,
}

impl Default for FederationMetrics {
    fn default() -> Self {
        let metrics = FederationMetrics {
            subgraph_requests: Family::default(),
            subgraph_request_seconds: Family::new_with_constructor(seconds_histogram),
            subgraph_requests_shared: Family::default(),
            plan_cache: Family::default(),
        };
        for result in [CacheResult::Hit, CacheResult::Miss] {
            drop(metrics.plan_cache.get_or_create(&CacheLabels { result }));
        }
        metrics
    }
}

impl FederationMetrics {
    /// Makes a subgraph's series appear, at zero, before its first request.
    pub fn add_subgraph(&self, subgraph: &str) {
        for result in [SubgraphResult::Ok, SubgraphResult::Error, SubgraphResult::Timeout] {
            drop(self.subgraph_requests.get_or_create(&RequestLabels { subgraph: subgraph.to_owned(), result }));
        }
        drop(self.subgraph_request_seconds.get_or_create(&SubgraphLabels { subgraph: subgraph.to_owned() }));
        drop(self.subgraph_requests_shared.get_or_create(&SubgraphLabels { subgraph: subgraph.to_owned() }));
    }

    pub fn subgraph_request(&self, subgraph: &str, result: SubgraphResult, took: Duration) {
        self.subgraph_requests.get_or_create(&RequestLabels { subgraph: subgraph.to_owned(), result }).inc();
        self.subgraph_request_seconds
            .get_or_create(&SubgraphLabels { subgraph: subgraph.to_owned() })
            .observe(took.as_secs_f64());
    }

    pub fn shared_request(&self, subgraph: &str) {
        self.subgraph_requests_shared.get_or_create(&SubgraphLabels { subgraph: subgraph.to_owned() }).inc();
    }

    pub fn plan_lookup(&self, hit: bool) {
        let result = if hit { CacheResult::Hit } else { CacheResult::Miss };
        self.plan_cache.get_or_create(&CacheLabels { result }).inc();
    }

    /// Adds the families to `registry` (they keep counting wherever they are registered).
    pub fn register(&self, registry: &mut Registry) {
        registry.register("subhub_subgraph_requests", "Requests to subgraphs.", self.subgraph_requests.clone());
        registry.register(
            "subhub_subgraph_request_seconds",
            "Subgraph request time.",
            self.subgraph_request_seconds.clone(),
        );
        registry.register(
            "subhub_subgraph_requests_shared",
            "Subgraph requests answered by an identical one already in flight.",
            self.subgraph_requests_shared.clone(),
        );
        registry.register("subhub_plan_cache", "Query plan lookups.", self.plan_cache.clone());
    }

    /// The families in the Prometheus text format (without the OpenMetrics `# EOF`, so the
    /// text can be added to a longer exposition).
    pub fn render(&self) -> String {
        let mut registry = Registry::default();
        self.register(&mut registry);
        let mut text = String::new();
        if prometheus_client::encoding::text::encode_registry(&mut text, &registry).is_err() {
            return String::new();
        }
        text
    }

    /// A counter's value, for tests and the dashboard.
    pub fn subgraph_requests(&self, subgraph: &str, result: SubgraphResult) -> u64 {
        self.subgraph_requests.get_or_create(&RequestLabels { subgraph: subgraph.to_owned(), result }).get()
    }

    pub fn plan_cache(&self, hit: bool) -> u64 {
        let result = if hit { CacheResult::Hit } else { CacheResult::Miss };
        self.plan_cache.get_or_create(&CacheLabels { result }).get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_contract_names() {
        let metrics = FederationMetrics::default();
        metrics.add_subgraph("products");
        metrics.subgraph_request("products", SubgraphResult::Ok, Duration::from_millis(3));
        metrics.plan_lookup(false);
        let text = metrics.render();
        assert!(text.contains(r#"subhub_subgraph_requests_total{subgraph="products",result="ok"} 1"#), "{text}");
        assert!(text.contains(r#"subhub_subgraph_requests_total{subgraph="products",result="timeout"} 0"#), "{text}");
        assert!(text.contains(r#"subhub_subgraph_request_seconds_count{subgraph="products"} 1"#), "{text}");
        assert!(text.contains(r#"subhub_plan_cache_total{result="miss"} 1"#), "{text}");
        assert!(!text.contains("# EOF"));
    }
}
