//! # subhub-upstream-ws
//!
//! subhub's client of upstream GraphQL servers over WebSocket (graphql-transport-ws or the
//! legacy graphql-ws, whichever the server picks): one connection per (upstream, forwarded
//! credentials), closed after its last subscription, reconnected with backoff and
//! re-subscribed when the upstream drops. Identical operations are shared by the hub's
//! registry (subhub-subscriptions), which opens each once here.
//!
//! ## Layout
//! - [`config`]: the `upstreams.NAME` tables.
//! - [`connection`]: one WebSocket connection: handshake, multiplexing, keepalive, reconnect.
//! - [`pool`]: connections by credentials, refcounted by their subscriptions.
//! - [`introspect`]: reading the upstream's schema at start.
//! - [`model`]: the upstream's type system, from introspection or SDL.
//! - [`rewrite`]: hub names to upstream names in operations, and back in results.
//! - [`error`], [`stats`]: what fails, and what `/metrics` shows.

pub mod config;
pub mod connection;
pub mod error;
pub mod introspect;
pub mod model;
pub mod pool;
pub mod rewrite;
pub mod stats;

pub use config::UpstreamConfig;
pub use connection::Item;
pub use error::UpstreamError;
pub use model::TypeModel;
pub use pool::{Subscription, Upstream};
pub use rewrite::{ForwardedOperation, Namespace};
pub use stats::UpstreamStats;
