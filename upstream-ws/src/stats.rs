//! Numbers each upstream keeps for `/metrics`.

use std::sync::atomic::{AtomicBool, AtomicI64};

#[derive(Debug, Default)]
pub struct UpstreamStats {
    /// Open WebSocket connections to the upstream (`subhub_upstream_connections`).
    pub connections: AtomicI64,
    /// Live upstream subscriptions (`subhub_sources_open{kind="upstream"}`).
    pub sources_open: AtomicI64,
    /// The last connection attempt failed (`/readyz` reports the upstream).
    pub failing: AtomicBool,
}
