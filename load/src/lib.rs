//! # subhub-load
//!
//! A load generator for GraphQL subscription servers that speak graphql-transport-ws: it opens
//! many connections, publishes open-loop, and measures what fan-out costs: deliveries per
//! second, latency from each event's intended send time, loss, duplicates and reordering per
//! subscriber, and the server's CPU and memory. `raw-server` is the floor to compare against.
//!
//! ## Layout
//! - [`options`]: scenarios and their parameters.
//! - [`run`]: a run: connections, readiness probes, open-loop publishing, measurement windows.
//! - `client`: the WebSocket client of the server under test, on `subhub_protocol::client`.
//! - [`plain`]: plain broker subscribers, to measure what the server adds over its broker.
//! - [`aside`]: work on a thread of its own beside the run's.
//! - [`churn`]: connect-subscribe-leave cycles, on a thread of their own.
//! - [`reconnect`]: drop-and-resume cycles, on a thread of their own.
//! - [`attack`]: a hostile client, scripted, to run beside a measured scenario.
//! - [`soak`]: a long run of churn, stalled and steady clients under faults, and what is left
//!   open at its end.
//! - [`publish`]: publishing over HTTP, a WebSocket mutation, or straight into a broker.
//! - [`accounting`]: per-subscriber loss, duplicates and reordering.
//! - [`latency`]: HDR histograms, overall and per second.
//! - [`server`]: the server's CPU and memory from /proc, subhub's /metrics.
//! - [`report`]: the table, JSON and SVG chart.
//! - [`raw_server`]: the bare fan-out server.

pub mod accounting;
pub mod aside;
pub mod attack;
pub mod churn;
mod client;
pub mod latency;
pub mod options;
pub mod plain;
pub mod publish;
pub mod raw_server;
pub mod reconnect;
pub mod report;
pub mod run;
pub mod server;
pub mod soak;
