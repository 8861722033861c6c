//! What the gateway counts (DESIGN §18). The crate declares no metrics of its own: it tells
//! the hub's one metrics surface through [`GatewayMetrics`], whose handles for each subgraph
//! are resolved once, when the gateway is built.
//!
//! - `subhub_subgraph_requests_total{subgraph,result}`: [`SubgraphMetrics::request`], `result`
//!   being [`SubgraphResult::label`].
//! - `subhub_subgraph_request_seconds{subgraph}`: the same call's time.
//! - `subhub_subgraph_requests_shared_total{subgraph}`: [`SubgraphMetrics::shared`], a request
//!   answered by an identical one already in flight.
//! - `subhub_plan_cache_total{result}`: [`GatewayMetrics::plan_lookup`].

use std::sync::Arc;
use std::time::Duration;

/// How a subgraph request ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum SubgraphResult {
    Ok,
    Error,
    Timeout,
}

impl SubgraphResult {
    pub const ALL: [SubgraphResult; 3] = [SubgraphResult::Ok, SubgraphResult::Error, SubgraphResult::Timeout];

    /// The value of the `result` label.
    pub const fn label(self) -> &'static str {
        match self {
            SubgraphResult::Ok => "ok",
            SubgraphResult::Error => "error",
            SubgraphResult::Timeout => "timeout",
        }
    }
}

/// Where the gateway's numbers go.
pub trait GatewayMetrics: Send + Sync {
    /// The handles of one subgraph, asked for once when the gateway is built; its series exist
    /// (at zero) from then on.
    fn subgraph(&self, name: &str) -> Arc<dyn SubgraphMetrics>;
    /// A lookup in the plan cache.
    fn plan_lookup(&self, hit: bool);
}

/// One subgraph's numbers.
pub trait SubgraphMetrics: Send + Sync {
    /// A request sent, how it ended, and how long it took.
    fn request(&self, result: SubgraphResult, took: Duration);
    /// A request not sent: an identical one in flight answered it.
    fn shared(&self);
}

/// Counts nothing, for a gateway whose numbers nobody reads.
pub struct Uncounted;

impl GatewayMetrics for Uncounted {
    fn subgraph(&self, _: &str) -> Arc<dyn SubgraphMetrics> {
        Arc::new(Uncounted)
    }

    fn plan_lookup(&self, _: bool) {}
}

impl SubgraphMetrics for Uncounted {
    fn request(&self, _: SubgraphResult, _: Duration) {}

    fn shared(&self) {}
}
