//! # subhub-federation
//!
//! The hub as a federation gateway (DESIGN §15): a Federation v2 supergraph is served beside
//! the hub's own schemas; queries and mutations are planned once per distinct document and
//! executed across the subgraphs that own the data.
//!
//! Planning is not ours: `hive-router-query-planner` does it, behind [`planner`] alone.
//!
//! ## Layout
//! - [`config`]: `[federation]` and `[subgraphs.NAME]`.
//! - [`supergraph`]: the supergraph read at start: its planner, its API schema.
//! - [`schema`]: the types of a schema, as execution and projection need them.
//! - [`planner`]: the query planner, the only module that knows it; [`plan`]: its plans in
//!   our terms.
//! - [`values`]: GraphQL literals as JSON.

pub mod config;
pub mod plan;
pub mod planner;
pub mod schema;
pub mod supergraph;
pub mod values;

pub use config::{FederationConfig, SubgraphConfig};
pub use plan::OperationKind;
pub use supergraph::{Supergraph, SupergraphError};
