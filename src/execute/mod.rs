//! Executing a subscription's selection on each event, once per execution, straight into the
//! bytes every subscriber is sent. async-graphql parses, validates and resolves a subscription's
//! root field (its arguments, its sources); what it selects of each event is written here:
//! fields in the order of the selection, JSON values passed through as they were published,
//! typed values checked against the schema where they are read, without a tree built per event.
//!
//! ## Layout
//! - [`model`]: the types results can have, and where their fields are read from.
//! - [`plan`]: a subscription's selection compiled against the model, once per execution.
//! - [`write`]: one event through a plan, with the spec's null propagation.
//! - [`payload`]: reading JSON members without decoding them.

pub mod model;
pub mod payload;
pub mod plan;
pub mod write;

pub use model::{ExecModel, Meta};
pub use plan::{compile, Plan, PlanError};
pub use write::{write, Output};
