//! # subhub-federation
//!
//! The hub as a federation gateway (DESIGN §15): a Federation v2 supergraph is served beside
//! the hub's own schemas; queries and mutations are planned once per distinct document and
//! executed across the subgraphs that own the data, and events are completed with the fields
//! other subgraphs own.
//!
//! ## Layout
//! - [`config`]: `[federation]` and `[subgraphs.NAME]`.
//! - [`compose`]: a supergraph composed from subgraph SDLs (`subhub compose`).

pub mod compose;
pub mod config;

pub use config::{FederationConfig, SubgraphConfig};
